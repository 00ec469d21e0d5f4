"""Response streaming through the emulator: boto3's invoke_with_response_stream, the
function-URL front (httpx streaming client), and our runtime's generator handlers."""

from __future__ import annotations

import base64
import json
import re
import time
from typing import Any

import httpx
import pytest
from emulator_support import HANDLERS, serve_process

from runtime import protocol


def stream(client: Any, event: dict[str, Any], **kwargs: Any) -> list[tuple[float, dict[str, Any]]]:
    """Every event of one invoke_with_response_stream with the time it arrived."""
    response = client.invoke_with_response_stream(
        FunctionName="function", Payload=json.dumps(event).encode(), **kwargs
    )
    assert response["StatusCode"] == 200
    assert response["ExecutedVersion"] == "$LATEST"
    assert response["ResponseStreamContentType"] == "application/vnd.amazon.eventstream"
    return [(time.monotonic(), item) for item in response["EventStream"]]


def chunks(events: list[tuple[float, dict[str, Any]]]) -> list[bytes]:
    return [e["PayloadChunk"]["Payload"] for _, e in events if "PayloadChunk" in e]


def complete(events: list[tuple[float, dict[str, Any]]]) -> dict[str, Any]:
    assert "InvokeComplete" in events[-1][1], events[-1]
    result: dict[str, Any] = events[-1][1]["InvokeComplete"]
    return result


def check_timed(events: list[tuple[float, dict[str, Any]]], count: int, pause: float) -> None:
    """Each chunk reached the client soon after its yield, long before the handler ended."""
    received = [(t, e["PayloadChunk"]["Payload"]) for t, e in events if "PayloadChunk" in e]
    assert [p.split(b":")[0] for _, p in received] == [str(i).encode() for i in range(count)]
    offset = time.time() - time.monotonic()
    for arrived, payload in received:
        yielded = float(payload.split(b":")[1])
        assert arrived + offset - yielded < pause / 2, payload
    assert events[-1][0] - received[0][0] >= (count - 1) * pause * 0.9


@pytest.mark.parametrize("handler", ["streaming.timed", "streaming.async_timed"])
def test_chunks_reach_boto3_as_they_are_yielded(make, lambda_client, handler):
    fn = make(handler)
    events = stream(lambda_client(fn.url), {"count": 3, "pause": 0.4}, LogType="Tail")
    check_timed(events, 3, 0.4)
    done = complete(events)
    assert "ErrorCode" not in done
    log = base64.b64decode(done["LogResult"]).decode()
    assert "START RequestId" in log and "REPORT RequestId" in log


def test_a_returned_generator_streams_and_invoke_assembles_it(make, lambda_client):
    fn = make("streaming.returns_generator")
    client = lambda_client(fn.url)
    assert b"".join(chunks(stream(client, {}))) == b"returned generator"
    # Invoke (RequestResponse) and the Python API get the whole body, as on Lambda.
    response = client.invoke(FunctionName="function", Payload=b"{}")
    assert response["Payload"].read() == b"returned generator"
    assert fn.invoke({}).content_type == "text/plain"


def test_a_buffered_function_answers_the_stream_invoke_with_one_chunk(make, lambda_client):
    fn = make("streaming.buffered")
    events = stream(lambda_client(fn.url), {"k": 1})
    assert len(events) == 2
    assert json.loads(chunks(events)[0]) == {"buffered": True, "event": {"k": 1}}
    assert "ErrorCode" not in complete(events)


def test_an_error_mid_stream_ends_it_with_the_error_from_the_trailers(make, lambda_client):
    fn = make("streaming.fails_midway")
    client = lambda_client(fn.url)
    events = stream(client, {})
    assert b"".join(chunks(events)) == b"first second "
    done = complete(events)
    # The runtime's trailers carried the type and (base64) the error JSON.
    assert done["ErrorCode"] == "ValueError"
    assert done["ErrorDetails"] == "broke after two chunks"
    # The environment goes on.
    assert b"".join(chunks(stream(client, {}))) == b"first second "
    assert fn.stats()["started"] == 1


