"""A small HTTP/1.1 client for the runtime's hot path (``/next`` -> handler -> ``/response``).

One persistent keep-alive connection on a plain blocking socket. It exists because the
per-request CPU cost of a general-purpose client dwarfs the work the runtime does (measured
on a small keep-alive GET: httpx ~500 us, http.client ~95 us, this module ~15-25 us, a bare
send/recv loop ~9 us).

Design notes (the why):

* ``_socket`` rather than ``socket``: ``import socket`` pulls in ``enum``/``selectors`` and
  costs ~8 ms of cold start; the C module has everything needed here in ~0.5 ms.
* No read timeout after connect: ``/next`` long-polls for as long as Lambda likes, and the
  sandbox may be frozen in the middle of a call.
* Header values are decoded as UTF-8 with ``surrogateescape`` (and request heads are encoded
  as UTF-8): Lambda's JSON-bearing headers (client context, Cognito identity) are UTF-8, and
  the mapping is lossless (``value.encode("utf-8", "surrogateescape")`` gives back the octets).
* Framing is strict (RFC 9112): both Content-Length and Transfer-Encoding, conflicting
  Content-Length values, unknown transfer-codings, obs-fold, invalid field names and control
  characters in the status line are errors, because a lenient guess is how a client mis-frames
  the next response. A control octet (NUL, DEL, a bare CR or LF) inside a field *value* is
  kept as data: lines still end only at CRLF and names are still tokens, so framing is not in
  doubt, and such a value usually comes from a caller of the function (a tenant id, a client
  context), which must not cost the runtime its connection.
* Stale keep-alive: if a connection that already served a response turns out to be closed
  before any byte of the next response arrived, the request is sent once more on a new
  connection. Once a response byte has arrived nothing is ever resent.
* Pipelining (``request(..., then=(method, target))``): a bare request can ride in the same
  send behind another; the runtime sends ``GET /next`` behind its ``/response`` post when
  nothing has to run between invokes. That saves a round trip: the server answers both at
  once, and the runtime blocks (and is woken) once per invoke instead of twice. Responses
  come back in order (RFC 9112 9.3.2), so the pipelined answer is simply the next one; it is
  resent on a new connection only when the connection ends before any byte of it.

Exceptions raised while iterating the ``chunks`` of :meth:`Connection.request_chunked`: the
request is still terminated properly (zero-size chunk plus the fields returned by
``trailers()``, which is called *inside* the ``except`` block, so ``sys.exc_info()`` there
returns the exception), the response is read so the connection stays usable, and then
:class:`StreamAborted` is raised carrying both ``.response`` and ``.error`` (the original
exception, also its ``__cause__``). The simplest caller pattern remains a generator that
catches its own errors and a ``trailers()`` that reports them.

Not thread-safe: one connection per thread.
"""

from __future__ import annotations

import _socket

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Sequence

    Buffer = bytes | bytearray | memoryview

__all__ = [
    "ConnectError",
    "Connection",
    "ConnectionClosed",
    "HTTPError",
    "ProtocolError",
    "RequestError",
    "Response",
    "ResponseFeed",
    "ResponseReader",
    "StreamAborted",
]


class HTTPError(Exception):
    """Base of every error this module raises."""


class ProtocolError(HTTPError):
    """The peer sent a malformed or oversized response; the message says what and where."""


class ConnectionClosed(HTTPError):
    """The peer closed (or reset) the connection before a complete response arrived."""


class ConnectError(ConnectionClosed):
    """The connection could not be established (refused, unresolvable host, timeout)."""


class RequestError(HTTPError, ValueError):
    """The caller asked for a request that cannot be sent as given (e.g. CR/LF in a header)."""


class StreamAborted(HTTPError):
    """Iterating the ``chunks`` of a streamed request raised.

    The request was still terminated (last chunk and trailers sent) and its response read:
    ``response`` is that response, ``error`` the exception raised by the chunk source.
    """

    def __init__(self, response: Response, error: BaseException) -> None:
        super().__init__(
            f"chunk source raised {type(error).__name__}: {error}; "
            f"the request was terminated and answered {response.status}"
        )
        self.response = response
        self.error = error


class Response:
    """A complete response. Header and trailer names are lower-cased; repeats joined by ", "."""

    __slots__ = ("body", "headers", "reason", "status", "trailers")

    def __init__(
        self,
        status: int,
        reason: str,
        headers: dict[str, str],
        body: bytes,
        trailers: dict[str, str],
    ) -> None:
        self.status = status
        self.reason = reason
        self.headers = headers
        self.body = body
        self.trailers = trailers

    def __repr__(self) -> str:
        return f"<Response {self.status} {self.reason!r}, {len(self.body)} body bytes>"


