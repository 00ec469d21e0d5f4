"""A small HTTP/1.1 server on asyncio + h11, shared by the Invoke API and the Runtime API.

Why not an ASGI server: the Runtime API must read request *trailers* (a streamed response reports
a late failure in ``Lambda-Runtime-Function-Error-Type`` / ``-Error-Body`` trailers) and must hold
a ``/next`` request open for as long as an environment is idle; h11 gives both directly, and a
plain ``asyncio.Protocol`` keeps the per-request cost low (no task per request: handlers are
plain callbacks and answer whenever they are ready, possibly much later).

Fast path: h11 costs about 50 us per message in CPython, and one invoke is three requests and
three responses (caller -> emulator, /next answer, /response post). So a connection starts in a
strict fast mode that handles only the plainest requests itself: ``GET``/``POST``, ``HTTP/1.1``,
token header names, no ``Transfer-Encoding``, ``Expect``, ``Connection`` or obsolete line
folding, at most one ``Content-Length``, a head within the limit. The first request that is anything
else (chunked with trailers, ``Expect: 100-continue``, malformed, ...) switches that connection
to h11 for good, so h11 decides every case the fast path does not clearly own, including errors.

A :class:`Handler` sees each request twice: :meth:`Handler.start` when the head has arrived (it
may set a body limit) and :meth:`Handler.finish` when the body (and trailers) are complete. It
answers once with :meth:`Request.respond`, or streams its answer (:meth:`Request.start_stream`,
``send_chunk``, ``end_stream``: chunked). A handler that sets ``Request.on_data`` in ``start`` gets
the body piece by piece as it arrives instead of in ``Request.body``; ``HttpConnection.hold`` and
``release`` stop and resume reading from a client (flow control, bandwidth limits), and
``when_drained`` tells when a client that reads slowly has caught up. A connection that closes
while a request is unanswered (or its answer still streaming) calls ``Request.on_close``.
Requests on one connection are answered in order: the next one is not read before the current
one is answered.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import re
import socket
import time
from collections.abc import Callable
from typing import Any, Protocol

import h11

from runtime.protocol import XRAY_CAUSE_LIMIT

Headers = list[tuple[bytes, bytes]]

_READ_PAUSE_BYTES = 1 << 20
_DEFAULT_MAX_BODY = 8 << 20
# The request head limit, unless the handler sets ``max_head`` (the Invoke API: 16 KiB, as
# Lambda's front end). The default fits a runtime's error post with a full-size X-Ray cause.
_MAX_HEAD = XRAY_CAUSE_LIMIT + 16 * 1024
# A declared body this far over the handler's limit is refused at once, unread: reading and
# discarding it would only keep both sides busy.
_FAR_OVER = 1 << 20
# After an error answer on a connection whose input is not read to its end, input is read and
# dropped this long before closing: closing with unread input sends a reset, which can destroy
# the answer before the client reads it.
_LINGER_S = 2.0

_REQUEST_LINE = re.compile(rb"(GET|POST) (/[\x21-\x7e]*) HTTP/1\.1")
# Bytes a head may hold at all (no NUL or other controls besides tab and the line breaks).
_HEAD_BYTES = re.compile(rb"[\t\r\n\x20-\x7e\x80-\xff]*")
_TOKEN = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
# Header names the fast path leaves to h11 (lower-case, as compared).
_NOT_FAST = frozenset((b"transfer-encoding", b"expect", b"connection", b"upgrade"))
_UNSAFE_VALUE = re.compile(rb"[\r\n\x00]")
_REASONS = {
    200: b"OK",
    202: b"Accepted",
    204: b"No Content",
    400: b"Bad Request",
    403: b"Forbidden",
    404: b"Not Found",
    405: b"Method Not Allowed",
    410: b"Gone",
    411: b"Length Required",
    413: b"Payload Too Large",
    414: b"URI Too Long",
    415: b"Unsupported Media Type",
    431: b"Request Header Fields Too Large",
    429: b"Too Many Requests",
    500: b"Internal Server Error",
    503: b"Service Unavailable",
}


class Handler(Protocol):
    def start(self, request: Request) -> None: ...

    def finish(self, request: Request) -> None: ...

    def connection_lost(self, conn: HttpConnection) -> None: ...


class Request:
    """One HTTP request: head, body, trailers, and the means to answer it once."""

    __slots__ = (
        "_chunks",
        "body",
        "body_size",
        "conn",
        "headers",
        "max_body",
        "method",
        "on_close",
        "on_data",
        "responded",
        "state",
        "streaming",
        "target",
        "too_large",
        "trailers",
    )

    def __init__(
        self, conn: HttpConnection, method: bytes, target: bytes, headers: dict[bytes, bytes]
    ) -> None:
        self.conn = conn
        self.method = method
        self.target = target
        # Lower-case names; a dict is enough because the headers we read appear once.
        self.headers = headers
        self.body = b""
        self.body_size = 0
        self.trailers: dict[bytes, bytes] = {}
        self.max_body = _DEFAULT_MAX_BODY
        self.too_large = False
        self.on_close: Callable[[Request], None] | None = None
        self.responded = False
        # Free slot for the handler (routing result, ...).
        self.state: object = None
        self._chunks: list[bytes] = []
        # Set by Handler.start to take the body as it arrives instead of in ``body``.
        self.on_data: Callable[[bytes], None] | None = None
        # A chunked response is being written (start_stream ... end_stream).
        self.streaming = False

    @property
    def closed(self) -> bool:
        return self.conn.closed

    def respond(self, status: int, headers: Headers, body: bytes = b"") -> bool:
        """Send a complete response; False when the client has gone or it was answered before."""
        if self.responded:
            return False
        self.responded = True
        conn = self.conn
        if conn.closed:
            return False
        if conn.fast:
            conn.write_fast(status, headers, body)
        else:
            conn.write_h11(status, headers, body)
        return not conn.closed

    def start_stream(self, status: int, headers: Headers) -> bool:
        """Send the head of a chunked response; the body follows with :meth:`send_chunk` and
        ends with :meth:`end_stream`. False when the client has gone or it was answered."""
        if self.responded:
            return False
        self.responded = True
        conn = self.conn
        if conn.closed:
            return False
        self.streaming = True
        conn.write_stream_head(status, headers)
        return not conn.closed

    def send_chunk(self, data: bytes) -> bool:
        """One chunk of a streamed response, written now; False when the client has gone."""
        if not self.streaming or self.conn.closed:
            return False
        if data:
            self.conn.write_stream_chunk(data)
        return not self.conn.closed

    def end_stream(self) -> None:
        """The last chunk: the response is complete and the connection serves the next one."""
        if not self.streaming:
            return
        self.streaming = False
        if not self.conn.closed:
            self.conn.write_stream_end()

    def _add_body(self, data: bytes) -> None:
        self.body_size += len(data)
        on_data = self.on_data
        if on_data is not None:
            if self.body_size > self.max_body:
                self.too_large = True
            if not self.too_large:
                on_data(data)
            return
        if self.body_size > self.max_body:
            # Keep reading (so the connection stays usable) but stop storing.
            self.too_large = True
            self._chunks.clear()
        else:
            self._chunks.append(data)

    def _complete(self, trailers: Headers | None) -> None:
        if self._chunks:
            chunks = self._chunks
            self.body = chunks[0] if len(chunks) == 1 else b"".join(chunks)
            self._chunks = []
        if trailers:
            self.trailers = dict(trailers)


class HttpConnection(asyncio.Protocol):
    """One client connection (fast mode first, h11 once anything unusual shows up)."""

    __slots__ = (
        "buf",
        "close_after",
        "closed",
        "current",
        "drain_waiters",
        "draining",
        "eof",
        "fast",
        "h11",
        "handler",
        "head_started",
        "heads",
        "in_process",
        "last_active",
        "max_head",
        "reading",
        "remaining",
        "transport",
        "write_paused",
    )

    def __init__(
        self, handler: Handler, heads: HeadCache | None = None, max_head: int = _MAX_HEAD
    ) -> None:
        self.handler = handler
        self.max_head = max_head
        self.heads = heads if heads is not None else HeadCache()
        self.fast = True
        self.h11: h11.Connection | None = None
        self.buf = b""
        # Body bytes still expected for ``current`` in fast mode.
        self.remaining = 0
        self.transport: asyncio.Transport = None  # type: ignore[assignment]
        self.current: Request | None = None
        self.closed = False
        self.reading = True
        self.in_process = False
        self.eof = False
        # The current request's body is left unread: close (gently) once it is answered.
        self.close_after = False
        # Answered and half-closed: input is read and dropped until EOF or _LINGER_S.
        self.draining = False
        # The transport's write buffer is over its high-water mark (a slow client).
        self.write_paused = False
        self.drain_waiters: list[Callable[[], None]] = []
        # For the server's idle and head-read timeouts (0.0: no head being read).
        self.last_active = _clock()
        self.head_started = 0.0

    # -- asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # (uvloop's transports do not subclass asyncio.Transport, but behave like one.)
        self.transport = transport  # type: ignore[assignment]
        sock = transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError, AttributeError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def data_received(self, data: bytes) -> None:
        if self.draining:
            return
        self.last_active = now = _clock()
        if self.current is None and not self.head_started:
            self.head_started = now
        if self.fast:
            self.buf = self.buf + data if self.buf else data
            self._run_fast()
        else:
            assert self.h11 is not None
            self.h11.receive_data(data)
            self._process()

    def eof_received(self) -> bool | None:
        if self.draining:
            self.close()
            return None
        if self.fast:
            if self.current is None or self.remaining:
                self.close()
                return None
            # The client half-closed after a complete request: answer it, then close.
            self.eof = True
            return True
        else:
            assert self.h11 is not None
            self.h11.receive_data(b"")
            self._process()
        return None

    def pause_writing(self) -> None:
        self.write_paused = True

    def resume_writing(self) -> None:
        self.write_paused = False
        self._wake_drain_waiters()

    def _wake_drain_waiters(self) -> None:
        waiters, self.drain_waiters = self.drain_waiters, []
        for waiter in waiters:
            waiter()

    def when_drained(self, callback: Callable[[], None]) -> bool:
        """True when the client is behind: ``callback`` runs once it has caught up (or gone)."""
        if self.closed or not self.write_paused:
            return False
        self.drain_waiters.append(callback)
        return True

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        # Whoever waits for this client to catch up must not wait forever.
        self._wake_drain_waiters()
        req = self.current
        self.current = None
        if req is not None and (not req.responded or req.streaming) and req.on_close is not None:
            req.on_close(req)
        self.handler.connection_lost(self)

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            if self.transport is not None:
                self.transport.close()

    def close_gently(self) -> None:
        """Close after the answer just written has reached the client: send EOF, then drop
        input until the client closes too (or _LINGER_S passes)."""
        if self.closed or self.draining:
            return
        self.draining = True
        self.current = None
        transport = self.transport
        try:
            if not transport.can_write_eof():
                self.close()
                return
            transport.write_eof()
        except (OSError, RuntimeError):
            self.close()
            return
        if not self.reading:
            self.reading = True
            transport.resume_reading()
        asyncio.get_running_loop().call_later(_LINGER_S, self.close)

    def refuse(self, status: int, message: str) -> None:
        """Answer a request that is not handed to the handler, then close the connection."""
        body = _error_body(message)
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (b"connection", b"close"),
        ]
        reason = _REASONS.get(status, b"Unknown")
        h = self.h11
        if h is not None and h.our_state in (h11.IDLE, h11.SEND_RESPONSE):
            try:
                out = h.send(h11.Response(status_code=status, headers=headers, reason=reason))
                out += h.send(h11.Data(data=body))
                out += h.send(h11.EndOfMessage())
            except h11.LocalProtocolError:
                out = b""
        elif h is None:
            head = b"".join(name + b": " + value + b"\r\n" for name, value in headers)
            out = b"HTTP/1.1 %d %s\r\n%s\r\n%s" % (status, reason, head, body)
        else:
            out = b""
        if out:
            self.transport.write(out)
        self.close_gently()
    def time_out(self, now: float, idle: float | None, head: float | None) -> None:
        """Close the connection when it has been idle, or reading one request head, too long
        (called by its server's sweep)."""
        if self.current is not None or self.closed:
            return
        if self.head_started:
            if head is not None and now - self.head_started > head:
                self.transport.write(_TIMED_OUT)
                self.close()
        elif idle is not None and now - self.last_active > idle:
            self.close()

    # -- fast mode

    def _run_fast(self) -> None:
        self.in_process = True
        try:
            self._process_fast()
        finally:
            self.in_process = False

    def _process_fast(self) -> None:
        while not self.closed and self.fast:
            req = self.current
            if req is not None:
                if self.remaining == 0:
                    # Waiting for our own answer; do not read the next request yet.
                    if self.reading and len(self.buf) > _READ_PAUSE_BYTES:
                        self.reading = False
                        self.transport.pause_reading()
                    return
                buf = self.buf
                if not buf:
                    return
                if len(buf) <= self.remaining:
                    chunk, self.buf = buf, b""
                else:
                    chunk, self.buf = buf[: self.remaining], buf[self.remaining :]
                self.remaining -= len(chunk)
                req._add_body(chunk)
                if self.remaining == 0:
                    req._complete(None)
                    self.handler.finish(req)
                continue
            buf = self.buf
            if not buf:
                return
            end = buf.find(b"\r\n\r\n")
            if end < 0 or end > self.max_head:
                if len(buf) > self.max_head:
                    self._refuse_long_head(buf)
                return
            parsed = self.heads.parse(buf[:end])
            if parsed is None:
                self._switch_to_h11()
                return
            method, target, headers, length = parsed
            self.buf = buf[end + 4 :]
            req = Request(self, method, target, headers)
            self.current = req
            self.head_started = 0.0
            self.remaining = length
            self.handler.start(req)
            if length > req.max_body + _FAR_OVER:
                self._refuse_body(req)
                return
            if length == 0:
                req._complete(None)
                self.handler.finish(req)

    def _refuse_long_head(self, buf: bytes) -> None:
        # No line break within the limit: it is the request line, i.e. the URL, that is long.
        limit = self.max_head
        if buf.find(b"\r\n", 0, limit) < 0:
            self.refuse(414, f"request line (URL) over {limit} bytes")
        else:
            self.refuse(431, f"request header block over {limit} bytes")

    def _refuse_body(self, req: Request) -> None:
        """The declared body is far over the limit: answer (the handler's 413) unread."""
        self.close_after = True
        self.remaining = 0
        self.buf = b""
        req.too_large = True
        req._complete(None)
        self.handler.finish(req)

    def write_fast(self, status: int, headers: Headers, body: bytes) -> None:
        parts = [b"HTTP/1.1 %d %s\r\n" % (status, _REASONS.get(status, b"Unknown"))]
        if self.close_after:
            parts.append(b"connection: close\r\n")
        for name, value in headers:
            if _UNSAFE_VALUE.search(value):
                # Never let a value that came from a peer split the response.
                value = _UNSAFE_VALUE.sub(b" ", value)
            parts.append(name + b": " + value + b"\r\n")
        parts.append(b"content-length: %d\r\n\r\n" % len(body))
        if body:
            parts.append(body)
        self.transport.write(b"".join(parts))
        self._answered()

    # -- streamed responses (both modes)

    def write_stream_head(self, status: int, headers: Headers) -> None:
        headers = [*headers, (b"transfer-encoding", b"chunked")]
        if self.fast:
            parts = [b"HTTP/1.1 %d %s\r\n" % (status, _REASONS.get(status, b"Unknown"))]
            for name, value in headers:
                parts.append(name + b": " + _UNSAFE_VALUE.sub(b" ", value) + b"\r\n")
            parts.append(b"\r\n")
            self.transport.write(b"".join(parts))
            return
        h = self.h11
        assert h is not None
        try:
            self.transport.write(h.send(h11.Response(status_code=status, headers=headers)))
        except h11.LocalProtocolError:
            self.close()

    def write_stream_chunk(self, data: bytes) -> None:
        if self.fast:
            self.transport.writelines((b"%x\r\n" % len(data), data, b"\r\n"))
            return
        h = self.h11
        assert h is not None
        try:
            self.transport.writelines(h.send_with_data_passthrough(h11.Data(data=data)) or ())
        except h11.LocalProtocolError:
            self.close()

    def write_stream_end(self) -> None:
        if self.fast:
            self.transport.write(b"0\r\n\r\n")
            self._answered()
            return
        h = self.h11
        assert h is not None
        try:
            self.transport.write(h.send(h11.EndOfMessage()))
        except h11.LocalProtocolError:
            self.close()
            return
        self._h11_response_done()

    def hold(self) -> None:
        """Read nothing more from this client until :meth:`release` (flow control)."""
        if self.reading and not self.closed:
            self.reading = False
            self.transport.pause_reading()

    def release(self) -> None:
        if not self.reading and not self.closed:
            self.reading = True
            self.transport.resume_reading()

    def throttle(self, seconds: float) -> None:
        """Read nothing more from this client for ``seconds`` (a bandwidth limit)."""
        if self.reading and not self.closed:
            self.hold()
            asyncio.get_running_loop().call_later(seconds, self.release)

    def _answered(self) -> None:
        self.current = None
        self.last_active = _clock()
        if self.close_after:
            self.close_gently()
            return
        if self.eof:
            self.close()
            return
        if not self.reading and not self.closed:
            self.reading = True
            self.transport.resume_reading()
        if self.buf and not self.in_process:
            self._run_fast()

    def _switch_to_h11(self) -> None:
        """Hand the connection (between requests) to h11 for the rest of its life."""
        self.fast = False
        self.h11 = h11.Connection(h11.SERVER, max_incomplete_event_size=self.max_head)
        buf, self.buf = self.buf, b""
        self.h11.receive_data(buf)
        self._process()

    # -- h11 mode

    def write_h11(self, status: int, headers: Headers, body: bytes) -> None:
        h = self.h11
        assert h is not None
        headers.append((b"content-length", str(len(body)).encode()))
        if self.close_after:
            headers.append((b"connection", b"close"))
        try:
            out = h.send(h11.Response(status_code=status, headers=headers))
            if body:
                out += h.send(h11.Data(data=body))
            out += h.send(h11.EndOfMessage())
        except h11.LocalProtocolError:
            self.close()
            return
        self.transport.write(out)
        self._h11_response_done()

    def _h11_response_done(self) -> None:
        h = self.h11
        assert h is not None
        self.current = None
        self.last_active = _clock()
        if self.close_after or h.our_state is h11.MUST_CLOSE or h.their_state is h11.MUST_CLOSE:
            # The client may still be sending (a body we refused unread).
            self.close_gently()
            return
        if h.their_state is h11.DONE and h.our_state is h11.DONE:
            try:
                h.start_next_cycle()
            except h11.LocalProtocolError:
                self.close()
                return
            if not self.reading:
                self.reading = True
                self.transport.resume_reading()
            # A pipelined request may already sit in h11's buffer (when answering from inside
            # _process, its loop picks it up itself).
            if not self.in_process and h.trailing_data[0]:
                self._process()

    def _process(self) -> None:
        self.in_process = True
        try:
            self._process_h11()
        finally:
            self.in_process = False

    def _process_h11(self) -> None:
        h = self.h11
        assert h is not None
        while not self.closed:
            try:
                event = h.next_event()
            except h11.RemoteProtocolError as exc:
                self._bad_request(exc)
                return
            t = type(event)
            if t is h11.Data:
                req = self.current
                if req is not None:
                    req._add_body(event.data)  # type: ignore[union-attr]
            elif t is h11.Request:
                headers = dict(event.headers)  # type: ignore[union-attr]
                if (
                    event.http_version == b"1.0"  # type: ignore[union-attr]
                    and event.method == b"POST"  # type: ignore[union-attr]
                    and b"content-length" not in headers
                ):
                    # h11 reads no body here; an HTTP/1.0 client may mean "up to EOF". Refused
                    # before the handler sees anything, so nothing runs on a guessed body.
                    self.refuse(411, "POST over HTTP/1.0 needs a Content-Length")
                    return
                req = Request(self, event.method, event.target, headers)  # type: ignore[union-attr]
                self.current = req
                self.head_started = 0.0
                if h.they_are_waiting_for_100_continue:
                    # curl (inside awslambdaric) waits a whole second for this on large bodies.
                    continue_ = h11.InformationalResponse(status_code=100, headers=[])
                    self.transport.write(h.send(continue_))
                self.handler.start(req)
                declared = headers.get(b"content-length", b"")
                if declared.isdigit() and int(declared) > req.max_body + _FAR_OVER:
                    self.close_after = True
                    req.too_large = True
                    req._complete(None)
                    self.handler.finish(req)
                    return
            elif t is h11.EndOfMessage:
                req = self.current
                if req is not None:
                    req._complete(event.headers)  # type: ignore[union-attr]
                    self.handler.finish(req)
            elif event is h11.NEED_DATA:
                # A complete request not answered yet: stop buffering input behind it.
                if (
                    h.their_state is h11.DONE
                    and self.reading
                    and len(h.trailing_data[0]) > _READ_PAUSE_BYTES
                ):
                    self.reading = False
                    self.transport.pause_reading()
                return
            elif event is h11.PAUSED:
                if self.reading:
                    self.reading = False
                    self.transport.pause_reading()
                return
            elif t is h11.ConnectionClosed:
                self.close()
                return

    def _bad_request(self, exc: h11.RemoteProtocolError) -> None:
        status = exc.error_status_hint
        detail = str(exc)
        h = self.h11
        assert h is not None
        if status == 431:
            limit = self.max_head
            if h.trailing_data[0].find(b"\r\n", 0, limit) < 0:
                status, detail = 414, f"request line (URL) over {limit} bytes"
            else:
                detail = f"request header block over {limit} bytes"
        self.current = None
        self.refuse(status, f"bad HTTP request: {detail}")


def _error_body(message: str) -> bytes:
    # The shape of the Invoke API's own errors ({"Type", "message"}), without importing it.
    text = message[:300].replace("\\", "\\\\").replace('"', "'")
    text = "".join(c if " " <= c < "\x7f" else "?" for c in text)
    return b'{"Type":"User","message":"' + text.encode() + b'"}'


_Parsed = tuple[bytes, bytes, dict[bytes, bytes], int]
_HEAD_CACHE_SIZE = 512


class HeadCache:
    """Parsed heads by their bytes, per server: clients repeat the very same head (a runtime's
    GET /next, a load generator's POST), and handlers only read Request.headers, so sharing the
    parsed result is safe."""

    __slots__ = ("heads",)

    def __init__(self) -> None:
        self.heads: dict[bytes, _Parsed | None] = {}

    def parse(self, head: bytes) -> _Parsed | None:
        """The request head when the fast path may handle it, else None (h11 takes over)."""
        heads = self.heads
        try:
            return heads[head]
        except KeyError:
            pass
        parsed = _parse_head_uncached(head)
        if len(heads) >= _HEAD_CACHE_SIZE:
            heads.clear()
        heads[head] = parsed
        return parsed


def _parse_head_uncached(head: bytes) -> _Parsed | None:
    if _HEAD_BYTES.fullmatch(head) is None:
        return None
    lines = head.split(b"\r\n")
    # Every CR and LF must belong to a CRLF line break (no bare CR or LF inside a line).
    if head.count(b"\r") != len(lines) - 1 or head.count(b"\n") != len(lines) - 1:
        return None
    match = _REQUEST_LINE.fullmatch(lines[0])
    if match is None:
        return None
    headers: dict[bytes, bytes] = {}
    length = 0
    seen_length = False
    for line in lines[1:]:
        name, sep, value = line.partition(b":")
        if not sep or not (name.replace(b"-", b"").isalnum() or _TOKEN.fullmatch(name)):
            return None
        name = name.lower()
        value = value.strip(b" \t")
        if name in _NOT_FAST and not (name == b"connection" and value.lower() == b"keep-alive"):
            return None
        if name == b"content-length":
            if seen_length or not value.isdigit() or len(value) > 12:
                return None
            seen_length = True
            length = int(value)
        elif name in headers:
            # Repeated headers: let h11 apply its rules.
            return None
        headers[name] = value
    return match.group(1), match.group(2), headers, length


class HttpServer:
    """A listening socket plus the connections it accepted (so they can all be closed).

    ``max_connections``: connections over it get 503 and are closed at once, so idle clients
    cannot use up the process's file descriptors (which environments need). ``idle_timeout``:
    a connection with no request in progress is closed after this many seconds.
    ``head_timeout``: a request head must arrive within this many seconds of its first byte
    (else 408). None turns each off.
    """

    def __init__(
        self,
        handler: Handler,
        *,
        max_connections: int | None = None,
        idle_timeout: float | None = None,
        head_timeout: float | None = None,
    ) -> None:
        self.handler = handler
        self.heads = HeadCache()
        self.max_head: int = getattr(handler, "max_head", _MAX_HEAD)
        self.server: asyncio.base_events.Server | None = None
        self.connections: set[HttpConnection] = set()
        self.host = ""
        self.port = 0
        self.max_connections = max_connections
        self.idle_timeout = idle_timeout
        self.head_timeout = head_timeout
        self.refused = 0
        self.refusing = 0
        self._sweep_handle: asyncio.TimerHandle | None = None

    def _factory(self) -> asyncio.Protocol:
        if self.max_connections is not None and len(self.connections) >= self.max_connections:
            self.refused += 1
            return _Refused(self)
        conn = HttpConnection(_Tracking(self), self.heads, self.max_head)
        self.connections.add(conn)
        if self._sweep_handle is None and (self.idle_timeout or self.head_timeout):
            self._sweep_handle = asyncio.get_running_loop().call_later(_SWEEP, self._sweep)
        return conn

    def _sweep(self) -> None:
        self._sweep_handle = None
        now = _clock()
        for conn in list(self.connections):
            conn.time_out(now, self.idle_timeout, self.head_timeout)
        if self.connections and self.server is not None and self.server.is_serving():
            self._sweep_handle = asyncio.get_running_loop().call_later(_SWEEP, self._sweep)

    async def listen(self, host: str, port: int) -> None:
        loop = asyncio.get_running_loop()
        _AcceptErrorLimit.install(loop)
        self.server = await loop.create_server(
            self._factory, host, port, reuse_address=True, backlog=1024
        )
        if not self.server.sockets:
            # (uvloop reports some failures, descriptors running out among them, this way.)
            self.server.close()
            raise OSError(f"cannot listen on {host}:{port}")
        sockname = self.server.sockets[0].getsockname()
        self.host, self.port = str(sockname[0]), int(sockname[1])

    def stop_listening(self) -> None:
        if self.server is not None:
            self.server.close()
        if self._sweep_handle is not None:
            self._sweep_handle.cancel()
            self._sweep_handle = None

    def close(self) -> None:
        """Stop listening and drop every connection at once (no waiting)."""
        self.stop_listening()
        for conn in list(self.connections):
            conn.close()
            if conn.transport is not None:
                conn.transport.abort()

    async def wait_closed(self) -> None:
        if self.server is not None:
            self.server.close()
            # Connections were aborted in close(); Server.wait_closed would wait for them too.
            await asyncio.sleep(0)


class _Tracking:
    """Forwards to the real handler and forgets connections as they close."""

    __slots__ = ("finish", "server", "start")

    def __init__(self, server: HttpServer) -> None:
        self.server = server
        self.start = server.handler.start
        self.finish = server.handler.finish

    def connection_lost(self, conn: HttpConnection) -> None:
        self.server.connections.discard(conn)
        self.server.handler.connection_lost(conn)


# Seconds between two checks of a server's connection timeouts.
_SWEEP = 1.0
_clock = time.monotonic
_TIMED_OUT = b"HTTP/1.1 408 Request Timeout\r\nconnection: close\r\ncontent-length: 0\r\n\r\n"
_TOO_MANY = (
    b'{"Type":"Service","message":"Too many open connections: close idle connections and retry"}'
)


class _Refused(asyncio.Protocol):
    """A connection over the server's cap: 503 at once, then closed."""

    def __init__(self, server: HttpServer) -> None:
        self.server = server
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        transport.write(  # type: ignore[attr-defined]
            b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\n"
            b"connection: close\r\ncontent-length: %d\r\n\r\n%s" % (len(_TOO_MANY), _TOO_MANY)
        )
        if self.server.refusing >= _MAX_REFUSING:
            # Descriptors are what the cap protects: with many refusals at once, close now.
            transport.close()
            return
        # Closed once the request has been read (closing with unread input would reset the
        # connection, and the client might never see the 503), or after a moment.
        self.server.refusing += 1
        asyncio.get_running_loop().call_later(_REFUSE_LINGER, transport.close)

    def data_received(self, data: bytes) -> None:
        if self.transport is not None:
            self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        if self.transport is not None and self.server.refusing > 0:
            self.server.refusing -= 1
            self.transport = None


# Refused connections kept open (for at most _REFUSE_LINGER s) to read their request first.
_MAX_REFUSING = 8
_REFUSE_LINGER = 0.5


# Invoke API connections: closed after this long without a request, or this long into one
# request head.
INVOKE_IDLE_TIMEOUT = 60.0
INVOKE_HEAD_TIMEOUT = 10.0
# Descriptors kept back for the emulator itself, and per environment (its Runtime API listener
# and connections, output pipe, pidfd).
_RESERVE_BASE = 32
_RESERVE_PER_ENV = 8


def invoke_server_limits(concurrency: int) -> dict[str, Any]:
    """The Invoke API server's connection cap and timeouts."""
    return {
        "max_connections": connection_cap(_RESERVE_BASE + _RESERVE_PER_ENV * concurrency),
        "idle_timeout": INVOKE_IDLE_TIMEOUT,
        "head_timeout": INVOKE_HEAD_TIMEOUT,
    }


def connection_cap(reserve: int) -> int:
    """How many client connections a server may hold: what the descriptor limit leaves after
    ``reserve`` descriptors (for environments, pipes, the event loop), at least 4."""
    import resource

    try:
        soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    except (OSError, ValueError):
        return 1024
    if soft == resource.RLIM_INFINITY:
        return 4096
    return max(4, min(4096, soft - reserve))


_ACCEPT_ERRNOS = frozenset((errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM))
# At most one accept error line per this many seconds (the rest are counted).
_ACCEPT_LOG_EVERY = 10.0


class _AcceptErrorLimit:
    """A loop exception handler that lets one "accept() out of resources" error through per
    interval and counts the others: asyncio retries accept every second per listening socket,
    and with descriptors exhausted it would otherwise log a traceback each time."""

    def __init__(
        self, previous: Callable[[asyncio.AbstractEventLoop, dict[str, Any]], object] | None
    ) -> None:
        self.previous = previous
        self.last = -_ACCEPT_LOG_EVERY
        self.suppressed = 0

    @classmethod
    def install(cls, loop: asyncio.AbstractEventLoop) -> None:
        current = loop.get_exception_handler()
        if isinstance(getattr(current, "__self__", None), cls):
            return
        loop.set_exception_handler(cls(current).handle)

    def handle(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        exc = context.get("exception")
        if isinstance(exc, OSError) and exc.errno in _ACCEPT_ERRNOS:
            now = _clock()
            if now - self.last < _ACCEPT_LOG_EVERY:
                self.suppressed += 1
                return
            self.last = now
            more = f" ({self.suppressed} more since the last one)" if self.suppressed else ""
            self.suppressed = 0
            # One line, no traceback: the cause is the descriptor limit, not a bug.
            context = {"message": f"{context.get('message', 'accept failed')}: {exc}{more}"}
        if self.previous is not None:
            self.previous(loop, context)
        else:
            loop.default_exception_handler(context)
