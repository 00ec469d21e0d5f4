"""The hot-path HTTP client against a scripted peer on a real loopback socket.

The peer sends exactly the bytes a test scripts, in the splits it scripts, and records
exactly what it received, so every test checks both directions of the wire.
"""

from __future__ import annotations

import array
import re
import signal
import socket
import struct
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import pytest

from runtime.http import (
    ConnectError,
    Connection,
    ConnectionClosed,
    HTTPError,
    ProtocolError,
    RequestError,
    Response,
    ResponseFeed,
    StreamAborted,
)

TIMEOUT = 5.0


@dataclass
class Received:
    method: str
    target: str
    headers: list[tuple[str, str]]
    body: bytes
    trailers: list[tuple[str, str]]
    raw: bytes


@dataclass
class PeerConnection:
    requests: list[Received] = field(default_factory=list)
    extra: bytes = b""  # bytes received after the script ended, before the client closed
    eof: bool = False  # the client closed its side
    done: threading.Event = field(default_factory=threading.Event)


Step = Callable[["_Session"], None]


class _Session:
    def __init__(self, sock: socket.socket, record: PeerConnection) -> None:
        self.sock = sock
        self.record = record
        self.pending = b""
        self.closed = False

    def _more(self) -> bytes:
        data = self.sock.recv(1 << 20)
        if not data:
            raise EOFError("client closed")
        self.pending += data
        return data

    def _take_until(self, marker: bytes) -> bytes:
        while marker not in self.pending:
            self._more()
        index = self.pending.index(marker) + len(marker)
        data, self.pending = self.pending[:index], self.pending[index:]
        return data

    def _take(self, n: int) -> bytes:
        while len(self.pending) < n:
            self._more()
        data, self.pending = self.pending[:n], self.pending[n:]
        return data

    def read_request(self) -> Received:
        raw = head = self._take_until(b"\r\n\r\n")
        lines = head[:-4].decode("utf-8", "surrogateescape").split("\r\n")
        method, target, version = lines[0].split(" ")
        assert version == "HTTP/1.1"
        headers = [(n, v.strip()) for n, _, v in (line.partition(":") for line in lines[1:])]
        names = {n.lower(): v for n, v in headers}
        body = b""
        trailers: list[tuple[str, str]] = []
        if names.get("transfer-encoding") == "chunked":
            while True:
                size_line = self._take_until(b"\r\n")
                raw += size_line
                size = int(size_line[:-2].split(b";")[0], 16)
                if size == 0:
                    break
                data = self._take(size + 2)
                raw += data
                assert data[-2:] == b"\r\n"
                body += data[:-2]
            while True:
                line = self._take_until(b"\r\n")
                raw += line
                if line == b"\r\n":
                    break
                name, _, value = line[:-2].decode().partition(":")
                trailers.append((name, value.strip()))
        elif "content-length" in names:
            body = self._take(int(names["content-length"]))
            raw += body
        return Received(method, target, headers, body, trailers, raw)


def REQ(session: _Session) -> None:
    session.record.requests.append(session.read_request())


def send(data: bytes, *, each: int = 0, delay: float = 0.0) -> Step:
    """Send ``data`` in one go, or in pieces of ``each`` bytes with ``delay`` between them."""

    def step(session: _Session) -> None:
        if not each:
            session.sock.sendall(data)
            return
        for start in range(0, len(data), each):
            session.sock.sendall(data[start : start + each])
            if delay:
                time.sleep(delay)

    return step


def reply(make: Callable[[Received], bytes]) -> Step:
    """Answer the last request with bytes computed from it."""

    def step(session: _Session) -> None:
        session.sock.sendall(make(session.record.requests[-1]))

    return step


def until(marker: bytes, event: threading.Event) -> Step:
    """Wait until ``marker`` has arrived (without consuming it), then set ``event``."""

    def step(session: _Session) -> None:
        while marker not in session.pending:
            session._more()
        event.set()

    return step


def wait(event: threading.Event) -> Step:
    """Do nothing (read nothing) until ``event`` is set."""

    def step(session: _Session) -> None:
        assert event.wait(TIMEOUT)

    return step


def CLOSE(session: _Session) -> None:
    session.sock.shutdown(socket.SHUT_RDWR)
    session.sock.close()
    session.closed = True


def RESET(session: _Session) -> None:
    """Abort the connection: the client sees a TCP RST instead of a FIN."""
    session.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    session.sock.close()
    session.closed = True


class Peer:
    """A loopback server that plays ``scripts[i]`` on the i-th accepted connection."""

    def __init__(self, *scripts: list[Step]) -> None:
        self.scripts = scripts
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(0.05)
        self.port = self.listener.getsockname()[1]
        self.conns: list[PeerConnection] = []
        self.unexpected = 0
        self.errors: list[BaseException] = []
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._acceptor = threading.Thread(target=self._accept_loop, daemon=True)
        self._acceptor.start()

    def _accept_loop(self) -> None:
        while not self._stop.is_set():
            try:
                sock, _ = self.listener.accept()
            except TimeoutError:
                continue
            self._adopt(sock)

    def _adopt(self, sock: socket.socket) -> None:
        if len(self.conns) >= len(self.scripts):
            self.unexpected += 1
            sock.close()
            return
        record = PeerConnection()
        script = self.scripts[len(self.conns)]
        self.conns.append(record)
        thread = threading.Thread(target=self._serve, args=(sock, record, script), daemon=True)
        self._threads.append(thread)
        thread.start()

    def _serve(self, sock: socket.socket, record: PeerConnection, script: list[Step]) -> None:
        sock.settimeout(TIMEOUT)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        session = _Session(sock, record)
        try:
            for step in script:
                step(session)
            if not session.closed:
                # Record whatever else arrives until the client closes.
                try:
                    while True:
                        session._more()
                except EOFError:
                    record.eof = True
                record.extra = session.pending
        except EOFError:
            record.eof = True
        except BaseException as exc:
            self.errors.append(exc)
        finally:
            record.done.set()
            if not session.closed:
                sock.close()

    def conn(self, index: int) -> PeerConnection:
        """The index-th accepted connection, waiting for the acceptor if need be."""
        deadline = time.monotonic() + TIMEOUT
        while len(self.conns) <= index:
            assert time.monotonic() < deadline, f"connection {index} was never opened"
            time.sleep(0.005)
        return self.conns[index]

    def stop(self) -> None:
        if self._stop.is_set():
            return
        for thread in self._threads:
            thread.join(TIMEOUT)
        self._stop.set()
        self._acceptor.join(TIMEOUT)
        # A connection the client opened but nobody accepted yet still counts.
        self.listener.setblocking(False)
        try:
            while True:
                sock, _ = self.listener.accept()
                self._adopt(sock)
        except BlockingIOError:
            pass
        self.listener.close()
        assert not self.errors, self.errors


@pytest.fixture
def peer() -> Iterator[Callable[..., Peer]]:
    peers: list[Peer] = []

    def make(*scripts: list[Step]) -> Peer:
        p = Peer(*scripts)
        peers.append(p)
        return p

    yield make
    for p in peers:
        p.stop()


