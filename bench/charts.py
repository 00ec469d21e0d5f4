"""SVG charts of the side-by-side comparisons, for the docs' performance page.

Written by hand (no plotting library) so that `make bench` needs nothing more than it measures
with. Two kinds of chart:

- paired bars: one group per metric, a bar for ours and one for the comparison, each group drawn
  to its own scale (a 7-byte and a 1 MB event differ a hundredfold; a shared axis would hide
  the smaller pair), the values written on the bars and the ratio (with its target) beside them;
- a strip chart of every cold start, one dot per run and a line at each side's median, on a
  shared millisecond axis, because the spread of cold starts matters as much as the median.

`charts_from_results` turns the results dict that `python -m bench` writes (its JSON) into
``{file name: SVG text}``; `write_charts` writes them. Sections missing from the results, or
that failed, produce no chart rather than an error, so the charts of a partial run can still
be drawn.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape, quoteattr

from bench.report import fmt_number

OURS_COLOUR = "#2b6cb0"
THEIRS_COLOUR = "#a0a0a0"
WIDTH = 760
_FONT = 'font-family="sans-serif"'
_LABEL_W = 190  # left column: series names
_BAR_W = 380  # longest bar
_ROW_H = 22
_BAR_H = 16

CHART_FILES = (
    "bench-cold-start.svg",
    "bench-cpu-per-invoke.svg",
    "bench-memory.svg",
    "bench-emulator-throughput.svg",
    "bench-observability.svg",
)


@dataclass(frozen=True)
class Pair:
    """One metric measured on both sides; `target` bounds ours/theirs (a minimum when
    `higher_is_better`), None for figures shown for information only."""

    metric: str
    unit: str
    ours: float
    theirs: float
    ours_label: str = "ours"
    theirs_label: str = "theirs"
    target: float | None = None
    higher_is_better: bool = False
    # An absolute figure to compare both bars with (e.g. AWS RIE's throughput), drawn as a
    # dashed line across the pair.
    reference: float | None = None
    reference_label: str = ""

    @property
    def ratio(self) -> float:
        return self.ours / self.theirs if self.theirs else math.inf

    def ratio_text(self) -> str:
        text = f"{self.ratio:.2f}x"
        if self.target is not None:
            bound = ">=" if self.higher_is_better else "<="
            met = self.ratio >= self.target if self.higher_is_better else self.ratio <= self.target
            text += f" (target {bound}{self.target:g}x{'' if met else ', missed'})"
        return text


def _text(
    x: float,
    y: float,
    body: str,
    *,
    size: int = 12,
    anchor: str = "start",
    weight: str = "normal",
    fill: str = "#222",
) -> str:
    return (
        f'<text x="{x:.1f}" y="{y:.1f}" {_FONT} font-size="{size}" text-anchor="{anchor}" '
        f'font-weight="{weight}" fill="{fill}">{escape(body)}</text>'
    )


def _document(height: float, title: str, parts: Sequence[str]) -> str:
    return "\n".join(
        [
            f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height:.0f}" '
            f'viewBox="0 0 {WIDTH} {height:.0f}" role="img" aria-label={quoteattr(title)}>',
            f"<title>{escape(title)}</title>",
            f'<rect width="{WIDTH}" height="{height:.0f}" fill="white"/>',
            *parts,
            "</svg>",
            "",
        ]
    )


def paired_bars(title: str, pairs: Sequence[Pair], note: str = "") -> str:
    """One group per pair: its metric and unit, a bar per side, the ratio on the right."""
    if not pairs:
        raise ValueError("paired_bars needs at least one pair")
    parts, y = _heading(title, note)
    for pair in pairs:
        if (
            pair.ours < 0
            or pair.theirs < 0
            or not all(map(math.isfinite, (pair.ours, pair.theirs)))
        ):
            raise ValueError(
                f"{pair.metric}: values must be finite and >= 0, got "
                f"{pair.ours!r} and {pair.theirs!r}"
            )
        y += 12
        parts.append(_text(10, y + 12, f"{pair.metric} ({pair.unit})", size=13, weight="bold"))
        better = "higher is better" if pair.higher_is_better else "lower is better"
        parts.append(
            _text(
                WIDTH - 10,
                y + 12,
                f"ours/theirs {pair.ratio_text()}; {better}",
                size=12,
                anchor="end",
            )
        )
        y += 18
        scale = max(pair.ours, pair.theirs, pair.reference or 0.0) or 1.0
        top = y
        for label, value, colour in (
            (pair.ours_label, pair.ours, OURS_COLOUR),
            (pair.theirs_label, pair.theirs, THEIRS_COLOUR),
        ):
            width = _BAR_W * value / scale
            parts.append(_text(_LABEL_W - 8, y + 12, label, anchor="end"))
            parts.append(
                f'<rect class="bar" data-value="{value:g}" x="{_LABEL_W}" y="{y + 1:.1f}" '
                f'width="{width:.2f}" height="{_BAR_H}" fill="{colour}"/>'
            )
            parts.append(_text(_LABEL_W + width + 6, y + 13, f"{fmt_number(value)} {pair.unit}"))
            y += _ROW_H
        if pair.reference is not None:
            x = _LABEL_W + _BAR_W * pair.reference / scale
            parts.append(
                f'<line class="reference" data-value="{pair.reference:g}" x1="{x:.2f}" '
                f'x2="{x:.2f}" y1="{top - 2:.1f}" y2="{y + 2:.1f}" stroke="#c53030" '
                f'stroke-width="1.5" stroke-dasharray="4 3"/>'
            )
            label = f"{pair.reference_label} {fmt_number(pair.reference)}".strip()
            parts.append(_text(x, y + 13, label, size=11, anchor="middle", fill="#c53030"))
            y += 16
    return _document(y + 14, title, parts)


def _heading(title: str, note: str) -> tuple[list[str], float]:
    """The title and the note under it (one line per newline); returns the parts and the y
    where the chart's body starts."""
    parts = [_text(10, 22, title, size=15, weight="bold")]
    y = 34.0
    for line in note.splitlines():
        parts.append(_text(10, y + 8, line, size=11, fill="#555"))
        y += 16
    return parts, y


