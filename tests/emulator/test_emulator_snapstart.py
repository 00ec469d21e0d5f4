"""SnapStart through the emulator (--snap-start): hook order, both failure paths as the caller
sees them, Restore Duration in the REPORT, a fresh random generator after the restore, and the
ordinary path unchanged without it. Hook order and failures run against awslambdaric too: the
emulator must serve a runtime that is not ours the same way."""

from __future__ import annotations

import re

BEFORE_ORDER = [
    # Last registered first (the hook remembering the random state ran before all of these).
    "before:ours-call+kwargs",
    "before:ours-decorator",
    "before:package-call+kwargs",
    "before:package-decorator",
]
AFTER_ORDER = [
    "after:package-decorator",
    "after:package-call+kwargs",
    "after:ours-decorator",
    "after:ours-call+kwargs",
]


def test_hooks_run_in_awslambdaric_order_between_init_and_the_first_invoke(emulator):
    with emulator("snapstart.handler", snap_start=True) as fn:
        first = fn.invoke({})
        second = fn.invoke({})
    assert first.ok, first.raw
    assert first.payload["order"] == BEFORE_ORDER + AFTER_ORDER
    assert first.payload["initialization_type"] == "snap-start"
    # Once per environment: the second invoke finds nothing new.
    assert second.payload["order"] == BEFORE_ORDER + AFTER_ORDER


def test_first_report_has_restore_duration_instead_of_init_duration(make):
    with make("snapstart.handler", snap_start=True, env={"SNAP_RESTORE_SLEEP": "0.2"}) as fn:
        first = fn.invoke({})
        second = fn.invoke({})
    log = first.log
    lines = log.splitlines()
    # The platform's lines, in Lambda's order, and the hook's output inside the restore.
    kinds = [line.split(" ", 1)[0] for line in lines if line.split(" ", 1)[0].isupper()]
    assert kinds[:4] == ["INIT_START", "INIT_REPORT", "RESTORE_START", "RESTORE_REPORT"], log
    assert lines.index("after-restore hooks ran") < next(
        i for i, line in enumerate(lines) if line.startswith("RESTORE_REPORT")
    )
    report = first.report
    assert report is not None and report.init_duration_ms is None
    assert report.restore_duration_ms is not None and report.restore_duration_ms >= 200
    match = re.search(
        r"^REPORT RequestId: \S+\tDuration: [\d.]+ ms\tBilled Duration: \d+ ms\tMemory Size: "
        r"128 MB\tMax Memory Used: \d+ MB\tRestore Duration: ([\d.]+) ms\t"
        r"Billed Restore Duration: (\d+) ms\t$",
        log,
        re.MULTILINE,
    )
    assert match, log
    assert float(match.group(1)) >= 200 and int(match.group(2)) >= 200
    restore_report = re.search(r"^RESTORE_REPORT Restore Duration: ([\d.]+) ms$", log, re.M)
    assert restore_report and float(restore_report.group(1)) == float(match.group(1))
    assert "Init Duration" not in re.search(r"^REPORT .*$", log, re.M).group(0)
    # Only the first invoke of the restored environment pays for the restore.
    assert "Restore Duration" not in second.log and "RESTORE" not in second.log


def test_random_generator_is_reseeded_after_restore(make):
    with make("snapstart.handler", snap_start=True) as fn:
        result = fn.invoke({})
    predicted = result.payload["predicted_from_snapshot"]
    assert isinstance(predicted, float)
    # Had the snapshot's generator state been kept, every restored environment would draw
    # exactly this number next.
    assert result.payload["after_restore"] != predicted