def test_an_error_before_the_first_chunk_is_a_normal_function_error(make, lambda_client):
    fn = make("streaming.fails_first")
    client = lambda_client(fn.url)
    events = stream(client, {})
    assert chunks(events) == []
    assert complete(events)["ErrorCode"] == "KeyError"
    response = client.invoke(FunctionName="function", Payload=b"{}")
    assert response["FunctionError"] == "Unhandled"
    assert json.loads(response["Payload"].read())["errorType"] == "KeyError"


def test_a_10_mib_stream_arrives_whole(make, lambda_client):
    fn = make("streaming.big", stream_throttle=False, timeout=20)
    events = stream(lambda_client(fn.url), {"mib": 10})
    assert sum(len(c) for c in chunks(events)) == 10 * protocol.MIB
    assert "ErrorCode" not in complete(events)


def test_past_6_mb_a_stream_is_throttled_to_2_mib_per_second(make, lambda_client):
    fn = make("streaming.big", timeout=20)
    started = time.monotonic()
    events = stream(lambda_client(fn.url), {"mib": 7})
    took = time.monotonic() - started
    assert sum(len(c) for c in chunks(events)) == 7 * protocol.MIB
    # The seventh MiB at 2 MiB/s: half a second at least.
    assert took >= 0.45


def test_the_timeout_covers_the_whole_stream(make, lambda_client):
    fn = make("streaming.endless", timeout=1)
    client = lambda_client(fn.url)
    started = time.monotonic()
    events = stream(client, {})
    assert 0.9 <= time.monotonic() - started < 5
    assert len(chunks(events)) >= 3
    assert complete(events)["ErrorCode"] == "Sandbox.Timedout"
    # A new environment takes the next invoke.
    fn2 = stream(client, {})
    assert complete(fn2)["ErrorCode"] == "Sandbox.Timedout"


def test_a_client_leaving_mid_stream_does_not_stick_the_runtime(make, lambda_client):
    fn = make("streaming.timed", concurrency=1, timeout=5)
    path = protocol.stream_invoke_path("function")
    body = b'{"count": 8, "pause": 0.1}'
    with (
        httpx.Client(base_url=fn.url, timeout=10) as http,
        http.stream("POST", path, content=body) as response,
    ):
        assert response.status_code == 200
        next(response.iter_raw())
    # Closed after the first chunk; the function streams on into the void and ends.
    deadline = time.monotonic() + 5
    while fn.stats()["busy"] and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not fn.stats()["busy"]
    events = stream(lambda_client(fn.url), {"count": 2, "pause": 0.05})
    assert len(chunks(events)) == 2
    assert "ErrorCode" not in complete(events)
    assert fn.stats()["started"] == 1


def test_over_the_size_limit_the_stream_ends_with_lambdas_error(make, lambda_client, monkeypatch):
    # The limit (200 MiB) made small, so that crossing it is cheap; the runtime's own check
    # is left at 200 MiB, so it is the emulator that cuts the stream off.
    monkeypatch.setattr(protocol, "MAX_STREAMED_RESPONSE", 2 * protocol.MIB)
    fn = make("streaming.big", stream_throttle=False, timeout=10)
    client = lambda_client(fn.url)
    events = stream(client, {"mib": 4}, LogType="Tail")
    assert sum(len(c) for c in chunks(events)) <= 2 * protocol.MIB
    done = complete(events)
    assert done["ErrorCode"] == "Function.ResponseSizeTooLarge"
    assert str(2 * protocol.MIB) in done["ErrorDetails"]
    log = base64.b64decode(done["LogResult"]).decode()
    # The runtime was told (413, or its connection closed), logged it and went on.
    assert "[WARNING]" in log and ("answered 413" in log or "connection closed" in log)
    events = stream(client, {"mib": 1}, LogType="Tail")
    assert sum(len(c) for c in chunks(events)) == protocol.MIB
    assert fn.stats()["started"] == 1