def nice_ticks(low: float, high: float, count: int = 6) -> list[float]:
    """Round tick values (1, 2 or 5 times a power of ten apart) covering [low, high]."""
    if not (math.isfinite(low) and math.isfinite(high)) or high < low:
        raise ValueError(f"bad axis range {low!r}..{high!r}")
    span = high - low or abs(high) or 1.0
    raw = span / max(1, count - 1)
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    first = math.floor(low / step) * step
    ticks = [round(first, 10)]
    # Counted, not summed, so that float error does not drift the ticks off round values.
    while ticks[-1] < high - step * 1e-9 or len(ticks) < 2:
        ticks.append(round(first + len(ticks) * step, 10))
    return ticks


def strip_chart(
    title: str, unit: str, series: Mapping[str, Sequence[float]], note: str = ""
) -> str:
    """Every sample of each series as a dot on one shared axis, the median as a bar across."""
    if not series or any(not values for values in series.values()):
        raise ValueError("strip_chart needs at least one sample per series")
    every = [v for values in series.values() for v in values]
    ticks = nice_ticks(min(every), max(every))
    lo, hi = ticks[0], ticks[-1]

    def x_of(v: float) -> float:
        return _LABEL_W + (v - lo) / (hi - lo) * (_BAR_W + 120)

    parts, y = _heading(title, note)
    y += 14
    row_h = 44
    colours = [OURS_COLOUR, THEIRS_COLOUR]
    for i, (label, values) in enumerate(series.items()):
        colour = colours[min(i, len(colours) - 1)]
        centre = y + row_h / 2
        median = statistics.median(values)
        parts.append(_text(_LABEL_W - 8, centre - 2, label, anchor="end"))
        parts.append(
            _text(
                _LABEL_W - 8,
                centre + 12,
                f"median {fmt_number(median)} {unit}",
                size=11,
                anchor="end",
                fill="#555",
            )
        )
        for j, v in enumerate(values):
            # Spread dots over three lanes so that equal values stay visible.
            dy = (j % 3 - 1) * 7
            parts.append(
                f'<circle class="sample" data-value="{v:g}" cx="{x_of(v):.2f}" '
                f'cy="{centre + dy:.1f}" r="3.5" fill="{colour}" fill-opacity="0.6"/>'
            )
        parts.append(
            f'<line class="median" data-value="{median:g}" x1="{x_of(median):.2f}" '
            f'x2="{x_of(median):.2f}" y1="{y + 4:.1f}" y2="{y + row_h - 4:.1f}" '
            f'stroke="#222" stroke-width="2"/>'
        )
        y += row_h
    parts.append(
        f'<line x1="{_LABEL_W}" x2="{x_of(hi):.1f}" y1="{y:.1f}" y2="{y:.1f}" stroke="#222"/>'
    )
    for t in ticks:
        parts.append(
            f'<line x1="{x_of(t):.2f}" x2="{x_of(t):.2f}" y1="{y:.1f}" '
            f'y2="{y + 5:.1f}" stroke="#222"/>'
        )
        parts.append(_text(x_of(t), y + 18, f"{t:g}", size=11, anchor="middle"))
    parts.append(_text(x_of(hi), y + 34, unit, size=11, anchor="end"))
    return _document(y + 44, title, parts)


