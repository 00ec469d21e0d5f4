"""Streamed responses against a scripted Runtime API peer on a real loopback socket."""

from __future__ import annotations

import asyncio
import base64
import contextvars
import functools
import io
import json
import sys
import threading
from collections.abc import AsyncIterator, Callable, Iterator

import pytest
from test_http import CLOSE, NEXT, REQ, TIMEOUT, Peer, peer, resp, send, until

from runtime import protocol as p
from runtime.http import Connection
from runtime.streaming import (
    HttpResponse,
    StreamResponse,
    StreamTooLarge,
    encode_prelude,
    is_stream_result,
    is_streaming_handler,
    normalize_chunk,
    post_stream,
)

__all__ = ["peer"]  # the fixture, shared with test_http

RID = "8f507cfc-example"


def finish(conn: Connection, server: Peer) -> None:
    conn.close()
    server.stop()


def headers_of(server: Peer) -> dict[str, str]:
    return {n.lower(): v for n, v in server.conns[0].requests[0].headers}


# --- detection -------------------------------------------------------------------------


def gen_handler(event: object, context: object) -> Iterator[bytes]:
    yield b"x"


async def agen_handler(event: object, context: object) -> AsyncIterator[bytes]:
    yield b"x"


def plain_handler(event: object, context: object) -> object:
    return {"a": 1}


async def async_handler(event: object, context: object) -> object:
    return "x"


class Handlers:
    def method(self, event: object) -> Iterator[bytes]:
        yield b"x"

    def __call__(self, event: object) -> Iterator[bytes]:
        yield b"x"


def test_generator_functions_are_streaming_handlers() -> None:
    assert is_streaming_handler(gen_handler)
    assert is_streaming_handler(agen_handler)
    assert is_streaming_handler(Handlers().method)
    assert is_streaming_handler(Handlers())
    assert is_streaming_handler(functools.partial(gen_handler, {}))
    assert not is_streaming_handler(plain_handler)
    assert not is_streaming_handler(async_handler)
    assert not is_streaming_handler(print)  # a builtin has no code object


@pytest.mark.parametrize(
    "value",
    [
        gen_handler({}, None),
        agen_handler({}, None),
        iter([b"a"]),
        map(str, [1, 2]),
        io.BytesIO(b"line\n"),
    ],
)
def test_iterators_are_stream_results(value: object) -> None:
    assert is_stream_result(value)


@pytest.mark.parametrize(
    "value", ["text", b"bytes", {"a": 1}, [b"a"], (1, 2), {1}, None, 3, 2.5, True, bytearray(b"x")]
)
def test_plain_values_are_not_stream_results(value: object) -> None:
    assert not is_stream_result(value)


# --- chunks and the prelude ------------------------------------------------------------


def test_chunks_are_normalised_and_bad_ones_named() -> None:
    assert normalize_chunk(b"a") == b"a"
    assert normalize_chunk("é") == "é".encode()
    assert isinstance(normalize_chunk(bytearray(b"a")), bytearray)
    assert isinstance(normalize_chunk(memoryview(b"a")), memoryview)
    with pytest.raises(TypeError, match="yielded int; each chunk must be bytes"):
        normalize_chunk(3)
    with pytest.raises(TypeError, match="yielded dict"):
        normalize_chunk({"a": 1})
    with pytest.raises(TypeError, match="HttpResponse after the stream had started"):
        normalize_chunk(HttpResponse())


def test_prelude_is_json_then_eight_nuls() -> None:
    prelude = encode_prelude(
        HttpResponse(201, {"content-type": "text/event-stream"}, ["a=1; Path=/", "b=2"])
    )
    assert prelude.endswith(b"\x00" * 8)
    assert json.loads(prelude[:-8]) == {
        "statusCode": 201,
        "headers": {"content-type": "text/event-stream"},
        "cookies": ["a=1; Path=/", "b=2"],
    }
    assert encode_prelude(HttpResponse()) == (
        b'{"statusCode":200,"headers":{},"cookies":[]}' + b"\x00" * 8
    )