def resp(
    status: int = 200, body: bytes = b"", headers: tuple[str, ...] = (), reason: str = "OK"
) -> bytes:
    lines = [f"HTTP/1.1 {status} {reason}", *headers, f"Content-Length: {len(body)}"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


NEXT = "/2018-06-01/runtime/invocation/next"
_CHUNKED_HEAD = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
_PAD_HEAD = b"HTTP/1.1 200 OK\r\nX-Pad: "


def finish(conn: Connection, p: Peer) -> None:
    conn.close()
    p.stop()


def protocol_error(peer: Callable[..., Peer], answer: bytes) -> str:
    """The message of the ProtocolError that a GET answered with ``answer`` raises."""
    p = peer([REQ, send(answer)])
    conn = Connection("127.0.0.1", p.port)
    with pytest.raises(ProtocolError) as info:
        conn.request("GET", NEXT)
    finish(conn, p)
    return str(info.value)


# --- requests as the server sees them ---------------------------------------------------


def test_get_and_post_reach_the_server_exactly(peer: Callable[..., Peer]) -> None:
    p = peer([REQ, send(resp(200, b'{"a":1}')), REQ, send(resp(202, b"ok")), REQ, send(resp())])
    conn = Connection("127.0.0.1", p.port)
    r1 = conn.request("GET", NEXT)
    r2 = conn.request(
        "POST", "/x/response", [("Lambda-Runtime-Invocation-Id", "abc")], bytearray(b"[1,2]")
    )
    r3 = conn.request("POST", "/x/error", [("Content-Type", "application/json")])
    finish(conn, p)

    assert (r1.status, r1.reason, r1.body) == (200, "OK", b'{"a":1}')
    assert r1.headers == {"content-length": "7"}
    assert (r2.status, r2.body, r3.body) == (202, b"ok", b"")
    assert len(p.conns) == 1, "keep-alive: all three requests on one connection"
    host = f"127.0.0.1:{p.port}"
    got = p.conns[0].requests
    assert got[0].raw == f"GET {NEXT} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode()
    assert (got[1].method, got[1].target, got[1].body) == ("POST", "/x/response", b"[1,2]")
    assert got[1].headers == [
        ("Host", host),
        ("Lambda-Runtime-Invocation-Id", "abc"),
        ("Content-Length", "5"),
    ]
    assert got[2].headers == [
        ("Host", host),
        ("Content-Type", "application/json"),
        ("Content-Length", "0"),
    ]
    assert p.conns[0].eof and p.conns[0].extra == b""


def test_the_user_agent_goes_into_every_request_head(peer: Callable[..., Peer]) -> None:
    """The runtime always sets one (the Runtime API's user agent); every kind of head has it.

    Kills runtime.http.xǁConnectionǁ_head__mutmut_26 and _32 (its line miscounted, so every
    head taken for one with a line break in it).
    """
    p = peer([REQ, send(resp()), REQ, send(resp()), REQ, send(resp(202))])
    conn = Connection("127.0.0.1", p.port, user_agent="aws-lambda-python/3.11 (test)")
    conn.request("GET", NEXT)
    conn.request("POST", "/x/response", [("Content-Type", "a/b")], b"[1]")
    conn.request_chunked("POST", "/s", STREAM_HEADERS, [b"data"])
    finish(conn, p)
    agents = [dict(r.headers).get("User-Agent") for r in p.conns[0].requests]
    assert agents == ["aws-lambda-python/3.11 (test)"] * 3
    assert (
        p.conns[0].requests[0].raw
        == (
            f"GET {NEXT} HTTP/1.1\r\nHost: 127.0.0.1:{p.port}\r\n"
            "User-Agent: aws-lambda-python/3.11 (test)\r\n\r\n"
        ).encode()
    )


def test_header_values_decoded_with_surrogateescape_go_back_as_their_bytes(
    peer: Callable[..., Peer],
) -> None:
    """A response header value that was not UTF-8 can be forwarded in a request unchanged.

    Kills runtime.http.x__encode__mutmut_4 (strict UTF-8: a RequestError instead).
    """
    raw = b"HTTP/1.1 200 OK\r\nX-Tenant: caf\xe9\r\nContent-Length: 0\r\n\r\n"
    p = peer([REQ, send(raw), REQ, send(resp(202))])
    conn = Connection("127.0.0.1", p.port)
    tenant = conn.request("GET", NEXT).headers["x-tenant"]
    conn.request("POST", "/x/response", [("X-Tenant", tenant)], b"{}")
    finish(conn, p)
    assert tenant == "caf\udce9"
    assert b"\r\nX-Tenant: caf\xe9\r\n" in p.conns[0].requests[1].raw


def test_any_token_is_a_header_name(peer: Callable[..., Peer]) -> None:
    """Not only letters and dashes: every RFC 9110 token character may be in a name.

    Kills runtime.http.x__encode_fields__mutmut_1, _13 and _16 (such names refused).
    """
    name = "X_Amzn.Trace~Id!#$%&'*+^`|"
    p = peer([REQ, send(resp())])
    conn = Connection("127.0.0.1", p.port)
    conn.request("POST", "/p", [(name, "v")], b"x")
    finish(conn, p)
    assert (name, "v") in p.conns[0].requests[0].headers


def test_utf8_header_values_round_trip(peer: Callable[..., Peer]) -> None:
    context = '{"custom":{"name":"Zoë ✓"}}'
    raw = resp(200, b"", (f"Lambda-Runtime-Client-Context: {context}",)).replace(
        b"OK", "Grüße".encode()
    )
    p = peer([REQ, send(raw)])
    conn = Connection("127.0.0.1", p.port)
    r = conn.request("POST", "/p", [("X-Note", "naïve")], b"x")
    finish(conn, p)
    assert r.headers["lambda-runtime-client-context"] == context
    assert r.reason == "Grüße"
    assert ("X-Note", "naïve") in p.conns[0].requests[0].headers


@pytest.mark.parametrize(
    ("headers", "message"),
    [
        (
            [("X-Evil", "a\r\nInjected: 1")],
            "header 'X-Evil' contains a control character (CR, LF, NUL...)",
        ),
        ([("X-Evil", "a\nb")], "header 'X-Evil' contains a control character (CR, LF, NUL...)"),
        ([("X-Nul", "a\x00b")], "header 'X-Nul' contains a control character (CR, LF, NUL...)"),
        (
            [("X-Fine", "1"), ("X-Evil", "a\rb")],
            "header 'X-Evil' contains a control character (CR, LF, NUL...)",
        ),
        ([("Bad Name", "v")], "invalid header name 'Bad Name'"),
        ([("", "v")], "invalid header name ''"),
        ([("N\u00e4me", "v")], "invalid header name 'N\u00e4me'"),
        (
            [("Content-Length", "3")],
            "header 'Content-Length' is set by the HTTP client, do not pass it",
        ),
        (
            [("transfer-encoding", "chunked")],
            "header 'transfer-encoding' is set by the HTTP client, do not pass it",
        ),
    ],
)
def test_invalid_request_headers_are_refused_before_sending(
    peer: Callable[..., Peer], headers: list[tuple[str, str]], message: str
) -> None:
    """The error names the header at fault, or says the method or target is.

    Kills runtime.http.x__check_head__mutmut_8 (the first header blamed), _10 to _12 (the
    message about the method or target lost or changed) and xǁConnectionǁ_head__mutmut_8, _11,
    _12, _44, _48, _49 (the kind of field misnamed), _50, _51 (an empty method or target, or a
    space in the method, let through).
    """
    p = peer([])
    conn = Connection("127.0.0.1", p.port)
    with pytest.raises(RequestError) as info:
        conn.request("POST", "/p", headers, b"x")
    assert str(info.value) == message
    for method, target in [("GET", "/a b"), ("GE T", "/a"), ("", "/a"), ("GET", "")]:
        with pytest.raises(RequestError) as info:
            conn.request(method, target)
        assert str(info.value) == f"invalid method {method!r} or target {target!r}"
    with pytest.raises(RequestError) as info:
        conn.request("GET", "/a\r\nX: y", [("X-Fine", "1")])
    assert str(info.value) == "method or target contains a control character or a line break"
    finish(conn, p)
    assert p.conns == [] and p.unexpected == 0, "nothing may be sent"


@pytest.mark.parametrize(
    ("target", "headers"),
    [("/p", [("X-Bad", "\ud800")]), ("/\ud800", [])],
    ids=["header", "target"],
)
def test_a_request_head_that_cannot_be_encoded_is_refused(
    peer: Callable[..., Peer], target: str, headers: list[tuple[str, str]]
) -> None:
    """A lone surrogate (not one of surrogateescape's) has no bytes: refused, nothing sent.

    Kills runtime.http.xǁConnectionǁ_head__mutmut_20 (the message).
    """
    p = peer([])
    conn = Connection("127.0.0.1", p.port)
    with pytest.raises(RequestError, match=r"^request head cannot be encoded: .* surrogates not"):
        conn.request("POST", target, headers, b"x")
    finish(conn, p)
    assert p.conns == [] and p.unexpected == 0


# --- response framing ----------------------------------------------------------------


def test_byte_at_a_time_delivery(peer: Callable[..., Peer]) -> None:
    first = resp(200, b"hello world", ("Lambda-Runtime-Aws-Request-Id: r-1", "X-Two: a"))
    chunked = (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: X-T\r\n\r\n"
        b"3;name=value\r\nabc\r\n1\r\nd\r\n0\r\nX-T: done\r\n\r\n"
    )
    p = peer([REQ, send(first, each=1, delay=0.0005), REQ, send(chunked, each=1, delay=0.0005)])
    conn = Connection("127.0.0.1", p.port)
    r1 = conn.request("GET", NEXT)
    r2 = conn.request("GET", NEXT)
    finish(conn, p)
    assert r1.body == b"hello world"
    assert r1.headers == {
        "lambda-runtime-aws-request-id": "r-1",
        "x-two": "a",
        "content-length": "11",
    }
    assert (r2.body, r2.trailers) == (b"abcd", {"x-t": "done"})
    assert len(p.conns) == 1


def test_a_head_arriving_in_pieces_ends_at_its_first_blank_line(
    peer: Callable[..., Peer],
) -> None:
    """A body that contains CRLFCRLF is still body. Kills runtime.http.xǁResponseReaderǁ
    _read_block__mutmut_11 (the last blank line in the buffer taken as the end of the head)."""
    raw = resp(200, b"a\r\n\r\nb") + resp(202, b"\r\n\r\n")
    p = peer([REQ, send(raw[:10], each=10, delay=0.03), send(raw[10:]), REQ])
    conn = Connection("127.0.0.1", p.port)
    first = conn.request("POST", "/x/response", (), b"[1]", then=("GET", NEXT))
    second = conn.request("GET", NEXT)
    finish(conn, p)
    assert (first.status, first.body, second.status, second.body) == (
        200,
        b"a\r\n\r\nb",
        202,
        b"\r\n\r\n",
    )


def test_an_empty_head_is_an_invalid_status_line(peer: Callable[..., Peer]) -> None:
    """A blank line where the status line should be is not skipped. Kills runtime.http.
    xǁResponseReaderǁ_read_block__mutmut_13 and _14 (a head ending at 0 not seen)."""
    rest = b"\r\n" + resp(200, b"late")
    p = peer([REQ, send(b"\r\n", each=2, delay=0.03), send(rest)])
    conn = Connection("127.0.0.1", p.port)
    with pytest.raises(ProtocolError) as info:
        conn.request("GET", NEXT)
    finish(conn, p)
    assert str(info.value) == "invalid status line b''"


def test_chunked_body_with_extensions_and_trailers(peer: Callable[..., Peer]) -> None:
    body = (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        b'5;a=b;quoted="x;y" \r\nhello\r\n'
        b"6 ; ext\r\n world\r\n"
        b"0;last=1\r\n"
        b"Lambda-Runtime-Function-Error-Type: Function.Oops\r\nX-Multi: 1\r\nx-multi: 2\r\n\r\n"
    )
    # Split right inside the CRLFs and the chunk sizes.
    pieces = [body[:60], body[60:61], body[61:95], body[95:]]
    p = peer([REQ, *[send(piece) for piece in pieces], REQ, send(resp(200, b"next"))])
    conn = Connection("127.0.0.1", p.port)
    r = conn.request("GET", NEXT)
    r_next = conn.request("GET", NEXT)
    finish(conn, p)
    assert r.body == b"hello world"
    assert r.headers == {"transfer-encoding": "chunked"}
    assert r.trailers == {
        "lambda-runtime-function-error-type": "Function.Oops",
        "x-multi": "1, 2",
    }
    assert r_next.body == b"next", "the following response is framed correctly"
    assert len(p.conns) == 1


@pytest.mark.parametrize(
    ("sent", "message"),
    [
        (
            _PAD_HEAD + b"p" * (65536 - len(_PAD_HEAD)),
            "response header block exceeds 65536 bytes",
        ),
        (
            _CHUNKED_HEAD + b"a" * 65536,
            "chunk-size line exceeds 65536 bytes: " + repr(b"a" * 80) + "...",
        ),
    ],
    ids=["header-block", "chunk-size-line"],
)
def test_64k_without_the_end_of_a_head_or_line_is_refused_without_waiting(
    peer: Callable[..., Peer], sent: bytes, message: str
) -> None:
    """A head or line that has reached the 64 KiB limit without its end is a ProtocolError at
    once, naming it, not a wait for more (which here would end in a ConnectionClosed).

    Kills runtime.http.xǁResponseReaderǁ_read_block__mutmut_16, _17 and _read_line__mutmut_15
    to _17.
    """
    later = threading.Event()
    p = peer([REQ, send(sent), wait(later), CLOSE])
    conn = Connection("127.0.0.1", p.port)
    timer = threading.Timer(0.1, later.set)
    timer.start()
    with pytest.raises(ProtocolError) as info:
        conn.request("GET", NEXT)
    timer.join()
    finish(conn, p)
    assert str(info.value) == message


@pytest.mark.parametrize(("size", "accepted"), [(65536, True), (65537, False)])
def test_a_chunk_size_line_may_take_64k_with_its_crlf(
    peer: Callable[..., Peer], size: int, accepted: bool
) -> None:
    """Kills runtime.http.xǁResponseReaderǁ_read_line__mutmut_27 to _31 (the bound moved, or
    the message lost)."""
    line = b"5;" + b"x" * (size - 4)  # + CRLF: size bytes
    head = _CHUNKED_HEAD
    p = peer([REQ, send(head + line + b"\r\nhello\r\n0\r\n\r\n")])
    conn = Connection("127.0.0.1", p.port)
    if accepted:
        assert conn.request("GET", NEXT).body == b"hello"
    else:
        with pytest.raises(ProtocolError) as info:
            conn.request("GET", NEXT)
        assert str(info.value) == f"chunk-size line exceeds 65536 bytes: {line[:80]!r}..."
    finish(conn, p)


def test_connection_closed_in_a_chunk_size_line_shows_it(peer: Callable[..., Peer]) -> None:
    """Kills runtime.http.xǁResponseReaderǁ_read_line__mutmut_25 and _26 (the message)."""
    head = _CHUNKED_HEAD
    p = peer([REQ, send(head + b"5;ab"), CLOSE])
    conn = Connection("127.0.0.1", p.port)
    with pytest.raises(ConnectionClosed) as info:
        conn.request("GET", NEXT)
    finish(conn, p)
    assert str(info.value) == (
        f"GET {NEXT} on 127.0.0.1:{p.port}: connection closed in the chunk-size line: b'5;ab'"
    )


def test_101_switching_protocols_is_refused(peer: Callable[..., Peer]) -> None:
    """No upgrade is ever requested, so a 101 cannot be skipped like an interim response.

    Kills runtime.http.xǁResponseReaderǁread_response__mutmut_43.
    """
    assert (
        protocol_error(peer, b"HTTP/1.1 101 Switching Protocols\r\n\r\n" + resp(200, b"x"))
        == "unexpected 101 Switching Protocols (no upgrade was requested)"
    )


@pytest.mark.parametrize(
    "line",
    [
        b"HTTP/1.1 200OK",
        b"HTTP/1.1 099 Odd",
        b"HTTP/1.1 2000 OK",
        b"HTTP/1.1 20 OK",
        b"HTTP/1.1 2\xff0",
    ],
)
def test_a_malformed_status_line_is_refused(peer: Callable[..., Peer], line: bytes) -> None:
    """Three digits, the first not 0, then a space or the end of the line (RFC 9112 4).

    Kills runtime.http.x__parse_head__mutmut_20, _28, _29 and _39, _42, _43 (a line that is not
    UTF-8 quoted as a UnicodeEncodeError instead).
    """
    assert (
        protocol_error(peer, line + b"\r\nContent-Length: 0\r\n\r\n")
        == f"invalid status line {line!r}"
    )


def test_a_status_line_without_a_reason_is_accepted(peer: Callable[..., Peer]) -> None:
    """Kills runtime.http.x__parse_head__mutmut_32."""
    p = peer([REQ, send(b"HTTP/1.1 202\r\nContent-Length: 2\r\n\r\nok")])
    conn = Connection("127.0.0.1", p.port)
    r = conn.request("GET", NEXT)
    finish(conn, p)
    assert (r.status, r.reason, r.body) == (202, "", b"ok")


@pytest.mark.parametrize(
    ("value", "kept"),
    [
        ("keep-alive , \tClose", False),
        ("upgrade,close", False),
        ("Xclose", True),
        ("\x0bclose", True),
    ],
    ids=["close-among-others", "no-spaces", "other-token", "vt-is-not-whitespace"],
)
def test_connection_options_are_exact_tokens(
    peer: Callable[..., Peer], value: str, kept: bool
) -> None:
    """Only spaces and tabs around an option are ignored (RFC 9110 5.6.1, 7.6.1): an option
    that is not exactly ``close`` does not close the connection.

    Kills runtime.http.xǁResponseReaderǁread_response__mutmut_61 to _64.
    """
    first = resp(200, b"one", (f"Connection: {value}",))
    second = [REQ, send(resp(200, b"two"))]
    p = peer([REQ, send(first), *second]) if kept else peer([REQ, send(first)], second)
    conn = Connection("127.0.0.1", p.port)
    assert conn.request("GET", "/1").body == b"one"
    if not kept:
        assert p.conns[0].done.wait(TIMEOUT), "the client closed the connection"
    assert conn.request("GET", "/2").body == b"two"
    finish(conn, p)
    assert len(p.conns) == (1 if kept else 2)


@pytest.mark.parametrize(
    ("head", "message"),
    [
        (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n",
            "response has both Transfer-Encoding and Content-Length (ambiguous framing)",
        ),
        (
            b"HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
            "HTTP/1.0 response with Transfer-Encoding (faulty framing)",
        ),
        (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
            "unsupported Transfer-Encoding 'gzip, chunked' (only chunked)",
        ),
    ],
    ids=["te-and-cl", "te-in-http/1.0", "te-not-chunked"],
)
def test_doubtful_framing_is_a_protocol_error(
    peer: Callable[..., Peer], head: bytes, message: str
) -> None:
    """RFC 9112 6.1, 6.3: a body whose length is in doubt is refused, never guessed at.

    Kills runtime.http.xǁResponseReaderǁread_response__mutmut_86.
    """
    assert protocol_error(peer, head + b"5\r\nhello\r\n0\r\n\r\n") == message


@pytest.mark.parametrize(
    ("size_line", "message"),
    [
        (b"0000000000000005", None),  # 16 hex digits: the most there may be
        (b"5 \t;ext", None),
        (b"00000000000000005", "invalid chunk-size line b'00000000000000005'"),
        (b"zz", "invalid chunk-size line b'zz'"),
        (b";ext", "invalid chunk-size line b';ext'"),
        (b"5X", "invalid chunk-size line b'5X'"),
        (b"5\x0b", "invalid chunk-size line b'5\\x0b'"),  # VT is not whitespace
        (b"5;a\x01b", "control character in chunk extension b'5;a\\x01b'"),
    ],
    ids=["16-digits", "ows-then-ext", "17-digits", "not-hex", "empty", "x", "vt", "ctl-in-ext"],
)
def test_chunk_size_lines(peer: Callable[..., Peer], size_line: bytes, message: str | None) -> None:
    """A chunk size is 1 to 16 hex digits, then optional spaces/tabs and extensions (RFC 9112
    7.1); anything else is refused, quoted.

    Kills runtime.http.x__parse_chunk_size__mutmut_6, _8, _9, _10, _15 to _18, _23, _24.
    """
    head = _CHUNKED_HEAD
    p = peer([REQ, send(head + size_line + b"\r\nhello\r\n0\r\n\r\n")])
    conn = Connection("127.0.0.1", p.port)
    if message is None:
        assert conn.request("GET", NEXT).body == b"hello"
    else:
        with pytest.raises(ProtocolError) as info:
            conn.request("GET", NEXT)
        assert str(info.value) == message
    finish(conn, p)


@pytest.mark.parametrize("where", ["header", "trailer"])
def test_a_field_line_without_a_colon_is_refused_even_alone(
    peer: Callable[..., Peer], where: str
) -> None:
    """Kills runtime.http.x__parse_fields__mutmut_32 (only lines with a colon made it look)."""
    if where == "header":
        raw, what = b"HTTP/1.1 200 OK\r\nNoColon\r\n\r\n", "response header block line 1"
    else:
        raw, what = _CHUNKED_HEAD + b"0\r\nNoColon\r\n\r\n", "trailer section line 0"
    assert protocol_error(peer, raw) == f"{what}: missing ':': b'NoColon'"


def test_only_spaces_and_tabs_are_trimmed_from_field_values(peer: Callable[..., Peer]) -> None:
    """OWS is SP and HTAB (RFC 9110 5.6.3); other octets at the edges are part of the value,
    also in trailers, where a control octet is data as in the header block.

    Kills runtime.http.x__parse_fields__mutmut_12 (a trailer's control octet refused), _46,
    _47 and _49 (other characters trimmed).
    """
    raw = (
        b"HTTP/1.1 200 OK\r\nX-One: \t\x0bv\x0c \r\nX-Multi: Xa\r\nX-Multi:  \x0bbX\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n0\r\nX-T: \x01t\x01\r\nX-U: Xu\r\n\r\n"
    )
    p = peer([REQ, send(raw)])
    conn = Connection("127.0.0.1", p.port)
    r = conn.request("GET", NEXT)
    finish(conn, p)
    assert (r.headers["x-one"], r.headers["x-multi"]) == ("\x0bv\x0c", "Xa, \x0bbX")
    assert r.trailers == {"x-t": "\x01t\x01", "x-u": "Xu"}


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (b" folded", "line 2: obs-fold (line folding) or leading whitespace is not allowed"),
        (b"\tfolded", "line 2: obs-fold (line folding) or leading whitespace is not allowed"),
        (b"No-Colon", "line 2: missing ':'"),
        (b"Bad Name: v", "line 2: invalid field name"),
        (b": v", "line 2: invalid field name"),
        ("N\u00e4me: v".encode(), "line 2: invalid field name"),
        (b"N\xffme: v", "line 2: invalid field name"),
    ],
    ids=[
        "fold-space",
        "fold-tab",
        "no-colon",
        "space-in-name",
        "empty-name",
        "non-ascii-name",
        "non-utf8-name",
    ],
)
@pytest.mark.parametrize("where", ["header", "trailer"])
def test_a_malformed_field_line_is_named_with_its_number(
    peer: Callable[..., Peer], bad: bytes, message: str, where: str
) -> None:
    """The error says which section, which line (counted from 0) and why, and quotes it.

    Kills runtime.http.x__reject_fields__mutmut_10, _12 to _16, _18 to _22, _28 to _35, _37,
    _40 and _41.
    """
    if where == "header":
        raw = b"HTTP/1.1 200 OK\r\nX-Good: 1\r\n" + bad + b"\r\nContent-Length: 0\r\n\r\n"
        what = "response header block"  # line 0 is the status line
    else:
        raw = (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n"
            b"X-Zero: 0\r\nX-Good: 1\r\n" + bad + b"\r\n\r\n"
        )
        what = "trailer section"  # line 0 is the first trailer
    assert protocol_error(peer, raw) == f"{what} {message}: {bad!r}"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"a\r\nddd", "connection closed in a chunk of 10 bytes: 3 received"),
        (
            b"186a0\r\n" + b"d" * 10,
            "connection closed in the chunk of 100000 bytes: 10 of 100000 bytes received",
        ),
        (b"5\r\nhello", "connection closed after chunk data, before its CRLF"),
        (b"5\r\nhello\r", "connection closed after chunk data, before its CRLF"),
        (b"5\r\nhello\r\n", "connection closed in the chunk-size line: b''"),
        (b"0\r\nX-T: 1", "connection closed in the trailer section: b'X-T: 1'"),
    ],
    ids=["small-chunk", "large-chunk", "before-crlf", "inside-crlf", "after-crlf", "trailers"],
)
def test_connection_closed_in_a_chunked_body_says_where(
    peer: Callable[..., Peer], body: bytes, message: str
) -> None:
    """Kills runtime.http.xǁResponseReaderǁ_read_chunked__mutmut_30, _39, _40 (how much of the
    chunk came), _49, _50 (a CRLF taken as incomplete), _52 to _55 and _74, _78, _79 (the
    message)."""
    head = _CHUNKED_HEAD
    p = peer([REQ, send(head + body), CLOSE])
    conn = Connection("127.0.0.1", p.port)
    with pytest.raises(ConnectionClosed) as info:
        conn.request("GET", NEXT)
    finish(conn, p)
    assert str(info.value) == f"GET {NEXT} on 127.0.0.1:{p.port}: {message}"


