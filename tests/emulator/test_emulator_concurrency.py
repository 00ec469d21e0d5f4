"""--max-concurrency N (Lambda Managed Instances): one environment, up to N invokes at once.

Real runtime processes under the emulator; the handlers are the runtime tests' own
(tests/handlers/multi.py): each reports its process and the invoke it thinks it serves.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from runtime.emulator import Emulator
from runtime.emulator.app import build_runtime_env
from runtime.emulator.config import ConfigError, EmulatorConfig

MULTI = Path(__file__).resolve().parent.parent / "handlers"

Factory = Callable[..., Emulator]


def _invoke_all(fn: Emulator, events: list[Any]) -> list[Any]:
    with ThreadPoolExecutor(len(events)) as pool:
        return list(pool.map(fn.invoke, events))


@pytest.mark.parametrize("handler", ["multi.sync_sleep", "multi.async_sleep"])
def test_64_invokes_at_once_in_one_runtime_process(make: Factory, handler: str) -> None:
    fn = make(handler, task_root=MULTI, max_concurrency=64, concurrency=1, timeout=10)
    env = build_runtime_env(fn.config, Path("/opt"))
    assert env["AWS_LAMBDA_MAX_CONCURRENCY"] == "64"
    assert env["AWS_LAMBDA_INITIALIZATION_TYPE"] == "lambda-managed-instances"
    assert env["AWS_LAMBDA_LOG_FORMAT"] == "JSON"
    results = _invoke_all(fn, [{"tag": n} for n in range(64)])
    assert all(r.ok for r in results), [r.payload for r in results if not r.ok][:1]
    assert len({r.payload["pid"] for r in results}) == 1
    for result in results:
        tag = result.payload["tag"]
        assert result.payload["request_id"] == result.request_id
        # Its own log: its records (the handler's and its threads'), START, END, REPORT.
        records = [json.loads(line) for line in result.log.splitlines()]
        function_lines = [r for r in records if r.get("logger") == "concurrent"]
        assert function_lines, result.log
        for record in function_lines:
            assert record["requestId"] == result.request_id
            assert record["message"].endswith(f" {tag}")
        assert result.report is not None and result.report.request_id == result.request_id
        assert result.report.status is None


def test_a_timeout_fails_that_invoke_only(make: Factory) -> None:
    fn = make("multi.faulty", task_root=MULTI, max_concurrency=8, timeout=1)
    events = [{"action": "hang", "sleep": 2.5}] + [{"tag": n} for n in range(7)]
    results = _invoke_all(fn, events)
    hung, others = results[0], results[1:]
    assert hung.error is not None and hung.error["errorType"] == "Sandbox.Timedout"
    assert hung.report is not None and hung.report.status == "timeout"
    assert all(r.ok for r in others)
    pid = others[0].payload["pid"]
    # The process was not replaced: the next invokes run in it, while the hung one still sleeps.
    again = _invoke_all(fn, [{"tag": n} for n in range(4)])
    assert all(r.ok and r.payload["pid"] == pid for r in again)


def test_raise_and_sys_exit_fail_their_invoke_only(make: Factory) -> None:
    fn = make("multi.faulty", task_root=MULTI, max_concurrency=4)
    events = [{"action": "raise", "tag": "r"}, {"action": "exit"}, {"tag": 1}, {"tag": 2}]
    raised, exited, *fine = _invoke_all(fn, events)
    assert raised.error is not None and raised.error["errorType"] == "ValueError"
    assert exited.error is not None and exited.error["errorType"] == "Runtime.ExitError"
    assert all(r.ok for r in fine)
    assert fn.invoke({"tag": 3}).payload["pid"] == fine[0].payload["pid"]


def test_process_mode_under_the_emulator(make: Factory) -> None:
    fn = make(
        "multi.cpu",
        task_root=MULTI,
        max_concurrency=4,
        concurrency=1,  # one environment (its 4 slots)
        env={"LAMBDA_RUNTIME_PROCESSES": "2"},
        timeout=10,
    )
    results: list[Any] = []
    for _ in range(4):
        results += _invoke_all(fn, [{"rounds": 20000} for _ in range(4)])
    assert all(r.ok for r in results)
    assert len({r.payload["pid"] for r in results}) == 2  # two workers, one environment


def test_a_crash_fails_every_invoke_in_flight(make: Factory) -> None:
    fn = make("multi.faulty", task_root=MULTI, max_concurrency=4, timeout=5)
    first = fn.invoke({"tag": 0})  # initialised
    assert first.ok
    results = _invoke_all(fn, [{"action": "hang", "sleep": 3}] * 3 + [{"action": "crash"}])
    for result in results:
        assert result.error is not None and result.error["errorType"] == "Runtime.ExitError"
    assert fn.invoke({"tag": 1}).ok  # a new environment


def test_max_concurrency_and_no_spawn_exclude_each_other() -> None:
    with pytest.raises(ConfigError, match="--max-concurrency and --no-spawn"):
        EmulatorConfig(no_spawn=True, max_concurrency=4)


def test_awslambdaric_forked_workers_are_served_as_slots_too(make: Factory) -> None:
    # awslambdaric 4.x forks one full process per slot, each with its own connection.
    fn = make(
        "multi.faulty",
        runtime="awslambdaric",
        task_root=MULTI,
        max_concurrency=4,
        concurrency=1,
        memory=1024,
    )
    results = _invoke_all(fn, [{"tag": n} for n in range(4)])
    assert all(r.ok for r in results), [r.payload for r in results]
    assert {r.payload["request_id"] for r in results} == {r.request_id for r in results}
    assert len({r.payload["pid"] for r in results}) == 4
