"""bench.report: the side-by-side table every section prints, and the dicts saved in JSON."""

from __future__ import annotations

import math

from bench.report import Row, render


def test_ratio_and_target_for_lower_is_better() -> None:
    row = Row("CPU/invoke", "us", 30.0, 100.0, target=0.4)
    assert row.ratio == 0.3
    assert row.met is True
    assert Row("CPU/invoke", "us", 50.0, 100.0, target=0.4).met is False


def test_higher_is_better_target_is_a_minimum() -> None:
    assert Row("rps", "1/s", 5000.0, 2500.0, target=2.0, higher_is_better=True).met is True
    assert Row("rps", "1/s", 5000.0, 2500.0, target=2.0, higher_is_better=True).met is True
    assert Row("rps", "1/s", 4875.0, 2500.0, target=2.0, higher_is_better=True).met is False
    assert Row("rps", "1/s", 4000.0, 2500.0, target=2.0, higher_is_better=True).met is False


def test_information_rows_have_no_verdict_and_zero_theirs_is_infinite() -> None:
    assert Row("wall", "us", 1.0, 2.0).met is None
    assert math.isinf(Row("x", "ms", 1.0, 0.0).ratio)


def test_as_dict_carries_what_the_charts_need() -> None:
    d = Row("rps", "1/s", 3000.0, 2000.0, target=1.0, higher_is_better=True).as_dict()
    assert d == {
        "metric": "rps",
        "unit": "1/s",
        "ours": 3000.0,
        "theirs": 2000.0,
        "ratio": 1.5,
        "target": 1.0,
        "target_kind": "min",
        "met": True,
    }
    assert Row("m", "ms", 1.0, 3.0).as_dict()["ratio"] == 0.3333


def test_render_aligns_columns_and_marks_missed_targets() -> None:
    rows = [
        Row("init, median", "ms", 41.234, 95.5, target=1.0),
        Row("CPU/invoke, 1 MB event", "us", 12345.6, 20000.0, target=0.35),
        Row("throughput", "1/s", 3.0, 2.0, target=2.0, higher_is_better=True),
    ]
    lines = render(rows, "awslambdaric").splitlines()
    header, sep, *body = lines
    assert [c.strip() for c in header.split(" | ")][:3] == ["metric", "ours", "awslambdaric"]
    # Every line has the same width and the separators line up under the header's.
    assert len({len(line) for line in lines}) == 1
    assert [i for i, c in enumerate(sep) if c == "+"] == [
        i for i, c in enumerate(header) if c == "|"
    ]
    cells = [[c.strip() for c in line.split("|")] for line in body]
    assert cells[0] == ["init, median (ms)", "41.2", "95.5", "0.43x", "<=1x", "yes"]
    assert cells[1] == ["CPU/invoke, 1 MB event (us)", "12,346", "20,000", "0.62x", "<=0.35x", "NO"]
    assert cells[2][4:] == [">=2x", "NO"]


def test_render_information_rows_show_dashes() -> None:
    body = render([Row("wall/invoke", "us", 5.0, 10.0)], "theirs").splitlines()[2]
    assert [c.strip() for c in body.split("|")][4:] == ["-", "-"]
