"""Section "concurrency" (issue 11): many invokes in flight in one environment, against
awslambdaric 4.x's multi-concurrency mode, side by side in one run.

Both runtimes get ``AWS_LAMBDA_MAX_CONCURRENCY=N`` and the same Runtime API server
(bench.rapi_server, its own process, one thread per connection: every slot's ``/next`` parks
at once). awslambdaric forks N full worker processes, each with its own connection; ours runs N
slots in one process (or, for CPU-bound work, ``LAMBDA_RUNTIME_PROCESSES=P`` forked workers):
threads for the sync handler, tasks on one event loop for the ``async def`` one.

Per case, after every slot has parked in ``/next`` (init done), one batch of invokes is served
as fast as the runtime takes them:
  - throughput: invokes / (first ``/next`` answer -> last ``/response``);
  - memory: the sum of PSS over the runtime's process tree (the process and every descendant),
    sampled every 20 ms during the batch, the highest sum kept. PSS rather than RSS: forked
    workers share pages, and PSS charges each shared page once in total.
Cases: a handler that waits 50 ms with ``time.sleep`` (sync) and with ``asyncio.sleep``
(async), and a CPU-bound handler (ours in process mode, one worker per CPU).
"""

from __future__ import annotations

import argparse
import os
import threading
import time
from dataclasses import dataclass
from multiprocessing.connection import wait
from typing import Any

from bench import events
from bench.rapi_server import BatchStats
from bench.report import Row, render
from bench.runtimes import REPO_ROOT, BenchError, Runtime, RuntimeSpec, Server

OURS = RuntimeSpec("ours", "runtime")
THEIRS = RuntimeSpec("awslambdaric", "awslambdaric")
CASES = (
    # (name, our handler, theirs, ours in process mode). awslambdaric 4.x does not await a
    # coroutine (it fails to marshal it), so its side of the async case is the same wait, sync.
    ("sleep 50 ms, sync", "handlers.sleep_sync", "handlers.sleep_sync", False),
    ("sleep 50 ms, async", "handlers.sleep_async", "handlers.sleep_sync", False),
    ("CPU-bound", "handlers.cpu", "handlers.cpu", True),
)
READY_TIMEOUT_S = 120.0
SAMPLE_INTERVAL_S = 0.02