@pytest.mark.parametrize("after", [b"X\n", b"\rX", b"\n\r", b"\r\r" + b"y" * 30])
def test_chunk_data_must_end_with_crlf(peer: Callable[..., Peer], after: bytes) -> None:
    """What follows is quoted, up to 20 bytes.

    Kills runtime.http.xǁResponseReaderǁ_read_chunked__mutmut_56 (half a CRLF accepted) and
    _63 to _68 (the message).
    """
    head = _CHUNKED_HEAD
    p = peer([REQ, send(head + b"5\r\nhello" + after + b"0\r\n\r\n")])
    conn = Connection("127.0.0.1", p.port)
    with pytest.raises(ProtocolError) as info:
        conn.request("GET", NEXT)
    finish(conn, p)
    rest = after + b"0\r\n\r\n"  # what follows the data, all of it arrived in one segment
    quoted = f"{rest[:20]!r}..." if len(rest) > 20 else repr(rest)
    assert str(info.value) == f"chunk data of 5 bytes not followed by CRLF: {quoted}"


def _two_trailers(total: int) -> list[bytes]:
    """Two field lines making a trailer section of ``total`` bytes with the CRLFs."""
    return [b"X-A: " + b"a" * 30_000, b"X-B: " + b"b" * (total - 30_000 - 16)]


