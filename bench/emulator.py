"""Section ``emulator`` of ``python -m bench``: Invoke API throughput of the emulator, by wrk.

Also runnable alone: ``python -m bench.emulator [--emulator-seconds S]``.

For each runtime (ours: ``python -m runtime``; theirs: ``python -m awslambdaric``) it starts
``lambda-runtime serve handlers.echo --task-root bench/task_root --concurrency 8`` as its own
process (platform lines on, written to ``out/bench-logs/emulator-<runtime>.log``, as a user
would run it), warms up 8 environments, then drives
``POST /2015-03-31/functions/function/invocations`` with the 7-byte event ``{"a":1}`` through
``wrk`` and ``bench/invoke.lua`` at 1 connection and at 8 connections. This is repeated for
``--emulator-rounds`` rounds (runtimes alternating); the table shows, per runtime and connection
count, the round with the median throughput, and lists every round's figure.

Reported per runtime and connection count: invokes/s, mean and p99 latency seen by wrk, the
emulator's own CPU per invoke (kernel accounting of the ``serve`` process, runtimes excluded)
and, at 1 connection, the latency the emulator adds: wrk's mean latency minus the mean
``Duration`` of the REPORT lines of the same invokes. Duration runs, as on Lambda, from handing
the event to the runtime until the runtime asks for the next one (``/next``), so it covers the
runtime's whole turn and the difference is the emulator's part of the round trip (plus wrk's
and the kernel's).

AWS's RIE cannot be installed here (it is a Go binary); its figures on this machine are taken
from issue 3: 1,700 to 2,500 invokes/s at 1 connection with awslambdaric, and no concurrent
invokes. Targets: at 1 connection at least RIE's figure (2,500, the top of its range, to be
safe), at 8 connections at least twice it, under 0.5 ms added latency.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from runtime import protocol

REPO_ROOT = Path(__file__).resolve().parent.parent
TASK_ROOT = Path(__file__).resolve().parent / "task_root"
LUA = Path(__file__).resolve().parent / "invoke.lua"
LOG_DIR = REPO_ROOT / "out" / "bench-logs"
HANDLER = "handlers.echo"
RIE_RANGE = (1700, 2500)
RIE_REFERENCE = RIE_RANGE[1]
TARGET_ADDED_LATENCY_US = 500.0
RUNTIMES: dict[str, list[str] | None] = {
    "ours": None,
    "awslambdaric": [sys.executable, "-m", "awslambdaric"],
}
# Lines carry an "[env-N] " prefix while several environments are alive.
_DURATION = re.compile(
    rb"^(?:\[env-\d+\] )?REPORT RequestId: \S+\tDuration: ([0-9.]+) ms", re.MULTILINE
)


class EmulatorBenchError(Exception):
    """Something broke (not merely slow)."""


def _bench_error(message: str) -> Exception:
    try:
        from bench.runtimes import BenchError
    except ImportError:
        return EmulatorBenchError(message)
    return BenchError(message)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("emulator section")
    group.add_argument(
        "--emulator-seconds",
        type=float,
        default=5.0,
        help="wrk duration per measurement (default 5)",
    )
    group.add_argument(
        "--emulator-runtimes",
        default="ours,awslambdaric",
        help="comma-separated runtimes to put behind the emulator",
    )
    group.add_argument(
        "--emulator-rounds",
        type=int,
        default=3,
        help="rounds, runtimes alternating, a fresh emulator each; the table shows the round "
        "with the median throughput (default 3)",
    )


def _cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat", "rb") as f:
        fields = f.read().rsplit(b")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks


class Served:
    """One ``lambda-runtime serve`` process."""

    def __init__(self, label: str, runtime_cmd: list[str] | None, port: int) -> None:
        LOG_DIR.mkdir(parents=True, exist_ok=True)
        self.log_path = LOG_DIR / f"emulator-{label}.log"
        self.log = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        cmd = [
            sys.executable,
            "-c",
            "import sys; from runtime.cli import main; sys.exit(main())",
            "serve",
            HANDLER,
            "--task-root",
            str(TASK_ROOT),
            "--port",
            str(port),
            "--concurrency",
            "8",
            "--timeout",
            "30",
            "--idle-timeout",
            "3600",
        ]
        if runtime_cmd is not None:
            cmd += ["--runtime-cmd", " ".join(runtime_cmd)]
        env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
        self.proc = subprocess.Popen(
            cmd, cwd=REPO_ROOT, stdout=subprocess.DEVNULL, stderr=self.log, env=env
        )
        self.url = f"http://127.0.0.1:{port}{protocol.invoke_path(protocol.RIE_FUNCTION_NAME)}"
        deadline = time.monotonic() + 20
        while b"Invoke API:" not in self.log_path.read_bytes():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise _bench_error(f"emulator did not start; see {self.log_path}")
            time.sleep(0.05)

    def log_size(self) -> int:
        self.log.flush()
        return self.log_path.stat().st_size

    def durations_ms(self, start: int, end: int) -> list[float]:
        with open(self.log_path, "rb") as f:
            f.seek(start)
            chunk = f.read(end - start)
        return [float(m) for m in _DURATION.findall(chunk)]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


def _wrk(url: str, connections: int, seconds: float) -> dict[str, Any]:
    out = subprocess.run(
        [
            "wrk",
            "-t1",
            f"-c{connections}",
            f"-d{seconds:g}s",
            "--timeout",
            "10s",
            "-s",
            str(LUA),
            url,
        ],
        capture_output=True,
        text=True,
        timeout=seconds + 60,
        check=False,
    )
    line = next((ln for ln in out.stdout.splitlines() if ln.startswith("WRK_JSON ")), None)
    if line is None:
        raise _bench_error(f"wrk printed no results: {out.stdout}{out.stderr}")
    data: dict[str, Any] = json.loads(line[len("WRK_JSON ") :])
    if data["non_200"] or data["function_errors"] or data["socket_errors"]:
        raise _bench_error(f"wrk saw failed invokes: {data}")
    if not data["requests"]:
        raise _bench_error("wrk completed no request")
    data["rps"] = data["requests"] / (data["duration_us"] / 1e6)
    return data


def _measure(served: Served, connections: int, seconds: float) -> dict[str, Any]:
    log_start = served.log_size()
    cpu_start = _cpu_seconds(served.proc.pid)
    data = _wrk(served.url, connections, seconds)
    cpu = _cpu_seconds(served.proc.pid) - cpu_start
    time.sleep(0.2)  # let the last REPORT lines reach the log
    durations = served.durations_ms(log_start, served.log_size())
    data["emulator_cpu_us_per_invoke"] = cpu / data["requests"] * 1e6
    if durations:
        data["runtime_duration_mean_us"] = sum(durations) / len(durations) * 1000
        data["added_latency_us"] = data["latency_mean_us"] - data["runtime_duration_mean_us"]
    return data


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _median_round(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    """The round with the median throughput (a real round, so its numbers fit together)."""
    ordered = sorted(rounds, key=lambda d: float(d["rps"]))
    return dict(ordered[len(ordered) // 2])


def run(args: argparse.Namespace) -> dict[str, Any]:
    if shutil.which("wrk") is None:
        raise _bench_error("wrk is not installed (Debian package `wrk`)")
    seconds = float(getattr(args, "emulator_seconds", 5.0))
    rounds = max(1, int(getattr(args, "emulator_rounds", 3)))
    labels = [
        s.strip()
        for s in str(getattr(args, "emulator_runtimes", "ours,awslambdaric")).split(",")
        if s.strip()
    ]
    for label in labels:
        if label not in RUNTIMES:
            raise _bench_error(f"unknown runtime {label!r}; known: {', '.join(RUNTIMES)}")
    raw: dict[str, dict[str, list[dict[str, Any]]]] = {
        name: {"c1": [], "c8": []} for name in labels
    }
    logs: dict[str, str] = {}
    for _ in range(rounds):
        for label in labels:
            served = Served(label, RUNTIMES[label], _free_port())
            try:
                _wrk(served.url, 8, 1.0)  # warm-up: 8 environments, bytecode caches, ...
                raw[label]["c1"].append(_measure(served, 1, seconds))
                raw[label]["c8"].append(_measure(served, 8, seconds))
            finally:
                served.stop()
            logs[label] = str(served.log_path)
    results: dict[str, Any] = {
        "rie_reference_rps": list(RIE_RANGE),
        "rounds": rounds,
        "runtimes": {},
    }
    for label in labels:
        results["runtimes"][label] = {
            "c1": _median_round(raw[label]["c1"]),
            "c8": _median_round(raw[label]["c8"]),
            "c1_rps_rounds": [round(d["rps"]) for d in raw[label]["c1"]],
            "c8_rps_rounds": [round(d["rps"]) for d in raw[label]["c8"]],
            "all_rounds": raw[label],
            "log": logs[label],
        }
    _print(results)
    results["targets"] = {
        "c1_rps_min": RIE_REFERENCE,
        "c8_rps_min": 2 * RIE_REFERENCE,
        "added_latency_us_max": TARGET_ADDED_LATENCY_US,
    }
    return results


def _print(results: dict[str, Any]) -> None:
    print(
        "Invoke API through the emulator, 7-byte event, echo handler; median of "
        f"{results['rounds']} rounds (RIE on this machine, from issue 3: "
        f"{RIE_RANGE[0]:,}-{RIE_RANGE[1]:,} invokes/s at 1 connection, no concurrency)"
    )
    header = (
        "runtime",
        "conns",
        "invokes/s",
        "all rounds",
        "target",
        "met?",
        "mean lat",
        "p99 lat",
        "emulator CPU/invoke",
        "added latency",
    )
    rows = [header]
    for label, data in results["runtimes"].items():
        for key, conns, target in (("c1", 1, RIE_REFERENCE), ("c8", 8, 2 * RIE_REFERENCE)):
            d = data[key]
            added = d.get("added_latency_us")
            if key != "c1" or added is None:
                added_text = "-"
            else:
                met = "yes" if added < TARGET_ADDED_LATENCY_US else "NO"
                added_text = f"{added / 1000:.3f} ms (<0.5: {met})"
            rows.append(
                (
                    label,
                    str(conns),
                    f"{d['rps']:,.0f}",
                    "/".join(f"{r:,}" for r in data[f"{key}_rps_rounds"]),
                    f">={target:,}",
                    "yes" if d["rps"] >= target else "NO",
                    f"{d['latency_mean_us'] / 1000:.3f} ms",
                    f"{d['latency_p99_us'] / 1000:.3f} ms",
                    f"{d['emulator_cpu_us_per_invoke']:.0f} us",
                    added_text,
                )
            )
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    for i, row in enumerate(rows):
        print("  ".join(cell.ljust(widths[j]) for j, cell in enumerate(row)).rstrip())
        if i == 0:
            print("  ".join("-" * w for w in widths))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.emulator", description=__doc__)
    add_arguments(parser)
    args = parser.parse_args(argv)
    try:
        results = run(args)
    except (EmulatorBenchError, Exception) as exc:
        print(f"BENCHMARK BROKEN: {exc}", file=sys.stderr)
        return 1
    out = REPO_ROOT / "out" / "bench-emulator.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"results written to {out.relative_to(REPO_ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