# ---- from the results JSON ------------------------------------------------------------------


def _section(results: Mapping[str, Any], name: str) -> Mapping[str, Any] | None:
    section = results.get("sections", {}).get(name)
    if not isinstance(section, Mapping) or "error" in section:
        return None
    return section


def _pairs_from_table(
    table: Sequence[Mapping[str, Any]], theirs_label: str, keep: str | None = None
) -> list[Pair]:
    """Rows of a section's table (bench.report.Row.as_dict) whose metric starts with `keep`."""
    return [
        Pair(
            row["metric"],
            row["unit"],
            float(row["ours"]),
            float(row["theirs"]),
            theirs_label=theirs_label,
            target=row.get("target"),
            higher_is_better=row.get("target_kind") == "min",
        )
        for row in table
        if keep is None or str(row["metric"]).startswith(keep)
    ]


def _runtime_charts(section: Mapping[str, Any]) -> dict[str, str]:
    charts: dict[str, str] = {}
    labels = list(section.get("runtimes", {"ours": "", "awslambdaric": ""}))
    theirs = labels[1] if len(labels) > 1 else "theirs"
    init = section.get("init_ms", {})
    if all(init.get(lab, {}).get("all") for lab in labels):
        ours_median = statistics.median(init[labels[0]]["all"])
        theirs_median = statistics.median(init[theirs]["all"])
        charts["bench-cold-start.svg"] = strip_chart(
            f"Cold start (init), {len(init[labels[0]]['all'])} runs each: "
            f"ours/{theirs} median {ours_median / theirs_median:.2f}x (target <=1x)",
            "ms",
            {lab: init[lab]["all"] for lab in labels},
            note="spawn of the process to its first GET /next; one dot per cold start",
        )
    table = section.get("table", [])
    cpu = _pairs_from_table(table, theirs, "CPU/invoke")
    if cpu:
        charts["bench-cpu-per-invoke.svg"] = paired_bars(
            "CPU per invoke (on-CPU time of the runtime process, median of rounds)",
            cpu,
            note="each pair drawn to its own scale",
        )
    rss = _pairs_from_table(table, theirs, "peak RSS")
    if rss:
        charts["bench-memory.svg"] = paired_bars("Memory: peak RSS of the runtime process", rss)
    return charts


def _emulator_chart(section: Mapping[str, Any]) -> dict[str, str]:
    runtimes = section.get("runtimes", {})
    if "ours" not in runtimes or len(runtimes) < 2:
        return {}
    theirs = next(lab for lab in runtimes if lab != "ours")
    targets = section.get("targets", {})
    rie = section.get("rie_reference_rps")
    pairs = [
        Pair(
            f"{conns} connection{'s' if conns > 1 else ''}",
            "invokes/s",
            float(runtimes["ours"][key]["rps"]),
            float(runtimes[theirs][key]["rps"]),
            ours_label="emulator + ours",
            theirs_label=f"emulator + {theirs}",
            higher_is_better=True,
            reference=targets.get(f"{key}_rps_min"),
            reference_label="target" if targets.get(f"{key}_rps_min") else "",
        )
        for key, conns in (("c1", 1), ("c8", 8))
    ]
    note = "each pair drawn to its own scale; ratio: ours/awslambdaric behind the same emulator"
    if rie:
        note += (
            f"\nAWS RIE on this machine (issue 3): {rie[0]:,}-{rie[1]:,} invokes/s at 1 "
            "connection, no concurrent invokes; the dashed targets are set from it"
        )
    return {
        "bench-emulator-throughput.svg": paired_bars(
            "Emulator throughput (Invoke API, 7-byte event, wrk)", pairs, note=note
        )
    }


def charts_from_results(results: Mapping[str, Any]) -> dict[str, str]:
    """File name -> SVG text, for every chart the results have the data for."""
    charts: dict[str, str] = {}
    runtime = _section(results, "runtime")
    if runtime is not None:
        charts.update(_runtime_charts(runtime))
    emulator = _section(results, "emulator")
    if emulator is not None:
        charts.update(_emulator_chart(emulator))
    observability = _section(results, "observability")
    if observability is not None and observability.get("table"):
        charts["bench-observability.svg"] = paired_bars(
            "Observability: ours against awslambdaric with the usual libraries",
            _pairs_from_table(observability["table"], "theirs"),
            note="theirs: awslambdaric, + Powertools Logger (JSON), + OTel instrumentation "
            "(tracing); each pair to its own scale",
        )
    return charts


def write_charts(results: Mapping[str, Any], out_dir: Path) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, svg in charts_from_results(results).items():
        path = out_dir / name
        path.write_text(svg)
        written.append(path)
    return written
