"""Shutdown hooks: registration, order, failures, and the time budget."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest

import runtime
from runtime import shutdown
from runtime.shutdown import on_shutdown, registered, run_hooks


@pytest.fixture(autouse=True)
def fresh_hooks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(shutdown, "_hooks", [])


def collect() -> tuple[list[str], Callable[[str], None]]:
    reports: list[str] = []
    return reports, reports.append


def test_on_shutdown_as_a_decorator_returns_the_function() -> None:
    @on_shutdown
    def flush_metrics() -> None:
        pass

    assert callable(flush_metrics)
    assert flush_metrics.__name__ == "flush_metrics"
    assert registered() == [flush_metrics]


def test_on_shutdown_as_a_call() -> None:
    def close_pool() -> None:
        pass

    assert on_shutdown(close_pool) is close_pool
    assert registered() == [close_pool]


def test_on_shutdown_is_public() -> None:
    assert runtime.on_shutdown is on_shutdown
    assert "on_shutdown" in runtime.__all__


def test_nothing_registered_by_default() -> None:
    assert registered() == []


@pytest.mark.parametrize("value", [None, 42, "flush", ["fn"]])
def test_non_callables_are_refused_with_type_error(value: object) -> None:
    with pytest.raises(TypeError) as info:
        on_shutdown(value)  # type: ignore[type-var]
    assert type(value).__name__ in str(info.value)
    assert registered() == []


def test_registered_is_a_copy() -> None:
    on_shutdown(lambda: None)
    registered().clear()
    assert len(registered()) == 1


def test_hooks_run_in_registration_order() -> None:
    calls: list[str] = []
    on_shutdown(lambda: calls.append("first"))
    on_shutdown(lambda: calls.append("second"))
    on_shutdown(lambda: calls.append("third"))
    reports, report = collect()
    run_hooks(2.0, report)
    assert calls == ["first", "second", "third"]
    assert reports == []


def test_a_failing_hook_is_reported_and_the_next_still_runs() -> None:
    calls: list[str] = []

    @on_shutdown
    def broken_hook() -> None:
        raise ConnectionError("metrics endpoint down")

    on_shutdown(lambda: calls.append("after"))
    reports, report = collect()
    run_hooks(2.0, report)
    assert calls == ["after"]
    assert len(reports) == 1
    assert "broken_hook" in reports[0]
    assert "ConnectionError" in reports[0]
    assert "metrics endpoint down" in reports[0]


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_a_hook_calling_sys_exit_does_not_stop_the_others() -> None:
    calls: list[str] = []

    @on_shutdown
    def exits() -> None:
        raise SystemExit(0)

    on_shutdown(lambda: calls.append("after"))
    _, report = collect()
    run_hooks(2.0, report)
    assert calls == ["after"]


def test_a_hanging_hook_is_abandoned_after_the_budget() -> None:
    """Catches: run_hooks waiting for a hook past its budget (the hooks after the blocked one
    must not have run when it returns), returning before the budget is spent, and a missing or vague
    warning for the hook still running."""
    release = threading.Event()
    calls: list[str] = []
    on_shutdown(lambda: calls.append("before"))
    on_shutdown(lambda: release.wait(10))
    on_shutdown(lambda: calls.append("never reached in time"))
    reports, report = collect()
    started = time.monotonic()
    try:
        run_hooks(0.2, report)
        elapsed = time.monotonic() - started
        ran_by_then = list(calls)
    finally:
        release.set()
    assert ran_by_then == ["before"]
    assert elapsed >= 0.2
    assert reports == ["shutdown hooks still running after 0.2s; exiting anyway"]


def test_fast_hooks_do_not_wait_for_the_budget() -> None:
    on_shutdown(lambda: None)
    reports, report = collect()
    started = time.monotonic()
    run_hooks(5.0, report)
    assert time.monotonic() - started < 1.0
    assert reports == []


def test_no_hooks_is_a_quick_no_op() -> None:
    reports, report = collect()
    started = time.monotonic()
    run_hooks(5.0, report)
    assert time.monotonic() - started < 1.0
    assert reports == []
