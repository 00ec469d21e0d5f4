"""Property tests for the emulator's HTTP server (fast path and h11), without sockets.

Whatever bytes a client sends, in whatever pieces, the server never raises out of its protocol
callbacks, writes only well-formed responses, and answers every malformed head it refuses with a
JSON error (instead of just closing).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import re
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from runtime.emulator.server import HttpConnection, Request

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
STATUS_LINE = re.compile(rb"HTTP/1\.1 (\d{3}) [^\r\n]*\r\n")


class Transport:
    """The parts of asyncio.Transport the server uses, recording what it writes."""

    def __init__(self) -> None:
        self.out = b""
        self.closed = False
        self.eof_written = False

    def write(self, data: bytes) -> None:
        assert not self.closed and not self.eof_written, "write after close"
        self.out += data

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.closed = True

    def can_write_eof(self) -> bool:
        return True

    def write_eof(self) -> None:
        self.eof_written = True

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return default


class Answering:
    """A handler that answers every request at once with 200 and its body size."""

    def __init__(self) -> None:
        self.finished = 0

    def start(self, req: Request) -> None:
        req.max_body = 64

    def finish(self, req: Request) -> None:
        self.finished += 1
        req.respond(200, [(b"content-type", b"text/plain")], str(req.body_size).encode())

    def connection_lost(self, conn: HttpConnection) -> None:
        pass


def responses(out: bytes) -> list[tuple[int, bytes]]:
    """Split the server's output into (status, body); fails on anything malformed."""
    found = []
    while out:
        match = STATUS_LINE.match(out)
        assert match, f"not a status line: {out[:80]!r}"
        head, sep, rest = out.partition(b"\r\n\r\n")
        assert sep, f"unterminated head: {head[:80]!r}"
        lengths = re.findall(rb"(?im)^content-length: *(\d+)\r?$", head + b"\r\n")
        assert len(lengths) == 1, head
        length = int(lengths[0])
        assert len(rest) >= length
        found.append((int(match.group(1)), rest[:length]))
        out = rest[length:]
    return found


def feed(data: bytes, cuts: list[int], max_head: int) -> tuple[Transport, Answering]:
    async def run() -> tuple[Transport, Answering]:
        handler = Answering()
        conn = HttpConnection(handler, max_head=max_head)
        transport = Transport()
        conn.connection_made(transport)  # type: ignore[arg-type]
        bounds = sorted({0, len(data), *(c for c in cuts if 0 <= c <= len(data))})
        for a, b in itertools.pairwise(bounds):
            if transport.closed:
                break
            conn.data_received(data[a:b])
        if not transport.closed and not conn.eof_received():
            transport.close()
        return transport, handler

    return asyncio.run(run())


TOKENS = [
    b"GET / HTTP/1.1\r\n",
    b"POST /2015-03-31/functions/f/invocations HTTP/1.1\r\n",
    b"POST / HTTP/1.0\r\n",
    b"Host: x\r\n",
    b"Content-Length: 3\r\n",
    b"Content-Length: 99999999\r\n",
    b"Transfer-Encoding: chunked\r\n",
    b"Connection: close\r\n",
    b"Expect: 100-continue\r\n",
    b"3\r\nabc\r\n0\r\n\r\n",
    b"\r\n",
    b"\r\n\r\n",
    b"\r",
    b"\n",
    b"\x00",
    b"\x7f",
    b"abc",
    b"x" * 300,
]
streams = st.one_of(
    st.binary(max_size=300),
    st.lists(st.one_of(st.sampled_from(TOKENS), st.binary(max_size=5)), max_size=30).map(b"".join),
)


@FUZZ
@given(data=st.data(), stream=streams, max_head=st.sampled_from([256, 16 * 1024]))
def test_any_stream_gets_well_formed_answers_and_never_raises(
    data: st.DataObject, stream: bytes, max_head: int
) -> None:
    cuts = data.draw(st.lists(st.integers(0, len(stream)), max_size=12))
    transport, handler = feed(stream, cuts, max_head)
    answers = responses(transport.out)
    assert len(answers) >= handler.finished
    for status, body in answers:
        if status >= 400:
            assert json.loads(body)["message"], body


# The octets no HTTP parser may take in a field value. (Other controls, like h11, the server
# passes on; the Invoke API refuses them in the values it forwards to a runtime.)
bad_bytes = st.sampled_from([b"\x00", b"\r", b"\x0b", b"\x0c"])


@FUZZ
@given(
    data=st.data(),
    bad=bad_bytes,
    before=st.binary(max_size=10).map(lambda v: v.translate(None, bytes(range(33)) + b"\x7f")),
)
def test_a_nul_or_bare_cr_in_a_header_value_is_answered_400(
    data: st.DataObject, bad: bytes, before: bytes
) -> None:
    stream = b"POST / HTTP/1.1\r\nHost: x\r\nX-Thing: a" + before + bad + b"b\r\n\r\n"
    cuts = data.draw(st.lists(st.integers(0, len(stream)), max_size=6))
    transport, handler = feed(stream, cuts, 16 * 1024)
    assert handler.finished == 0
    [(status, body)] = responses(transport.out)
    assert status == 400
    assert "bad HTTP request" in json.loads(body)["message"]
    assert transport.eof_written or transport.closed


@FUZZ
@given(data=st.data(), size=st.integers(300, 3000), in_url=st.booleans())
def test_an_oversized_head_is_answered_414_or_431(
    data: st.DataObject, size: int, in_url: bool
) -> None:
    if in_url:
        stream = b"GET /" + b"u" * size + b" HTTP/1.1\r\nHost: x\r\n\r\n"
    else:
        stream = b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"v" * size + b"\r\n\r\n"
    cuts = data.draw(st.lists(st.integers(0, len(stream)), max_size=6))
    transport, handler = feed(stream, cuts, 256)
    assert handler.finished == 0
    [(status, body)] = responses(transport.out)
    assert status == (414 if in_url else 431)
    assert json.loads(body)["Type"] == "User"
