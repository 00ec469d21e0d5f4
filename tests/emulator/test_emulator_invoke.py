"""RequestResponse invokes over the Invoke API, with our runtime and with awslambdaric."""

from __future__ import annotations

import base64
import itertools
import re
import statistics
import time
import uuid

import httpx
import orjson
import pytest

REPORT = re.compile(
    r"^REPORT RequestId: (?P<id>[0-9a-f-]{36})\tDuration: \d+\.\d\d ms\t"
    r"Billed Duration: \d+ ms\tMemory Size: 128 MB\tMax Memory Used: (?P<mem>\d+) MB\t"
    r"(?:Init Duration: \d+\.\d\d ms\t)?(?:Status: \w+\t(?:Error Type: [\w.]+\t)?)?$",
    re.MULTILINE,
)


def test_success_returns_payload_logs_and_platform_lines(emulator):
    fn = emulator("app.echo")
    result = fn.invoke({"hello": "world"})
    assert result.status_code == 200
    assert result.function_error is None
    assert result.payload["event"] == {"hello": "world"}
    assert result.payload["request_id"] == result.request_id
    assert result.headers["x-amz-executed-version"] == "$LATEST"
    assert result.headers["content-type"].startswith("application/json")
    lines = result.log.splitlines()
    start = lines.index(f"START RequestId: {result.request_id} Version: $LATEST")
    end = lines.index(f"END RequestId: {result.request_id}")
    assert any("echo got {'hello': 'world'}" in line for line in lines[start:end])
    report = REPORT.search(result.log)
    assert report is not None and report["id"] == result.request_id, result.log
    assert "Init Duration" in report.group(0)
    assert result.report is not None
    assert result.report.init_duration_ms is not None and result.report.init_duration_ms > 0
    # Real memory of a Python process, not a made-up number.
    assert 5 <= result.report.max_memory_used_mb <= 128
    second = fn.invoke({"n": 2})
    assert second.ok and second.report is not None
    assert second.report.init_duration_ms is None
    assert "Init Duration" not in second.log
    assert fn.stats()["started"] == 1


def test_function_error_is_200_with_unhandled(emulator):
    fn = emulator("app.fail")
    result = fn.invoke({"why": "testing"})
    assert result.status_code == 200
    assert result.function_error == "Unhandled"
    assert result.error["errorType"] == "ValueError"
    assert result.error["errorMessage"] == "boom: testing"
    assert isinstance(result.error["stackTrace"], list)
    assert "about to fail" in result.log
    assert result.report is not None and result.report.status is None
    # The environment survives a handled function error.
    again = fn.invoke({})
    assert again.function_error == "Unhandled"
    assert fn.stats()["started"] == 1


def test_lambda_environment_and_context(emulator):
    fn = emulator("app.context_info", function_name="my-func", env={"CUSTOM_VAR": "yes"})
    result = fn.invoke(
        {},
        client_context={"custom": {"k": "v"}, "env": {"e": "1"}},
        trace_id="Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1",
        tenant_id="tenant-7",
    )
    assert result.ok, result.raw
    body = result.payload
    env = body["env"]
    assert env["AWS_LAMBDA_FUNCTION_NAME"] == "my-func"
    assert env["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"] == "128"
    assert env["AWS_LAMBDA_FUNCTION_VERSION"] == "$LATEST"
    assert env["AWS_LAMBDA_LOG_GROUP_NAME"] == "/aws/lambda/my-func"
    stream = env["AWS_LAMBDA_LOG_STREAM_NAME"]
    assert re.fullmatch(r"\d{4}/\d\d/\d\d/\[\$LATEST\][0-9a-f]{32}", stream)
    assert env["AWS_REGION"] == env["AWS_DEFAULT_REGION"] == "us-east-1"
    assert env["AWS_LAMBDA_INITIALIZATION_TYPE"] == "on-demand"
    assert env["AWS_ACCESS_KEY_ID"] and env["AWS_SECRET_ACCESS_KEY"] and env["AWS_SESSION_TOKEN"]
    assert env["_HANDLER"] == "app.context_info"
    assert env["AWS_LAMBDA_RUNTIME_API"].startswith("127.0.0.1:")
    assert env["TZ"] == ":UTC"
    assert env["CUSTOM_VAR"] == "yes"
    assert env["_X_AMZN_TRACE_ID"].startswith("Root=1-5759e988-bd862e3fe1be46a994272793")
    assert body["function_name"] == "my-func"
    assert body["arn"] == "arn:aws:lambda:us-east-1:123456789012:function:my-func"
    assert body["memory"] in (128, "128")
    assert 0 < body["remaining_ms"] <= 2000
    assert body["client_context"] == {"custom": {"k": "v"}, "env": {"e": "1"}}
    assert body["tenant_id"] == "tenant-7"


def test_trace_id_is_generated_in_xray_format(emulator):
    fn = emulator("app.context_info")
    trace = fn.invoke({}).payload["env"]["_X_AMZN_TRACE_ID"]
    assert re.fullmatch(r"Root=1-[0-9a-f]{8}-[0-9a-f]{24};Parent=[0-9a-f]{16};Sampled=0", trace)


def test_host_credentials_do_not_leak(make, monkeypatch):
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "host-secret-must-not-leak")
    fn = make("app.context_info")
    env = fn.invoke({}).payload["env"]
    assert env["AWS_SECRET_ACCESS_KEY"] != "host-secret-must-not-leak"


