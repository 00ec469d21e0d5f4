"""Bad and unusual input to the emulator's Invoke API, over real sockets.

Every request gets an answer (a JSON error for what is refused), nothing runs on a request
that is refused, and valid JSON reaches the handler exactly as ``json.loads`` decodes it.
"""

from __future__ import annotations

import base64
import contextlib
import json
import socket
import time
from typing import Any

import httpx
import pytest

PATH = "/2015-03-31/functions/function/invocations"


def port_of(fn: Any) -> int:
    return int(httpx.URL(fn.url).port or 0)


def exchange(fn: Any, data: bytes, *, half_close: bool = False, timeout: float = 10) -> bytes:
    """Send raw bytes, read until the server closes (or ``timeout``); the bytes received."""
    with socket.create_connection(("127.0.0.1", port_of(fn)), timeout=timeout) as sock:
        # The server may answer and close before taking everything.
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            sock.sendall(data)
        if half_close:
            sock.shutdown(socket.SHUT_WR)
        out = b""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                chunk = sock.recv(65536)
            except ConnectionResetError as exc:
                raise AssertionError(f"connection reset after {out!r}") from exc
            except TimeoutError:
                break
            if not chunk:
                break
            out += chunk
        return out


def parse(raw: bytes) -> tuple[int, dict[str, str], Any]:
    assert raw, "no answer at all"
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    length = int(headers["content-length"])
    return status, headers, json.loads(body[:length]) if length else None


def post(path: str = PATH, body: bytes = b"{}", head: str = "", version: str = "1.1") -> bytes:
    return (
        f"POST {path} HTTP/{version}\r\nHost: x\r\n{head}Content-Length: {len(body)}\r\n\r\n"
    ).encode("latin-1") + body


def calls_so_far(fn: Any) -> int:
    """Invokes the function has run, counting the one this makes."""
    with httpx.Client(base_url=fn.url, timeout=30) as client:
        r = client.post(PATH, content=b"[]")
    assert r.status_code == 200, r.text
    return int(r.json()["calls"])


# --- valid JSON that orjson alone would get wrong or refuse -----------------------------------


@pytest.mark.parametrize(
    ("payload", "innermost", "depth"),
    [
        (b'{"id": 12345678901234567890123}', "{'id': 12345678901234567890123}", 0),
        (b"[-18446744073709551617]", "-18446744073709551617", 1),
        (b'{"s": "\\ud800"}', "{'s': '\\ud800'}", 0),
        (b"[" * 2000 + b"7" + b"]" * 2000, "7", 2000),
    ],
)
def test_valid_json_reaches_the_handler_exactly(
    make: Any, payload: bytes, innermost: str, depth: int
) -> None:
    fn = make("exact.describe")
    with httpx.Client(base_url=fn.url, timeout=30) as client:
        r = client.post(PATH, content=payload)
    assert r.status_code == 200, r.text
    assert "x-amz-function-error" not in r.headers, r.text
    assert (r.json()["innermost"], r.json()["depth"]) == (innermost, depth)


def test_big_integer_result_reaches_the_caller_exactly(make: Any) -> None:
    fn = make("app.echo")
    with httpx.Client(base_url=fn.url, timeout=30) as client:
        r = client.post(PATH, content=b'{"id": 123456789012345678901234567890}')
    assert r.status_code == 200, r.text
    assert json.loads(r.content)["event"] == {"id": 123456789012345678901234567890}


def test_invalid_json_is_still_refused(make: Any) -> None:
    fn = make("exact.describe")
    for payload in (b"[1,]", b'"\\ud800', b"NaN"):
        status, headers, _ = parse(exchange(fn, post(body=payload)))
        assert status == 400, payload
        assert headers["x-amzn-errortype"] == "InvalidRequestContentException"
    assert calls_so_far(fn) == 1


# --- caller values that must not reach a Runtime API header ----------------------------------


def _client_context(text: bytes) -> str:
    return base64.b64encode(text).decode()


@pytest.mark.parametrize(
    "head",
    [
        "X-Amz-Tenant-Id: tenant\x7f1\r\n",
        "X-Amz-Tenant-Id: a\x01b\r\n",
        "X-Amzn-Trace-Id: Root=1-5759e988-bd862e3fe1be46a994272793\x7f\r\n",
        "X-Amz-Client-Context: " + _client_context(b'{"custom": {"k": "v\x7f"}}') + "\r\n",
    ],
)
def test_control_byte_in_a_caller_value_is_a_400_and_nothing_runs(make: Any, head: str) -> None:
    fn = make("exact.describe")
    status, headers, body = parse(exchange(fn, post(head=head)))
    assert status == 400
    assert headers["x-amzn-errortype"] == "InvalidParameterValueException"
    assert "control characters" in body["message"]
    assert calls_so_far(fn) == 1, "the function ran for the refused request"
    assert fn.stats()["started"] == 1, "the environment survived"


def test_pretty_printed_client_context_is_accepted(make: Any) -> None:
    fn = make("app.context_info")
    context = _client_context(b'{\n\t"custom": {"k": "v"}\r\n}')
    status, _, body = parse(exchange(fn, post(head=f"X-Amz-Client-Context: {context}\r\n")))
    assert status == 200, body
    assert body["client_context"]["custom"] == {"k": "v"}


# --- malformed or oversized request heads ----------------------------------------------------


