"""A minimal, fast Lambda Runtime API server for benchmarks, run in its own process.

It lives in a separate process so that its CPU time is never charged to the runtime
being measured. The benchmark drives it through a `multiprocessing` pipe:

    harness -> server: ("load", name, event_bytes)   register an event to serve
                       ("batch", name, n)             serve n invokes of that event
                       ("batch", name, n, True)       the same, and say "batch_done" at the end
                       ("reset", token)               a new runtime process is about to start
                       ("stop",)
    server -> harness: ("ready", port)
                       ("reset_done", token)          older messages are all before this one
                       ("idle", arrival_ns, BatchStats)  a /next arrived and there is
                                                          nothing to serve: the runtime is
                                                          parked, safe to read its CPU time
                       ("batch_done", BatchStats)     every invoke of the batch is answered,
                                                      when asked for (with several invokes in
                                                      flight, the first "idle" comes before
                                                      the last answer)
                       ("fatal", message)            init error, bad echo, protocol error

One thread per connection with blocking sockets: the runtime under test keeps one
keep-alive connection (awslambdaric's curl may open more), and a thread that waits on a
condition is the simplest way to park `/next` until the harness asks for a batch.
"""

from __future__ import annotations

import contextlib
import gc
import json
import os
import socket
import threading
import time
import uuid
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any

from runtime import protocol

FUNCTION_ARN = "arn:aws:lambda:us-east-1:123456789012:function:bench"
# Far enough that no runtime ever thinks an invoke is about to time out.
DEADLINE_AHEAD_MS = 15 * 60 * 1000

# Request targets arrive as bytes; encoded once here from the protocol's definitions.
NEXT_PATH = protocol.NEXT_PATH.encode()
INVOKE_PREFIX = protocol.INVOCATION_PREFIX.encode()
RESPONSE_SUFFIX = protocol.RESPONSE_SUFFIX.encode()
ERROR_SUFFIX = protocol.ERROR_SUFFIX.encode()
INIT_ERROR_PATH = protocol.INIT_ERROR_PATH.encode()
EXT_REGISTER_PATH = protocol.EXTENSION_REGISTER_PATH.encode()
EXT_NEXT_PATH = protocol.EXTENSION_NEXT_PATH.encode()
ERROR_TYPE_KEY = protocol.ERROR_TYPE_HEADER.lower().encode()

ACCEPTED = (
    f"HTTP/1.1 {protocol.STATUS_ACCEPTED} Accepted\r\n".encode()
    + b'Content-Type: application/json\r\nContent-Length: 16\r\n\r\n{"status":"OK"}\n'
)
CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
MAX_HEADER_BYTES = 64 * 1024


class ProtocolError(Exception):
    """The peer sent something this server cannot parse as HTTP/1.1."""


@dataclass
class BatchStats:
    """What the server saw during one batch; sent to the harness when the batch ends."""

    served: int = 0
    responses: int = 0
    errors: int = 0
    first_error: str = ""
    # Per invoke: start of writing the /next response -> last byte of /response read.
    wall_ns: list[int] = field(default_factory=list)
    started_ns: int = 0
    finished_ns: int = 0
    first_next_ns: int = 0  # head of the batch's first /next read
    last_response_ns: int = 0  # body of the batch's last good /response read


@dataclass
class _Event:
    body: bytes
    parsed: Any
    # Encodings of the echo already proven equal to `parsed`; runtimes differ in JSON
    # spacing and escaping, so the first answer is checked structurally, later ones by bytes.
    accepted: set[bytes] = field(default_factory=set)


class _Request:
    __slots__ = ("arrival_ns", "body", "done_ns", "headers", "method", "target", "version")

    def __init__(
        self,
        method: bytes,
        target: bytes,
        version: bytes,
        headers: dict[bytes, bytes],
        arrival_ns: int,
    ) -> None:
        self.method = method
        self.target = target
        self.version = version
        self.headers = headers
        self.body = b""
        # Head fully received, and body fully received.
        self.arrival_ns = arrival_ns
        self.done_ns = arrival_ns


