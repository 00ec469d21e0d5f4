"""bench.procstats: the kernel's CPU and memory accounting that the CPU/invoke and RSS rows
come from, read from real child processes."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench import procstats

# The child prints "ready", then waits for a line on stdin before each step, and prints "done"
# after it, so the parent reads /proc exactly around the work it wants to measure.
# Reading the thread's CPU clock is a system call, so it is read only every 20,000 additions:
# spinning is then user time almost entirely.
SPIN = """
def spin(seconds):
    import time
    end = time.thread_time() + seconds
    while time.thread_time() < end:
        x = 0
        for i in range(20_000):
            x += i
"""


class Child:
    def __init__(self, body: str, argv0: str | None = None) -> None:
        code = SPIN + textwrap.dedent(body)
        exe = argv0 or sys.executable
        self.proc = subprocess.Popen(
            [exe, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        self.expect("ready")

    @property
    def pid(self) -> int:
        return self.proc.pid

    def expect(self, word: str) -> None:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline().strip()
        assert line == word, f"child said {line!r}, expected {word!r}"

    def step(self) -> None:
        """Let the child do its next piece of work and wait until it is done."""
        assert self.proc.stdin is not None
        self.proc.stdin.write("go\n")
        self.proc.stdin.flush()
        self.expect("done")

    def close(self) -> None:
        self.proc.kill()
        self.proc.wait()


@pytest.fixture
def child() -> Iterator[type[Child]]:
    started: list[Child] = []

    class Tracked(Child):
        def __init__(self, body: str, argv0: str | None = None) -> None:
            super().__init__(body, argv0)
            started.append(self)

    yield Tracked
    for c in started:
        c.close()


def test_cpu_ns_counts_on_cpu_time_in_nanoseconds(child: type[Child]) -> None:
    c = child(
        """
        import sys
        print("ready", flush=True)
        sys.stdin.readline(); spin(0.3); print("done", flush=True)
        sys.stdin.readline(); print("done", flush=True)
        sys.stdin.readline()
        """
    )
    before, source = procstats.cpu_ns(c.pid)
    assert source == "schedstat"
    c.step()
    busy, _ = procstats.cpu_ns(c.pid)
    # 0.3 s of spinning, plus a little for reading stdin and printing.
    assert 0.29e9 <= busy - before <= 0.4e9
    c.step()  # a step that only waits costs next to nothing
    idle, _ = procstats.cpu_ns(c.pid)
    assert idle - busy < 0.03e9


def test_cpu_ns_adds_up_every_live_thread(child: type[Child]) -> None:
    c = child(
        """
        import sys, threading
        go, stay = threading.Event(), threading.Event()
        def worker():
            go.wait(); spin(0.25); print("done", flush=True); stay.wait()
        threading.Thread(target=worker, daemon=True).start()
        print("ready", flush=True)
        sys.stdin.readline(); go.set()
        sys.stdin.readline()
        """
    )
    before, _ = procstats.cpu_ns(c.pid)
    c.step()
    after, _ = procstats.cpu_ns(c.pid)
    assert after - before >= 0.24e9  # the main thread alone spent almost nothing


def test_stat_figures_keep_the_time_of_threads_that_exited(child: type[Child]) -> None:
    c = child(
        """
        import sys, threading
        print("ready", flush=True)
        sys.stdin.readline()
        t = threading.Thread(target=spin, args=(0.3,)); t.start(); t.join()
        import os, time
        # join() returns a moment before the kernel has reaped the thread.
        while len(os.listdir("/proc/self/task")) > 1:
            time.sleep(0.001)
        print("done", flush=True)
        sys.stdin.readline()
        """
    )
    live0, _ = procstats.cpu_ns(c.pid)
    stat0 = procstats.cpu_ns_stat(c.pid)
    c.step()
    live1, _ = procstats.cpu_ns(c.pid)
    stat1 = procstats.cpu_ns_stat(c.pid)
    assert live1 - live0 < 0.1e9  # the thread is gone from /proc/<pid>/task
    # utime+stime has clock-tick resolution (10 ms at 100 Hz).
    assert 0.27e9 <= stat1 - stat0 <= 0.42e9


def test_user_and_system_time_are_told_apart(child: type[Child]) -> None:
    c = child(
        """
        import os, sys
        buf = bytearray(1 << 20)
        fd = os.open("/dev/zero", os.O_RDONLY)
        print("ready", flush=True)
        sys.stdin.readline(); spin(0.25); print("done", flush=True)
        sys.stdin.readline()
        import time
        end = time.monotonic() + 0.4
        while time.monotonic() < end:
            os.readv(fd, [buf])  # the kernel fills the buffer: system time
        print("done", flush=True)
        sys.stdin.readline()
        """
    )
    u0, s0 = procstats.user_sys_ns(c.pid)
    c.step()
    u1, s1 = procstats.user_sys_ns(c.pid)
    c.step()
    u2, s2 = procstats.user_sys_ns(c.pid)
    assert u1 - u0 >= 0.2e9 and s1 - s0 < 0.05e9
    assert s2 - s1 > 2 * (u2 - u1)


def test_stat_is_parsed_after_a_command_name_with_parentheses_and_spaces(
    child: type[Child], tmp_path: Path
) -> None:
    # The kernel takes the command name from the file name the process was started by.
    weird = tmp_path / "x) R 1 2 (y"
    weird.symlink_to(sys.executable)
    c = child(
        """
        import sys
        print("ready", flush=True)
        sys.stdin.readline(); spin(0.25); print("done", flush=True)
        sys.stdin.readline()
        """,
        argv0=str(weird),
    )
    with open(f"/proc/{c.pid}/stat", "rb") as f:
        assert b"(x) R 1 2 (y)" in f.read()
    u0, _ = procstats.user_sys_ns(c.pid)
    c.step()
    u1, _ = procstats.user_sys_ns(c.pid)
    assert 0.2e9 <= u1 - u0 <= 0.4e9


def test_peak_rss_stays_after_the_memory_is_freed(child: type[Child]) -> None:
    c = child(
        """
        import sys
        print("ready", flush=True)
        sys.stdin.readline()
        block = b"x" * (96 << 20); del block
        print("done", flush=True)
        sys.stdin.readline()
        """
    )
    hwm0 = procstats.status_kib(c.pid, "VmHWM")
    c.step()
    hwm1 = procstats.status_kib(c.pid, "VmHWM")
    rss1 = procstats.status_kib(c.pid, "VmRSS")
    assert hwm1 - hwm0 >= 90 * 1024
    assert hwm1 - rss1 >= 90 * 1024


def test_unknown_status_field_and_gone_process_are_errors(child: type[Child]) -> None:
    c = child('print("ready", flush=True); import sys; sys.stdin.readline()')
    with pytest.raises(KeyError, match="VmNope"):
        procstats.status_kib(c.pid, "VmNope")
    pid = c.pid
    c.close()
    assert not os.path.exists(f"/proc/{pid}")
    with pytest.raises(FileNotFoundError):
        procstats.cpu_ns(pid)