def test_http_response_and_stream_response_refuse_bad_fields() -> None:
    with pytest.raises(ValueError, match="100-599"):
        HttpResponse(42)
    with pytest.raises(ValueError, match="100-599"):
        HttpResponse("200")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="str to str"):
        HttpResponse(headers={"x-n": 1})  # type: ignore[dict-item]
    with pytest.raises(TypeError, match="not a str"):
        HttpResponse(cookies="a=1")
    with pytest.raises(TypeError, match="cookies must be strings"):
        HttpResponse(cookies=[b"a=1"])  # type: ignore[list-item]
    with pytest.raises(ValueError, match="non-empty str"):
        StreamResponse("")
    assert HttpResponse(200, {"a": "b"}) == HttpResponse(200, {"a": "b"}, [])
    assert StreamResponse() == StreamResponse(p.STREAM_DEFAULT_CONTENT_TYPE)


# --- the post on the wire ------------------------------------------------------------


def test_chunks_reach_the_peer_before_the_generator_finishes(peer: Callable[..., Peer]) -> None:
    first_arrived = threading.Event()
    server = peer([until(b"5\r\nfirst\r\n", first_arrived), REQ, send(resp(202))])
    conn = Connection("127.0.0.1", server.port)

    def produce() -> Iterator[bytes | str]:
        yield b"first"
        # Blocked until the peer holds chunk 1: nothing may wait for the generator to end.
        assert first_arrived.wait(TIMEOUT)
        yield "sécond"

    outcome = post_stream(conn, RID, produce(), invocation_id="inv-1")
    finish(conn, server)
    assert outcome.problem is None and outcome.error is None
    assert outcome.response is not None and outcome.response.status == 202
    assert outcome.bytes_sent == 5 + len("sécond".encode())
    got = server.conns[0].requests[0]
    assert (got.method, got.target) == ("POST", p.response_path(RID))
    assert got.body == "firstsécond".encode()
    assert got.trailers == []
    headers = headers_of(server)
    assert headers["content-type"] == "application/octet-stream"
    assert headers["lambda-runtime-function-response-mode"] == "streaming"
    assert headers["transfer-encoding"] == "chunked"
    assert headers["trailer"] == (
        "Lambda-Runtime-Function-Error-Type, Lambda-Runtime-Function-Error-Body"
    )
    assert headers["lambda-runtime-invocation-id"] == "inv-1"


def test_http_response_first_sends_the_prelude_as_its_own_chunk(
    peer: Callable[..., Peer],
) -> None:
    prelude_arrived = threading.Event()
    server = peer([until(b"\x00" * 8 + b"\r\n", prelude_arrived), REQ, send(resp(202))])
    conn = Connection("127.0.0.1", server.port)
    head = HttpResponse(200, {"content-type": "text/event-stream"}, ["s=1"])

    def produce() -> Iterator[object]:
        yield head
        # Status and headers are at the client while the first event is being computed.
        assert prelude_arrived.wait(TIMEOUT)
        yield "data: 1\n\n"

    outcome = post_stream(conn, RID, produce())
    finish(conn, server)
    assert outcome.problem is None
    assert headers_of(server)["content-type"] == p.HTTP_INTEGRATION_CONTENT_TYPE
    assert server.conns[0].requests[0].body == encode_prelude(head) + b"data: 1\n\n"


def test_stream_response_sets_the_content_type(peer: Callable[..., Peer]) -> None:
    server = peer([REQ, send(resp(202))])
    conn = Connection("127.0.0.1", server.port)
    outcome = post_stream(conn, RID, iter([StreamResponse("text/plain; charset=utf-8"), "hi"]))
    finish(conn, server)
    assert outcome.problem is None
    assert headers_of(server)["content-type"] == "text/plain; charset=utf-8"
    assert server.conns[0].requests[0].body == b"hi"