@pytest.mark.parametrize(
    ("lines", "accepted"),
    [
        ([b"X-A: 1", b"X-Longer-Name: 2"], True),
        (_two_trailers(65536), True),
        (_two_trailers(65537), False),
    ],
    ids=["growing-lines", "64k-in-all", "64k+1-in-all"],
)
def test_the_trailer_section_is_bounded_as_a_whole(
    peer: Callable[..., Peer], lines: list[bytes], accepted: bool
) -> None:
    """Like a header block, the trailer section may take 64 KiB in all (its lines, their CRLFs
    and the final CRLF), however its lines are cut.

    Kills runtime.http.xǁResponseReaderǁ_read_chunked__mutmut_82 to _85 (the budget lost or
    miscounted).
    """
    head = _CHUNKED_HEAD
    trailer = b"".join(line + b"\r\n" for line in lines) + b"\r\n"
    p = peer([REQ, send(head + b"2\r\nok\r\n0\r\n" + trailer)])
    conn = Connection("127.0.0.1", p.port)
    if accepted:
        r = conn.request("GET", NEXT)
        assert r.body == b"ok"
        assert r.trailers == dict(line.decode().lower().split(": ") for line in lines)
    else:
        with pytest.raises(ProtocolError, match=r"^trailer section exceeds \d+ bytes"):
            conn.request("GET", NEXT)
    finish(conn, p)


def test_connection_closed_after_an_interim_response_says_so(peer: Callable[..., Peer]) -> None:
    """Kills runtime.http.xǁResponseReaderǁ_read_block__mutmut_29 to _31."""
    p = peer([REQ, send(b"HTTP/1.1 100 Continue\r\n\r\n"), CLOSE])
    conn = Connection("127.0.0.1", p.port)
    with pytest.raises(ConnectionClosed) as info:
        conn.request("POST", "/p", (), b"body")
    finish(conn, p)
    message = f"POST /p on 127.0.0.1:{p.port}: connection closed after an interim (1xx) response"
    assert str(info.value) == message


@pytest.mark.parametrize(("size", "accepted"), [(65536, True), (65537, False)])
def test_a_header_block_in_pieces_may_take_64k_with_its_blank_line(
    peer: Callable[..., Peer], size: int, accepted: bool
) -> None:
    """The same bound when the head arrives in pieces as when it arrives at once.

    Kills runtime.http.xǁResponseReaderǁ_read_block__mutmut_36 and _37.
    """
    tail = b"\r\nContent-Length: 0\r\n\r\n"
    pad = size - len(_PAD_HEAD) - len(tail)
    raw = _PAD_HEAD + b"p" * pad + tail
    p = peer([REQ, send(raw[:1000], each=1000, delay=0.03), send(raw[1000:])])
    conn = Connection("127.0.0.1", p.port)
    if accepted:
        r = conn.request("GET", NEXT)
        assert (r.status, len(r.headers["x-pad"])) == (200, pad)
    else:
        with pytest.raises(ProtocolError, match=r"^response header block exceeds 65536 bytes$"):
            conn.request("GET", NEXT)
    finish(conn, p)


def test_interim_100_continue_is_skipped(peer: Callable[..., Peer]) -> None:
    interim = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n"
    p = peer([REQ, send(interim), send(resp(202, b"done", ("X-Final: yes",)))])
    conn = Connection("127.0.0.1", p.port)
    r = conn.request("POST", "/p", (), b"body")
    finish(conn, p)
    assert (r.status, r.body, r.headers["x-final"]) == (202, b"done", "yes")
    assert "link" not in r.headers


@pytest.mark.parametrize(("count", "accepted"), [(64, True), (65, False)])
def test_up_to_64_interim_responses_are_skipped(
    peer: Callable[..., Peer], count: int, accepted: bool
) -> None:
    """A bound on 1xx responses, so that a peer cannot keep the client reading them forever.

    Kills runtime.http.xǁResponseReaderǁread_response__mutmut_5 (one fewer allowed).
    """
    p = peer([REQ, send(b"HTTP/1.1 100 Continue\r\n\r\n" * count + resp(202, b"done"))])
    conn = Connection("127.0.0.1", p.port)
    if accepted:
        assert conn.request("POST", "/p", (), b"body").body == b"done"
    else:
        with pytest.raises(ProtocolError, match=r"^more than 64 interim \(1xx\) responses$"):
            conn.request("POST", "/p", (), b"body")
    finish(conn, p)


def test_head_204_and_304_have_no_body_even_with_content_length(
    peer: Callable[..., Peer],
) -> None:
    p = peer(
        [
            REQ,
            send(b"HTTP/1.1 200 OK\r\nContent-Length: 50\r\n\r\n"),
            REQ,
            send(b"HTTP/1.1 204 No Content\r\n\r\n"),
            REQ,
            send(b"HTTP/1.1 304 Not Modified\r\nContent-Length: 9\r\n\r\n"),
            REQ,
            send(resp(200, b"after")),
        ]
    )
    conn = Connection("127.0.0.1", p.port)
    head = conn.request("HEAD", "/h")
    no_content = conn.request("GET", "/a")
    not_modified = conn.request("GET", "/b")
    after = conn.request("GET", "/c")
    finish(conn, p)
    assert (head.status, head.body, head.headers["content-length"]) == (200, b"", "50")
    assert (no_content.status, no_content.body) == (204, b"")
    assert (not_modified.status, not_modified.body) == (304, b"")
    assert after.body == b"after"
    assert len(p.conns) == 1


def test_close_delimited_body_then_new_connection(peer: Callable[..., Peer]) -> None:
    """Kills runtime.http.xǁResponseReaderǁ_read_to_eof__mutmut_4 and _5 (only the bytes that
    came with the head taken as the body)."""
    later = threading.Event()
    p = peer(
        [REQ, send(b"HTTP/1.1 200 OK\r\n\r\npart one, "), wait(later), send(b"part two"), CLOSE],
        [REQ, send(resp(200, b"fresh"))],
    )
    conn = Connection("127.0.0.1", p.port)
    timer = threading.Timer(0.05, later.set)
    timer.start()
    r1 = conn.request("GET", "/stream")
    timer.join()
    r2 = conn.request("GET", "/again")
    finish(conn, p)
    assert r1.body == b"part one, part two"
    assert r2.body == b"fresh"
    assert [len(c.requests) for c in p.conns] == [1, 1]


