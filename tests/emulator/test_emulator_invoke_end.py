"""When an invoke ends: at the runtime's next /next, as on Lambda, not when it posts the response.

The caller gets the response as soon as the runtime posts it; END and REPORT (and the end of the
invoke's log: Tail, the Python API's log/report, Event results) come when the runtime asks for
its next invoke, so what it writes after posting belongs to the invoke and counts in Duration.
"""

from __future__ import annotations

import json
import sys
import time

import pytest
from emulator_support import HANDLERS, MARK, MARK_VAR

from runtime.emulator.cli import main

AFTER_POST = [sys.executable, str(HANDLERS / "after_post_runtime.py")]


def _end_index(log: str, request_id: str) -> int:
    lines = log.splitlines()
    end = lines.index(f"END RequestId: {request_id}")
    assert lines[end + 1].startswith(f"REPORT RequestId: {request_id}\t")
    assert end + 2 == len(lines), log  # nothing after REPORT
    return end


@pytest.mark.parametrize("log_format", ["Text", "JSON"])
def test_emf_line_written_after_the_response_is_in_the_invokes_log(make, log_format):
    # Our runtime writes the EMF line after posting the response, before its next /next.
    fn = make("app.echo", env={"LAMBDA_RUNTIME_METRICS": "emf"}, log_format=log_format)
    for n in range(3):  # cold, then warm: each invoke's line lands in its own log, once
        result = fn.invoke({"n": n})
        assert result.ok
        lines = result.log.splitlines()
        emf = [i for i, line in enumerate(lines) if line.startswith('{"_aws"')]
        assert len(emf) == 1, result.log
        assert json.loads(lines[emf[0]])["requestId"] == result.request_id
        if log_format == "Text":
            assert emf[0] < _end_index(result.log, result.request_id)
        else:
            # JSON mode has no END line: platform.report closes the invoke.
            assert json.loads(lines[-1])["type"] == "platform.report"
            assert emf[0] < len(lines) - 1


def test_caller_is_answered_at_once_and_report_counts_the_work_after_the_response(make):
    fn = make("unused.handler", runtime_cmd=AFTER_POST, timeout=3)
    assert fn.invoke({}).ok
    started = time.monotonic()
    result = fn.invoke({"sleep": 0.8, "print": "after the response"})
    answered = time.monotonic() - started
    assert result.ok and result.payload == {"sleep": 0.8, "print": "after the response"}
    assert answered < 0.6, answered  # the caller does not wait for the runtime's after-work
    log = result.log  # the log is complete only once the invoke is over
    assert time.monotonic() - started >= 0.8
    lines = log.splitlines()
    assert lines.index("after the response") < _end_index(log, result.request_id)
    assert result.report is not None
    assert result.report.duration_ms >= 800 and result.report.status is None
    # The same environment takes the next invoke once it asked for it.
    again = fn.invoke({})
    assert again.ok and "after the response" not in again.log
    assert fn.stats()["started"] == 1


def test_tail_ends_with_the_report_so_it_waits_for_the_end(make):
    fn = make("unused.handler", runtime_cmd=AFTER_POST, timeout=3)
    assert fn.invoke({}).ok
    started = time.monotonic()
    result = fn.invoke({"sleep": 0.3, "print": "late line"}, tail=True)
    assert time.monotonic() - started >= 0.3
    assert result.log_tail is not None
    tail = result.log_tail.splitlines()
    assert "late line" in tail
    assert tail[-1].startswith(f"REPORT RequestId: {result.request_id}\t")
    assert tail[-2] == f"END RequestId: {result.request_id}"


def test_event_result_holds_the_whole_log(make):
    fn = make("unused.handler", runtime_cmd=AFTER_POST, timeout=3)
    request_id = fn.invoke_event({"sleep": 0.2, "print": "event after-work"})
    result = fn.wait_event(request_id, timeout=10)
    assert result.ok and result.attempts == 1
    lines = result.log.splitlines()
    assert lines.index("event after-work") < _end_index(result.log, request_id)
    assert result.report is not None and result.report.duration_ms >= 200


def test_runtime_exiting_after_its_response_fails_the_invoke_not_the_caller(make):
    fn = make("unused.handler", runtime_cmd=AFTER_POST, timeout=3)
    result = fn.invoke({"print": "bye", "exit": 2})
    assert result.ok and result.payload == {"print": "bye", "exit": 2}
    assert result.report is not None
    assert (result.report.status, result.report.error_type) == ("error", "Runtime.ExitError")
    assert "Runtime exited with error: exit status 2" in result.log
    assert "\tStatus: error\tError Type: Runtime.ExitError\t" in result.log
    assert result.log.splitlines().index("bye") < _end_index(result.log, result.request_id)
    again = fn.invoke({})
    assert again.ok and again.report is not None and again.report.init_duration_ms is not None


def test_stop_lets_an_answered_invoke_finish(make):
    fn = make("unused.handler", runtime_cmd=AFTER_POST, timeout=3)
    result = fn.invoke({"sleep": 0.3, "print": "finishing up"})
    fn.stop()
    assert "finishing up" in result.log
    assert result.report is not None and result.report.status is None


def test_cli_invoke_prints_the_whole_log(capfd):
    code = main(
        [
            "invoke",
            "unused.handler",
            "--task-root",
            str(HANDLERS),
            "--env",
            f"{MARK_VAR}={MARK}",
            "--runtime-cmd",
            " ".join(AFTER_POST),
            "--event",
            '{"sleep": 0.2, "print": "written after posting"}',
        ]
    )
    out, err = capfd.readouterr()
    assert code == 0 and json.loads(out)["print"] == "written after posting"
    lines = err.splitlines()
    end = next(i for i, line in enumerate(lines) if line.startswith("END RequestId:"))
    assert lines.index("written after posting") < end
    assert lines[end + 1].startswith("REPORT RequestId:")
