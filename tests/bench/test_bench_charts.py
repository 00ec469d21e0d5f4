"""bench.charts: the SVG charts of the performance page, drawn from a results dict shaped like
the one `python -m bench` saves, and the `--charts-from` command that redraws them."""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

from bench import charts
from bench.report import Row

SVG = "{http://www.w3.org/2000/svg}"
REPO_ROOT = Path(__file__).resolve().parents[2]


def parse(svg: str) -> ET.Element:
    return ET.fromstring(svg)


def texts(root: ET.Element) -> list[str]:
    return ["".join(t.itertext()) for t in root.iter(f"{SVG}text")]


def bars(root: ET.Element) -> list[tuple[float, float]]:
    """(value, drawn width) of each bar, in drawing order."""
    return [
        (float(r.attrib["data-value"]), float(r.attrib["width"]))
        for r in root.iter(f"{SVG}rect")
        if r.attrib.get("class") == "bar"
    ]


def sample_results() -> dict[str, Any]:
    runtime_rows = [
        Row("init, median", "ms", 40.0, 100.0, 1.0),
        Row("init, min", "ms", 35.0, 90.0),
        Row("CPU/invoke, 7 B event", "us", 30.0, 100.0, 0.4),
        Row("wall/invoke, 7 B event", "us", 60.0, 150.0),
        Row("CPU/invoke, 1 MB event", "us", 4000.0, 10000.0, 0.35),
        Row("peak RSS (VmHWM)", "MiB", 20.0, 25.0, 1.0),
    ]
    obs_rows = [
        Row("init, JSON logs vs Powertools Logger", "ms", 45.0, 300.0, 0.8),
        Row("CPU/invoke, tracing vs OTel instrumentation", "us", 90.0, 80.0, 0.8),
    ]
    return {
        "machine": {"python": "3.11.2"},
        "sections": {
            "runtime": {
                "runtimes": {"ours": "python -m runtime", "awslambdaric": "python -m awslambdaric"},
                "table": [r.as_dict() for r in runtime_rows],
                "init_ms": {
                    "ours": {"median": 40.0, "all": [38.0, 40.0, 41.0, 60.0, 39.0]},
                    "awslambdaric": {"median": 100.0, "all": [95.0, 100.0, 104.0, 99.0, 130.0]},
                },
            },
            "emulator": {
                "rie_reference_rps": [1700, 2500],
                "runtimes": {
                    "ours": {"c1": {"rps": 3000.0}, "c8": {"rps": 6000.0}},
                    "awslambdaric": {"c1": {"rps": 1500.0}, "c8": {"rps": 2000.0}},
                },
                "targets": {"c1_rps_min": 2500, "c8_rps_min": 5000},
            },
            "observability": {"table": [r.as_dict() for r in obs_rows]},
        },
    }


def test_paired_bars_are_drawn_to_scale_with_values_units_and_ratio() -> None:
    pair = charts.Pair(
        "CPU/invoke, 7 B event", "us", 30.0, 120.0, theirs_label="awslambdaric", target=0.4
    )
    root = parse(charts.paired_bars("CPU per invoke", [pair]))
    (ours_v, ours_w), (theirs_v, theirs_w) = bars(root)
    assert (ours_v, theirs_v) == (30.0, 120.0)
    assert ours_w / theirs_w == pytest.approx(0.25, rel=1e-3)
    words = texts(root)
    assert "CPU/invoke, 7 B event (us)" in words
    assert "30.0 us" in words and "120 us" in words
    assert "ours/theirs 0.25x (target <=0.4x); lower is better" in words
    assert "awslambdaric" in words


def test_each_pair_has_its_own_scale_and_missed_targets_are_said() -> None:
    pairs = [
        charts.Pair("small", "us", 50.0, 100.0, target=0.4),
        charts.Pair("rps", "invokes/s", 9000.0, 3000.0, target=4.0, higher_is_better=True),
    ]
    root = parse(charts.paired_bars("t", pairs))
    widths = [w for _, w in bars(root)]
    # The larger bar of each pair spans the full width, whatever the other pair's numbers.
    assert widths[1] == widths[2]
    assert widths[0] == pytest.approx(widths[1] / 2)
    words = texts(root)
    assert "ours/theirs 0.50x (target <=0.4x, missed); lower is better" in words
    assert "ours/theirs 3.00x (target >=4x, missed); higher is better" in words


def test_a_reference_line_is_drawn_on_the_pairs_scale() -> None:
    pair = charts.Pair(
        "1 connection", "invokes/s", 2000.0, 1000.0, reference=4000.0, reference_label="RIE"
    )
    root = parse(charts.paired_bars("t", [pair], note="first line\nsecond line"))
    ((_, ours_w), (_, theirs_w)) = bars(root)
    (line,) = [x for x in root.iter(f"{SVG}line") if x.attrib.get("class") == "reference"]
    x0 = float(
        next(r for r in root.iter(f"{SVG}rect") if r.attrib.get("class") == "bar").attrib["x"]
    )
    # The reference is the largest figure, so it spans the full width and the bars scale to it.
    assert float(line.attrib["x1"]) - x0 == pytest.approx(2 * ours_w) == pytest.approx(4 * theirs_w)
    words = texts(root)
    assert "RIE 4,000" in words
    assert "first line" in words and "second line" in words


def test_text_is_escaped_into_well_formed_svg() -> None:
    svg = charts.paired_bars("a <b> & c", [charts.Pair("x < y & z", "ms", 1.0, 2.0)])
    root = parse(svg)  # would raise on a raw '<' or '&'
    assert "x < y & z (ms)" in texts(root)
    assert root.find(f"{SVG}title") is not None
    assert "".join(root.find(f"{SVG}title").itertext()) == "a <b> & c"  # type: ignore[union-attr]


