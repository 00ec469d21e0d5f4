"""`python -m bench [SECTION ...]`: run benchmark sections in order, print tables, write
out/bench.json and bench/results/latest.json, and draw the comparisons as SVG charts into
docs/img/ (bench.charts). `python -m bench --charts-from FILE` only redraws the charts from a
saved results JSON.

Sections are modules named in SECTIONS; each provides
    add_arguments(parser: argparse.ArgumentParser) -> None
    run(args: argparse.Namespace) -> dict[str, Any]   (JSON-serialisable results)
and raises bench.runtimes.BenchError when something broke (as opposed to being slow).
A section whose module does not exist yet is skipped.

Exit status: 0 when every section ran, whatever the ratios; 1 when something broke.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
import time
import traceback
from datetime import datetime, timezone
from pathlib import Path
from types import ModuleType
from typing import Any

from bench import charts, machine
from bench.runtimes import REPO_ROOT, BenchError

SECTIONS: dict[str, str] = {
    "runtime": "bench.section_runtime",  # issue 2: our runtime vs awslambdaric
    "emulator": "bench.emulator",  # issue 3: Invoke API throughput vs RIE
    "observability": "bench.section_observability",  # issue 4: logs/traces vs Powertools/OTel
    "streaming": "bench.section_streaming",  # issue 10: streamed responses, cost and latency
    "concurrency": "bench.section_concurrency",  # issue 11: many invokes in flight vs awslambdaric
    "reload": "bench.section_reload",  # issue 13: --watch, save to invoke on the new code
}
RESULTS_PATH = REPO_ROOT / "out" / "bench.json"
# The copy kept in the repository, next to the charts drawn from it.
SAVED_RESULTS_PATH = REPO_ROOT / "bench" / "results" / "latest.json"
CHARTS_DIR = REPO_ROOT / "docs" / "img"


def _load_sections() -> dict[str, ModuleType | None]:
    loaded: dict[str, ModuleType | None] = {}
    for name, module in SECTIONS.items():
        try:
            loaded[name] = importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if exc.name != module:
                raise  # the section exists but one of its imports is missing: broken
            loaded[name] = None
    return loaded


def main(argv: list[str] | None = None) -> int:
    sections = _load_sections()
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="Side-by-side benchmarks; see bench/README.md for what each number means.",
    )
    parser.add_argument(
        "sections",
        nargs="*",
        metavar="SECTION",
        help=f"sections to run, in order (default: all available of {', '.join(SECTIONS)})",
    )
    parser.add_argument(
        "--charts-from",
        type=Path,
        metavar="FILE",
        help="run nothing: draw the charts from a results JSON written by an earlier run "
        f"(e.g. {SAVED_RESULTS_PATH.relative_to(REPO_ROOT)})",
    )
    parser.add_argument(
        "--charts-dir",
        type=Path,
        default=CHARTS_DIR,
        help=f"where the SVG charts go (default {CHARTS_DIR.relative_to(REPO_ROOT)})",
    )
    for mod in sections.values():
        if mod is not None:
            mod.add_arguments(parser)
    args = parser.parse_args(argv)
    if args.charts_from is not None:
        if args.sections:
            parser.error("--charts-from runs no section; drop the section names")
        try:
            saved = json.loads(args.charts_from.read_text())
        except (OSError, ValueError) as exc:
            parser.error(f"cannot read results from {args.charts_from}: {exc}")
        if not isinstance(saved, dict) or not isinstance(saved.get("sections"), dict):
            parser.error(f"{args.charts_from} is not a results file of python -m bench")
        return 0 if _write_charts(saved, args.charts_dir) else 1

    chosen: list[str] = args.sections or list(SECTIONS)
    for name in chosen:
        if name not in SECTIONS:
            parser.error(f"unknown section {name!r}; known: {', '.join(SECTIONS)}")

    info = machine.describe()
    for line in machine.summary_lines(info):
        print(line)

    results = _previous_results()
    results["machine"] = info
    failed = False
    for name in chosen:
        mod = sections[name]
        print(f"\n== {name} ==", flush=True)
        if mod is None:
            print(f"  not written yet ({SECTIONS[name]} does not exist); skipped")
            if args.sections:
                failed = True
            continue
        started = datetime.now(timezone.utc).isoformat(timespec="seconds")
        t0 = time.monotonic()
        try:
            data = mod.run(args)
        except BenchError as exc:
            print(f"\nBENCHMARK BROKEN in section {name}: {exc}", file=sys.stderr)
            results["sections"][name] = {"started": started, "error": str(exc)}
            failed = True
            continue
        except Exception:
            traceback.print_exc()
            results["sections"][name] = {"started": started, "error": traceback.format_exc()}
            failed = True
            continue
        data["started"] = started
        data["elapsed_s"] = round(time.monotonic() - t0, 1)
        results["sections"][name] = data

    text = json.dumps(results, indent=2) + "\n"
    for path in (RESULTS_PATH, SAVED_RESULTS_PATH):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    print(
        f"\nresults written to {RESULTS_PATH.relative_to(REPO_ROOT)} and "
        f"{SAVED_RESULTS_PATH.relative_to(REPO_ROOT)}"
    )
    _write_charts(results, args.charts_dir)
    return 1 if failed else 0


def _write_charts(results: dict[str, Any], out_dir: Path) -> bool:
    """Draw every chart the results hold data for; False when there was none to draw."""
    written = charts.write_charts(results, out_dir)
    if not written:
        print(f"no chart drawn: no section in the results has data ({out_dir} unchanged)")
        return False
    print(f"charts written: {', '.join(_shown(p) for p in written)}")
    return True


def _shown(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(REPO_ROOT))
    except ValueError:
        return str(path)


def _previous_results() -> dict[str, Any]:
    """Keep the other sections' latest results when only some sections are run."""
    try:
        old = json.loads(RESULTS_PATH.read_text())
    except (OSError, ValueError):
        old = {}
    if not isinstance(old, dict) or not isinstance(old.get("sections"), dict):
        old = {"sections": {}}
    return old


if __name__ == "__main__":
    sys.exit(main())