# RFC 9110 token characters (header names).
_TCHAR = b"!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
# Octets allowed in a field line: VCHAR, SP, HTAB, obs-text. CR and LF are deliberately not in
# here, so translate(None, _FIELD_OK) leaves exactly the line breaks of a well-formed block.
_FIELD_OK = b"\t" + bytes(range(32, 127)) + bytes(range(128, 256))
_HEX = b"0123456789abcdefABCDEF"
# "HTTP/1.x " -> whether it is 1.1 or later (RFC 9112 2.3: a higher minor version is 1.1).
_VERSIONS = {f"HTTP/1.{minor} ": minor > 0 for minor in range(10)}
_READ_SIZE = 65536
# Upper bound for a single allocation driven by a length the peer declared: covers Lambda's
# 6 MiB payloads in one go, while a bogus huge length cannot make us allocate without data.
_MAX_GROW = 16 << 20
# Bodies up to this size are joined with the head into one send; above it, sendmsg avoids
# copying the body.
_SMALL_BODY = 65536
_MAX_INTERIM = 64
_RESERVED = frozenset(("host", "content-length", "transfer-encoding"))
_NO_BODY_STATUS = frozenset((204, 304))
# Chunks of a streamed request up to this size are joined with their framing into one send
# (one syscall); above it, sendmsg avoids copying the chunk twice to frame it.
_SMALL_CHUNK = 8192
# Methods for which an empty body is still announced with Content-Length: 0 (RFC 9110 8.6).
_BODY_METHODS = frozenset(("POST", "PUT", "PATCH"))


def _snip(data: bytes | bytearray, limit: int = 80) -> str:
    text = repr(bytes(data[:limit]))
    return text + "..." if len(data) > limit else text