class RapiServer:
    def __init__(self, control: Connection) -> None:
        self._control = control
        self._send_lock = threading.Lock()
        self._cond = threading.Condition()
        self._events: dict[str, _Event] = {}
        # Batch state, guarded by _cond.
        self._batch_event: _Event | None = None
        self._remaining = 0
        self._batch_size = 0  # when the batch asked for "batch_done"; else 0
        self._stats = BatchStats()
        self._generation = 0
        self._outstanding: dict[str, int] = {}  # request id -> ns the /next answer was sent
        self._stopping = False
        self._conns: list[tuple[int, socket.socket]] = []
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(64)
        self.port: int = self._listener.getsockname()[1]

    # ---- harness side -------------------------------------------------------------

    def _notify(self, msg: tuple[Any, ...]) -> None:
        with self._send_lock:
            self._control.send(msg)

    def _fatal(self, message: str) -> None:
        with self._cond:
            self._stats.errors += 1
            if not self._stats.first_error:
                self._stats.first_error = message
        self._notify(("fatal", message))

    def control_loop(self) -> None:
        threading.Thread(target=self._accept_loop, daemon=True).start()
        self._notify(("ready", self.port))
        while True:
            try:
                msg = self._control.recv()
            except EOFError:
                break
            kind = msg[0]
            if kind == "load":
                body: bytes = msg[2]
                self._events[msg[1]] = _Event(body, json.loads(body))
            elif kind == "batch":
                with self._cond:
                    self._batch_event = self._events[msg[1]]
                    self._remaining = int(msg[2])
                    self._batch_size = int(msg[2]) if len(msg) > 3 and msg[3] else 0
                    self._stats = BatchStats(started_ns=time.monotonic_ns())
                    self._cond.notify_all()
            elif kind == "reset":
                self._reset()
                self._notify(("reset_done", msg[1]))
            elif kind == "stop":
                break
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        self._close_all()

    def _reset(self) -> None:
        """Forget the previous runtime process: its parked connections are closed."""
        with self._cond:
            self._generation += 1
            self._remaining = 0
            self._batch_event = None
            self._outstanding.clear()
            self._stats = BatchStats()
            old = [s for g, s in self._conns if g < self._generation]
            self._conns = [(g, s) for g, s in self._conns if g >= self._generation]
            self._cond.notify_all()
        for s in old:
            _close(s)

    def _close_all(self) -> None:
        with self._cond:
            conns, self._conns = self._conns, []
        for _, s in conns:
            _close(s)
        _close(self._listener)

    # ---- HTTP side ----------------------------------------------------------------

    def _accept_loop(self) -> None:
        while True:
            try:
                sock, _ = self._listener.accept()
            except OSError:
                return
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self._cond:
                gen = self._generation
                self._conns.append((gen, sock))
            threading.Thread(target=self._serve_conn, args=(sock, gen), daemon=True).start()

    def _serve_conn(self, sock: socket.socket, gen: int) -> None:
        reader = _Reader(sock)
        try:
            while True:
                req = reader.read_request()
                if req is None:
                    return
                if not self._dispatch(sock, req, gen):
                    return
                if req.version == b"HTTP/1.0" or req.headers.get(b"connection") == b"close":
                    return
        except (OSError, ProtocolError) as exc:
            with self._cond:
                current = gen == self._generation and not self._stopping
            if current and not isinstance(exc, ConnectionResetError):
                self._fatal(f"connection error: {exc!r}")
        finally:
            _close(sock)

    def _dispatch(self, sock: socket.socket, req: _Request, gen: int) -> bool:
        target = req.target
        if req.method == b"GET" and target == NEXT_PATH:
            return self._next(sock, gen, req.arrival_ns)
        if req.method == b"POST" and target.startswith(INVOKE_PREFIX):
            rest = target[len(INVOKE_PREFIX) :]
            if rest.endswith(RESPONSE_SUFFIX):
                self._response(rest[: -len(RESPONSE_SUFFIX)].decode(), req)
                sock.sendall(ACCEPTED)
                return True
            if rest.endswith(ERROR_SUFFIX):
                self._error(rest[: -len(ERROR_SUFFIX)].decode(), req)
                sock.sendall(ACCEPTED)
                return True
        if req.method == b"POST" and target == INIT_ERROR_PATH:
            sock.sendall(ACCEPTED)
            kind = req.headers.get(ERROR_TYPE_KEY, b"?").decode()
            self._fatal(f"runtime reported an init error {kind}: {req.body[:2000]!r}")
            return True
        if req.method == b"POST" and target == EXT_REGISTER_PATH:
            body = json.dumps(
                {"functionName": "bench", "functionVersion": "$LATEST", "handler": "bench"}
            ).encode()
            sock.sendall(
                b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                + f"{protocol.EXTENSION_ID_HEADER}: {uuid.uuid4()}\r\n".encode()
                + f"Content-Length: {len(body)}\r\n\r\n".encode()
                + body
            )
            return True
        if req.method == b"GET" and target == EXT_NEXT_PATH:
            # Extensions only get SHUTDOWN; the bench never sends one, so park until reset.
            with self._cond:
                while gen == self._generation and not self._stopping:
                    self._cond.wait()
            return False
        msg = b"not found"
        sock.sendall(
            b"HTTP/1.1 404 Not Found\r\nContent-Length: "
            + str(len(msg)).encode()
            + b"\r\n\r\n"
            + msg
        )
        self._fatal(f"unexpected request {req.method.decode()} {target.decode()}")
        return True

    def _next(self, sock: socket.socket, gen: int, arrival: int) -> bool:
        with self._cond:
            if self._remaining <= 0 and gen == self._generation:
                stats = self._stats
                stats.finished_ns = arrival
                self._notify(("idle", arrival, stats))
            while self._remaining <= 0 and gen == self._generation and not self._stopping:
                self._cond.wait()
            if gen != self._generation or self._stopping:
                return False
            self._remaining -= 1
            event = self._batch_event
            assert event is not None
            self._stats.served += 1
            if not self._stats.first_next_ns:
                self._stats.first_next_ns = arrival
        request_id = str(uuid.uuid4())
        now_ns = time.time_ns()
        deadline = now_ns // 1_000_000 + DEADLINE_AHEAD_MS
        # A new trace id per invoke, like Lambda: a runtime must not get to cache it.
        rnd = os.urandom(20).hex()
        trace = f"Root=1-{now_ns // 1_000_000_000:08x}-{rnd[:24]};Parent={rnd[24:]};Sampled=0"
        head = (
            "HTTP/1.1 200 OK\r\n"
            "Content-Type: application/json\r\n"
            f"{protocol.REQUEST_ID_HEADER}: {request_id}\r\n"
            f"{protocol.DEADLINE_HEADER}: {deadline}\r\n"
            f"{protocol.FUNCTION_ARN_HEADER}: {FUNCTION_ARN}\r\n"
            f"{protocol.TRACE_ID_HEADER}: {trace}\r\n"
            f"Content-Length: {len(event.body)}\r\n\r\n"
        ).encode()
        with self._cond:
            # Recorded before writing: a runtime may answer on another connection.
            self._outstanding[request_id] = time.monotonic_ns()
        if len(event.body) < 16384:
            sock.sendall(head + event.body)
        else:
            sock.sendall(head)
            sock.sendall(event.body)
        return True

    def _response(self, request_id: str, req: _Request) -> None:
        done = req.done_ns
        with self._cond:
            sent = self._outstanding.pop(request_id, None)
            event = self._batch_event
        if sent is None or event is None:
            self._fatal(f"/response for unknown or already answered request id {request_id}")
            return
        body = req.body
        if body not in event.accepted:
            try:
                ok = json.loads(body) == event.parsed
            except ValueError:
                ok = False
            if not ok:
                self._fatal(
                    f"wrong echo for {request_id}: got {len(body)} bytes, "
                    f"expected the {len(event.body)}-byte event back; starts {body[:200]!r}"
                )
                return
            event.accepted.add(bytes(body))
        with self._cond:
            self._stats.responses += 1
            self._stats.wall_ns.append(done - sent)
            self._stats.last_response_ns = done
            finished = self._stats.responses == self._batch_size > 0
        if finished:
            self._notify(("batch_done", self._stats))

    def _error(self, request_id: str, req: _Request) -> None:
        with self._cond:
            self._outstanding.pop(request_id, None)
        kind = req.headers.get(ERROR_TYPE_KEY, b"?").decode()
        self._fatal(f"invoke {request_id} failed with {kind}: {req.body[:2000]!r}")


