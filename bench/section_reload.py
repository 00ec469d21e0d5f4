"""Hot reload (issue 13): from saving a file to an invoke served by the new code.

An emulator with ``watch=True`` serves a function; each round rewrites its module (aside, then
renamed, as editors save) and invokes it in a tight loop until the new version answers. The
time from the save to that answer, minus the new environment's own Init Duration (its REPORT),
is what the emulator adds: noticing the change, grouping it, retiring the old environment and
starting the new one. The target is at most 300 ms.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.runtimes import BenchError

TARGET_MS = 300.0
_APP = "VERSION = {n}\n\n\ndef handler(event, context):\n    return VERSION\n"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("reload section")
    g.add_argument("--reload-rounds", type=int, default=15, help="saves measured")


def _save(folder: Path, n: int) -> None:
    tmp = folder / ".app.py.tmp"
    tmp.write_text(_APP.format(n=n))
    tmp.replace(folder / "app.py")


def measure(rounds: int) -> dict[str, Any]:
    from runtime.emulator import Emulator

    beyond: list[float] = []
    totals: list[float] = []
    with tempfile.TemporaryDirectory(prefix="bench-reload-") as tmp:
        folder = Path(tmp)
        _save(folder, 0)
        with Emulator("app.handler", task_root=folder, watch=True, timeout=10) as fn:
            fn.invoke({})
            for n in range(1, rounds + 1):
                # Let the previous round's stale environment go, as between two real edits.
                time.sleep(0.2)
                saved = time.monotonic()
                _save(folder, n)
                while True:
                    result = fn.invoke({})
                    if result.payload == n:
                        served = time.monotonic()
                        break
                    if time.monotonic() - saved > 10:
                        raise BenchError(f"round {n}: the new code never served an invoke")
                report = result.report
                if report is None or report.init_duration_ms is None:
                    raise BenchError(f"round {n}: the new code was served without a cold start")
                total = (served - saved) * 1000
                totals.append(total)
                beyond.append(total - report.init_duration_ms)
    return {
        "rounds": rounds,
        "target_ms": TARGET_MS,
        "save_to_served_ms": {"median": statistics.median(totals), "max": max(totals)},
        "beyond_init_ms": {"median": statistics.median(beyond), "max": max(beyond)},
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    data = measure(args.reload_rounds)
    total, beyond = data["save_to_served_ms"], data["beyond_init_ms"]
    print(
        f"  save -> invoke on new code: median {total['median']:.0f} ms, max "
        f"{total['max']:.0f} ms"
    )
    print(
        f"  beyond the new environment's init: median {beyond['median']:.0f} ms, max "
        f"{beyond['max']:.0f} ms (target <= {TARGET_MS:.0f} ms)"
    )
    return data


if __name__ == "__main__":
    print(measure(15))