class ResponseReader:
    """Parses HTTP/1.1 responses from a byte stream; no sockets involved.

    ``recv_into(view)`` fills a prefix of ``view`` and returns how many bytes it wrote; 0 means
    end of stream. Exceptions it raises propagate unchanged. Bytes after a complete response
    stay buffered for the next :meth:`read_response`.

    After each :meth:`read_response`, ``keep_alive`` says whether the stream may carry another
    response, and ``started`` whether any byte of the response (or leftover) had been seen —
    even when it raised.
    """

    __slots__ = (
        "_buf",
        "_eof",
        "_last_head",
        "_max_header",
        "_recv_into",
        "_tmp",
        "keep_alive",
        "started",
    )

    def __init__(
        self, recv_into: Callable[[memoryview], int], *, max_header_bytes: int = 65536
    ) -> None:
        self._recv_into = recv_into
        self._max_header = max_header_bytes
        self._buf = bytearray()
        self._tmp = memoryview(bytearray(_READ_SIZE))
        # Once the stream has ended, never ask recv_into again (a closed peer stays closed).
        self._eof = False
        # Per method, the last final response head and its parse: the Runtime API answers every
        # post with the same head byte for byte, so it is checked and parsed once instead of on
        # every invoke (3-5 us of the runtime's 50-60 us of CPU per invoke). Same bytes, same
        # parse: nothing is trusted that was not checked.
        self._last_head: dict[str, tuple[bytes, tuple[int, str, dict[str, str], bool]]] = {}
        self.keep_alive = True
        self.started = False

    @property
    def buffered(self) -> int:
        """Bytes received but not yet consumed by a response."""
        return len(self._buf)

    def _fill(self) -> int:
        if self._eof:
            return 0
        tmp = self._tmp
        n = self._recv_into(tmp)
        if n:
            self._buf += tmp[:n]
            self.started = True
        else:
            self._eof = True
        return n

    def read_response(self, method: str) -> Response:
        """Read one final response (skipping 1xx interim ones) to a request made with ``method``."""
        buf = self._buf
        self.started = bool(buf)
        interim = 0
        while True:
            if not buf:
                self._fill()
            end = buf.find(b"\r\n\r\n")
            if 0 <= end <= self._max_header - 4:
                head = bytes(buf[:end])
                del buf[: end + 4]
            else:
                head = bytes(self._read_block("response header block"))
            last = self._last_head.get(method)
            if last is not None and last[0] == head:
                status, reason, headers, http11 = last[1]
                headers = headers.copy()
                break
            status, reason, headers, http11 = _parse_head(head)
            if status >= 200:
                self._last_head[method] = (head, (status, reason, headers.copy(), http11))
                break
            if status == 101:
                raise ProtocolError("unexpected 101 Switching Protocols (no upgrade was requested)")
            interim += 1
            if interim > _MAX_INTERIM:
                raise ProtocolError(f"more than {_MAX_INTERIM} interim (1xx) responses")

        conn = headers.get("connection")
        if conn is None:
            keep_alive = http11
        else:
            tokens = {t.strip(" \t").lower() for t in conn.split(",")}
            keep_alive = "close" not in tokens and (http11 or "keep-alive" in tokens)

        trailers: dict[str, str] = {}
        if method == "HEAD" or status in _NO_BODY_STATUS:
            body = b""
        elif (te := headers.get("transfer-encoding")) is not None:
            if "content-length" in headers:
                raise ProtocolError(
                    "response has both Transfer-Encoding and Content-Length (ambiguous framing)"
                )
            if not http11:
                raise ProtocolError("HTTP/1.0 response with Transfer-Encoding (faulty framing)")
            if te.lower() != "chunked":
                raise ProtocolError(f"unsupported Transfer-Encoding {te!r} (only chunked)")
            body = self._read_chunked(trailers)
        elif (cl := headers.get("content-length")) is not None:
            if len(cl) < 19 and cl.isdigit() and cl.isascii():
                body = self._read_exact(int(cl))
            else:
                body = self._read_exact(_parse_content_length(cl))
        else:
            body = self._read_to_eof()
            keep_alive = False
        self.keep_alive = keep_alive
        return Response(status, reason, headers, body, trailers)

    def _read_block(self, what: str) -> bytearray:
        """Consume and return everything up to the next CRLFCRLF (excluded)."""
        buf = self._buf
        limit = self._max_header
        start = 0
        while True:
            end = buf.find(b"\r\n\r\n", start)
            if end >= 0:
                break
            if len(buf) >= limit:
                raise ProtocolError(f"{what} exceeds {limit} bytes")
            start = len(buf) - 3 if len(buf) > 3 else 0
            if not self._fill():
                if buf:
                    raise ConnectionClosed(
                        f"connection closed in the {what} after {len(buf)} bytes: {_snip(buf)}"
                    )
                if self.started:
                    raise ConnectionClosed("connection closed after an interim (1xx) response")
                raise ConnectionClosed("connection closed before the response started")
        if end + 4 > limit:
            raise ProtocolError(f"{what} exceeds {limit} bytes")
        head = buf[:end]
        del buf[: end + 4]
        return head

    def _read_line(self, what: str, limit: int) -> bytes:
        """Consume and return one CRLF-terminated line (CRLF excluded)."""
        buf = self._buf
        start = 0
        while True:
            end = buf.find(b"\r\n", start)
            if end >= 0:
                break
            if len(buf) >= limit:
                raise ProtocolError(f"{what} exceeds {limit} bytes: {_snip(buf)}")
            start = len(buf) - 1 if buf else 0
            if not self._fill():
                raise ConnectionClosed(f"connection closed in the {what}: {_snip(buf)}")
        if end + 2 > limit:
            raise ProtocolError(f"{what} exceeds {limit} bytes: {_snip(buf)}")
        line = bytes(buf[:end])
        del buf[: end + 2]
        return line

    def _read_exact(self, n: int) -> bytes:
        buf = self._buf
        have = len(buf)
        if have >= n:
            if have == n:
                body = bytes(buf)
                buf.clear()
            else:
                body = bytes(buf[:n])
                del buf[:n]
            return body
        # Preallocate (bounded) and receive straight into it: one copy per byte at most.
        out = bytearray(n if n <= _MAX_GROW else _MAX_GROW)
        out[:have] = buf
        buf.clear()
        self._recv_exact(out, have, n, "body")
        return bytes(out)

    def _recv_exact(self, out: bytearray, pos: int, end: int, what: str) -> None:
        """Receive into ``out[pos:end]`` directly, growing ``out`` in bounded steps."""
        recv_into = self._recv_into
        while pos < end:
            size = len(out)
            if pos >= size:
                # Trust the declared length up to _MAX_GROW, then double: bounded waste for a
                # bogus length, amortised linear copying for a genuine huge one.
                out += bytes(min(end - size, max(size, _MAX_GROW)))
                size = len(out)
            if self._eof:
                got = 0
            else:
                # len(out) never exceeds end, so this cannot read past the body.
                with memoryview(out) as view:
                    got = recv_into(view[pos:])
            if not got:
                self._eof = True
                raise ConnectionClosed(
                    f"connection closed in the {what}: {pos} of {end} bytes received"
                )
            self.started = True
            pos += got

    def _read_chunked(self, trailers: dict[str, str]) -> bytes:
        out = bytearray()
        buf = self._buf
        limit = self._max_header
        while True:
            line = self._read_line("chunk-size line", limit)
            size = _parse_chunk_size(line)
            if size == 0:
                break
            take = size if size <= len(buf) else len(buf)
            if take:
                out += buf[:take]
                del buf[:take]
            remaining = size - take
            if remaining >= _READ_SIZE:
                # Large chunk: skip the buffer and receive into the body directly.
                pos = len(out)
                self._recv_exact(out, pos, pos + remaining, f"chunk of {size} bytes")
                remaining = 0
            while remaining:
                if not self._fill():
                    raise ConnectionClosed(
                        f"connection closed in a chunk of {size} bytes: {size - remaining} received"
                    )
                take = remaining if remaining <= len(buf) else len(buf)
                out += buf[:take]
                del buf[:take]
                remaining -= take
            while len(buf) < 2:
                if not self._fill():
                    raise ConnectionClosed("connection closed after chunk data, before its CRLF")
            if buf[0] != 13 or buf[1] != 10:
                raise ProtocolError(
                    f"chunk data of {size} bytes not followed by CRLF: {_snip(buf, 20)}"
                )
            del buf[:2]
        # Trailer section: field lines up to an empty line, bounded like a header block.
        lines: list[bytes] = []
        budget = limit
        while True:
            line = self._read_line("trailer section", budget)
            if not line:
                break
            budget -= len(line) + 2
            lines.append(line)
        if lines:
            _parse_fields(b"\r\n".join(lines), 0, trailers, "trailer section")
        return bytes(out)

    def _read_to_eof(self) -> bytes:
        out = self._buf[:]
        self._buf.clear()
        tmp = self._tmp
        recv_into = self._recv_into
        while not self._eof:
            n = recv_into(tmp)
            if not n:
                self._eof = True
                break
            self.started = True
            out += tmp[:n]
        return bytes(out)