# --- the function-URL front ------------------------------------------------------------------


def test_the_http_front_maps_the_prelude_and_streams_the_body(make):
    fn = make("streaming.http", http_port=0)
    started = time.monotonic()
    with httpx.Client(timeout=10) as http, http.stream("GET", fn.http_url + "/sse?pause=0.4") as r:
        assert r.status_code == 201
        assert r.headers["content-type"] == "text/event-stream"
        assert r.headers["x-path"] == "/sse"
        assert r.headers.get_list("set-cookie") == ["a=1; Path=/", "b=2"]
        assert r.headers["x-amzn-requestid"]
        arrivals = []
        for part in r.iter_raw():
            arrivals.append((time.monotonic(), part))
    body = b"".join(p for _, p in arrivals)
    assert body.count(b"data: ") == 3
    first = arrivals[0]
    assert first[1].startswith(b"data: 0 ")
    assert arrivals[-1][0] - first[0] >= 0.7
    assert first[0] - started < 0.7


def test_the_http_front_maps_buffered_results_and_errors(make):
    fn = make("streaming.buffered", http_port=0)
    with httpx.Client(base_url=fn.http_url, timeout=10) as http:
        r = http.post(
            "/a/b?x=1&x=2", content=b"hi", headers={"cookie": "c=1", "content-type": "text/plain"}
        )
        assert r.status_code == 200 and r.headers["content-type"] == "application/json"
        event = r.json()["event"]
        assert event["requestContext"]["requestId"] == r.headers["x-amzn-requestid"]
        assert event["version"] == "2.0"
        assert event["rawPath"] == "/a/b" and event["rawQueryString"] == "x=1&x=2"
        assert event["cookies"] == ["c=1"] and event["body"] == "hi"
        assert event["requestContext"]["http"]["method"] == "POST"
    broken = make("streaming.fails_first", http_port=0)
    assert httpx.get(broken.http_url + "/", timeout=10).status_code == 502


def test_the_http_front_speaks_api_gateway_rest_with_payload_1_0(make):
    fn = make("streaming.http", http_port=0, http_payload="1.0")
    r = httpx.get(fn.http_url + "/p?pause=0", timeout=10)
    assert r.status_code == 201
    assert r.headers["x-path"] == ""  # 1.0 events have "path", not "rawPath"
    assert r.text.count("data: ") == 3


def test_serve_http_port_prints_the_function_url_and_serves_it():
    args = ("streaming.http", "--task-root", str(HANDLERS), "--port", "0", "--http-port", "0")
    with serve_process(*args, until="Function URL") as banner:
        found = re.search(r"Function URL \(payload 2\.0\): (http://127\.0\.0\.1:\d+)/", banner)
        assert found, banner
        r = httpx.get(found.group(1) + "/cli?pause=0", timeout=20)
        assert r.status_code == 201 and r.headers["x-path"] == "/cli"


def test_a_slow_client_holds_the_function_back(make):
    # 40 MiB: more than every socket buffer on the way can hold (a few MiB each on loopback).
    fn = make("streaming.flood", http_port=0, stream_throttle=False, timeout=20)
    with httpx.Client(timeout=20) as http, http.stream("GET", fn.http_url + "/") as r:
        pieces = r.iter_raw()
        received = len(next(pieces))
        time.sleep(1.0)
        resumed = time.time()
        tail = b""
        for piece in pieces:
            received += len(piece)
            tail = (tail + piece)[-64:]
    assert received == 40 * protocol.MIB + len(tail.split(b"END:")[1]) + 4
    finished = float(tail.split(b"END:")[1])
    # The function could only finish once the client read again.
    assert finished >= resumed - 0.2
