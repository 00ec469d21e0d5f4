"""Environment lifecycle: timeouts, crashes, memory, init failures, reuse, concurrency."""

from __future__ import annotations

import re
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from emulator_support import HANDLERS, OutputWatch, wait_for


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return False
    return stat[stat.rfind(b")") + 2 :].split()[0] != b"Z"


def _gone(pid: int, within: float = 3.0) -> bool:
    deadline = time.monotonic() + within
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.02)
    return not _alive(pid)


def test_timeout_kills_and_replaces_the_environment(emulator):
    fn = emulator("app.sleep", timeout=1)
    first = fn.invoke({"seconds": 0})
    pid = first.payload["pid"]
    started = time.monotonic()
    result = fn.invoke({"seconds": 30})
    elapsed = time.monotonic() - started
    assert 0.9 < elapsed < 5
    assert result.status_code == 200
    assert result.function_error == "Unhandled"
    assert result.error == {
        "errorType": "Sandbox.Timedout",
        "errorMessage": f"RequestId: {result.request_id} Error: Task timed out after 1.00 seconds",
    }
    assert re.search(
        rf"^\d{{4}}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{{3}}Z {result.request_id} "
        r"Task timed out after 1\.00 seconds$",
        result.log,
        re.MULTILINE,
    ), result.log
    assert "sleeping 30" in result.log
    assert result.report is not None and result.report.status == "timeout"
    assert "\tStatus: timeout" in result.log
    assert _gone(pid)
    after = fn.invoke({"seconds": 0})
    assert after.ok and after.payload["pid"] != pid
    assert after.report is not None and after.report.init_duration_ms is not None


@pytest.mark.parametrize(
    "handler, event, described",
    [
        ("app.crash", {"status": 3}, "exit status 3"),
        ("app.segfault", {}, "signal: segmentation fault"),
    ],
)
def test_crash_is_runtime_exit_error(emulator, handler, event, described):
    fn = emulator(handler)
    result = fn.invoke(event)
    assert result.function_error == "Unhandled"
    assert result.error["errorType"] == "Runtime.ExitError"
    assert result.error["errorMessage"] == (
        f"RequestId: {result.request_id} Error: Runtime exited with error: {described}"
    )
    assert result.report is not None
    assert (result.report.status, result.report.error_type) == ("error", "Runtime.ExitError")
    assert "\tStatus: error\tError Type: Runtime.ExitError\t" in result.log
    # The next invoke gets a fresh environment.
    ok = fn.invoke({}) if handler != "app.crash" else None
    if ok is not None:
        assert ok.error["errorType"] == "Runtime.ExitError"
    assert fn.stats()["started"] == (2 if ok is not None else 1)


def test_out_of_memory_is_killed_and_reported(emulator):
    fn = emulator("app.hog", memory=128, timeout=5)
    small = fn.invoke({"mb": 1, "hold": 0})
    assert small.ok
    result = fn.invoke({"mb": 300, "hold": 2})
    assert result.function_error == "Unhandled"
    assert result.error["errorType"] == "Runtime.OutOfMemory"
    assert "signal: killed" in result.error["errorMessage"]
    assert result.report is not None
    assert result.report.error_type == "Runtime.OutOfMemory"
    assert result.report.max_memory_used_mb >= 128


def test_max_memory_used_is_measured(make):
    fn = make("app.hog", memory=512, timeout=5)
    small = fn.invoke({"mb": 1, "hold": 0.1})
    big = fn.invoke({"mb": 200, "hold": 0.3})
    assert big.ok, big.raw
    assert small.report is not None and big.report is not None
    assert big.report.max_memory_used_mb >= small.report.max_memory_used_mb + 190


def test_children_of_a_crashed_runtime_are_killed(make):
    fn = make("app.spawn_child_then_crash")
    result = fn.invoke({})
    assert result.error["errorType"] == "Runtime.ExitError"
    child = int(re.search(r"child pid (\d+)", result.log).group(1))
    assert _gone(child)


@pytest.mark.parametrize(
    "handler, error_type, message",
    [
        (
            "import_error.handler",
            "Runtime.ImportModuleError",
            "this_module_does_not_exist_anywhere",
        ),
        ("init_raise.handler", None, "init exploded"),
        ("app.does_not_exist", "Runtime.HandlerNotFound", "does_not_exist"),
    ],
)
def test_init_errors_are_retried_then_returned(
    emulator, runtime_name, handler, error_type, message
):
    fn = emulator(handler)
    result = fn.invoke({})
    assert result.function_error == "Unhandled"
    if error_type is not None:
        assert result.error["errorType"] == error_type
    else:
        # Our runtime reports the exception class; awslambdaric wraps it as an import error.
        assert result.error["errorType"] in ("RuntimeError", "Runtime.ImportModuleError")
    assert message in result.error["errorMessage"]
    reports = re.findall(
        r"^INIT_REPORT Init Duration: \d+\.\d\d ms\tPhase: (\w+)\t"
        r"Status: error\tError Type: ([\w.]+)$",
        result.log,
        re.MULTILINE,
    )
    assert [phase for phase, _ in reports] == ["init", "invoke"], result.log
    assert reports[0][1] == result.error["errorType"]
    assert result.report is not None and result.report.status == "error"
    # Lambda tried init twice (once in the init phase, once inside the invoke).
    assert fn.stats()["started"] == 2


def test_exit_during_init(emulator):
    fn = emulator("init_exit.handler")
    result = fn.invoke({})
    assert result.error["errorType"] == "Runtime.ExitError"
    assert "exit status 7" in result.error["errorMessage"]
    assert "exiting during init" in result.log