def test_http10_post_without_content_length_is_411_and_nothing_runs(make: Any) -> None:
    fn = make("exact.describe")
    raw = exchange(fn, f"POST {PATH} HTTP/1.0\r\n\r\n".encode() + b'{"a": 1}', half_close=True)
    status, _, body = parse(raw)
    assert status == 411
    assert "Content-Length" in body["message"]
    assert calls_so_far(fn) == 1


def test_http10_post_with_content_length_runs(make: Any) -> None:
    fn = make("exact.describe")
    status, _, body = parse(exchange(fn, post(body=b"[5]", version="1.0")))
    assert (status, body["innermost"]) == (200, "5")


@pytest.mark.parametrize(
    ("data", "status"),
    [
        (post(head="X-Custom: a\rb\r\n"), 400),
        (post(head="X-Custom: a\x00b\r\n"), 400),
        (post(head=f"X-Amz-Client-Context: {'A' * 133_000}\r\n"), 431),
        (post(path=PATH + "?" + "q" * 1_000_000), 414),
    ],
    ids=["bare-CR", "NUL", "133KB-header", "1MB-URL"],
)
def test_bad_request_head_gets_a_json_error_not_a_reset(
    make: Any, data: bytes, status: int
) -> None:
    fn = make("exact.describe")
    got, headers, body = parse(exchange(fn, data))
    assert got == status
    assert headers["content-type"] == "application/json"
    assert body["Type"] == "User" and body["message"]
    assert calls_so_far(fn) == 1


@pytest.mark.parametrize("length", [100_000_000, 1 << 40], ids=["fast-path", "h11"])
def test_content_length_far_over_the_limit_is_413_before_the_body(make: Any, length: int) -> None:
    fn = make("exact.describe")
    head = f"POST {PATH} HTTP/1.1\r\nHost: x\r\nContent-Length: {length}\r\n\r\n".encode()
    started = time.monotonic()
    status, headers, _ = parse(exchange(fn, head + b"[" * 1000, timeout=10))
    assert time.monotonic() - started < 5, "the answer waited for the body"
    assert status == 413
    assert headers["x-amzn-errortype"] == "RequestEntityTooLargeException"
    assert headers["connection"] == "close"
    assert calls_so_far(fn) == 1


# --- 404 names the qualified ARN --------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "arn"),
    [
        ("/2015-03-31/functions/named/invocations?Qualifier=prod", "named:prod"),
        ("/2015-03-31/functions/function:7/invocations", "named:7"),
        ("/2015-03-31/functions/other/invocations", "other"),
        ("/2015-03-31/functions/210987654321:function:named:live/invocations", None),
    ],
)
def test_unknown_function_or_qualifier_is_404_naming_the_arn(
    make: Any, path: str, arn: str | None
) -> None:
    fn = make("exact.describe", function_name="named")
    status, headers, body = parse(exchange(fn, post(path=path)))
    assert status == 404
    assert headers["x-amzn-errortype"] == "ResourceNotFoundException"
    expected = (
        f"arn:aws:lambda:us-east-1:123456789012:function:{arn}"
        if arn
        else "arn:aws:lambda:us-east-1:210987654321:function:named:live"
    )
    assert body["message"] == f"Function not found: {expected}"


def test_runtime_error_post_with_a_full_size_xray_cause_is_accepted(make: Any) -> None:
    # The 16 KiB head limit is the Invoke API's; the runtime's error post carries an X-Ray
    # cause of up to 64 KiB in a header, and the Runtime API must take it.
    fn = make("exact.deep_failure")
    result = fn.invoke({"depth": 900})  # an X-Ray cause of about 40 KiB
    assert result.status_code == 200
    assert result.function_error == "Unhandled"
    assert result.error["errorType"] == "ValueError"
    assert fn.stats()["started"] == 1


# --- slow clients -------------------------------------------------------------------------------


def test_a_slow_client_never_delays_another(make: Any) -> None:
    """Two clients trickle their requests a byte at a time (one its head, one its body) while a
    third invokes: the third is answered at its own pace. Break caught: a server that reads
    one request at a time, or blocks on a slow peer."""
    fn = make("exact.describe")
    calls_so_far(fn)  # the environment is warm: what is timed next is the server
    slow_head = post()
    slow_body = post(body=b'{"a": "' + b"x" * 64 + b'"}')
    with contextlib.ExitStack() as stack:
        socks = [
            stack.enter_context(socket.create_connection(("127.0.0.1", port_of(fn)), timeout=5))
            for _ in range(2)
        ]
        socks[0].sendall(slow_head[:10])  # part of the request line
        head_end = slow_body.index(b"\r\n\r\n") + 4
        socks[1].sendall(slow_body[: head_end + 3])  # the head and the start of the body
        with httpx.Client(base_url=fn.url, timeout=10) as client:
            for _ in range(5):
                started = time.monotonic()
                r = client.post(PATH, content=b"{}")
                assert r.status_code == 200
                assert time.monotonic() - started < 1.0
                # Another byte from each slow client between the fast invokes.
                socks[0].sendall(slow_head[10:11])
                slow_head = slow_head[:10] + slow_head[11:]
                socks[1].sendall(slow_body[head_end + 3 : head_end + 4])
                slow_body = slow_body[: head_end + 3] + slow_body[head_end + 4 :]
        # Both slow requests, finished, are still answered.
        socks[0].sendall(slow_head[10:])
        socks[1].sendall(slow_body[head_end + 3 :])
        for sock in socks:
            answer = b""
            while b"\r\n\r\n" not in answer:
                chunk = sock.recv(65536)
                assert chunk, answer
                answer += chunk
            assert answer.startswith(b"HTTP/1.1 200"), answer