def test_bad_values_are_refused_with_the_metric_named() -> None:
    with pytest.raises(ValueError, match="rss"):
        charts.paired_bars("t", [charts.Pair("rss", "MiB", -1.0, 2.0)])
    with pytest.raises(ValueError, match="at least one"):
        charts.paired_bars("t", [])
    with pytest.raises(ValueError, match="at least one sample"):
        charts.strip_chart("t", "ms", {"ours": []})


@pytest.mark.parametrize(
    ("low", "high"), [(0.0, 1.0), (38.0, 130.0), (1234.0, 1240.0), (5.0, 5.0), (0.013, 0.5)]
)
def test_ticks_are_round_evenly_spaced_and_cover_the_range(low: float, high: float) -> None:
    ticks = charts.nice_ticks(low, high)
    assert ticks[0] <= low and ticks[-1] >= high
    assert 2 <= len(ticks) <= 12
    steps = {round(b - a, 9) for a, b in itertools.pairwise(ticks)}
    assert len(steps) == 1
    step = steps.pop()
    mantissa = step / 10 ** int(f"{step:e}".split("e")[1])
    assert round(mantissa, 6) in (1.0, 2.0, 5.0)


def test_strip_chart_puts_every_run_on_one_axis_and_marks_medians() -> None:
    series = {"ours": [40.0, 38.0, 60.0], "awslambdaric": [100.0, 95.0, 130.0, 99.0]}
    root = parse(charts.strip_chart("Cold start", "ms", series))
    dots = [
        (float(c.attrib["data-value"]), float(c.attrib["cx"])) for c in root.iter(f"{SVG}circle")
    ]
    assert sorted(v for v, _ in dots) == sorted(series["ours"] + series["awslambdaric"])
    # One shared axis: x grows with the value across both series.
    by_value = sorted(dots)
    assert all(a[1] < b[1] for a, b in itertools.pairwise(by_value) if a[0] < b[0])
    medians = {
        float(m.attrib["data-value"]): float(m.attrib["x1"])
        for m in root.iter(f"{SVG}line")
        if m.attrib.get("class") == "median"
    }
    assert set(medians) == {40.0, 99.5}
    x_of = dict(dots)
    assert medians[40.0] == pytest.approx(x_of[40.0])
    words = texts(root)
    assert "median 40.0 ms" in words and "median 99.5 ms" in words
    assert "ms" in words  # the axis unit


def test_charts_from_results_draws_every_comparison() -> None:
    drawn = charts.charts_from_results(sample_results())
    assert sorted(drawn) == sorted(charts.CHART_FILES)
    cold = parse(drawn["bench-cold-start.svg"])
    assert "".join(cold.find(f"{SVG}title").itertext()).startswith(  # type: ignore[union-attr]
        "Cold start (init), 5 runs each: ours/awslambdaric median 0.40x"
    )
    assert len(list(cold.iter(f"{SVG}circle"))) == 10
    cpu = parse(drawn["bench-cpu-per-invoke.svg"])
    assert [v for v, _ in bars(cpu)] == [30.0, 100.0, 4000.0, 10000.0]  # no wall/invoke rows
    assert "ours/theirs 0.40x (target <=0.35x, missed); lower is better" in texts(cpu)
    assert [v for v, _ in bars(parse(drawn["bench-memory.svg"]))] == [20.0, 25.0]
    emu = parse(drawn["bench-emulator-throughput.svg"])
    assert [v for v, _ in bars(emu)] == [3000.0, 1500.0, 6000.0, 2000.0]
    assert "ours/theirs 2.00x; higher is better" in texts(emu)
    assert "emulator + awslambdaric" in texts(emu)
    refs = [float(x.attrib["data-value"]) for x in emu.iter(f"{SVG}line")]
    assert refs == [2500.0, 5000.0]
    assert any(t.startswith("AWS RIE on this machine (issue 3): 1,700-2,500") for t in texts(emu))
    obs = parse(drawn["bench-observability.svg"])
    assert "ours/theirs 1.12x (target <=0.8x, missed); lower is better" in texts(obs)


def test_failed_or_missing_sections_draw_no_chart() -> None:
    results = sample_results()
    results["sections"]["runtime"] = {"started": "x", "error": "runtime failed to start"}
    del results["sections"]["observability"]
    assert sorted(charts.charts_from_results(results)) == ["bench-emulator-throughput.svg"]
    assert charts.charts_from_results({"sections": {}}) == {}


def run_bench(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bench", *args],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_charts_from_a_saved_results_file(tmp_path: Path) -> None:
    saved = tmp_path / "results.json"
    saved.write_text(json.dumps(sample_results()))
    out = tmp_path / "img"
    done = run_bench("--charts-from", str(saved), "--charts-dir", str(out))
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in out.iterdir()) == sorted(charts.CHART_FILES)
    assert (out / "bench-memory.svg").read_text() == charts.charts_from_results(sample_results())[
        "bench-memory.svg"
    ]
    assert "charts written" in done.stdout


def test_charts_from_a_file_that_is_not_results_is_a_clear_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text("[1, 2]")
    done = run_bench("--charts-from", str(bad), "--charts-dir", str(tmp_path / "img"))
    assert done.returncode == 2
    assert "is not a results file of python -m bench" in done.stderr
    done = run_bench("--charts-from", str(tmp_path / "missing.json"))
    assert done.returncode == 2 and "cannot read results from" in done.stderr
    assert not (tmp_path / "img").exists()
