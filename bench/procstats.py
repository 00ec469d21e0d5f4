"""What the kernel knows about a process: CPU time and peak RSS, read from /proc."""

from __future__ import annotations

import os

_TICK_NS = 1_000_000_000 // os.sysconf("SC_CLK_TCK")


def cpu_ns(pid: int) -> tuple[int, str]:
    """CPU time of all live threads of `pid` in ns, and the source it came from.

    schedstat's first field is the scheduler's exact on-CPU time; utime+stime from
    /proc/<pid>/stat is the fallback, in clock ticks (10 ms), so only good over seconds.
    Threads that already exited are missing from schedstat; `cpu_ns_stat` counts them.
    """
    task_dir = f"/proc/{pid}/task"
    total = 0
    try:
        for tid in os.listdir(task_dir):
            try:
                with open(f"{task_dir}/{tid}/schedstat", "rb") as f:
                    total += int(f.read().split()[0])
            except FileNotFoundError:
                if not os.path.exists(f"{task_dir}/{tid}"):
                    continue  # the thread exited between listdir and open
                raise
    except FileNotFoundError:
        if os.path.exists(f"/proc/{pid}"):
            return cpu_ns_stat(pid), "stat"
        raise
    return total, "schedstat"


def cpu_ns_stat(pid: int) -> int:
    """utime+stime of the whole process (exited threads included), in ns, tick resolution."""
    user, system = user_sys_ns(pid)
    return user + system


def user_sys_ns(pid: int) -> tuple[int, int]:
    """(utime, stime) of the whole process in ns, tick resolution: user code vs kernel."""
    with open(f"/proc/{pid}/stat", "rb") as f:
        data = f.read()
    # The command name may contain spaces and parentheses: fields start after the last ')'.
    fields = data[data.rindex(b")") + 2 :].split()
    return int(fields[11]) * _TICK_NS, int(fields[12]) * _TICK_NS


def status_kib(pid: int, key: str) -> int:
    """A `kB` field of /proc/<pid>/status such as VmHWM (peak RSS) or VmRSS."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    raise KeyError(f"{key} not in /proc/{pid}/status")
