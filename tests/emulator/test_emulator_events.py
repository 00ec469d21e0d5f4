"""Event (asynchronous) invokes: 202 at once, run in the background, retried on error."""

from __future__ import annotations

import time

import httpx


def test_event_invoke_runs_in_background(emulator):
    fn = emulator("app.sleep")
    started = time.monotonic()
    request_id = fn.invoke_event({"seconds": 0.5})
    assert time.monotonic() - started < 0.4
    result = fn.wait_event(request_id, timeout=10)
    assert result.ok and result.payload["slept"] == 0.5
    assert result.attempts == 1
    assert f"START RequestId: {request_id}" in result.log
    assert f"REPORT RequestId: {request_id}" in result.log


def test_failed_event_is_retried_twice_with_the_same_request_id(make):
    fn = make("app.fail", event_retry_delays=(0.1, 0.2))
    request_id = fn.invoke_event({"why": "always"})
    result = fn.wait_event(request_id, timeout=15)
    assert result.attempts == 3
    assert result.error["errorType"] == "ValueError"
    assert result.log.count(f"START RequestId: {request_id} Version: $LATEST") == 3
    assert result.log.count(f"REPORT RequestId: {request_id}") == 3


def test_event_retries_can_be_disabled(make):
    fn = make("app.crash", event_retries=0)
    result = fn.wait_event(fn.invoke_event({}), timeout=10)
    assert result.attempts == 1
    assert result.error["errorType"] == "Runtime.ExitError"


def test_events_over_the_limit_queue_instead_of_429(make):
    fn = make("app.sleep", concurrency=1)
    ids = [fn.invoke_event({"seconds": 0.2}) for _ in range(3)]
    results = [fn.wait_event(i, timeout=15) for i in ids]
    assert all(r.ok for r in results)
    assert fn.stats()["started"] == 1


def test_event_payload_limit_and_dry_run(make):
    fn = make("app.echo")
    with httpx.Client(base_url=fn.url, timeout=10) as client:
        big = b'"' + b"x" * (1024 * 1024 + 10) + b'"'
        r = client.post(fn.invoke_path, content=big, headers={"X-Amz-Invocation-Type": "Event"})
        assert r.status_code == 413
        r = client.post(fn.invoke_path, content=b"{}", headers={"X-Amz-Invocation-Type": "DryRun"})
        assert r.status_code == 204
    # Neither started an environment.
    assert fn.stats()["started"] == 0