def add_arguments(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("concurrency section")
    g.add_argument(
        "--concurrency-slots", type=int, default=64, help="AWS_LAMBDA_MAX_CONCURRENCY (64)"
    )
    g.add_argument(
        "--concurrency-invokes", type=int, default=1280, help="invokes per batch (1,280)"
    )
    g.add_argument(
        "--concurrency-processes",
        type=int,
        default=0,
        help="LAMBDA_RUNTIME_PROCESSES for the CPU-bound case (default: one per CPU)",
    )


@dataclass
class CaseResult:
    invokes: int
    seconds: float
    pss_kib: int
    processes: int

    @property
    def throughput(self) -> float:
        return self.invokes / self.seconds

    def as_dict(self) -> dict[str, Any]:
        return {
            "invokes": self.invokes,
            "seconds": round(self.seconds, 4),
            "throughput_per_s": round(self.throughput, 1),
            "peak_pss_mib": round(self.pss_kib / 1024, 1),
            "processes": self.processes,
        }


def tree_pids(root: int) -> list[int]:
    """``root`` and every live descendant, from /proc (children of each thread)."""
    found = [root]
    index = 0
    while index < len(found):
        pid = found[index]
        index += 1
        try:
            tids = os.listdir(f"/proc/{pid}/task")
        except FileNotFoundError:
            continue
        for tid in tids:
            try:
                with open(f"/proc/{pid}/task/{tid}/children") as f:
                    found.extend(int(child) for child in f.read().split())
            except FileNotFoundError:
                continue
    return found


def pss_kib(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError):
        pass
    return 0


class PssSampler:
    """The highest summed PSS of a process tree, sampled in a thread until stopped."""

    def __init__(self, root: int) -> None:
        self.root = root
        self.peak_kib = 0
        self.processes = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> PssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while True:
            pids = tree_pids(self.root)
            total = sum(pss_kib(pid) for pid in pids)
            if total > self.peak_kib:
                self.peak_kib = total
            self.processes = max(self.processes, len(pids))
            if self._stop.wait(SAMPLE_INTERVAL_S):
                return


def _wait_for(rt: Runtime, kind: str, count: int, timeout: float) -> list[Any]:
    """The next ``count`` messages of ``kind`` from the server (others are dropped)."""
    conn = rt.server.conn
    got: list[Any] = []
    deadline = time.monotonic() + timeout
    while len(got) < count:
        left = deadline - time.monotonic()
        if left <= 0:
            raise BenchError(
                f"{rt.spec.label}: {len(got)} of {count} {kind!r} within {timeout:.0f} s "
                f"(see {rt.log_path})"
            )
        if not wait([conn], min(left, 0.5)):
            if rt._proc is not None and rt._proc.poll() is not None:
                raise BenchError(f"{rt.spec.label} exited (see {rt.log_path})")
            continue
        msg = conn.recv()
        if msg[0] == "fatal":
            raise BenchError(f"{rt.spec.label}: {msg[1]} (see {rt.log_path})")
        if msg[0] == kind:
            got.append(msg)
    return got


def _measure(
    spec: RuntimeSpec, handler: str, extra_env: dict[str, str], slots: int, invokes: int
) -> CaseResult:
    log_dir = REPO_ROOT / "out" / "bench-logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    case = handler.rsplit(".", 1)[-1] + ("-processes" if extra_env else "")
    server = Server(None)
    rt = Runtime(
        spec,
        server,
        log_dir / f"concurrency-{spec.label}-{case}.log",
        handler=handler,
        extra_env={
            "AWS_LAMBDA_MAX_CONCURRENCY": str(slots),
            "AWS_LAMBDA_INITIALIZATION_TYPE": "lambda-managed-instances",
            **extra_env,
        },
    )
    rt.log_path.write_bytes(b"")
    try:
        server.load("small", events.SMALL_EVENT)
        rt.start()
        # Init is over for every slot once each has parked in /next.
        _wait_for(rt, "idle", slots, READY_TIMEOUT_S)
        with PssSampler(rt.pid) as sampler:
            server.conn.send(("batch", "small", invokes, True))  # with "batch_done"
            (msg,) = _wait_for(rt, "batch_done", 1, READY_TIMEOUT_S)
        stats: BatchStats = msg[1]
        if stats.errors:
            raise BenchError(f"{spec.label}: {stats.errors} errors: {stats.first_error}")
        seconds = (stats.last_response_ns - stats.started_ns) / 1e9
        return CaseResult(invokes, seconds, sampler.peak_kib, sampler.processes)
    finally:
        rt.kill()
        server.stop()


def run(args: argparse.Namespace) -> dict[str, Any]:
    slots: int = args.concurrency_slots
    invokes: int = args.concurrency_invokes
    processes = args.concurrency_processes or len(os.sched_getaffinity(0))
    processes = max(1, min(processes, slots))
    print(
        f"AWS_LAMBDA_MAX_CONCURRENCY={slots}, {invokes:,} invokes per case; ours in process "
        f"mode for the CPU-bound case: LAMBDA_RUNTIME_PROCESSES={processes}",
        flush=True,
    )
    results: dict[str, dict[str, CaseResult]] = {}
    for case, ours_handler, theirs_handler, process_mode in CASES:
        ours_env = {"LAMBDA_RUNTIME_PROCESSES": str(processes)} if process_mode else {}
        results[case] = {
            OURS.label: _measure(OURS, ours_handler, ours_env, slots, invokes),
            # (Its async case repeats the sync one: a fresh process, the same measurement.)
            THEIRS.label: _measure(THEIRS, theirs_handler, {}, slots, invokes),
        }
        for label, res in results[case].items():
            print(
                f"  {case:<20} {label:<13} {res.throughput:8.0f} invokes/s  "
                f"peak PSS {res.pss_kib / 1024:7.1f} MiB in {res.processes} processes",
                flush=True,
            )
    a, b = OURS.label, THEIRS.label
    rows: list[Row] = []
    for case, _, _, process_mode in CASES:
        ours, theirs = results[case][a], results[case][b]
        target = 0.9 if process_mode else 1.5
        rows.append(
            Row(f"throughput, {case}", "inv/s", ours.throughput, theirs.throughput, target, True)
        )
        mem_target = None if process_mode else 0.15
        rows.append(
            Row(
                f"peak PSS sum, {case}",
                "MiB",
                ours.pss_kib / 1024,
                theirs.pss_kib / 1024,
                mem_target,
            )
        )
    print()
    print(render(rows, b))
    return {
        "slots": slots,
        "invokes": invokes,
        "processes_cpu_case": processes,
        "cases": {
            case: {label: res.as_dict() for label, res in per.items()}
            for case, per in results.items()
        },
        "rows": [r.as_dict() for r in rows],
    }