def test_log_tail_is_base64_of_last_4kb(make):
    fn = make("app.printer")
    result = fn.invoke({"lines": 1000}, tail=True)
    raw = base64.b64decode(result.headers["x-amz-log-result"])
    assert len(raw) == 4096
    tail = raw.decode()
    assert tail.rstrip("\n").splitlines()[-1].startswith(f"REPORT RequestId: {result.request_id}")
    assert "line 999" in tail
    assert "line 0\n" not in tail
    short = fn.invoke({"lines": 2}, tail=True)
    assert short.log_tail is not None and short.log_tail.startswith("START RequestId")
    assert "x-amz-log-result" not in fn.invoke({"lines": 1}).headers


def test_api_paths_and_errors(make):
    fn = make("app.echo", function_name="named")
    with httpx.Client(base_url=fn.url, timeout=30) as client:
        for name in (
            "named",
            "function",
            "named:$LATEST",
            "arn:aws:lambda:us-east-1:123456789012:function:named",
            "arn%3Aaws%3Alambda%3Aus-east-1%3A123456789012%3Afunction%3Anamed",
        ):
            r = client.post(f"/2015-03-31/functions/{name}/invocations", content=b'{"a":1}')
            assert r.status_code == 200, (name, r.text)
            assert orjson.loads(r.content)["event"] == {"a": 1}
        r = client.post("/2015-03-31/functions/other/invocations", content=b"{}")
        assert r.status_code == 404
        assert r.headers["x-amzn-errortype"] == "ResourceNotFoundException"
        assert "other" in r.json()["message"]
        assert r.json()["Type"] == "User"  # the caller's fault, as AWS marks it
        uuid.UUID(r.headers["x-amzn-requestid"])  # the same id form as every other response
        r = client.post("/2015-03-31/functions/named/invocations?Qualifier=prod", content=b"{}")
        assert r.status_code == 404
        r = client.post("/2015-03-31/functions/named/invocations", content=b"{not json")
        assert r.status_code == 400
        assert r.headers["x-amzn-errortype"] == "InvalidRequestContentException"
        r = client.post(
            "/2015-03-31/functions/named/invocations",
            content=b"{}",
            headers={"X-Amz-Invocation-Type": "Sometimes"},
        )
        assert r.status_code == 400 and r.headers["x-amzn-errortype"] == "ValidationException"
        r = client.post(
            "/2015-03-31/functions/named/invocations",
            content=b"{}",
            headers={"X-Amz-Client-Context": "%%%not-base64"},
        )
        assert r.status_code == 400
        r = client.post(
            "/2015-03-31/functions/named/invocations",
            content=b"{}",
            headers={"X-Amz-Invocation-Type": "DryRun"},
        )
        assert r.status_code == 204
        big = b'"' + b"x" * (6 * 1024 * 1024 + 200) + b'"'
        r = client.post("/2015-03-31/functions/named/invocations", content=big)
        assert r.status_code == 413
        assert r.headers["x-amzn-errortype"] == "RequestEntityTooLargeException"
        # An empty payload reaches the function as {}.
        r = client.post("/2015-03-31/functions/named/invocations", content=b"")
        assert r.status_code == 200 and r.json()["event"] == {}
        r = client.get("/nothing-here")
        assert r.status_code == 404
    # The environment served all of that warm.
    assert fn.stats()["started"] == 1


def test_payload_near_the_limit_round_trips(make):
    fn = make("app.echo", memory=512)
    blob = "y" * (6 * 1024 * 1024 - 200)
    result = fn.invoke(payload=orjson.dumps({"b": blob}))
    assert result.ok
    assert len(result.payload["event"]["b"]) == len(blob)


def test_response_over_6mb_is_function_error(emulator):
    fn = emulator("app.big_response", memory=512)
    result = fn.invoke({"size": 7 * 1024 * 1024})
    assert result.function_error == "Unhandled"
    assert result.error["errorType"] == "Function.ResponseSizeTooLarge"
    # The environment keeps serving.
    assert fn.invoke({"size": 10}).payload == "x" * 10


def test_no_warm_invoke_stalls_on_a_delayed_ack(make):
    """Catches: Nagle's algorithm left on for a response written in two parts (head, then
    body), which makes every warm invoke wait for the peer's delayed ACK: 40 ms each.

    The stall hits every invoke, so the median shows it; a busy test machine delays only some.
    (How fast a warm invoke is, is for the benchmark: make bench.)"""
    fn = make("app.echo")
    fn.invoke({})
    durations = []
    for _ in range(21):
        started = time.perf_counter()
        assert fn.invoke({}).ok
        durations.append(time.perf_counter() - started)
    assert statistics.median(durations) < 0.04, durations


@pytest.mark.parametrize(
    "delays", [None, (0.5, 0.2)], ids=["default delays 1 s and 2 s", "delays 0.5 s and 0.2 s"]
)
def test_a_failed_event_invoke_is_retried_after_each_delay(make, delays):
    """Catches: Event retries sent without their delays (defaults of (0, 0)), the two delays
    swapped, or a configured delay ignored.

    Each attempt stamps its start with the system-wide monotonic clock: from one start to the
    next is the delay plus one short failing attempt."""
    options = {} if delays is None else {"event_retry_delays": delays}
    fn = make("app.fail_stamped", **options)
    request_id = fn.invoke_event({})
    result = fn.wait_event(request_id, timeout=20)
    assert result.attempts == 3
    starts = [float(s) for s in re.findall(r"attempt started at (\d+\.\d+)", result.log)]
    assert len(starts) == 3, result.log
    expected = delays or (1.0, 2.0)
    gaps = [later - earlier for earlier, later in itertools.pairwise(starts)]
    assert all(d <= gap < d + 0.3 for gap, d in zip(gaps, expected, strict=True)), gaps