def test_empty_stream_is_an_empty_response(peer: Callable[..., Peer]) -> None:
    server = peer([REQ, send(resp(202))])
    conn = Connection("127.0.0.1", server.port)
    outcome = post_stream(conn, RID, iter([]))
    finish(conn, server)
    assert outcome.problem is None and outcome.bytes_sent == 0
    assert server.conns[0].requests[0].raw.endswith(b"\r\n\r\n0\r\n\r\n")


def test_error_before_the_first_chunk_propagates_and_sends_nothing(
    peer: Callable[..., Peer],
) -> None:
    server = peer([REQ, send(resp(200, b"next"))])
    conn = Connection("127.0.0.1", server.port)
    closed = []

    def produce() -> Iterator[bytes]:
        try:
            raise KeyError("missing")
            yield b"never"
        finally:
            closed.append(True)

    with pytest.raises(KeyError, match="missing"):
        post_stream(conn, RID, produce())
    with pytest.raises(TypeError, match="yielded int"):
        post_stream(conn, RID, iter([1, b"x"]))
    with pytest.raises(TypeError, match="yielded NoneType"):
        post_stream(conn, RID, iter([None]))
    # Nothing went out: the connection carries the caller's next request as usual.
    assert conn.request("GET", NEXT).body == b"next"
    finish(conn, server)
    assert [r.target for r in server.conns[0].requests] == [NEXT]
    assert closed == [True]


def test_error_mid_stream_is_reported_in_the_trailers(peer: Callable[..., Peer]) -> None:
    server = peer([REQ, send(resp(202)), REQ, send(resp(200, b"next"))])
    conn = Connection("127.0.0.1", server.port)

    def produce() -> Iterator[bytes]:
        yield b"partial"
        raise ValueError("boom")

    outcome = post_stream(conn, RID, produce())
    assert isinstance(outcome.error, ValueError) and str(outcome.error) == "boom"
    assert outcome.problem is None  # the post itself was accepted
    assert conn.request("GET", NEXT).body == b"next"  # same keep-alive connection
    finish(conn, server)
    got = server.conns[0].requests[0]
    assert got.body == b"partial"
    trailers = dict(got.trailers)
    assert trailers[p.ERROR_TYPE_HEADER] == "ValueError"
    error = json.loads(base64.b64decode(trailers[p.ERROR_BODY_TRAILER]))
    assert error["errorType"] == "ValueError" and error["errorMessage"] == "boom"
    assert any("raise ValueError" in line for line in error["stackTrace"])


def test_caller_describes_the_error_for_the_trailers(peer: Callable[..., Peer]) -> None:
    server = peer([REQ, send(resp(202))])
    conn = Connection("127.0.0.1", server.port)

    def produce() -> Iterator[bytes]:
        yield b"x"
        raise RuntimeError("no")

    outcome = post_stream(
        conn,
        RID,
        produce(),
        describe_error=lambda exc: ("Custom Type\n", b'{"errorType":"Custom"}'),
    )
    finish(conn, server)
    assert isinstance(outcome.error, RuntimeError)
    trailers = dict(server.conns[0].requests[0].trailers)
    # Control characters and spaces cannot go into a field value: the type stays one token.
    assert trailers[p.ERROR_TYPE_HEADER] == "CustomType"
    assert base64.b64decode(trailers[p.ERROR_BODY_TRAILER]) == b'{"errorType":"Custom"}'


def test_bad_chunk_mid_stream_is_a_trailer_error(peer: Callable[..., Peer]) -> None:
    server = peer([REQ, send(resp(202))])
    conn = Connection("127.0.0.1", server.port)
    closed = []

    def produce() -> Iterator[object]:
        try:
            yield b"ok"
            yield None
            yield b"never"
        finally:
            closed.append(True)

    outcome = post_stream(conn, RID, produce())
    finish(conn, server)
    assert isinstance(outcome.error, TypeError)
    assert "yielded NoneType" in str(outcome.error)
    assert server.conns[0].requests[0].body == b"ok"
    assert dict(server.conns[0].requests[0].trailers)[p.ERROR_TYPE_HEADER] == "TypeError"
    assert closed == [True], "the generator's finally ran"


