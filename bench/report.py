"""Side-by-side tables: metric | ours | theirs | ratio | target | met?"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Row:
    metric: str
    unit: str
    ours: float
    theirs: float
    # Highest acceptable ours/theirs ratio; None for numbers shown for information only.
    target: float | None = None
    # For throughput-like metrics a higher ratio is better: the target is then a minimum.
    higher_is_better: bool = False

    @property
    def ratio(self) -> float:
        return self.ours / self.theirs if self.theirs else float("inf")

    @property
    def met(self) -> bool | None:
        if self.target is None:
            return None
        if self.higher_is_better:
            return self.ratio >= self.target
        return self.ratio <= self.target

    def as_dict(self) -> dict[str, Any]:
        return {
            "metric": self.metric,
            "unit": self.unit,
            "ours": self.ours,
            "theirs": self.theirs,
            "ratio": round(self.ratio, 4),
            "target": self.target,
            "target_kind": "min" if self.higher_is_better else "max",
            "met": self.met,
        }


def fmt_number(x: float) -> str:
    """Three significant figures or so, with thousands separators: how every table and
    chart of the benchmark writes a measurement."""
    if x >= 100:
        return f"{x:,.0f}"
    if x >= 10:
        return f"{x:.1f}"
    return f"{x:.2f}"


def render(rows: Sequence[Row], theirs_label: str) -> str:
    header = ["metric", "ours", theirs_label, "ratio (ours/theirs)", "target", "met?"]
    body: list[list[str]] = []
    for r in rows:
        bound = ">=" if r.higher_is_better else "<="
        target = "-" if r.target is None else f"{bound}{r.target:g}x"
        met = {None: "-", True: "yes", False: "NO"}[r.met]
        body.append(
            [
                f"{r.metric} ({r.unit})",
                fmt_number(r.ours),
                fmt_number(r.theirs),
                f"{r.ratio:.2f}x",
                target,
                met,
            ]
        )
    widths = [max(len(line[i]) for line in [header, *body]) for i in range(len(header))]

    def fmt(cells: list[str]) -> str:
        first = cells[0].ljust(widths[0])
        rest = [c.rjust(w) for c, w in zip(cells[1:], widths[1:], strict=True)]
        return " | ".join([first, *rest])

    sep = "-+-".join("-" * w for w in widths)
    return "\n".join([fmt(header), sep, *(fmt(b) for b in body)])
