"""The two-pass `make mutate` (tests/mutation/run.py): which mutants get the end-to-end pass.

A mutant left out keeps the unit pass's verdict, so a survivor the end-to-end tests would have
killed is reported as a survivor; a mutant sent again without need costs minutes each.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from run import second_pass

BEFORE = {
    "runtime.api.x_a__mutmut_1": "not checked",
    "runtime.api.x_a__mutmut_2": "not checked",
    "runtime.api.x_a__mutmut_3": "not checked",
    "runtime.api.x_a__mutmut_4": "not checked",
    "runtime.http.x_b__mutmut_1": "survived",
    "runtime.http.x_b__mutmut_2": "killed",
}
AFTER = {
    "runtime.api.x_a__mutmut_1": "killed",
    "runtime.api.x_a__mutmut_2": "survived",
    "runtime.api.x_a__mutmut_3": "no tests",
    "runtime.api.x_a__mutmut_4": "timeout",
    "runtime.http.x_b__mutmut_1": "survived",
    "runtime.http.x_b__mutmut_2": "killed",
}


def test_without_a_pattern_only_the_mutants_new_to_this_run_get_the_end_to_end_pass() -> None:
    """A survivor with an earlier verdict already had its end-to-end pass; killed and timed-out
    mutants need none; "no tests" in the unit pass may still be reached by an e2e test."""
    assert second_pass(BEFORE, AFTER, [], []) == [
        "runtime.api.x_a__mutmut_2",
        "runtime.api.x_a__mutmut_3",
    ]


def test_a_pattern_sends_every_matching_mutant_left_alive_to_the_end_to_end_pass() -> None:
    assert second_pass(BEFORE, AFTER, ["runtime.http.*"], []) == ["runtime.http.x_b__mutmut_1"]
    assert second_pass(BEFORE, AFTER, ["runtime.api.x_a__mutmut_2"], []) == [
        "runtime.api.x_a__mutmut_2"
    ]


def test_mutants_judged_equivalent_are_not_run_again() -> None:
    assert second_pass(BEFORE, AFTER, ["runtime.*"], ["runtime.api.x_a__mutmut_2"]) == [
        "runtime.api.x_a__mutmut_3",
        "runtime.http.x_b__mutmut_1",
    ]

