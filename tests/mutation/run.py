"""`make mutate`: mutmut in two passes, so that a run takes minutes per module, not hours.

A mutant that survives costs a run of every test that reaches its function, and for anything
on the invoke path that includes every end-to-end test (1.5 to 3 minutes each). Most mutants
die in the unit tests within a second, so:

1. the unit pass runs the selected tests without the end-to-end ones (``-m "not e2e"``);
2. the end-to-end pass runs again, with every selected test, only the mutants the unit pass
   left alive (survived, no tests) that nobody has judged equivalent.

A mutant killed by some tests is killed by a superset of them, so the verdicts are those of a
single run with every test. Both passes share ``mutants/`` and its cache: mutmut keeps a
verdict until the mutated function changes, and a mutant named on the command line (or matched
by a pattern) is run again.
"""

from __future__ import annotations

import argparse
import fnmatch
import os
import subprocess
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path

from report import KILLED, judged, modules

MUTMUT = Path(sys.executable).with_name("mutmut")
NOT_CHECKED = "not checked"


def statuses() -> dict[str, str]:
    """Every mutant's verdict so far, by name (``not checked`` for those never run)."""
    from mutmut.mutation.data import SourceFileMutationData
    from mutmut.stats import status_by_exit_code

    found: dict[str, str] = {}
    for path in modules():
        data = SourceFileMutationData(path=path)
        data.load()
        found.update({k: status_by_exit_code[v] for k, v in data.exit_code_by_key.items()})
    return found


def second_pass(
    before: Mapping[str, str],
    after: Mapping[str, str],
    patterns: Iterable[str],
    equivalent: Iterable[str],
) -> list[str]:
    """The mutants the unit pass ran and left alive, minus those judged equivalent.

    The unit pass ran what the patterns match, or with no pattern what had no verdict yet: a
    survivor from an earlier run has already had its end-to-end pass.
    """
    patterns = list(patterns)
    skip = set(equivalent)
    if patterns:
        ran = [n for n in after if any(n == p or fnmatch.fnmatch(n, p) for p in patterns)]
    else:
        ran = [n for n in after if before.get(n, NOT_CHECKED) == NOT_CHECKED]
    return sorted(n for n in ran if after[n] not in KILLED and n not in skip)


def mutmut_run(names: list[str], jobs: int, unit_only: bool) -> None:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(Path("mutants").resolve())
    if unit_only:
        env["PYTEST_ADDOPTS"] = f'{env.get("PYTEST_ADDOPTS", "")} -m "not e2e"'.strip()
    command = [str(MUTMUT), "run", "--max-children", str(jobs), *names]
    # mutmut exits non-zero when nothing matches or a clean run fails: stop there.
    subprocess.run(command, env=env, check=True)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("patterns", nargs="*", help="mutant names or fnmatch patterns")
    args = parser.parse_args(argv)
    before = statuses()
    print("mutation: unit pass (without the end-to-end tests)", flush=True)
    mutmut_run(args.patterns, args.jobs, unit_only=True)
    left = second_pass(before, statuses(), args.patterns, judged())
    if not left:
        print("mutation: the unit pass left nothing for the end-to-end pass")
        return 0
    print(f"mutation: end-to-end pass over the {len(left)} mutants left", flush=True)
    mutmut_run(left, args.jobs, unit_only=False)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
