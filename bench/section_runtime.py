"""Section "runtime" (issue 2): our runtime against awslambdaric, side by side in one run.

Measures, for each runtime, against the same Runtime API server (its own process) and the
same handler file (bench/task_root/handlers.py):
  - init: spawn -> first GET /next at the server, over several cold starts (and spawn ->
    first /response, with an invoke already waiting);
  - CPU per invoke: the kernel's on-CPU time of the runtime process over N invokes,
    read while the runtime is parked in /next (so the server's speed does not matter);
  - wall per invoke as the server sees it (start of writing /next's answer -> /response read);
  - peak RSS (VmHWM) after the 1 MB case.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from dataclasses import dataclass, field
from typing import Any

from bench import events, procstats
from bench.rapi_server import BatchStats
from bench.report import Row, render
from bench.runtimes import (
    BOTO3_HANDLER,
    REPO_ROOT,
    BenchError,
    Runtime,
    RuntimeSpec,
    Server,
    pick_cpu,
)

THEIRS = RuntimeSpec("awslambdaric", "awslambdaric")

INIT_TIMEOUT_S = 30.0
# Time for the runtime to go from "sent /next" to "blocked in recv" before its CPU is read.
SETTLE_S = 0.005


def add_arguments(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("runtime section")
    g.add_argument(
        "--ours-module",
        default="runtime",
        help="module started as `python -m MODULE HANDLER` for our side (default: runtime); "
        "`--ours-module awslambdaric` checks the harness itself (ratios near 1)",
    )
    g.add_argument("--cold-starts", type=int, default=25, help="cold starts per runtime")
    g.add_argument(
        "--no-pin",
        action="store_true",
        help="let the scheduler place servers and runtimes (default: all on one CPU)",
    )
    g.add_argument("--rounds", type=int, default=7, help="measured batches per runtime and case")
    g.add_argument(
        "--seconds",
        type=float,
        default=1.5,
        help="target wall time of one measured batch of the slower runtime",
    )


@dataclass
class CaseResult:
    n: int = 0
    cpu_ns_per_invoke: list[float] = field(default_factory=list)
    stat_ns_per_invoke: list[float] = field(default_factory=list)
    user_ns_per_invoke: list[float] = field(default_factory=list)
    sys_ns_per_invoke: list[float] = field(default_factory=list)
    wall_median_ns: list[float] = field(default_factory=list)
    wall_mean_ns: list[float] = field(default_factory=list)
    cpu_source: str = ""

    def summary(self) -> dict[str, Any]:
        return {
            "n_per_round": self.n,
            "rounds": len(self.cpu_ns_per_invoke),
            "cpu_us_per_invoke": _us(statistics.median(self.cpu_ns_per_invoke)),
            "cpu_us_per_invoke_rounds": [_us(x) for x in self.cpu_ns_per_invoke],
            "cpu_source": self.cpu_source,
            "cpu_us_per_invoke_from_stat": _us(statistics.median(self.stat_ns_per_invoke)),
            "user_us_per_invoke_from_stat": _us(statistics.median(self.user_ns_per_invoke)),
            "sys_us_per_invoke_from_stat": _us(statistics.median(self.sys_ns_per_invoke)),
            "wall_us_per_invoke_median": _us(statistics.median(self.wall_median_ns)),
            "wall_us_per_invoke_mean": _us(statistics.median(self.wall_mean_ns)),
        }


def _us(ns: float) -> float:
    return round(ns / 1000, 2)


def _ms(ns: float) -> float:
    return round(ns / 1e6, 2)


def _check_batch(rt: Runtime, n: int, stats: BatchStats) -> None:
    if stats.errors or stats.responses != n or stats.served != n:
        raise BenchError(
            f"{rt.spec.label}: batch of {n} ended with {stats.responses} good responses, "
            f"{stats.served} served, {stats.errors} errors: {stats.first_error}"
        )


def _batch(rt: Runtime, case: str, n: int, res: CaseResult) -> None:
    """Serve n invokes of `case` to a parked runtime and add the per-invoke figures to res."""
    time.sleep(SETTLE_S)
    cpu0, _ = procstats.cpu_ns(rt.pid)
    user0, sys0 = procstats.user_sys_ns(rt.pid)
    rt.server.start_batch(case, n)
    _, stats = rt.wait_idle(timeout=max(60.0, n * 0.5))
    time.sleep(SETTLE_S)
    cpu1, res.cpu_source = procstats.cpu_ns(rt.pid)
    user1, sys1 = procstats.user_sys_ns(rt.pid)
    _check_batch(rt, n, stats)
    res.cpu_ns_per_invoke.append((cpu1 - cpu0) / n)
    res.stat_ns_per_invoke.append((user1 - user0 + sys1 - sys0) / n)
    res.user_ns_per_invoke.append((user1 - user0) / n)
    res.sys_ns_per_invoke.append((sys1 - sys0) / n)
    res.wall_median_ns.append(statistics.median(stats.wall_ns))
    res.wall_mean_ns.append(statistics.fmean(stats.wall_ns))


def _cold_start(rt: Runtime, handler: str | None = None) -> tuple[int, int]:
    """One cold start with a small invoke waiting, as on Lambda; returns the ns from spawn to
    the first /next and to the first /response."""
    rt.server.reset()
    rt.server.start_batch("small", 1)
    rt.start(handler)
    try:
        _, stats = rt.wait_idle(INIT_TIMEOUT_S)
    finally:
        rt.kill()
    _check_batch(rt, 1, stats)
    return stats.first_next_ns - rt.start_ns, stats.last_response_ns - rt.start_ns


def _check_works(rt: Runtime, cases: list[str]) -> None:
    """One start with one invoke of each case, unmeasured: proves the runtime answers
    correctly before timing it, and leaves bytecode caches written for later starts."""
    rt.server.reset()
    rt.start()
    try:
        rt.wait_idle(INIT_TIMEOUT_S)
        for case in cases:
            rt.server.start_batch(case, 1)
            _, stats = rt.wait_idle(60.0)
            _check_batch(rt, 1, stats)
    finally:
        rt.stop()


def run(args: argparse.Namespace) -> dict[str, Any]:
    ours = RuntimeSpec("ours", args.ours_module)
    if ours.module == "runtime" and not (REPO_ROOT / "runtime" / "__main__.py").exists():
        raise BenchError("our runtime is not there yet: runtime/__main__.py is missing")
    cases = [("small", events.SMALL_EVENT), ("1mb", events.large_event())]
    log_dir = REPO_ROOT / "out" / "bench-logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    specs = [ours, THEIRS]
    print(
        f"ours: python -m {ours.module} | theirs: python -m {THEIRS.module} | "
        f"events: {', '.join(f'{c} {len(b):,} B' for c, b in cases)}",
        flush=True,
    )

    cpu = None if args.no_pin else pick_cpu()
    saved_affinity = os.sched_getaffinity(0) if cpu is not None else None
    if cpu is not None:
        # Runtimes inherit the harness's affinity; the harness sleeps while they run.
        os.sched_setaffinity(0, {cpu})
        print(f"pinned: servers, runtimes and this harness on CPU {cpu}")
    servers: dict[str, Server] = {}
    runtimes: dict[str, Runtime] = {}
    try:
        for spec in specs:
            server = Server(cpu)
            servers[spec.label] = server
            for case, body in cases:
                server.load(case, body)
            log = log_dir / f"runtime-{spec.label}.log"
            log.write_bytes(b"")
            runtimes[spec.label] = Runtime(spec, server, log)
        data = _measure(specs, runtimes, [c for c, _ in cases], args)
        data["pinned_cpu"] = cpu
        return data
    finally:
        for rt in runtimes.values():
            rt.stop()
        for server in servers.values():
            server.stop()
        if saved_affinity:
            os.sched_setaffinity(0, saved_affinity)


def _measure(
    specs: list[RuntimeSpec],
    runtimes: dict[str, Runtime],
    cases: list[str],
    args: argparse.Namespace,
) -> dict[str, Any]:
    t_section = time.monotonic()
    for spec in specs:
        _check_works(runtimes[spec.label], cases)

    # Cold starts, interleaved so that background load drifts over both runtimes alike.
    init_ns: dict[str, list[int]] = {s.label: [] for s in specs}
    first_ns: dict[str, list[int]] = {s.label: [] for s in specs}
    boto3_ns: dict[str, list[int]] = {s.label: [] for s in specs}
    for i in range(args.cold_starts):
        order = specs if i % 2 == 0 else specs[::-1]
        for spec in order:
            to_next, to_response = _cold_start(runtimes[spec.label])
            init_ns[spec.label].append(to_next)
            first_ns[spec.label].append(to_response)
            boto3_ns[spec.label].append(_cold_start(runtimes[spec.label], BOTO3_HANDLER)[0])
    print(f"  cold starts done ({time.monotonic() - t_section:.1f} s)", flush=True)

    # Long-lived runtimes, one per server, measured in alternating batches.
    for spec in specs:
        rt = runtimes[spec.label]
        rt.server.reset()
        rt.start()
        rt.wait_idle(INIT_TIMEOUT_S)

    results: dict[str, dict[str, CaseResult]] = {s.label: {} for s in specs}
    for case in cases:
        # Warm-up, also timing one invoke to pick N.
        per_invoke_s: list[float] = []
        for spec in specs:
            rt = runtimes[spec.label]
            warm = 200 if case == "small" else 10
            rt.server.start_batch(case, warm)
            _, stats = rt.wait_idle(120.0)
            _check_batch(rt, warm, stats)
            per_invoke_s.append((stats.finished_ns - stats.started_ns) / warm / 1e9)
        n = int(args.seconds / max(per_invoke_s))
        n = max(40, min(n, 50_000))
        for spec in specs:
            results[spec.label][case] = CaseResult(n=n)
        for r in range(args.rounds):
            order = specs if r % 2 == 0 else specs[::-1]
            for spec in order:
                _batch(runtimes[spec.label], case, n, results[spec.label][case])
        print(
            f"  {case}: {args.rounds} rounds of {n} invokes per runtime "
            f"({time.monotonic() - t_section:.1f} s)",
            flush=True,
        )

    rss_kib: dict[str, int] = {}
    for spec in specs:
        rss_kib[spec.label] = procstats.status_kib(runtimes[spec.label].pid, "VmHWM")
        runtimes[spec.label].stop()

    return _report(
        specs, init_ns, first_ns, boto3_ns, results, rss_kib, time.monotonic() - t_section
    )


def _report(
    specs: list[RuntimeSpec],
    init_ns: dict[str, list[int]],
    first_ns: dict[str, list[int]],
    boto3_ns: dict[str, list[int]],
    results: dict[str, dict[str, CaseResult]],
    rss_kib: dict[str, int],
    elapsed_s: float,
) -> dict[str, Any]:
    a, b = (s.label for s in specs)
    sm = {lab: {c: results[lab][c].summary() for c in results[lab]} for lab in (a, b)}

    def init_median(lab: str) -> float:
        return statistics.median(init_ns[lab]) / 1e6

    def init_min(lab: str) -> float:
        return min(init_ns[lab]) / 1e6

    def first_median(lab: str) -> float:
        return statistics.median(first_ns[lab]) / 1e6

    rows = [
        Row("init, median", "ms", init_median(a), init_median(b), 1.0),
        Row("init, min", "ms", init_min(a), init_min(b)),
        Row("spawn to 1st response, median", "ms", first_median(a), first_median(b)),
        Row(
            "init, handler importing boto3, median",
            "ms",
            statistics.median(boto3_ns[a]) / 1e6,
            statistics.median(boto3_ns[b]) / 1e6,
        ),
        Row(
            "CPU/invoke, 7 B event",
            "us",
            sm[a]["small"]["cpu_us_per_invoke"],
            sm[b]["small"]["cpu_us_per_invoke"],
            0.4,
        ),
        Row(
            "wall/invoke, 7 B event",
            "us",
            sm[a]["small"]["wall_us_per_invoke_median"],
            sm[b]["small"]["wall_us_per_invoke_median"],
        ),
        Row(
            "CPU/invoke, 1 MB event",
            "us",
            sm[a]["1mb"]["cpu_us_per_invoke"],
            sm[b]["1mb"]["cpu_us_per_invoke"],
            0.35,
        ),
        Row(
            "wall/invoke, 1 MB event",
            "us",
            sm[a]["1mb"]["wall_us_per_invoke_median"],
            sm[b]["1mb"]["wall_us_per_invoke_median"],
        ),
        Row("peak RSS (VmHWM)", "MiB", rss_kib[a] / 1024, rss_kib[b] / 1024, 1.0),
    ]
    # Each round measures both runtimes back to back, so this ratio sees the same background
    # load on both sides; a check on the ratio of medians in the table.
    paired = {
        case: round(
            statistics.median(
                x / y
                for x, y in zip(
                    results[a][case].cpu_ns_per_invoke,
                    results[b][case].cpu_ns_per_invoke,
                    strict=True,
                )
            ),
            4,
        )
        for case in results[a]
    }
    print()
    print(render(rows, b))
    print()
    print(
        "  CPU/invoke ratio of each round (both runtimes back to back), median over rounds: "
        + ", ".join(f"{case} {ratio:.2f}x" for case, ratio in paired.items())
    )
    print(f"  runtime section took {elapsed_s:.0f} s; runtime logs in out/bench-logs/")
    return {
        "runtimes": {s.label: f"python -m {s.module}" for s in specs},
        "table": [r.as_dict() for r in rows],
        "init_ms": {
            lab: {
                "median": round(init_median(lab), 2),
                "min": round(init_min(lab), 2),
                "all": [_ms(x) for x in init_ns[lab]],
            }
            for lab in (a, b)
        },
        "init_boto3_handler_ms": {
            lab: {"median": round(statistics.median(boto3_ns[lab]) / 1e6, 2)} for lab in (a, b)
        },
        "spawn_to_first_response_ms": {
            lab: {
                "median": round(first_median(lab), 2),
                "all": [_ms(x) for x in first_ns[lab]],
            }
            for lab in (a, b)
        },
        "invoke": sm,
        "cpu_ratio_median_of_rounds": paired,
        "peak_rss_kib": rss_kib,
        "elapsed_s": round(elapsed_s, 1),
    }