def test_limit_stops_the_stream_before_the_chunk_that_crosses_it(
    peer: Callable[..., Peer],
) -> None:
    server = peer([REQ, send(resp(202))])
    conn = Connection("127.0.0.1", server.port)
    produced = []

    def produce() -> Iterator[bytes]:
        for i in range(10):
            produced.append(i)
            yield b"x" * 40

    outcome = post_stream(conn, RID, produce(), limit=100)
    finish(conn, server)
    assert isinstance(outcome.error, StreamTooLarge)
    assert "exceeded the maximum allowed size for a streamed response (100 bytes)" in str(
        outcome.error
    )
    assert outcome.bytes_sent == 80
    got = server.conns[0].requests[0]
    assert got.body == b"x" * 80
    trailers = dict(got.trailers)
    assert trailers[p.ERROR_TYPE_HEADER] == "Function.ResponseSizeTooLarge"
    body = json.loads(base64.b64decode(trailers[p.ERROR_BODY_TRAILER]))
    assert body["errorType"] == "Function.ResponseSizeTooLarge"
    assert produced == [0, 1, 2], "the generator was closed, not drained"


def test_413_is_reported_not_raised(peer: Callable[..., Peer]) -> None:
    server = peer([REQ, send(resp(413, b"too big", reason="Request Entity Too Large"))])
    conn = Connection("127.0.0.1", server.port)
    outcome = post_stream(conn, RID, iter([b"a", b"b"]))
    finish(conn, server)
    assert outcome.response is not None and outcome.response.status == 413
    assert outcome.problem is not None and "413" in outcome.problem


def test_peer_closing_mid_stream_is_reported_and_the_generator_closed(
    peer: Callable[..., Peer],
) -> None:
    got_first = threading.Event()
    server = peer([until(b"first", got_first), CLOSE], [REQ, send(resp(200, b"next"))])
    conn = Connection("127.0.0.1", server.port)
    closed = []

    def produce() -> Iterator[bytes]:
        try:
            yield b"first"
            assert got_first.wait(TIMEOUT)
            assert server.conn(0).done.wait(TIMEOUT)
            # Enough data that a send must hit the closed connection.
            for _ in range(200):
                yield b"y" * 65536
        finally:
            closed.append(True)

    outcome = post_stream(conn, RID, produce())
    assert outcome.response is None
    assert outcome.problem is not None and "closed" in outcome.problem
    assert closed == [True]
    # Not fatal: the next request goes out on a new connection.
    assert conn.request("GET", NEXT).body == b"next"
    finish(conn, server)


def test_async_generator_runs_on_the_given_loop(peer: Callable[..., Peer]) -> None:
    first_arrived = threading.Event()
    server = peer([until(b"5\r\nfirst\r\n", first_arrived), REQ, send(resp(202))])
    conn = Connection("127.0.0.1", server.port)
    loop = asyncio.new_event_loop()
    loops = []

    async def produce() -> AsyncIterator[object]:
        loops.append(asyncio.get_running_loop())
        yield StreamResponse("text/plain")
        yield b"first"
        # The loop is not blocked: the wait runs in a thread while chunk 1 is at the peer.
        assert await asyncio.to_thread(first_arrived.wait, TIMEOUT)
        await asyncio.sleep(0)
        yield "second"

    try:
        outcome = post_stream(conn, RID, produce(), loop=loop)
    finally:
        loop.close()
    finish(conn, server)
    assert outcome.problem is None and outcome.error is None
    assert loops == [loop]
    assert server.conns[0].requests[0].body == b"firstsecond"
    assert headers_of(server)["content-type"] == "text/plain"


