"""Write the `make mutate` report: the score per module and every mutant that was not killed.

Reads mutmut 3's results in ``mutants/`` (run from the repository root after ``mutmut run``).
Survivors listed in ``tests/mutation/equivalent.tsv`` (mutant name, tab, reason) are shown as
judged equivalent or harmless with that reason; the others are shown with their diff, as work
to do: a test that fails on them, or an entry in that file saying why none can.
"""

from __future__ import annotations

import argparse
import configparser
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
KILLED = {"killed", "timeout", "caught by type check", "segfault"}


def modules() -> list[str]:
    cfg = configparser.ConfigParser()
    cfg.read("setup.cfg")
    return [line for line in cfg.get("mutmut", "only_mutate").split() if line]


def judged() -> dict[str, str]:
    reasons: dict[str, str] = {}
    for line in (HERE / "equivalent.tsv").read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.startswith("#"):
            name, _, reason = line.partition("\t")
            reasons[name.strip()] = reason.strip()
    return reasons


def render() -> str:
    # mutmut is installed by `make mutate` only; the suite imports this module without it.
    from mutmut.mutation.data import SourceFileMutationData
    from mutmut.mutation.diff_apply import get_diff_for_mutant
    from mutmut.stats import status_by_exit_code

    reasons = judged()
    rows: list[str] = []
    open_items: list[str] = []
    equivalent: list[str] = []
    for path in modules():
        data = SourceFileMutationData(path=path)
        try:
            data.load()
        except FileNotFoundError:
            rows.append(f"| `{path}` | not run | | | | |")
            continue
        statuses = {k: status_by_exit_code[v] for k, v in data.exit_code_by_key.items()}
        checked = {k: s for k, s in statuses.items() if s != "not checked"}
        if not checked:
            rows.append(f"| `{path}` | not run | | | | |")
            continue
        killed = sum(s in KILLED for s in checked.values())
        left = {k: s for k, s in checked.items() if s not in KILLED}
        excused = [k for k in left if k in reasons]
        score = killed / len(checked)
        adjusted = (killed + len(excused)) / len(checked)
        rows.append(
            f"| `{path}` | {len(checked)}/{len(statuses)} | {killed} | {len(left)} "
            f"| {score:.1%} | {adjusted:.1%} |"
        )
        for name, status in sorted(left.items()):
            if name in reasons:
                equivalent.append(f"- `{name}` ({status}): {reasons[name]}")
            else:
                diff = get_diff_for_mutant(name, path=path)
                open_items.append(f"### `{name}`: {status}\n\n```diff\n{diff}\n```\n")
    out = [
        "# Mutation testing report",
        "",
        "| module | checked/all | killed | not killed | score "
        "| score without the judged-equivalent |",
        "| --- | --- | --- | --- | --- | --- |",
        *rows,
        "",
        "Killed counts timeouts and type-check catches too; \"not killed\" is survived, no tests "
        "and suspicious.",
        "",
        f"## Not killed and not explained ({len(open_items)})",
        "",
        *(open_items or ["None."]),
        "",
        f"## Judged equivalent or harmless ({len(equivalent)})",
        "",
        *(equivalent or ["None."]),
        "",
    ]
    return "\n".join(out)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(render(), encoding="utf-8")
    print(f"mutation report: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