class _Incomplete(Exception):
    """Internal to :class:`ResponseFeed`: the bytes fed so far end before the response does."""

    def __init__(self, need: int) -> None:
        self.need = need


class ResponseFeed:
    """:class:`ResponseReader` for a caller that does its own (non-blocking) I/O: it feeds the
    bytes as they arrive and asks for a response; the same parser, no second implementation.

    :meth:`parse` returns ``None`` while the response is incomplete (``need``: how many more
    bytes, at least, are worth waiting for before asking again); each attempt parses from the
    response's first byte, so a response arriving in pieces is parsed a few times, which costs
    nothing for the Runtime API's small heads, and ``need`` keeps a large body to a few tries.
    """

    __slots__ = ("_ended", "_reader", "need")

    def __init__(self, *, max_header_bytes: int = 65536) -> None:
        self._reader = ResponseReader(self._recv_into, max_header_bytes=max_header_bytes)
        self._ended = False
        self.need = 1

    def _recv_into(self, view: memoryview) -> int:
        if self._ended:
            return 0
        # The reader's own scratch buffer means "any bytes"; any other view is a body's exact
        # remainder (see ResponseReader._recv_exact).
        raise _Incomplete(1 if view is self._reader._tmp else view.nbytes)

    def feed(self, data: Buffer) -> None:
        self._reader._buf += data

    def end(self) -> None:
        """The stream ended: a response still incomplete is then a ConnectionClosed."""
        self._ended = True

    @property
    def buffered(self) -> int:
        return self._reader.buffered

    @property
    def ended(self) -> bool:
        return self._ended

    @property
    def keep_alive(self) -> bool:
        return self._reader.keep_alive

    @property
    def started(self) -> bool:
        """Whether any byte of the response asked for last had arrived."""
        return self._reader.started

    def parse(self, method: str) -> Response | None:
        """The next complete response to a ``method`` request, or ``None`` for "feed more"."""
        reader = self._reader
        buf = reader._buf
        saved = bytes(buf)
        try:
            return reader.read_response(method)
        except _Incomplete as incomplete:
            buf[:] = saved
            reader.started = bool(saved)
            self.need = incomplete.need
            return None