@pytest.mark.parametrize(
    ("head", "body"),
    [
        (b"HTTP/1.1 200 OK\r\n\r\n", b"part"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\npart", b"more"),
        (_CHUNKED_HEAD + b"20000\r\npart", b"more"),
    ],
    ids=["close-delimited", "content-length", "large-chunk"],
)
def test_no_retry_after_part_of_a_body(peer: Callable[..., Peer], head: bytes, body: bytes) -> None:
    """Body bytes count as a started response, however the body is framed: a reset after
    them is not taken for a stale connection, and the request is not sent again.

    Kills runtime.http.xǁResponseReaderǁ_read_to_eof__mutmut_11, _12 and _recv_exact__mutmut_27,
    _28 (``started`` cleared by body bytes received straight into the body).
    """
    pieces = [send(head, each=len(head), delay=0.03), send(body, each=len(body), delay=0.03)]
    p = peer([REQ, send(resp(200, b"first")), REQ, *pieces, RESET])
    conn = Connection("127.0.0.1", p.port)
    conn.request("GET", NEXT)
    with pytest.raises(ConnectionClosed, match=r"^GET /stream on .*: ConnectionResetError: "):
        conn.request("GET", "/stream")
    finish(conn, p)
    assert len(p.conns) == 1 and p.unexpected == 0, "nothing may be resent"


@pytest.mark.parametrize(
    "first",
    [
        resp(200, b"bye", ("Connection: close",)),
        b"HTTP/1.0 200 OK\r\nContent-Length: 3\r\n\r\nbye",
    ],
    ids=["connection-close", "http/1.0"],
)
def test_connection_close_then_reconnect(peer: Callable[..., Peer], first: bytes) -> None:
    p = peer([REQ, send(first)], [REQ, send(resp(200, b"hi"))])
    conn = Connection("127.0.0.1", p.port)
    r1 = conn.request("GET", "/one")
    assert p.conns[0].done.wait(TIMEOUT), "the client closed the connection after the response"
    r2 = conn.request("GET", "/two")
    finish(conn, p)
    assert (r1.body, r2.body) == (b"bye", b"hi")
    assert p.conns[0].eof and p.conns[0].extra == b""
    assert [r.target for c in p.conns for r in c.requests] == ["/one", "/two"]


def test_http10_keep_alive_is_honoured(peer: Callable[..., Peer]) -> None:
    first = b"HTTP/1.0 200 OK\r\nConnection: Keep-Alive\r\nContent-Length: 2\r\n\r\nok"
    p = peer([REQ, send(first), REQ, send(resp(200, b"again"))])
    conn = Connection("127.0.0.1", p.port)
    assert conn.request("GET", "/1").body == b"ok"
    assert conn.request("GET", "/2").body == b"again"
    finish(conn, p)
    assert len(p.conns) == 1


def test_large_body_round_trip(peer: Callable[..., Peer]) -> None:
    payload = bytes(range(256)) * (6 * 1024 * 1024 // 256)  # 6 MiB
    p = peer([REQ, reply(lambda req: resp(200, req.body[::-1]))])
    conn = Connection("127.0.0.1", p.port)
    r = conn.request("POST", "/big", (), memoryview(payload))
    finish(conn, p)
    assert p.conns[0].requests[0].body == payload
    assert r.body == payload[::-1]


def test_bodies_beyond_the_preallocation_cap(peer: Callable[..., Peer]) -> None:
    # 20 MiB: more than the reader ever allocates up front for a declared length.
    big = bytes(range(251)) * (20 * 1024 * 1024 // 251)
    chunked = (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        + b"%x\r\n" % len(big)
        + big
        + b"\r\n3\r\nend\r\n0\r\n\r\n"
    )
    p = peer([REQ, send(resp(200, big)), REQ, send(chunked), REQ, send(resp(200, b"next"))])
    conn = Connection("127.0.0.1", p.port)
    assert conn.request("GET", "/cl").body == big
    assert conn.request("GET", "/chunked").body == big + b"end"
    assert conn.request("GET", "/next").body == b"next"
    finish(conn, p)
    assert len(p.conns) == 1


# More than the kernel buffers of a loopback connection hold (about 4 MiB), so that a send
# of it blocks until the peer reads.
HUGE = 8 << 20


def test_a_large_body_interrupted_mid_send_still_goes_out_whole(
    peer: Callable[..., Peer],
) -> None:
    """A send that returns early (a signal arrived while the kernel buffers were full) is
    completed: the body and the request pipelined behind it arrive intact, nothing twice.

    The peer reads nothing until the client's thread has been interrupted mid-send, which makes
    ``sendmsg`` return a partial count. Kills runtime.http.x__sendv__mutmut_9 to _12 and _14 to
    _16 (the rest skipped, duplicated, or the next part cut).
    """
    payload = bytes(range(256)) * (HUGE // 256)
    go = threading.Event()
    answers = resp(202, b"ok") + resp(200, b"event")
    p = peer([wait(go), REQ, REQ, send(answers)])
    conn = Connection("127.0.0.1", p.port)
    client = threading.get_ident()

    def interrupt() -> None:
        time.sleep(0.1)  # long enough for the client to block in sendmsg
        signal.pthread_kill(client, signal.SIGUSR1)
        time.sleep(0.02)
        go.set()

    previous = signal.signal(signal.SIGUSR1, lambda *_: None)
    interrupter = threading.Thread(target=interrupt)
    interrupter.start()
    try:
        first = conn.request("POST", "/x/response", (), payload, then=("GET", NEXT))
    finally:
        interrupter.join()
        signal.signal(signal.SIGUSR1, previous)
    second = conn.request("GET", NEXT)
    finish(conn, p)
    assert (first.body, second.body) == (b"ok", b"event")
    got = p.conns[0].requests
    assert [(r.method, r.target) for r in got] == [("POST", "/x/response"), ("GET", NEXT)]
    assert got[0].body == payload
    assert p.conns[0].extra == b""


# --- connection drops --------------------------------------------------------------------


def test_a_bogus_huge_content_length_allocates_only_as_data_arrives(
    peer: Callable[..., Peer],
) -> None:
    """A declared length is trusted up to 16 MiB of allocation, not more, before data comes.

    Kills runtime.http.xǁResponseReaderǁ_read_exact__mutmut_12 (an allocation of the declared
    length: MemoryError) and _18, _23 (the message).
    """
    huge = 10**18 - 1
    p = peer([REQ, send(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\nabcde" % huge), CLOSE])
    conn = Connection("127.0.0.1", p.port)
    with pytest.raises(ConnectionClosed) as info:
        conn.request("GET", NEXT)
    finish(conn, p)
    message = f"connection closed in the body: 5 of {huge} bytes received"
    assert str(info.value) == f"GET {NEXT} on 127.0.0.1:{p.port}: {message}"


@pytest.mark.parametrize("drop", [CLOSE, RESET], ids=["fin", "rst"])
def test_stale_keep_alive_is_retried_once(peer: Callable[..., Peer], drop: Step) -> None:
    p = peer([REQ, send(resp(200, b"first")), drop], [REQ, send(resp(202, b"second"))])
    conn = Connection("127.0.0.1", p.port)
    assert conn.request("GET", NEXT).body == b"first"
    assert p.conns[0].done.wait(TIMEOUT)
    r = conn.request("POST", "/x/response", (), b"result")
    finish(conn, p)
    assert (r.status, r.body) == (202, b"second")
    assert len(p.conns) == 2
    assert [r.method for r in p.conns[0].requests] == ["GET"]
    assert [(r.method, r.body) for r in p.conns[1].requests] == [("POST", b"result")]


@pytest.mark.parametrize(
    "partial",
    [b"H", b"HTTP/1.1 200 OK\r\nContent-Le", b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc"],
    ids=["one-byte", "mid-headers", "mid-body"],
)
@pytest.mark.parametrize("drop", [CLOSE, RESET], ids=["fin", "rst"])
def test_no_retry_after_a_partial_response(
    peer: Callable[..., Peer], partial: bytes, drop: Step
) -> None:
    """The error names the request and the peer, and what went wrong: how far the response got
    (FIN) or the socket error (RST).

    Kills runtime.http.xǁConnectionǁ_closed__mutmut_2, _3 and _5 (the error's type name added
    to an HTTPError's message, dropped from or wrong in an OSError's).
    """
    go = threading.Event()
    p = peer([REQ, send(resp(200, b"first")), REQ, send(partial), wait(go), drop])
    conn = Connection("127.0.0.1", p.port)
    conn.request("GET", NEXT)
    timer = threading.Timer(0.05, go.set)
    timer.start()
    what = "ConnectionResetError: " if drop is RESET else "connection closed in the "
    with pytest.raises(ConnectionClosed, match=f"^POST /x/response on 127.0.0.1:{p.port}: {what}"):
        conn.request("POST", "/x/response", (), b"result")
    timer.join()
    finish(conn, p)
    assert len(p.conns) == 1 and p.unexpected == 0, "nothing may be resent"
    assert len(p.conns[0].requests) == 2


def test_fresh_connection_closed_without_response_is_not_retried(
    peer: Callable[..., Peer],
) -> None:
    p = peer([REQ, CLOSE])
    conn = Connection("127.0.0.1", p.port)
    with pytest.raises(ConnectionClosed) as info:
        conn.request("GET", NEXT)
    finish(conn, p)
    message = f"GET {NEXT} on 127.0.0.1:{p.port}: connection closed before the response started"
    assert str(info.value) == message
    assert len(p.conns) == 1 and p.unexpected == 0


def test_connection_refused_names_the_address() -> None:
    probe = socket.create_server(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    conn = Connection("127.0.0.1", port)
    with pytest.raises(ConnectError) as info:
        conn.request("GET", NEXT)
    assert isinstance(info.value, ConnectionClosed)
    # Kills runtime.http.xǁConnectionǁ_connect__mutmut_36 (the socket error lost).
    expected = f"cannot connect to 127.0.0.1:{port}: [Errno 111] Connection refused"
    assert str(info.value) == expected


def test_an_address_that_cannot_be_resolved_is_a_connect_error() -> None:
    """Kills runtime.http.xǁConnectionǁ_connect__mutmut_18 (the message). A numeric host, so
    no resolver is asked: the invalid port is what fails."""
    conn = Connection("127.0.0.1", -1)
    with pytest.raises(ConnectError, match=r"^cannot resolve 127\.0\.0\.1:-1: \[Errno -8\] "):
        conn.request("GET", NEXT)


def test_connecting_gives_up_after_the_connect_timeout() -> None:
    """A peer that never completes the handshake (here: its accept queue is full, so the SYN
    is dropped) costs ``connect_timeout``, not the kernel's minutes of SYN retries.

    Kills runtime.http.xǁConnectionǁ_connect__mutmut_27 and __init____mutmut_9 (no timeout).
    """
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port = listener.getsockname()[1]
    fillers = []
    for _ in range(4):  # more than the queue holds
        filler = socket.socket()
        filler.setblocking(False)
        filler.connect_ex(("127.0.0.1", port))
        fillers.append(filler)
    # Should the client wait for the SYN retries, the listener's end refuses it a second later.
    closer = threading.Timer(1.0, listener.close)
    closer.start()
    try:
        start = time.monotonic()
        with pytest.raises(ConnectError, match=f"^cannot connect to 127.0.0.1:{port}: timed out$"):
            Connection("127.0.0.1", port, connect_timeout=0.2).request("GET", NEXT)
        assert time.monotonic() - start < 0.9
    finally:
        closer.cancel()
        listener.close()
        for filler in fillers:
            filler.close()


def test_an_ipv6_host_is_bracketed_in_the_host_header() -> None:
    """RFC 9110 7.2 (uri-host): ``[::1]:port``. Kills runtime.http.xǁConnectionǁ__init____
    mutmut_11 and _13."""
    received: list[bytes] = []

    def serve(listener: socket.socket) -> None:
        sock, _ = listener.accept()
        with sock:
            received.append(sock.recv(65536))
            sock.sendall(resp(200, b"6"))
            sock.recv(1)  # until the client closes

    with socket.create_server(("::1", 0), family=socket.AF_INET6) as listener:
        listener.settimeout(TIMEOUT)
        server = threading.Thread(target=serve, args=(listener,), daemon=True)
        server.start()
        port = listener.getsockname()[1]
        conn = Connection("::1", port)
        assert conn.request("GET", NEXT).body == b"6"
        conn.close()
        server.join(TIMEOUT)
    assert received == [f"GET {NEXT} HTTP/1.1\r\nHost: [::1]:{port}\r\n\r\n".encode()]


def test_the_host_connected_to_is_the_one_given() -> None:
    """127.0.0.2 is loopback too, but not where a default host would lead.

    Kills runtime.http.xǁConnectionǁ_connect__mutmut_2 and _9 (no host given to getaddrinfo).
    """
    served: list[socket.socket] = []

    def serve(listener: socket.socket) -> None:
        sock, _ = listener.accept()
        served.append(sock)  # kept open until the client is done
        sock.sendall(resp(200, b"2"))

    with socket.create_server(("127.0.0.2", 0)) as listener:
        listener.settimeout(TIMEOUT)
        server = threading.Thread(target=serve, args=(listener,), daemon=True)
        server.start()
        conn = Connection("127.0.0.2", listener.getsockname()[1])
        assert conn.request("GET", NEXT).body == b"2"
        server.join()
        conn.close()
        served[0].close()


def test_protocol_error_closes_and_next_request_reconnects(peer: Callable[..., Peer]) -> None:
    bad = b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd"
    p = peer([REQ, send(bad)], [REQ, send(resp(200, b"ok"))])
    conn = Connection("127.0.0.1", p.port)
    with pytest.raises(ProtocolError, match="conflicting Content-Length"):
        conn.request("GET", "/1")
    assert conn.request("GET", "/2").body == b"ok"
    finish(conn, p)
    assert [len(c.requests) for c in p.conns] == [1, 1]


@pytest.mark.parametrize(
    "value",
    ["3, 3", "3,3", "3 ,\t3", "000000000000000003, 000000000000000003"],
    ids=["list", "list-no-space", "list-ows", "18-digits-each"],
)
def test_a_list_of_identical_content_lengths_frames_the_body(
    peer: Callable[..., Peer], value: str
) -> None:
    """RFC 9110 8.6: a list of identical values is one length; 18 digits are not too many.

    Kills runtime.http.x__parse_content_length__mutmut_6 (split on whitespace), _11, _12, _19
    (the single value lost or refused) and _15 (18 digits refused as too large).
    """
    head = f"HTTP/1.1 200 OK\r\nContent-Length: {value}\r\n\r\n".encode()
    p = peer([REQ, send(head + b"abc"), REQ, send(resp(200, b"next"))])
    conn = Connection("127.0.0.1", p.port)
    first = conn.request("GET", "/1")
    second = conn.request("GET", "/2")
    finish(conn, p)
    assert (first.body, second.body) == (b"abc", b"next")
    assert len(p.conns) == 1, "the body was framed exactly, the connection stayed usable"


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("abc", "invalid Content-Length 'abc'"),
        ("\u0663", "invalid Content-Length '\u0663'"),  # ARABIC-INDIC DIGIT THREE: isdigit()
        ("3, X3", "conflicting Content-Length values '3, X3'"),
        ("3,\x0b3", "conflicting Content-Length values '3,\\x0b3'"),  # VT is not OWS
        ("0000000000000000003", "Content-Length '0000000000000000003' is too large"),
        ("7" * 50, f"Content-Length '{'7' * 40}' is too large"),
    ],
    ids=[
        "letters",
        "non-ascii-digit",
        "conflicting",
        "vt-is-not-whitespace",
        "19-digits",
        "50-digits-quoted-up-to-40",
    ],
)
def test_a_bad_content_length_is_a_protocol_error_naming_the_value(
    peer: Callable[..., Peer], value: str, message: str
) -> None:
    """A Content-Length the client cannot trust is refused, never guessed at (RFC 9112 6.3).

    Kills runtime.http.x__parse_content_length__mutmut_4 and _5 (other characters stripped
    around list members), _13 (non-ASCII digits or letters taken as a length), _14 and _17
    (the message lost), _16 (19 digits accepted) and _18 (more of a huge value quoted).
    """
    head = "HTTP/1.1 200 OK\r\nContent-Length: " + value + "\r\n\r\n"
    p = peer([REQ, send(head.encode() + b"abc")])
    conn = Connection("127.0.0.1", p.port)
    with pytest.raises(ProtocolError) as info:
        conn.request("GET", "/1")
    finish(conn, p)
    assert str(info.value) == message


@pytest.mark.parametrize("value", [b"t\x7fx", b"a\x00b", b"\x01\x1b[31m", b"a\rb", b"a\nb"])
def test_control_octet_in_a_header_value_is_data_not_a_broken_response(
    peer: Callable[..., Peer], value: bytes
) -> None:
    head = (
        b"HTTP/1.1 200 OK\r\nLambda-Runtime-Aws-Tenant-Id: "
        + value
        + b"\r\nContent-Length: 2\r\n\r\n"
    )
    p = peer([REQ, send(head + b"{}"), REQ, send(resp(202, b"ok"))])
    conn = Connection("127.0.0.1", p.port)
    r1 = conn.request("GET", NEXT)
    r2 = conn.request("POST", "/x/response", body=b"{}")
    finish(conn, p)
    assert r1.headers["lambda-runtime-aws-tenant-id"] == value.decode()
    assert (r1.body, r2.status) == (b"{}", 202)
    assert len(p.conns) == 1, "the connection stayed usable"


def test_control_octet_in_the_status_line_is_still_a_protocol_error(
    peer: Callable[..., Peer],
) -> None:
    p = peer([REQ, send(b"HTTP/1.1 200 O\x7f\x01K\r\nContent-Length: 0\r\n\r\n")])
    conn = Connection("127.0.0.1", p.port)
    with pytest.raises(ProtocolError) as info:
        conn.request("GET", NEXT)
    finish(conn, p)
    # The first offending octet, and the line. Kills x__reject_status_line__mutmut_15.
    assert str(info.value) == (
        "response header block line 0 contains control character b'\\x7f' (bare CR/LF or CTL):"
        " b'HTTP/1.1 200 O\\x7f\\x01K'"
    )


@pytest.mark.parametrize(
    ("line", "shown"),
    [
        (b"HTTP/1.1 2x0 OK", b"HTTP/1.1 2x0 OK"),
        (b"HTTP/1.1 2x0 " + b"a" * 67, b"HTTP/1.1 2x0 " + b"a" * 67),
        (b"HTTP/1.1 2x0 " + b"a" * 68, b"HTTP/1.1 2x0 " + b"a" * 67 + b"..."),
        (b"HTTP/1.1 2x0 " + b"a" * 500, b"HTTP/1.1 2x0 " + b"a" * 67 + b"..."),
    ],
    ids=["short", "80-bytes", "81-bytes", "long"],
)
def test_an_invalid_status_line_is_quoted_up_to_80_bytes(
    peer: Callable[..., Peer], line: bytes, shown: bytes
) -> None:
    """Error messages quote what the peer sent, bounded, with "..." exactly when cut.

    Kills runtime.http.x__snip__mutmut_1, _3, _5, _6, _8 and _9.
    """
    p = peer([REQ, send(line + b"\r\nContent-Length: 0\r\n\r\n")])
    conn = Connection("127.0.0.1", p.port)
    with pytest.raises(ProtocolError) as info:
        conn.request("GET", NEXT)
    finish(conn, p)
    cut = shown.endswith(b"...")
    quoted = repr(shown[:-3]) + "..." if cut else repr(shown)
    assert str(info.value) == f"invalid status line {quoted}"


def test_unsolicited_bytes_after_a_response_are_not_taken_as_the_next_one(
    peer: Callable[..., Peer],
) -> None:
    # The second response is glued to the first; it must not answer the next request.
    glued = resp(200, b"one") + resp(200, b"INJECTED")
    p = peer([REQ, send(glued)], [REQ, send(resp(200, b"two"))])
    conn = Connection("127.0.0.1", p.port)
    assert conn.request("GET", "/1").body == b"one"
    assert conn.request("GET", "/2").body == b"two"
    finish(conn, p)
    assert [len(c.requests) for c in p.conns] == [1, 1]


# --- a request pipelined behind another (then=) ------------------------------------------


def test_pipelined_request_goes_out_before_the_first_answer(peer: Callable[..., Peer]) -> None:
    # The peer reads both requests before answering either: without pipelining this would wait
    # until the timeout.
    # Then the connection goes on serving: kills runtime.http.xǁConnectionǁ_read_pending__mutmut_1
    # and _17 (a new connection for the request after).
    answers = resp(202, b"ok") + resp(200, b'{"n":2}', ("Lambda-Runtime-Aws-Request-Id: r2",))
    p = peer([REQ, REQ, send(answers), REQ, send(resp(202, b"again"))])
    conn = Connection("127.0.0.1", p.port)
    first = conn.request(
        "POST", "/x/response", [("Content-Type", "a/b")], b"[1]", then=("GET", NEXT)
    )
    second = conn.request("GET", NEXT)
    third = conn.request("POST", "/x/response", (), b"[2]")
    finish(conn, p)
    assert (first.status, first.body) == (202, b"ok")
    assert (second.status, second.body) == (200, b'{"n":2}')
    assert second.headers["lambda-runtime-aws-request-id"] == "r2"
    assert third.body == b"again"
    assert len(p.conns) == 1
    assert [(r.method, r.target, r.body) for r in p.conns[0].requests] == [
        ("POST", "/x/response", b"[1]"),
        ("GET", NEXT, b""),
        ("POST", "/x/response", b"[2]"),
    ]
    assert p.conns[0].extra == b"", "the GET was not sent a second time"


@pytest.mark.parametrize(
    "first_answer",
    [
        [send(resp(202, b"ok")), CLOSE],
        [send(resp(202, b"ok", ("Connection: close",))), CLOSE],
    ],
    ids=["closed-before-the-second-answer", "connection-close-on-the-first"],
)
def test_pipelined_request_is_sent_again_when_its_answer_cannot_come(
    peer: Callable[..., Peer], first_answer: list[Step]
) -> None:
    p = peer([REQ, REQ, *first_answer], [REQ, send(resp(200, b"event"))])
    conn = Connection("127.0.0.1", p.port)
    first = conn.request("POST", "/x/response", (), b"[1]", then=("GET", NEXT))
    assert p.conns[0].done.wait(TIMEOUT)
    second = conn.request("GET", NEXT)
    finish(conn, p)
    assert (first.status, second.body) == (202, b"event")
    assert [r.method for r in p.conns[1].requests] == ["GET"]


def test_no_resend_after_part_of_the_pipelined_answer(peer: Callable[..., Peer]) -> None:
    """Kills runtime.http.xǁConnectionǁ_read_pending__mutmut_11 to _13 (the message)."""
    p = peer([REQ, REQ, send(resp(202) + b"HTTP/1.1 200 OK\r\nContent-Le"), CLOSE])
    conn = Connection("127.0.0.1", p.port)
    conn.request("POST", "/x/response", (), b"[1]", then=("GET", NEXT))
    with pytest.raises(ConnectionClosed) as info:
        conn.request("GET", NEXT)
    finish(conn, p)
    assert len(p.conns) == 1
    assert str(info.value) == (
        f"GET {NEXT} on 127.0.0.1:{p.port}: connection closed in the response header block"
        " after 27 bytes: b'HTTP/1.1 200 OK\\r\\nContent-Le'"
    )


def test_the_connection_of_a_pipelined_answer_is_retried_when_stale(
    peer: Callable[..., Peer],
) -> None:
    """The runtime's invoke loop: POST /response with GET /next behind it, then an idle
    connection the peer closes; the next request goes out again on a new connection.

    Kills runtime.http.xǁConnectionǁ_read_pending__mutmut_19.
    """
    answers = resp(202) + resp(200, b"event")
    p = peer([REQ, REQ, send(answers), CLOSE], [REQ, send(resp(202, b"retried"))])
    conn = Connection("127.0.0.1", p.port)
    conn.request("POST", "/x/response", (), b"[1]", then=("GET", NEXT))
    assert conn.request("GET", NEXT).body == b"event"
    assert p.conns[0].done.wait(TIMEOUT)
    assert conn.request("POST", "/x/response", (), b"[2]").body == b"retried"
    finish(conn, p)
    assert [len(c.requests) for c in p.conns] == [2, 1]


@pytest.mark.parametrize(
    ("method", "target", "headers", "body"),
    [
        ("POST", "/y/error", [], b"{}"),
        ("GET", "/other", [], b""),
        ("GET", NEXT, [("X-Differs", "1")], b""),
    ],
    ids=["with-a-body", "bare-other-target", "same-target-with-headers"],
)
def test_another_request_first_abandons_the_pipelined_one(
    peer: Callable[..., Peer], method: str, target: str, headers: list[tuple[str, str]], body: bytes
) -> None:
    """Only the very request that was pipelined (same method and target, bare) takes its
    answer. Kills runtime.http.xǁConnectionǁrequest__mutmut_3 and _4.
    """
    p = peer([REQ, REQ, send(resp(202))], [REQ, send(resp(202, b"other"))])
    conn = Connection("127.0.0.1", p.port)
    conn.request("POST", "/x/response", (), b"[1]", then=("GET", NEXT))
    other = conn.request(method, target, headers, body)
    finish(conn, p)
    # Its answer could only be read after the GET's, which may take forever (a long poll).
    assert other.body == b"other"
    assert [r.target for r in p.conns[1].requests] == [target]


# --- chunked requests (response streaming) ----------------------------------------------

STREAM_HEADERS = [
    ("Lambda-Runtime-Function-Response-Mode", "streaming"),
    ("Trailer", "Lambda-Runtime-Function-Error-Type, Lambda-Runtime-Function-Error-Body"),
]


def test_chunked_request_with_trailers_exact_bytes(peer: Callable[..., Peer]) -> None:
    big = b"B" * 100_000
    p = peer([REQ, send(resp(202, b""))])
    conn = Connection("127.0.0.1", p.port)
    r = conn.request_chunked(
        "POST",
        "/x/response",
        STREAM_HEADERS,
        [b"hello", b"", bytearray(b" world"), memoryview(b"!"), b"abcdefghijklmnopqrstuvwxyz", big],
        lambda: [("Lambda-Runtime-Function-Error-Type", "Function.X")],
    )
    finish(conn, p)
    assert r.status == 202
    expected = (
        (
            f"POST /x/response HTTP/1.1\r\nHost: 127.0.0.1:{p.port}\r\n"
            "Lambda-Runtime-Function-Response-Mode: streaming\r\n"
            "Trailer: Lambda-Runtime-Function-Error-Type, Lambda-Runtime-Function-Error-Body\r\n"
            "Transfer-Encoding: chunked\r\n\r\n"
            "5\r\nhello\r\n6\r\n world\r\n1\r\n!\r\n1a\r\nabcdefghijklmnopqrstuvwxyz\r\n186a0\r\n"
        ).encode()
        + big
        + b"\r\n0\r\nLambda-Runtime-Function-Error-Type: Function.X\r\n\r\n"
    )
    assert p.conns[0].requests[0].raw == expected


def test_chunks_are_sent_as_they_are_produced(peer: Callable[..., Peer]) -> None:
    first_arrived = threading.Event()
    p = peer([until(b"5\r\nfirst\r\n", first_arrived), REQ, send(resp(202))])
    conn = Connection("127.0.0.1", p.port)

    def produce() -> Iterator[bytes]:
        yield b"first"
        # The peer must have the first chunk before the second one exists.
        assert first_arrived.wait(TIMEOUT)
        yield b"second"

    r = conn.request_chunked("POST", "/s", STREAM_HEADERS, produce())
    finish(conn, p)
    assert r.status == 202
    assert p.conns[0].requests[0].body == b"firstsecond"
    assert p.conns[0].requests[0].trailers == []


def test_error_in_chunk_source_terminates_request_and_raises_stream_aborted(
    peer: Callable[..., Peer],
) -> None:
    p = peer([REQ, send(resp(202, b"accepted")), REQ, send(resp(200, b"next"))])
    conn = Connection("127.0.0.1", p.port)

    def produce() -> Iterator[bytes]:
        yield b"partial"
        raise ValueError("boom")

    def trailers() -> list[tuple[str, str]]:
        error = sys.exc_info()[1]
        assert error is not None
        return [("Lambda-Runtime-Function-Error-Type", type(error).__name__)]

    with pytest.raises(StreamAborted) as info:
        conn.request_chunked("POST", "/s", STREAM_HEADERS, produce(), trailers)
    assert isinstance(info.value, HTTPError)
    # Kills runtime.http.xǁStreamAbortedǁ__init____mutmut_1 and _2: what the log shows.
    assert str(info.value) == (
        "chunk source raised ValueError: boom; the request was terminated and answered 202"
    )
    assert isinstance(info.value.error, ValueError) and str(info.value.error) == "boom"
    assert info.value.__cause__ is info.value.error
    assert (info.value.response.status, info.value.response.body) == (202, b"accepted")
    # The connection is still in a clean state and is reused.
    assert conn.request("GET", NEXT).body == b"next"
    finish(conn, p)
    assert len(p.conns) == 1
    got = p.conns[0].requests[0]
    assert got.body == b"partial"
    assert got.trailers == [("Lambda-Runtime-Function-Error-Type", "ValueError")]
    assert got.raw.endswith(
        b"7\r\npartial\r\n0\r\nLambda-Runtime-Function-Error-Type: ValueError\r\n\r\n"
    )


def _views() -> list[memoryview]:
    raw = bytearray(range(12))
    return [
        memoryview(array.array("H", [1, 2, 515])),  # items of 2 bytes
        memoryview(raw).cast("B", (3, 4)),  # 2-D
        memoryview(raw)[::2],  # strided: not contiguous
        memoryview(array.array("H", range(8)))[1::3],  # strided items of 2 bytes
    ]


@pytest.mark.parametrize("view", _views(), ids=["uint16", "2-d", "strided", "strided-uint16"])
def test_any_memoryview_is_sent_as_its_bytes(peer: Callable[..., Peer], view: memoryview) -> None:
    """docs/handlers.md, docs/streaming.md: a memoryview result or chunk is sent raw, whatever
    its format, shape or strides (its bytes as bytes(view) gives them).

    Regression: a strided view used to fail at the send (TypeError from the concatenation)
    instead of going out. Kills the _byte_view mutants that skip or break the cast to a flat
    view of bytes (runtime.http.x__byte_view__mutmut_6, _7, _10 to _14 before that fix).
    """
    expected = view.tobytes()
    p = peer([REQ, send(resp(202)), REQ, send(resp(202))])
    conn = Connection("127.0.0.1", p.port)
    conn.request("POST", "/x/response", (), view)
    conn.request_chunked("POST", "/s", STREAM_HEADERS, [view])
    _, data, length, _ = conn.encode_request("POST", "/x/response", (), view)
    finish(conn, p)
    assert [r.body for r in p.conns[0].requests] == [expected, expected]
    # For a client doing its own I/O: len() of what it sends counts bytes, like the length.
    assert (length, len(data), bytes(data)) == (len(expected), len(expected), expected)


def test_non_bytes_chunk_aborts_the_stream_cleanly(peer: Callable[..., Peer]) -> None:
    p = peer([REQ, send(resp(202))])
    conn = Connection("127.0.0.1", p.port)
    chunks: list[object] = [b"ok", "text is not bytes"]
    with pytest.raises(StreamAborted) as info:
        conn.request_chunked("POST", "/s", STREAM_HEADERS, chunks)  # type: ignore[arg-type]
    finish(conn, p)
    assert isinstance(info.value.error, RequestError)
    assert "str" in str(info.value.error)
    assert p.conns[0].requests[0].raw.endswith(b"2\r\nok\r\n0\r\n\r\n")


def _ok_then_boom() -> Iterator[bytes]:
    yield b"ok"
    raise ValueError("boom")


@pytest.mark.parametrize("error", [KeyError, FileNotFoundError])
@pytest.mark.parametrize("chunks", [[b"ok"], _ok_then_boom], ids=["source-ok", "source-raised"])
def test_failing_trailers_callback_abandons_the_request(
    peer: Callable[..., Peer],
    error: type[Exception],
    chunks: list[bytes] | Callable[[], Iterator[bytes]],
) -> None:
    """Also when trailers() reports the chunk source's own error.

    Kills runtime.http.xǁConnectionǁrequest_chunked__mutmut_32 and _33 (the caller's OSError
    taken for a socket error there).
    """
    p = peer([until(b"2\r\nok\r\n", threading.Event())], [REQ, send(resp(200, b"fine"))])
    conn = Connection("127.0.0.1", p.port)

    def trailers() -> list[tuple[str, str]]:
        raise error("bug in caller")

    # The caller's own exception comes back unchanged (an OSError is not a socket problem).
    with pytest.raises(error, match="bug in caller"):
        source = chunks if isinstance(chunks, list) else chunks()
        conn.request_chunked("POST", "/s", STREAM_HEADERS, source, trailers)
    assert p.conn(0).done.wait(TIMEOUT)
    assert p.conns[0].eof, "the half-sent request was abandoned by closing the connection"
    assert conn.request("GET", "/after").body == b"fine"
    finish(conn, p)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ([("Bad Name", "v")], r"invalid trailer name 'Bad Name'"),
        (
            [("Content-Length", "1")],
            r"trailer 'Content-Length' is set by the HTTP client, do not pass it",
        ),
        (
            [("X-Fine", "1"), ("X-Evil", "a\r\nInjected: 1")],
            r"trailer 'X-Evil' contains a control character \(CR, LF, NUL\.\.\.\)",
        ),
        ([("X-Fine", "\ud800")], r"trailer section cannot be encoded: .*surrogates not allowed"),
    ],
    ids=["name", "reserved", "line-break", "lone-surrogate"],
)
def test_invalid_trailers_are_refused_by_name_and_the_request_abandoned(
    peer: Callable[..., Peer], fields: list[tuple[str, str]], message: str
) -> None:
    """A trailer that cannot be sent as given is a RequestError naming it; nothing of it is sent.

    Kills runtime.http.x__last_chunk__mutmut_9, _12, _13 (the kind of field misnamed), _16,
    _19, _20 (the encoding error misnamed) and _30 to _36 (the field at fault not named).
    """
    p = peer([until(b"2\r\nok\r\n", threading.Event())])
    conn = Connection("127.0.0.1", p.port)
    with pytest.raises(RequestError, match=f"^{message}$"):
        conn.request_chunked("POST", "/s", STREAM_HEADERS, [b"ok"], lambda: fields)
    assert p.conn(0).done.wait(TIMEOUT)
    finish(conn, p)
    assert p.conns[0].eof, "the half-sent request was abandoned by closing the connection"
    assert p.conns[0].extra.endswith(b"\r\n\r\n2\r\nok\r\n"), "no last chunk, no trailers"


def test_chunked_request_on_a_connection_the_peer_closed_uses_a_new_one(
    peer: Callable[..., Peer],
) -> None:
    p = peer([REQ, send(resp(200, b"first")), CLOSE], [REQ, send(resp(202))])
    conn = Connection("127.0.0.1", p.port)
    conn.request("GET", NEXT)
    assert p.conns[0].done.wait(TIMEOUT)
    r = conn.request_chunked("POST", "/s", STREAM_HEADERS, iter([b"data"]))
    finish(conn, p)
    assert r.status == 202
    assert p.conns[1].requests[0].body == b"data"


def test_chunked_request_reuses_the_idle_keep_alive_connection(peer: Callable[..., Peer]) -> None:
    """Streaming a response does not cost a new connection (and the idle check reads nothing).

    Kills runtime.http.xǁConnectionǁ_stream_socket__mutmut_2, _3, _6, _7 (a new connection
    every time) and _10, _11, _13 (a blocking read instead of a peek: it waits for the peer).
    """
    p = peer([REQ, send(resp(200, b"event")), REQ, send(resp(202, b"streamed"))])
    conn = Connection("127.0.0.1", p.port)
    assert conn.request("GET", NEXT).body == b"event"
    r = conn.request_chunked("POST", "/s", STREAM_HEADERS, [b"data"])
    finish(conn, p)
    assert (r.status, r.body) == (202, b"streamed")
    assert len(p.conns) == 1 and p.unexpected == 0
    assert p.conns[0].requests[1].body == b"data"


def test_chunked_request_after_unsolicited_bytes_uses_a_new_connection(
    peer: Callable[..., Peer],
) -> None:
    """Bytes nobody asked for are not taken as the answer to a streamed request either.

    Kills runtime.http.xǁConnectionǁ_stream_socket__mutmut_4.
    """
    glued = resp(200, b"one") + resp(202, b"INJECTED")
    p = peer([REQ, send(glued)], [REQ, send(resp(202, b"two"))])
    conn = Connection("127.0.0.1", p.port)
    assert conn.request("GET", "/1").body == b"one"
    assert conn.request_chunked("POST", "/s", STREAM_HEADERS, [b"data"]).body == b"two"
    finish(conn, p)
    assert [len(c.requests) for c in p.conns] == [1, 1]


def test_connection_close_after_a_chunked_request_is_honoured(peer: Callable[..., Peer]) -> None:
    """Kills runtime.http.xǁConnectionǁrequest_chunked__mutmut_89 (the socket kept)."""
    p = peer([REQ, send(resp(202, b"", ("Connection: close",)))], [REQ, send(resp(200, b"next"))])
    conn = Connection("127.0.0.1", p.port)
    assert conn.request_chunked("POST", "/s", STREAM_HEADERS, [b"data"]).status == 202
    assert p.conns[0].done.wait(TIMEOUT), "the client closed the connection after the response"
    assert conn.request("GET", NEXT).body == b"next"
    finish(conn, p)
    assert p.conns[0].extra == b"" and [len(c.requests) for c in p.conns] == [1, 1]


def test_a_connection_that_served_a_chunked_request_is_retried_when_stale(
    peer: Callable[..., Peer],
) -> None:
    """A streamed request counts as served: the next request survives a stale keep-alive.

    Kills runtime.http.xǁConnectionǁrequest_chunked__mutmut_92.
    """
    p = peer([REQ, send(resp(202)), CLOSE], [REQ, send(resp(200, b"next"))])
    conn = Connection("127.0.0.1", p.port)
    assert conn.request_chunked("POST", "/s", STREAM_HEADERS, [b"data"]).status == 202
    assert p.conns[0].done.wait(TIMEOUT)
    assert conn.request("GET", NEXT).body == b"next"
    finish(conn, p)
    assert [len(c.requests) for c in p.conns] == [1, 1]


@pytest.mark.parametrize("how", ["streamed", "pipelined"])
def test_the_answer_to_a_head_request_has_no_body_however_it_was_sent(
    peer: Callable[..., Peer], how: str
) -> None:
    """The response is framed by the request's method (RFC 9112 6.3), streamed, pipelined or not.

    Kills runtime.http.xǁConnectionǁrequest_chunked__mutmut_72 and _read_pending__mutmut_5.
    """
    head_answer = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n"
    if how == "streamed":
        p = peer([REQ, send(head_answer), REQ, send(resp(200, b"next"))])
        conn = Connection("127.0.0.1", p.port)
        r = conn.request_chunked("HEAD", "/h", STREAM_HEADERS, [b"data"])
    else:
        p = peer([REQ, REQ, send(resp(202) + head_answer), REQ, send(resp(200, b"next"))])
        conn = Connection("127.0.0.1", p.port)
        conn.request("POST", "/x/response", (), b"[1]", then=("HEAD", "/h"))
        r = conn.request("HEAD", "/h")
    assert (r.body, r.headers["content-length"]) == (b"", "5")
    assert conn.request("GET", NEXT).body == b"next"
    finish(conn, p)
    assert len(p.conns) == 1


def test_connection_lost_after_the_chunk_source_raised_names_both(
    peer: Callable[..., Peer],
) -> None:
    """Kills runtime.http.xǁConnectionǁ_closed__mutmut_6 to _9 and request_chunked__mutmut_73
    to _80: the connection error names the request, the peer, and the chunk source's error.
    """
    p = peer([REQ, CLOSE])
    conn = Connection("127.0.0.1", p.port)

    def produce() -> Iterator[bytes]:
        yield b"partial"
        raise ValueError("boom")

    with pytest.raises(ConnectionClosed) as info:
        conn.request_chunked("POST", "/s", STREAM_HEADERS, produce())
    finish(conn, p)
    assert str(info.value) == (
        f"POST /s on 127.0.0.1:{p.port}: connection closed before the response started"
        " (the chunk source had raised ValueError: boom)"
    )
    assert p.conns[0].requests[0].body == b"partial"


def test_reset_while_sending_the_head_of_a_fresh_chunked_request(
    peer: Callable[..., Peer],
) -> None:
    """A fresh connection is not retried; the error names the request and the socket error.

    Kills runtime.http.xǁConnectionǁrequest_chunked__mutmut_16 (the raw OSError), _18 (a
    retry) and _81 to _83, _85 to _87 (the message).
    """
    p = peer([until(b"POST /s", threading.Event()), RESET])
    conn = Connection("127.0.0.1", p.port)
    with pytest.raises(ConnectionClosed) as info:
        conn.request_chunked("POST", "/s", [("X-Big", "x" * HUGE)], [b"data"])
    finish(conn, p)
    assert re.fullmatch(
        rf"POST /s on 127\.0\.0\.1:{p.port}: (ConnectionResetError|BrokenPipeError): .+",
        str(info.value),
    )
    assert len(p.conns) == 1 and p.unexpected == 0


def test_reset_while_sending_the_head_on_a_used_connection_is_retried(
    peer: Callable[..., Peer],
) -> None:
    """Nothing of the body has been sent yet, so a stale connection gets a second try.

    Kills runtime.http.xǁConnectionǁrequest_chunked__mutmut_18 to _20.
    """
    p = peer(
        [REQ, send(resp(200, b"event")), until(b"POST /s", threading.Event()), RESET],
        [REQ, send(resp(202, b"second"))],
    )
    conn = Connection("127.0.0.1", p.port)
    conn.request("GET", NEXT)
    r = conn.request_chunked("POST", "/s", [("X-Big", "x" * HUGE)], [b"data"])
    finish(conn, p)
    assert (r.status, r.body) == (202, b"second")
    got = p.conns[1].requests[0]
    assert (got.target, got.body) == ("/s", b"data")
    assert ("X-Big", "x" * HUGE) in got.headers


def test_response_repr_is_readable() -> None:
    r = Response(202, "Accepted", {}, b"abc", {})
    assert repr(r) == "<Response 202 'Accepted', 3 body bytes>"


# --- ResponseFeed (the same parser for a caller doing its own I/O) ------------------------


def test_the_feed_says_how_many_more_bytes_it_needs_and_whether_a_response_started() -> None:
    """``need`` is a lower bound a caller can wait for without a wasted parse, and never more
    than what completes the response; ``started`` drives the stale-connection retry.

    Kills runtime.http.xǁResponseFeedǁ__init____mutmut_9, _10, _recv_into__mutmut_3, _5 and
    parse__mutmut_7, _8.
    """
    feed = ResponseFeed()
    assert (feed.need, feed.started) == (1, False), "nothing yet: any byte is worth a parse"
    head = b"HTTP/1.1 204 No Content\r\n\r\n"
    feed.feed(head[:-1])
    assert feed.parse("GET") is None
    assert (feed.need, feed.started) == (1, True), "one byte can complete the head"
    feed.feed(head[-1:] + b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc")
    first = feed.parse("GET")
    assert first is not None and first.status == 204
    assert feed.parse("GET") is None
    assert (feed.need, feed.started) == (7, True), "the rest of the body, exactly"
    feed.feed(b"defghij")
    second = feed.parse("GET")
    assert second is not None and second.body == b"abcdefghij"
    assert feed.buffered == 0


def test_the_feed_frames_a_head_answer_without_a_body() -> None:
    """Kills runtime.http.xǁResponseFeedǁparse__mutmut_5 (the method not passed on)."""
    feed = ResponseFeed()
    feed.feed(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n" + resp(202, b"next"))
    head = feed.parse("HEAD")
    assert head is not None and head.body == b""
    after = feed.parse("GET")
    assert after is not None and (after.status, after.body) == (202, b"next")


@pytest.mark.parametrize(
    ("limit", "size", "fits"),
    [(None, 65536, True), (None, 65537, False), (100, 100, True), (100, 101, False)],
    ids=["default-64k", "default-64k+1", "100", "101"],
)
def test_the_feed_bounds_the_header_block(limit: int | None, size: int, fits: bool) -> None:
    """The header block (with its blank line) may take ``max_header_bytes``, 64 KiB by default.

    Kills runtime.http.xǁResponseFeedǁ__init____mutmut_1 and _6.
    """
    feed = ResponseFeed() if limit is None else ResponseFeed(max_header_bytes=limit)
    start = b"HTTP/1.1 204 No Content\r\nX-Pad: "
    feed.feed(start + b"p" * (size - len(start) - 4) + b"\r\n\r\n")
    if fits:
        response = feed.parse("GET")
        assert response is not None and response.status == 204
    else:
        with pytest.raises(ProtocolError, match=f"^response header block exceeds {limit or 65536}"):
            feed.parse("GET")


def test_the_feed_reads_a_close_delimited_body_and_says_the_stream_is_done() -> None:
    """Kills runtime.http.xǁResponseReaderǁread_response__mutmut_120 and _121 (``keep_alive``
    not False after a body that ended with the stream)."""
    feed = ResponseFeed()
    feed.feed(b"HTTP/1.1 200 OK\r\n\r\nall of ")
    assert feed.parse("GET") is None, "more may come until the stream ends"
    feed.feed(b"it")
    feed.end()
    response = feed.parse("GET")
    assert response is not None and response.body == b"all of it"
    assert feed.keep_alive is False


def test_encode_request_defaults_to_a_bare_request() -> None:
    """What a client doing its own I/O sends for ``encode_request(method, target)``.

    Kills runtime.http.xǁConnectionǁencode_request__mutmut_1 (a default body).
    """
    conn = Connection("127.0.0.1", 9)
    head, body, length, second = conn.encode_request("GET", NEXT)
    assert head == f"GET {NEXT} HTTP/1.1\r\nHost: 127.0.0.1:9\r\n\r\n".encode()
    assert (bytes(body), length, second) == (b"", 0, b"")
