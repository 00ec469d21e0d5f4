"""The Runtime API state machine, driven by a hand-written runtime (--no-spawn), and --no-spawn
with a real runtime process started by the test."""

from __future__ import annotations

import base64
import socket
import subprocess
import sys
import time
from concurrent.futures import Future, ThreadPoolExecutor

import httpx
import orjson
import pytest
from emulator_support import HANDLERS, MARK, MARK_VAR, wait_for


@pytest.fixture
def manual(make):
    """An emulator with no runtime of its own, a client playing the runtime, and a pool."""
    fn = make("app.echo", no_spawn=True, runtime_cmd=None, timeout=1)
    with (
        httpx.Client(base_url=f"http://{fn.runtime_api}/2018-06-01", timeout=10) as rt,
        ThreadPoolExecutor(2) as pool,
    ):
        yield fn, rt, pool


def _next(rt: httpx.Client) -> httpx.Response:
    response = rt.get("/runtime/invocation/next")
    assert response.status_code == 200, response.text
    return response


def test_next_headers_and_answer(manual):
    fn, rt, pool = manual
    future: Future = pool.submit(
        fn.invoke, {"x": 1}, client_context={"custom": {"a": 1}}, tenant_id="t1"
    )
    event = _next(rt)
    h = event.headers
    request_id = h["lambda-runtime-aws-request-id"]
    assert event.json() == {"x": 1}
    assert h["content-type"] == "application/json"
    assert h["lambda-runtime-invoked-function-arn"].endswith(":function:function")
    deadline = int(h["lambda-runtime-deadline-ms"])
    assert 0 < deadline - time.time() * 1000 <= 1000
    assert h["lambda-runtime-trace-id"].startswith("Root=1-")
    assert h["lambda-runtime-invocation-id"]
    assert orjson.loads(h["lambda-runtime-client-context"]) == {"custom": {"a": 1}}
    assert h["lambda-runtime-aws-tenant-id"] == "t1"

    # While the invoke is outstanding: /next is refused, other ids are unknown.
    assert rt.get("/runtime/invocation/next").status_code == 403
    assert rt.post("/runtime/invocation/not-an-id/response", content=b"{}").status_code == 400
    wrong = rt.post(
        f"/runtime/invocation/{request_id}/response",
        content=b"{}",
        headers={"Lambda-Runtime-Invocation-Id": "stale-attempt"},
    )
    assert wrong.status_code == 400
    bad_mode = rt.post(
        f"/runtime/invocation/{request_id}/response",
        content=b"{}",
        headers={"Lambda-Runtime-Function-Response-Mode": "sometimes"},
    )
    assert bad_mode.status_code == 400

    ok = rt.post(
        f"/runtime/invocation/{request_id}/response",
        content=b"<b>hi</b>",
        headers={
            "Content-Type": "text/html",
            "Lambda-Runtime-Invocation-Id": h["lambda-runtime-invocation-id"],
        },
    )
    assert ok.status_code == 202
    result = future.result(timeout=5)
    assert result.ok and result.raw == b"<b>hi</b>"
    assert result.headers["content-type"] == "text/html"
    # Answering twice is a client error.
    again = rt.post(f"/runtime/invocation/{request_id}/response", content=b"{}")
    assert again.status_code == 400
    assert "already answered" in again.json()["errorMessage"]


def test_error_post_reaches_the_caller(manual):
    fn, rt, pool = manual
    future = pool.submit(fn.invoke, {})
    request_id = _next(rt).headers["lambda-runtime-aws-request-id"]
    body = {"errorMessage": "bad", "errorType": "Custom.Error", "stackTrace": []}
    r = rt.post(
        f"/runtime/invocation/{request_id}/error",
        content=orjson.dumps(body),
        headers={"Lambda-Runtime-Function-Error-Type": "Custom.Error"},
    )
    assert r.status_code == 202
    result = future.result(timeout=5)
    assert result.function_error == "Unhandled" and result.error == body
    # An unreadable error body falls back to the header's type.
    future = pool.submit(fn.invoke, {})
    request_id = _next(rt).headers["lambda-runtime-aws-request-id"]
    rt.post(
        f"/runtime/invocation/{request_id}/error",
        content=b"not json",
        headers={"Lambda-Runtime-Function-Error-Type": "Runtime.Weird"},
    )
    assert future.result(timeout=5).error["errorType"] == "Runtime.Weird"


def test_late_post_after_timeout_is_410(manual):
    fn, rt, pool = manual
    future = pool.submit(fn.invoke, {})
    request_id = _next(rt).headers["lambda-runtime-aws-request-id"]
    result = future.result(timeout=5)
    assert result.error["errorType"] == "Sandbox.Timedout"
    late = rt.post(f"/runtime/invocation/{request_id}/response", content=b"{}")
    assert late.status_code == 410
    # The runtime carries on with the next invoke.
    future = pool.submit(fn.invoke, {"n": 2})
    request_id = _next(rt).headers["lambda-runtime-aws-request-id"]
    assert rt.post(f"/runtime/invocation/{request_id}/response", content=b"2").status_code == 202
    assert future.result(timeout=5).raw == b"2"