def _parse_fields(block: bytes | bytearray, first: int, fields: dict[str, str], what: str) -> str:
    """Parse the field lines of a CRLF-separated block from line ``first`` on into ``fields``.

    Returns line 0 (the status line of a header block) decoded.
    """
    lines = block.decode("utf-8", "surrogateescape").split("\r\n")
    # One C-level pass for the whole block: after deleting every allowed octet only the CRLF
    # separators may remain, so any CTL, NUL or bare CR/LF shows up here.
    if block.translate(None, _FIELD_OK) != b"\r\n" * (len(lines) - 1) and first:
        # Such an octet in a field *value* is kept as data: the block's framing (CRLF lines,
        # token names, checked below) is intact, and a caller's stray byte in a forwarded
        # header (a tenant id, a client context) must not cost the runtime its connection.
        # In the status line it is a broken response.
        _reject_status_line(lines[0], what)
    for line in lines[first:] if first else lines:
        name, sep, value = line.partition(":")
        if not sep:
            _reject_fields(lines, first, what)
        name = name.lower()
        if name in fields:
            fields[name] += ", " + value.strip(" \t")
        else:
            fields[name] = value.strip(" \t")
    # Names are checked together: for an ASCII block, lower-casing maps token characters to
    # token characters, so checking the keys is checking the names.
    if "" in fields or not block.isascii() or "".join(fields).encode().translate(None, _TCHAR):
        _reject_fields(lines, first, what)
    return lines[0]


def _reject_status_line(line: str, what: str) -> None:
    raw = line.encode("utf-8", "surrogateescape")
    bad = raw.translate(None, _FIELD_OK)
    if bad:
        raise ProtocolError(
            f"{what} line 0 contains control character {bad[:1]!r} (bare CR/LF or CTL): "
            f"{_snip(raw)}"
        )


def _reject_fields(lines: list[str], first: int, what: str) -> None:
    """Find the offending field line (if any) and raise a ProtocolError naming it."""
    for number in range(first, len(lines)):
        line = lines[number]
        name, sep, _ = line.partition(":")
        if line[:1] in (" ", "\t"):
            problem = "obs-fold (line folding) or leading whitespace is not allowed"
        elif not sep:
            problem = "missing ':'"
        elif not name.isascii() or not name or name.encode().translate(None, _TCHAR):
            problem = "invalid field name"
        else:
            continue
        snippet = _snip(line.encode("utf-8", "surrogateescape"))
        raise ProtocolError(f"{what} line {number}: {problem}: {snippet}")


def _parse_head(head: bytes | bytearray) -> tuple[int, str, dict[str, str], bool]:
    headers: dict[str, str] = {}
    line = _parse_fields(head, 1, headers, "response header block")
    http11 = _VERSIONS.get(line[:9])
    code = line[9:12]
    if (
        http11 is None
        or not (code.isdigit() and code.isascii())
        or code[0] == "0"
        or line[12:13] not in ("", " ")
    ):
        raise ProtocolError(f"invalid status line {_snip(line.encode('utf-8', 'surrogateescape'))}")
    return int(code), line[13:], headers, http11


def _parse_content_length(value: str) -> int:
    if not (value.isascii() and value.isdigit()):
        # A list of identical values is allowed (RFC 9110 8.6); anything else is ambiguous.
        parts = {p.strip(" \t") for p in value.split(",")}
        if len(parts) != 1:
            raise ProtocolError(f"conflicting Content-Length values {value!r}")
        value = parts.pop()
        if not (value.isascii() and value.isdigit()):
            raise ProtocolError(f"invalid Content-Length {value!r}")
    if len(value) > 18:
        raise ProtocolError(f"Content-Length {value[:40]!r} is too large")
    return int(value)


def _parse_chunk_size(line: bytes) -> int:
    size, _, ext = line.partition(b";")
    size = size.rstrip(b" \t")
    if not size or size.translate(None, _HEX) or len(size) > 16:
        raise ProtocolError(f"invalid chunk-size line {_snip(line)}")
    if ext and ext.translate(None, _FIELD_OK):
        raise ProtocolError(f"control character in chunk extension {_snip(line)}")
    return int(size, 16)


def _byte_view(data: Buffer) -> tuple[Buffer, int]:
    """Normalise a bytes-like object to something sendable and its length in bytes."""
    if type(data) is bytes or type(data) is bytearray:
        return data, len(data)
    if isinstance(data, memoryview):
        if not data.c_contiguous:
            # A strided view (``view[::2]``) can be neither cast nor sent in place: its bytes
            # are sent from a copy, as they would be for bytes(view).
            data = data.tobytes()
            return data, len(data)
        if data.format != "B" or data.ndim != 1:
            try:
                data = data.cast("B")
            except TypeError as exc:
                raise RequestError(f"cannot send this memoryview: {exc}") from None
        return data, data.nbytes
    if isinstance(data, (bytes, bytearray)):
        return data, len(data)
    raise RequestError(f"expected bytes, bytearray or memoryview, got {type(data).__name__}")


