"""`python -m bench [SECTION ...]`: run benchmark sections in order, print tables, and write
out/bench.json.

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
from types import ModuleType
from typing import Any

from bench import machine
from bench.runtimes import REPO_ROOT, BenchError

SECTIONS: dict[str, str] = {
    "runtime": "bench.section_runtime",  # issue 2: our runtime vs awslambdaric
    "emulator": "bench.emulator",  # issue 3: Invoke API throughput vs RIE
    "observability": "bench.section_observability",  # issue 4: logs/traces vs Powertools/OTel
}
RESULTS_PATH = REPO_ROOT / "out" / "bench.json"


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
    for mod in sections.values():
        if mod is not None:
            mod.add_arguments(parser)
    args = parser.parse_args(argv)

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

    RESULTS_PATH.parent.mkdir(parents=True, exist_ok=True)
    RESULTS_PATH.write_text(json.dumps(results, indent=2) + "\n")
    print(f"\nresults written to {RESULTS_PATH.relative_to(REPO_ROOT)}")
    return 1 if failed else 0


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