class _Reader:
    """Buffered HTTP/1.1 request reader: Content-Length and chunked bodies, 100-continue."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self._buf = bytearray()

    def _fill(self) -> bool:
        chunk = self._sock.recv(262144)
        if not chunk:
            return False
        self._buf += chunk
        return True

    def read_request(self) -> _Request | None:
        buf = self._buf
        start = 0
        while True:
            idx = buf.find(b"\r\n\r\n", start)
            if idx >= 0:
                break
            if len(buf) > MAX_HEADER_BYTES:
                raise ProtocolError("request head too large")
            start = max(0, len(buf) - 3)
            if not self._fill():
                if buf:
                    raise ProtocolError("connection closed in the middle of a request head")
                return None
        arrival = time.monotonic_ns()
        lines = bytes(buf[:idx]).split(b"\r\n")
        del buf[: idx + 4]
        try:
            method, target, version = lines[0].split(b" ", 2)
        except ValueError:
            raise ProtocolError(f"bad request line {lines[0][:100]!r}") from None
        headers: dict[bytes, bytes] = {}
        for line in lines[1:]:
            name, sep, value = line.partition(b":")
            if not sep:
                raise ProtocolError(f"bad header line {line[:100]!r}")
            headers[name.strip().lower()] = value.strip()
        req = _Request(method, target, version, headers, arrival)
        if headers.get(b"expect", b"").lower() == b"100-continue":
            self._sock.sendall(CONTINUE)
        if headers.get(b"transfer-encoding", b"").lower() == b"chunked":
            req.body = self._read_chunked()
        elif b"content-length" in headers:
            try:
                length = int(headers[b"content-length"])
            except ValueError:
                raise ProtocolError("bad Content-Length") from None
            req.body = self._read_exact(length)
        req.done_ns = time.monotonic_ns()
        return req

    def _read_exact(self, n: int) -> bytes:
        buf = self._buf
        if len(buf) >= n:
            out = bytes(buf[:n])
            del buf[:n]
            return out
        out_arr = bytearray(n)
        view = memoryview(out_arr)
        have = len(buf)
        view[:have] = buf
        buf.clear()
        while have < n:
            got = self._sock.recv_into(view[have:])
            if got == 0:
                raise ProtocolError(f"connection closed after {have} of {n} body bytes")
            have += got
        return bytes(out_arr)

    def _read_line(self) -> bytes:
        start = 0
        while True:
            idx = self._buf.find(b"\r\n", start)
            if idx >= 0:
                line = bytes(self._buf[:idx])
                del self._buf[: idx + 2]
                return line
            start = max(0, len(self._buf) - 1)
            if not self._fill():
                raise ProtocolError("connection closed inside a chunked body")

    def _read_chunked(self) -> bytes:
        parts: list[bytes] = []
        while True:
            size_line = self._read_line().split(b";", 1)[0].strip()
            try:
                size = int(size_line, 16)
            except ValueError:
                raise ProtocolError(f"bad chunk size {size_line[:40]!r}") from None
            if size == 0:
                while self._read_line():  # trailers, up to the empty line
                    pass
                return b"".join(parts)
            parts.append(self._read_exact(size))
            if self._read_exact(2) != b"\r\n":
                raise ProtocolError("chunk not followed by CRLF")


def _close(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    sock.close()


def serve(control: Connection, cpu: int | None = None) -> None:
    """Process entry point (multiprocessing target), optionally pinned to one CPU."""
    if cpu is not None:
        os.sched_setaffinity(0, {cpu})
    # The server's own pauses would show up as runtime wall time.
    gc.disable()
    RapiServer(control).control_loop()