def test_oversized_response_is_413_and_function_error(manual):
    fn, rt, pool = manual
    future = pool.submit(fn.invoke, {})
    request_id = _next(rt).headers["lambda-runtime-aws-request-id"]
    r = rt.post(
        f"/runtime/invocation/{request_id}/response", content=b"x" * (6 * 1024 * 1024 + 1000)
    )
    assert r.status_code == 413
    result = future.result(timeout=5)
    assert result.error["errorType"] == "Function.ResponseSizeTooLarge"


def _raw_post(
    address: str, path: str, headers: dict[str, str], chunks: list[bytes], trailers: dict[str, str]
) -> int:
    host, port = address.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=5) as sock:
        head = f"POST {path} HTTP/1.1\r\nHost: {address}\r\nTransfer-Encoding: chunked\r\n"
        head += "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
        sock.sendall(head.encode())
        for chunk in chunks:
            sock.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            time.sleep(0.01)  # pacing, not synchronisation: each chunk arrives on its own
        tail = "".join(f"{k}: {v}\r\n" for k, v in trailers.items())
        sock.sendall(b"0\r\n" + tail.encode() + b"\r\n")
        status_line = sock.recv(4096).split(b"\r\n", 1)[0]
    return int(status_line.split()[1])


def test_streamed_response_with_and_without_error_trailers(manual):
    fn, rt, pool = manual
    streaming = {
        "Lambda-Runtime-Function-Response-Mode": "streaming",
        "Trailer": "Lambda-Runtime-Function-Error-Type, Lambda-Runtime-Function-Error-Body",
        "Content-Type": "text/plain",
    }
    future = pool.submit(fn.invoke, {})
    request_id = _next(rt).headers["lambda-runtime-aws-request-id"]
    status = _raw_post(
        fn.runtime_api,
        f"/2018-06-01/runtime/invocation/{request_id}/response",
        streaming,
        [b"hello ", b"streamed ", b"world"],
        {},
    )
    assert status == 202
    result = future.result(timeout=5)
    assert result.ok and result.raw == b"hello streamed world"
    assert result.headers["content-type"] == "text/plain"

    future = pool.submit(fn.invoke, {})
    request_id = _next(rt).headers["lambda-runtime-aws-request-id"]
    error = {"errorMessage": "failed mid-stream", "errorType": "StreamError", "stackTrace": []}
    status = _raw_post(
        fn.runtime_api,
        f"/2018-06-01/runtime/invocation/{request_id}/response",
        streaming,
        [b"partial"],
        {
            "Lambda-Runtime-Function-Error-Type": "StreamError",
            "Lambda-Runtime-Function-Error-Body": base64.b64encode(orjson.dumps(error)).decode(),
        },
    )
    assert status == 202
    result = future.result(timeout=5)
    assert result.function_error == "Unhandled" and result.error == error


def test_init_error_and_extension_calls(manual):
    fn, rt, pool = manual
    ext = rt.post(
        "http://" + fn.runtime_api + "/2020-01-01/extension/register",
        content=b'{"events": []}',
        headers={"Lambda-Extension-Name": "hooks"},
    )
    assert ext.status_code == 200 and ext.headers["lambda-extension-identifier"]
    future = pool.submit(fn.invoke, {})
    wait_for(lambda: fn.stats()["busy"] == 1, "the invoke waiting for init")
    error = {
        "errorMessage": "cannot import",
        "errorType": "Runtime.ImportModuleError",
        "stackTrace": [],
    }
    r = rt.post(
        "/runtime/init/error",
        content=orjson.dumps(error),
        headers={"Lambda-Runtime-Function-Error-Type": "Runtime.ImportModuleError"},
    )
    assert r.status_code == 202
    result = future.result(timeout=5)
    assert result.error == error
    assert "Phase: init\tStatus: error\tError Type: Runtime.ImportModuleError" in result.log
    # After a successful init, init errors and registrations are refused.
    future = pool.submit(fn.invoke, {})
    request_id = _next(rt).headers["lambda-runtime-aws-request-id"]
    assert rt.post("/runtime/init/error", content=b"{}").status_code == 403
    assert rt.post(f"/runtime/invocation/{request_id}/response", content=b"1").status_code == 202
    assert future.result(timeout=5).raw == b"1"
    assert rt.get("/runtime/unknown").status_code == 404


def test_no_spawn_with_a_runtime_started_by_hand(make):
    fn = make("app.echo", no_spawn=True, runtime_cmd=None, timeout=5)
    env = fn.runtime_environment()
    assert env["AWS_LAMBDA_RUNTIME_API"] == fn.runtime_api
    assert env["_HANDLER"] == "app.echo"
    env[MARK_VAR] = MARK
    proc = subprocess.Popen(
        [sys.executable, "-m", "runtime", "app.echo"],
        cwd=HANDLERS,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        result = fn.invoke({"by": "hand"})
        assert result.ok, result.raw
        assert result.payload["event"] == {"by": "hand"}
        assert "echo got {'by': 'hand'}" not in result.log  # output is the user's terminal's
        assert fn.invoke({"n": 2}).payload["event"] == {"n": 2}
    finally:
        proc.kill()
        proc.communicate(timeout=10)