def test_before_snapshot_failure_fails_the_invoke_and_exits_64(emulator):
    with emulator("snapstart.handler", snap_start=True, env={"SNAP_FAIL": "before"}) as fn:
        result = fn.invoke({})
        again = fn.invoke({})
    assert result.status_code == 200
    assert result.function_error == "Unhandled"
    assert result.error["errorType"] == "RuntimeError"
    assert result.error["errorMessage"] == "before hook failed on purpose"
    assert result.report.status == "error"
    assert result.report.error_type == "Runtime.BeforeSnapshotError"
    log = result.log
    assert re.search(
        r"^INIT_REPORT Init Duration: [\d.]+ ms\tPhase: init\tStatus: error\t"
        r"Error Type: Runtime.BeforeSnapshotError$",
        log,
        re.M,
    ), log
    assert "Runtime exited with error: exit status 64" in log
    assert "RESTORE_START" not in log
    # No second init inside the invoke, as for on-demand functions: one INIT_START only.
    assert log.count("INIT_START") == 1
    # The next invoke starts a new environment, which fails the same way.
    assert again.report.error_type == "Runtime.BeforeSnapshotError"


def test_after_restore_failure_fails_the_invoke_and_exits_65(emulator):
    """As on Lambda, the caller gets the Invoke API's SnapStartException (400); the hook's own
    error, with its type and message, is in the function's log."""
    with emulator("snapstart.handler", snap_start=True, env={"SNAP_FAIL": "after"}) as fn:
        result = fn.invoke({})
    assert result.status_code == 400
    assert result.headers["x-amzn-errortype"] == "SnapStartException"
    assert "afterRestore() runtime hook encountered an error" in result.raw.decode()
    assert "after hook failed on purpose" in result.log
    assert result.report.status == "error"
    assert result.report.error_type == "Runtime.AfterRestoreError"
    assert result.report.restore_duration_ms is not None
    log = result.log
    assert re.search(
        r"^RESTORE_REPORT Restore Duration: [\d.]+ ms\tStatus: error\t"
        r"Error Type: Runtime.AfterRestoreError$",
        log,
        re.M,
    ), log
    assert "Runtime exited with error: exit status 65" in log
    report_line = r"^REPORT .*\tStatus: error\tError Type: Runtime.AfterRestoreError\t$"
    assert re.search(report_line, log, re.M), log


def test_without_snap_start_nothing_changes(make):
    with make("snapstart.handler") as fn:
        result = fn.invoke({})
    assert result.ok
    assert result.payload["order"] == []
    assert result.payload["initialization_type"] == "on-demand"
    assert result.report.init_duration_ms is not None
    assert result.report.restore_duration_ms is None
    assert "RESTORE" not in result.log and "Restore Duration" not in result.log


def test_restore_calls_are_refused_without_snap_start(make):
    import httpx

    from runtime import protocol

    with make("app.handler", no_spawn=True) as fn:
        base = f"http://{fn.runtime_api}"
        next_ = httpx.get(base + protocol.RESTORE_NEXT_PATH, timeout=5)
        error = httpx.post(base + protocol.RESTORE_ERROR_PATH, content=b"{}", timeout=5)
    assert next_.status_code == error.status_code == 403


def test_the_variable_alone_turns_snap_start_on(make):
    env = {"AWS_LAMBDA_INITIALIZATION_TYPE": "snap-start"}
    with make("snapstart.handler", env=env) as fn:
        result = fn.invoke({})
    assert result.ok, result.raw
    assert result.report.restore_duration_ms is not None


def test_restore_calls_follow_the_state_machine(make):
    import httpx

    from runtime import protocol

    with make("app.handler", no_spawn=True, snap_start=True) as fn:
        base = f"http://{fn.runtime_api}"
        with httpx.Client(base_url=base, timeout=5) as api:
            early_error = api.post(protocol.RESTORE_ERROR_PATH, content=b"{}")
            first = api.get(protocol.RESTORE_NEXT_PATH)
            again = api.get(protocol.RESTORE_NEXT_PATH)
            init_error = api.post(protocol.INIT_ERROR_PATH, content=b"{}")
    # restore/error only while restoring; restore/next ends init once; init is over after it.
    assert early_error.status_code == 403
    assert first.status_code == 200
    assert again.status_code == 403
    assert init_error.status_code == 403