def test_init_timeout(make):
    fn = make("init_slow.handler", init_timeout=0.5, timeout=1)
    started = time.monotonic()
    result = fn.invoke({})
    elapsed = time.monotonic() - started
    # 0.5 s in the init phase, then the re-init inside the invoke is cut by the 1 s timeout.
    assert 1.3 < elapsed < 4, elapsed
    assert result.error["errorType"] == "Sandbox.Timedout"
    assert re.search(
        r"^INIT_REPORT Init Duration: \d+\.\d\d ms\tPhase: init\tStatus: timeout$",
        result.log,
        re.MULTILINE,
    ), result.log
    assert "Phase: invoke\tStatus: timeout" in result.log


def test_missing_runtime_command_is_invalid_entrypoint(make):
    fn = make("app.echo", runtime_cmd=["/nonexistent/bootstrap"])
    result = fn.invoke({})
    assert result.error["errorType"] == "Runtime.InvalidEntrypoint"
    assert "no such file or directory" in result.error["errorMessage"]


def test_parallel_invokes_get_separate_environments_then_reuse(emulator):
    fn = emulator("app.sleep", concurrency=3)
    with ThreadPoolExecutor(3) as pool:
        first = list(pool.map(lambda _: fn.invoke({"seconds": 0.4}), range(3)))
        assert all(r.ok for r in first), [r.raw for r in first]
        assert len({r.payload["pid"] for r in first}) == 3
        assert all(r.report.init_duration_ms is not None for r in first)
        second = list(pool.map(lambda _: fn.invoke({"seconds": 0.4}), range(3)))
    assert {r.payload["pid"] for r in second} == {r.payload["pid"] for r in first}
    assert all(r.report.init_duration_ms is None for r in second)
    assert fn.stats()["started"] == 3


def test_over_the_concurrency_limit_is_429(make):
    fn = make("app.sleep", concurrency=2)
    with ThreadPoolExecutor(3) as pool:
        futures = [pool.submit(fn.invoke, {"seconds": 1}) for _ in range(2)]
        wait_for(lambda: fn.stats()["busy"] == 2, "two invokes in flight")
        throttled = fn.invoke({"seconds": 0})
        assert throttled.status_code == 429
        assert throttled.headers["x-amzn-errortype"] == "TooManyRequestsException"
        assert throttled.payload["Reason"] == "ReservedFunctionConcurrentInvocationLimitExceeded"
        assert all(f.result().ok for f in futures)
    assert fn.invoke({"seconds": 0}).ok


def test_idle_environments_are_shut_down(make):
    fn = make("app.pid", idle_timeout=0.3)
    pid = fn.invoke({}).payload["pid"]
    assert _gone(pid, within=5)
    assert fn.stats()["environments"] == 0
    again = fn.invoke({})
    assert again.ok and again.report.init_duration_ms is not None


def test_shutdown_hook_gets_sigterm_when_extension_registered(make, tmp_path):
    mark = tmp_path / "hook-ran"
    fn = make(
        "shutdown_hook.handler",
        idle_timeout=0.3,
        shutdown_grace=2,
        env={"SHUTDOWN_MARK_FILE": str(mark)},
    )
    assert fn.invoke({}).ok
    wait_for(mark.exists, "the runtime's shutdown hook did not run (no SIGTERM?)")


def test_without_extension_the_runtime_is_killed_without_sigterm(make, tmp_path):
    # awslambdaric registers no extension: SIGKILL straight away, as on Lambda.
    fn = make("app.pid", runtime="awslambdaric", shutdown_grace=5)
    pid = fn.invoke({}).payload["pid"]
    started = time.monotonic()
    fn.stop()
    assert time.monotonic() - started < 2
    assert _gone(pid, within=0.5)


def test_stop_answers_in_flight_invokes(make):
    watch = OutputWatch()
    fn = make("app.sleep", timeout=10, echo=watch)
    with ThreadPoolExecutor(1) as pool:
        future = pool.submit(fn.invoke, {"seconds": 8})
        watch.wait_for(b"sleeping 8")  # the handler is running
        fn.stop()
        result = future.result(timeout=5)
    assert result.status_code == 503
    assert result.headers["x-amzn-errortype"] == "ServiceException"


def test_runtime_that_never_asks_for_more_work_does_not_hang_invokes(make):
    runtime = [sys.executable, str(HANDLERS / "stuck_runtime.py")]
    fn = make("unused.handler", runtime_cmd=runtime, timeout=1)
    started = time.monotonic()
    first = fn.invoke({"n": 1})
    # The caller has its answer as soon as the runtime posts it.
    assert time.monotonic() - started < 0.9
    assert first.ok and first.payload == {"n": 1}
    started = time.monotonic()
    second = fn.invoke({"n": 2})
    # The first invoke is over only at its deadline (no /next came): a timeout, as on Lambda,
    # and its environment is replaced; the second invoke, which waited for that environment,
    # goes to a new one.
    assert 0.5 < time.monotonic() - started < 4
    assert "answered one invoke, now hanging" in first.log
    assert f"{first.request_id} Task timed out after 1.00 seconds" in first.log
    assert first.report is not None and first.report.status == "timeout"
    assert first.log.rstrip("\n").splitlines()[-1].startswith("REPORT RequestId:")
    assert second.ok and second.payload == {"n": 2}
    assert second.report is not None and second.report.init_duration_ms is not None
    assert fn.stats()["started"] == 2