def _encode_fields(fields: Sequence[tuple[str, str]], what: str) -> str:
    for name, _ in fields:
        # Fast path for the usual letters-and-dashes names; the exact token check otherwise.
        if not (name.isascii() and name.replace("-", "").isalnum()) and (
            not name or not name.isascii() or name.encode("ascii").translate(None, _TCHAR)
        ):
            raise RequestError(f"invalid {what} name {name!r}")
        if name.lower() in _RESERVED:
            raise RequestError(f"{what} {name!r} is set by the HTTP client, do not pass it")
    return "".join([f"{name}: {value}\r\n" for name, value in fields])


def _encode(text: str, what: str) -> bytes:
    try:
        return text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError as exc:
        raise RequestError(f"{what} cannot be encoded: {exc}") from None


def _check_head(head: bytes, fields: Sequence[tuple[str, str]], what: str) -> None:
    """Name the field that put a control character or a line break into ``head``; raise."""
    for name, value in fields:
        line = _encode(f"{name}: {value}", what)
        if line.translate(None, _FIELD_OK):
            raise RequestError(f"{what} {name!r} contains a control character (CR, LF, NUL...)")
    raise RequestError("method or target contains a control character or a line break")


class Connection:
    """One persistent HTTP/1.1 connection to ``host:port``; connects on first use.

    ``request``/``request_chunked`` raise only :class:`HTTPError` subclasses for network and
    protocol failures (:class:`ConnectError` when connecting fails, with ``host:port`` in the
    message). After any error other than :class:`StreamAborted` the socket is closed and the
    next request opens a new one.
    """

    __slots__ = (
        "_agent_line",
        "_bare_heads",
        "_connect_timeout",
        "_field_lines",
        "_host",
        "_host_header",
        "_pending",
        "_port",
        "_reader",
        "_served",
        "_sock",
    )

    def __init__(
        self, host: str, port: int, *, connect_timeout: float = 5.0, user_agent: str = ""
    ) -> None:
        self._host = host
        # Part of every request head, so cached heads and field lines include it at no cost.
        self._agent_line = f"User-Agent: {user_agent}\r\n" if user_agent else ""
        self._port = port
        self._connect_timeout = connect_timeout
        self._host_header = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        # Heads of requests without headers or body (the runtime's GET /next): built and
        # checked once, then reused on every call of the hot path.
        self._bare_heads: dict[tuple[str, str], bytes] = {}
        # Header lists checked and encoded before (the runtime's Content-Type on every
        # /response): the same list is not checked again.
        self._field_lines: dict[tuple[tuple[str, str], ...], str] = {}
        self._sock: _socket.socket | None = None
        self._reader: ResponseReader | None = None
        # Responses completed on the current socket: a stale-connection retry is only
        # legitimate on a socket that has been used before.
        self._served = 0
        # A bare request sent pipelined behind the last one (``then=``), response not read yet.
        self._pending: tuple[str, str] | None = None

    def __enter__(self) -> Connection:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        sock = self._sock
        self._sock = None
        self._reader = None
        self._served = 0
        self._pending = None
        if sock is not None:
            sock.close()

    def _connect(self) -> tuple[_socket.socket, ResponseReader]:
        self.close()
        where = f"{self._host}:{self._port}"
        try:
            # A str host makes getaddrinfo load the idna codec (about 1 ms of cold start);
            # ASCII bytes skip it. Non-ASCII names still go through idna.
            host = self._host.encode("ascii") if self._host.isascii() else self._host
            infos = _socket.getaddrinfo(host, self._port, 0, _socket.SOCK_STREAM)
        except OSError as exc:
            raise ConnectError(f"cannot resolve {where}: {exc}") from exc
        error: OSError | None = None
        for family, kind, proto, _, address in infos:
            sock = _socket.socket(family, kind, proto)
            try:
                sock.settimeout(self._connect_timeout)
                sock.connect(address)
                sock.settimeout(None)
                sock.setsockopt(_socket.IPPROTO_TCP, _socket.TCP_NODELAY, 1)
            except OSError as exc:
                sock.close()
                error = exc
                continue
            reader = ResponseReader(sock.recv_into)
            self._sock = sock
            self._reader = reader
            return sock, reader
        raise ConnectError(f"cannot connect to {where}: {error}") from error

    def _head(
        self, method: str, target: str, headers: Sequence[tuple[str, str]], framing: str
    ) -> bytes:
        if headers:
            key = tuple(headers)
            fields = self._field_lines.get(key)
            if fields is None:
                fields = _encode_fields(headers, "header")
                if len(self._field_lines) < 64:  # a bound: error types and causes vary
                    self._field_lines[key] = fields
        else:
            fields = ""
        head = _encode(
            f"{method} {target} HTTP/1.1\r\nHost: {self._host_header}\r\n"
            f"{self._agent_line}{fields}{framing}\r\n",
            "request head",
        )
        # CRLFs: request line, Host, User-Agent if any, each header, the framing line if any,
        # the blank line.
        lines = len(headers) + (4 if framing else 3) + (1 if self._agent_line else 0)
        if head.translate(None, _FIELD_OK) != b"\r\n" * lines:
            _check_head(head, headers, "header")
        if " " in target or " " in method or not method or not target:
            raise RequestError(f"invalid method {method!r} or target {target!r}")
        return head

    def _bare_head(self, method: str, target: str) -> bytes:
        head = self._head(method, target, (), "")
        if len(self._bare_heads) < 64:  # a bound, in case a caller varies the target
            self._bare_heads[(method, target)] = head
        return head

    def encode_request(
        self,
        method: str,
        target: str,
        headers: Sequence[tuple[str, str]] = (),
        body: Buffer = b"",
        then: tuple[str, str] | None = None,
    ) -> tuple[bytes, Buffer, int, bytes]:
        """What :meth:`request` sends: the head, the body and its length in bytes, the
        pipelined request (``then``) or ``b""``; checked, and cached where the hot path repeats
        itself. Public for a client that does its own I/O (runtime.concurrency's non-blocking
        one)."""
        data, length = _byte_view(body)
        if length or method in _BODY_METHODS:
            head = self._head(method, target, headers, f"Content-Length: {length}\r\n")
        elif headers:
            head = self._head(method, target, headers, "")
        else:
            head = self._bare_heads.get((method, target)) or self._bare_head(method, target)
        second = b""
        if then is not None:
            second = self._bare_heads.get(then) or self._bare_head(*then)
        return head, data, length, second

    def request(
        self,
        method: str,
        target: str,
        headers: Sequence[tuple[str, str]] = (),
        body: bytes | bytearray | memoryview = b"",
        *,
        then: tuple[str, str] | None = None,
    ) -> Response:
        """Send a request with a Content-Length body (if any) and return the final response.

        With ``then`` (a method and a target), that request, without headers or body, goes out
        in the same send right behind this one (HTTP/1.1 pipelining), and its response is left
        for the next call for exactly that method and target, which then sends nothing. If the
        connection ends first, that next call sends it again on a new connection.
        """
        if self._pending is not None:
            if self._pending == (method, target) and not headers and not body:
                return self._read_pending(method, target)
            self.close()  # another request first: the pending answer is abandoned with its socket
        head, data, length, second = self.encode_request(method, target, headers, body, then)
        sock = self._sock
        reader = self._reader
        if sock is None or reader is None or reader.buffered:
            # Unsolicited bytes after the last response: the stream's framing cannot be
            # trusted any more, start afresh.
            sock, reader = self._connect()
        try:
            while True:
                reused = self._served > 0
                send_failed = False
                try:
                    if length <= _SMALL_BODY:
                        sock.sendall(head + data + second if length or second else head)
                    else:
                        _sendv(sock, (head, data, second) if second else (head, data))
                except (BrokenPipeError, ConnectionResetError, ConnectionAbortedError):
                    # The peer may have answered and closed (e.g. an early 413); read it.
                    send_failed = True
                try:
                    response = reader.read_response(method)
                except (ConnectionClosed, OSError) as exc:
                    if reused and not reader.started:
                        sock, reader = self._connect()
                        continue
                    raise self._closed(method, target, exc) from exc
                break
        except OSError as exc:
            raise self._closed(method, target, exc) from exc
        except BaseException:
            self.close()
            raise
        if send_failed or not reader.keep_alive:
            self.close()  # a pipelined request goes with it: its caller will send it again
        else:
            self._served += 1
            self._pending = then
        return response

    def _read_pending(self, method: str, target: str) -> Response:
        """The response to the request sent pipelined behind the previous one."""
        self._pending = None
        reader = self._reader
        assert reader is not None
        try:
            response = reader.read_response(method)
        except (ConnectionClosed, OSError) as exc:
            if not reader.started:
                # Closed before any byte of the answer, as a stale keep-alive connection can
                # be: the request may never have been read. Send it again, on a new connection.
                self.close()
                return self.request(method, target)
            raise self._closed(method, target, exc) from exc
        except BaseException:
            self.close()
            raise
        if not reader.keep_alive:
            self.close()
        else:
            self._served += 1
        return response

    def _closed(
        self, method: str, target: str, exc: BaseException, error: BaseException | None = None
    ) -> HTTPError:
        self.close()
        if isinstance(exc, ConnectError):
            return exc
        text = str(exc) if isinstance(exc, HTTPError) else f"{type(exc).__name__}: {exc}"
        if error is not None:
            text += f" (the chunk source had raised {type(error).__name__}: {error})"
        return ConnectionClosed(f"{method} {target} on {self._host}:{self._port}: {text}")

    def _stream_socket(self) -> tuple[_socket.socket, ResponseReader]:
        if self._pending is not None:
            # As in request(): the pipelined request's answer would be read as this one's.
            self.close()
        sock = self._sock
        reader = self._reader
        if sock is None or reader is None or reader.buffered:
            return self._connect()
        # A streamed body cannot be replayed, so check up front (without blocking) that the
        # idle connection has not been closed by the peer or sent unsolicited data.
        try:
            sock.recv(1, _socket.MSG_PEEK | _socket.MSG_DONTWAIT)
        except BlockingIOError:
            return sock, reader
        except OSError:
            pass
        return self._connect()

    def request_chunked(
        self,
        method: str,
        target: str,
        headers: Sequence[tuple[str, str]],
        chunks: Iterable[bytes | bytearray | memoryview],
        trailers: Callable[[], Sequence[tuple[str, str]]] | None = None,
    ) -> Response:
        """Send a ``Transfer-Encoding: chunked`` request, each non-empty chunk as it comes.

        ``trailers()`` is called after the last chunk and its fields are sent as the trailer
        section. If iterating ``chunks`` raises, see the module docstring: the request is
        terminated normally and :class:`StreamAborted` is raised with the response.
        If ``trailers()`` raises, the connection is closed and its exception propagates.
        """
        head = self._head(method, target, headers, "Transfer-Encoding: chunked\r\n")
        sock, reader = self._stream_socket()
        error: BaseException | None = None
        # Set while trailers() runs, so that an OSError of the caller's own is not mistaken
        # for a socket error.
        in_callback = False
        try:
            try:
                sock.sendall(head)
            except (BrokenPipeError, ConnectionResetError, ConnectionAbortedError):
                if not self._served:
                    raise
                sock, reader = self._connect()
                sock.sendall(head)
            send_failed = False
            iterator = iter(chunks)
            while True:
                try:
                    chunk = next(iterator)
                    data, length = _byte_view(chunk)
                except StopIteration:
                    break
                except BaseException as exc:
                    error = exc
                    # Inside the except block on purpose: trailers() may use sys.exc_info().
                    in_callback = True
                    final = _last_chunk(trailers)
                    in_callback = False
                    break
                if not length:
                    continue
                try:
                    if length <= _SMALL_CHUNK:
                        sock.sendall(b"%x\r\n" % length + data + b"\r\n")
                    else:
                        _sendv(sock, (b"%x\r\n" % length, data, b"\r\n"))
                except (BrokenPipeError, ConnectionResetError, ConnectionAbortedError):
                    send_failed = True
                    break
            if not send_failed:
                if error is None:
                    in_callback = True
                    final = _last_chunk(trailers)
                    in_callback = False
                try:
                    sock.sendall(final)
                except (BrokenPipeError, ConnectionResetError, ConnectionAbortedError):
                    send_failed = True
            try:
                response = reader.read_response(method)
            except (ConnectionClosed, OSError) as exc:
                raise self._closed(method, target, exc, error) from exc
        except OSError as exc:
            if in_callback:
                self.close()
                raise
            raise self._closed(method, target, exc, error) from exc
        except BaseException:
            self.close()
            raise
        if send_failed or not reader.keep_alive:
            self.close()
        else:
            self._served += 1
        if error is not None:
            raise StreamAborted(response, error) from error
        return response


def _last_chunk(trailers: Callable[[], Sequence[tuple[str, str]]] | None) -> bytes:
    fields = trailers() if trailers is not None else ()
    if not fields:
        return b"0\r\n\r\n"
    text = _encode_fields(fields, "trailer")
    block = _encode(f"0\r\n{text}\r\n", "trailer section")
    if block.translate(None, _FIELD_OK) != b"\r\n" * (len(fields) + 2):
        _check_head(block, fields, "trailer")
    return block


def _sendv(sock: _socket.socket, parts: tuple[Buffer, ...]) -> None:
    """Send several buffers without joining them, coping with partial sends."""
    sent = sock.sendmsg(parts)
    for part in parts:
        size = len(part) if not isinstance(part, memoryview) else part.nbytes
        if sent >= size:
            sent -= size
            continue
        sock.sendall(memoryview(part)[sent:] if sent else part)
        sent = 0