def test_async_generator_error_mid_stream_and_aclose(peer: Callable[..., Peer]) -> None:
    server = peer([REQ, send(resp(202))])
    conn = Connection("127.0.0.1", server.port)
    loop = asyncio.new_event_loop()

    async def produce() -> AsyncIterator[bytes]:
        yield b"a"
        raise LookupError("async boom")

    try:
        outcome = post_stream(conn, RID, produce(), loop=loop)
        with pytest.raises(ValueError, match="needs the event loop"):
            post_stream(conn, RID, produce())
    finally:
        loop.close()
    finish(conn, server)
    assert isinstance(outcome.error, LookupError)
    assert dict(server.conns[0].requests[0].trailers)[p.ERROR_TYPE_HEADER] == "LookupError"


def test_large_chunks_are_sent_whole(peer: Callable[..., Peer]) -> None:
    server = peer([REQ, send(resp(202))])
    conn = Connection("127.0.0.1", server.port)
    chunk = bytes(range(256)) * 1024  # 256 KiB, over the small-body join threshold
    outcome = post_stream(conn, RID, iter([chunk, memoryview(chunk), bytearray(chunk)]))
    finish(conn, server)
    assert outcome.bytes_sent == 3 * len(chunk)
    assert server.conns[0].requests[0].body == chunk * 3


def test_stream_after_a_pipelined_request_does_not_take_its_answer(
    peer: Callable[..., Peer],
) -> None:
    # The GET /next stays unanswered, as a long poll does.
    server = peer([REQ, REQ, send(resp(202))], [REQ, send(resp(202, b"stream"))])
    conn = Connection("127.0.0.1", server.port)
    conn.request("POST", "/x/response", (), b"[1]", then=("GET", NEXT))
    outcome = post_stream(conn, RID, iter([b"chunk"]))
    finish(conn, server)
    assert outcome.response is not None and outcome.response.body == b"stream"
    assert server.conns[1].requests[0].body == b"chunk"


@pytest.mark.skipif(sys.version_info < (3, 11), reason="tasks take a context from 3.11 on")
def test_async_generator_keeps_its_context_across_yields(peer: Callable[..., Peer]) -> None:
    server = peer([REQ, send(resp(202))])
    conn = Connection("127.0.0.1", server.port)
    loop = asyncio.new_event_loop()
    request_id = contextvars.ContextVar("request_id", default="none")
    span = contextvars.ContextVar("span", default="none")
    request_id.set("rid-from-the-invoke")

    async def produce() -> AsyncIterator[str]:
        span.set("opened-in-the-generator")
        yield request_id.get() + ","
        await asyncio.sleep(0)
        yield span.get()

    try:
        outcome = post_stream(conn, RID, produce(), loop=loop)
    finally:
        loop.close()
    finish(conn, server)
    assert outcome.problem is None
    assert server.conns[0].requests[0].body == b"rid-from-the-invoke,opened-in-the-generator"
    assert span.get() == "none", "the generator's context does not leak into the caller's"


def test_a_failing_error_describer_still_ends_the_stream_with_trailers(
    peer: Callable[..., Peer],
) -> None:
    server = peer([REQ, send(resp(202))])
    conn = Connection("127.0.0.1", server.port)

    def produce() -> Iterator[bytes]:
        yield b"x"
        raise ValueError("original")

    def describe(exc: BaseException) -> tuple[str, bytes]:
        raise RuntimeError("describer bug")

    outcome = post_stream(conn, RID, produce(), describe_error=describe)
    finish(conn, server)
    assert isinstance(outcome.error, ValueError)
    trailers = dict(server.conns[0].requests[0].trailers)
    assert trailers[p.ERROR_TYPE_HEADER] == "ValueError"
    body = json.loads(base64.b64decode(trailers[p.ERROR_BODY_TRAILER]))
    assert body["errorType"] == "ValueError"
    assert "original" in body["errorMessage"] and "describer bug" in body["errorMessage"]


def test_500_answer_is_fatal(peer: Callable[..., Peer]) -> None:
    server = peer([REQ, send(resp(500, b"container error"))])
    conn = Connection("127.0.0.1", server.port)
    outcome = post_stream(conn, RID, iter([b"x"]))
    finish(conn, server)
    assert outcome.fatal
    assert outcome.problem is not None and "500" in outcome.problem
