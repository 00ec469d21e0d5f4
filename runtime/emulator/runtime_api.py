"""The Runtime API one environment's runtime talks to, with Lambda's status codes.

Each environment has its own port (see :mod:`runtime.emulator.lifecycle`), so one
:class:`RuntimeApi` serves exactly one environment and its strict state machine:

* ``GET /runtime/invocation/next``: parks until an invoke is assigned. The first call ends init.
  403 while an invoke is outstanding or another ``/next`` is already waiting.
* ``POST /runtime/invocation/{id}/response`` and ``/error``: 202 for the outstanding invoke;
  410 for one that already timed out; 400 for an unknown or already answered id, a
  ``Lambda-Runtime-Invocation-Id`` that does not match the current attempt, or a bad
  ``Lambda-Runtime-Function-Response-Mode``; 403 during init; 413 for a payload over 6 MiB (the
  invoke then fails with ``Function.ResponseSizeTooLarge``). Streamed responses (chunked, with
  the error trailers): when the caller takes a stream (InvokeWithResponseStream, the
  function-URL front) each piece of body is passed on as it arrives, within Lambda's limits
  (200 MiB, then the stream is cut off with 413; past 6 MiB, 2 MiB/s unless
  ``stream_throttle`` is off) and no faster than the caller reads; other callers (Invoke, the
  RIE path) get the body assembled, within the buffered 6 MiB.
* ``POST /runtime/init/error``: 202 during init (the invoke that caused the init gets the error),
  403 afterwards.
* ``GET /runtime/restore/next`` (SnapStart, ``--snap-start``): 200 at the end of init, after the
  before-snapshot hooks; the snapshot and restore are simulated, and the environment is
  ``RESTORING`` until the runtime's first ``/next``. ``POST /runtime/restore/error``: 202 while
  restoring (the invoke waiting for the environment gets the error). Both 403 in any other
  state, or without SnapStart.
* ``POST /2020-01-01/extension/register``: 200 with ``Lambda-Extension-Identifier``; from then
  on the environment is shut down with SIGTERM and a grace period before SIGKILL.

With ``--max-concurrency N`` the port serves N slots (see :mod:`.environment`), each with the
state machine above: a connection belongs to the slot its first ``/next`` took (a runtime keeps
one connection per invoke loop), ``/response`` and ``/error`` go to the slot that handed out
that request id.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import time
import uuid
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING

import orjson

from runtime import protocol

from .environment import INIT, READY, RESTORING, Environment
from .invocation import Invocation, StreamSink
from .reports import error_payload_from_runtime
from .server import Headers, HttpConnection, Request

if TYPE_CHECKING:
    from .config import EmulatorConfig
    from .lifecycle import Lifecycle

MAX_SYNC_PAYLOAD = protocol.MAX_SYNC_PAYLOAD
_PREFIX = protocol.RUNTIME_BASE.encode() + b"/"
_NEXT = protocol.NEXT_PATH.encode()
_INIT_ERROR = protocol.INIT_ERROR_PATH.encode()
_INVOCATION = protocol.INVOCATION_PREFIX.encode()
_RESPONSE = protocol.RESPONSE_SUFFIX.encode().lstrip(b"/")
_ERROR = protocol.ERROR_SUFFIX.encode().lstrip(b"/")
_RESTORE = _PREFIX + b"restore/"
_RESTORE_NEXT = protocol.RESTORE_NEXT_PATH.encode()
_RESTORE_ERROR = protocol.RESTORE_ERROR_PATH.encode()
_EXT_REGISTER = protocol.EXTENSION_REGISTER_PATH.encode()
_EXT_NEXT = protocol.EXTENSION_NEXT_PATH.encode()
_OTLP_TRACES = b"/v1/traces"

_ERROR_TYPE = protocol.ERROR_TYPE_HEADER.lower().encode()
_ERROR_BODY = protocol.ERROR_BODY_TRAILER.lower().encode()
_RESPONSE_MODE = protocol.RESPONSE_MODE_HEADER.lower().encode()
_STREAMING = protocol.RESPONSE_MODE_STREAMING.encode()
_INVOCATION_ID = protocol.INVOCATION_ID_KEY.encode()
_EXTENSION_NAME = protocol.EXTENSION_NAME_HEADER.lower().encode()
_EXTENSION_ID = protocol.EXTENSION_ID_HEADER.encode()

_ACCEPTED = b'{"status":"OK"}'
_JSON = (b"Content-Type", b"application/json")

_RESPONSE_TOO_LARGE = orjson.dumps(
    {
        "errorMessage": "Response payload size exceeded maximum allowed payload size "
        f"({MAX_SYNC_PAYLOAD} bytes).",
        "errorType": "Function.ResponseSizeTooLarge",
    }
)

_STREAM_TOO_LARGE = orjson.dumps(
    {
        "errorMessage": "Response payload size exceeded maximum allowed payload size "
        f"({protocol.MAX_STREAMED_RESPONSE} bytes).",
        "errorType": "Function.ResponseSizeTooLarge",
    }
)
# A forwarded stream's size is checked by _Forwarder (which can end it at once), not by the
# server's body limit.
_UNLIMITED = 1 << 62
# Pauses shorter than this are not worth a timer: the next chunk catches up.
_MIN_PAUSE = 0.002

# Route codes kept in Request.state between start() and finish().
(
    _R_NEXT,
    _R_RESPONSE,
    _R_ERROR,
    _R_INIT_ERROR,
    _R_REGISTER,
    _R_EXT_NEXT,
    _R_OTLP,
    _R_RESTORE_NEXT,
    _R_RESTORE_ERROR,
    _R_UNKNOWN,
) = range(10)


def _error(req: Request, status: int, error_type: str, message: str) -> None:
    body = orjson.dumps({"errorMessage": message, "errorType": error_type})
    req.respond(status, [_JSON], body)


def _accepted(req: Request) -> None:
    req.respond(protocol.STATUS_ACCEPTED, [_JSON], _ACCEPTED)


class RuntimeApi:
    """server.Handler for one environment's Runtime API port."""

    def __init__(self, lifecycle: Lifecycle, env: Environment, config: EmulatorConfig) -> None:
        self.lifecycle = lifecycle
        self.env = env
        self.config = config
        # --max-concurrency: the slot each connection's /next took.
        self._slot_of: dict[HttpConnection, Environment] = {}

    # -- server.Handler

    def start(self, req: Request) -> None:
        target = req.target
        if target == _NEXT:
            req.state = (_R_NEXT, None)
        elif target.startswith(_INVOCATION):
            parts = target[len(_INVOCATION) :].split(b"/")
            if len(parts) == 2 and parts[1] == _RESPONSE:
                req.state = (_R_RESPONSE, parts[0].decode("latin-1"))
            elif len(parts) == 2 and parts[1] == _ERROR:
                req.state = (_R_ERROR, parts[0].decode("latin-1"))
            else:
                req.state = (_R_UNKNOWN, None)
        elif target == _INIT_ERROR:
            req.state = (_R_INIT_ERROR, None)
        elif target == _EXT_REGISTER:
            req.state = (_R_REGISTER, None)
        elif target == _EXT_NEXT:
            req.state = (_R_EXT_NEXT, None)
        elif target == _RESTORE_NEXT and self.config.snap_start:
            req.state = (_R_RESTORE_NEXT, None)
        elif target == _RESTORE_ERROR and self.config.snap_start:
            req.state = (_R_RESTORE_ERROR, None)
        elif target == _OTLP_TRACES and self.lifecycle.spans is not None:
            req.state = (_R_OTLP, None)
        else:
            req.state = (_R_UNKNOWN, None)
        req.max_body = MAX_SYNC_PAYLOAD
        route: int
        request_id: str
        route, request_id = req.state  # type: ignore[misc, assignment]
        if route == _R_RESPONSE:
            mode = req.headers.get(_RESPONSE_MODE)
            if mode is not None and mode.lower() == _STREAMING:
                self._start_stream(req, request_id)

    def _start_stream(self, req: Request, request_id: str) -> None:
        """A streamed response begins: pass it on as it arrives when the caller takes it so
        (anything invalid is answered at its end, by _answer, as for other posts)."""
        inv = self.env.current
        if inv is None or inv.request_id != request_id or inv.done:
            return
        sent_id = req.headers.get(_INVOCATION_ID)
        if sent_id is not None and sent_id.decode("latin-1") != inv.invocation_id:
            return
        inv.streaming = True
        sink = inv.sink
        if sink is None:
            # Invoke (RequestResponse), the RIE path: assembled, within the buffered limit.
            return
        req.max_body = _UNLIMITED
        req.on_data = _Forwarder(self, req, inv, sink, self.config.stream_throttle)
        sink.stream_started(
            req.headers.get(b"content-type", protocol.STREAM_DEFAULT_CONTENT_TYPE.encode())
        )

    def stream_too_large(self, req: Request, inv: Invocation) -> None:
        """A forwarded stream went over 200 MiB: the caller gets Lambda's error now, and the
        runtime a 413 and a closed connection (it was cut off)."""
        _error(
            req,
            protocol.STATUS_TOO_LARGE,
            "RequestEntityTooLarge",
            f"Exceeded maximum allowed streamed payload size ({protocol.MAX_STREAMED_RESPONSE} "
            "bytes).",
        )
        req.conn.close()
        if self.env.current is inv:
            self.lifecycle.complete(
                self.env, inv, _STREAM_TOO_LARGE, error_type="Function.ResponseSizeTooLarge"
            )

    def finish(self, req: Request) -> None:
        forwarder = req.on_data
        if isinstance(forwarder, _Forwarder) and forwarder.held:
            # The end of a throttled stream comes after its last bytes.
            forwarder.on_drained = lambda: self.finish(req)
            return
        route: int
        request_id: str
        route, request_id = req.state  # type: ignore[misc]
        method = req.method
        if route == _R_NEXT:
            if method != b"GET":
                return _error(req, 405, "MethodNotAllowed", "use GET for /invocation/next")
            self._next(req, self._slot_for_next(req) if self.env.shared else self.env)
        elif route in (_R_RESPONSE, _R_ERROR):
            if method != b"POST":
                return _error(req, 405, "MethodNotAllowed", "use POST")
            env = self._slot_for_answer(request_id) if self.env.shared else self.env
            self._answer(req, env, request_id, route == _R_ERROR)
        elif route == _R_INIT_ERROR:
            if method != b"POST":
                return _error(req, 405, "MethodNotAllowed", "use POST for /init/error")
            self._init_error(req)
        elif route == _R_REGISTER:
            self._register(req)
        elif route == _R_EXT_NEXT:
            # Internal extensions registered for no events: nothing will ever come.
            req.on_close = None
        elif route == _R_RESTORE_NEXT:
            if method != b"GET":
                return _error(req, 405, "MethodNotAllowed", "use GET for /restore/next")
            self._restore_next(req)
        elif route == _R_RESTORE_ERROR:
            if method != b"POST":
                return _error(req, 405, "MethodNotAllowed", "use POST for /restore/error")
            self._restore_error(req)
        elif route == _R_OTLP:
            if method != b"POST":
                return _error(req, 405, "MethodNotAllowed", "use POST for /v1/traces")
            self._traces(req)
        else:
            path = req.target.decode("latin-1")
            if req.target.startswith(_RESTORE):
                _error(
                    req,
                    protocol.STATUS_FORBIDDEN,
                    "InvalidStateTransition",
                    f"{path} is only for SnapStart (AWS_LAMBDA_INITIALIZATION_TYPE=snap-start)",
                )
            else:
                _error(req, 404, "NotFound", f"unknown Runtime API path {path}")

    def connection_lost(self, conn: HttpConnection) -> None:
        env = self._slot_of.pop(conn, self.env)
        parked = env.parked
        if parked is not None and parked.conn is conn:
            env.parked = None

    # -- slots (--max-concurrency)

    def _slots(self) -> tuple[Environment, ...]:
        return (self.env, *self.env.siblings)

    def _slot_for_next(self, req: Request) -> Environment:
        slot = self._slot_of.get(req.conn)
        if slot is not None:
            return slot
        taken = set(map(id, self._slot_of.values()))
        free = [s for s in self._slots() if id(s) not in taken]
        # A slot with an invoke waiting for it first, then one with nothing outstanding.
        for candidates in (
            [s for s in free if s.pending is not None],
            [s for s in free if s.current is None and s.parked is None],
            [s for s in self._slots() if s.current is None and s.parked is None],
        ):
            if candidates:
                slot = candidates[0]
                break
        else:
            return self.env  # every slot is busy: the leader's checks answer 403
        self._slot_of[req.conn] = slot
        return slot

    def _slot_for_answer(self, request_id: str) -> Environment:
        slots = self._slots()
        for slot in slots:
            if slot.current is not None and slot.current.request_id == request_id:
                return slot
        for slot in slots:
            if request_id in slot.finished:
                return slot
        return self.env

    # -- calls

    def _next(self, req: Request, env: Environment) -> None:
        life = self.lifecycle
        if env.current is not None:
            return _error(
                req,
                protocol.STATUS_FORBIDDEN,
                "InvalidStateTransition",
                f"invoke {env.current.request_id} is still outstanding: post its response or "
                "error before asking for the next one",
            )
        if env.parked is not None and not env.parked.closed:
            return _error(
                req,
                protocol.STATUS_FORBIDDEN,
                "InvalidStateTransition",
                "another /next request is already waiting on this environment",
            )
        if env.init_error is not None:
            return _error(
                req,
                protocol.STATUS_FORBIDDEN,
                "InvalidStateTransition",
                "init failed; the runtime must exit",
            )
        if env.ending is not None:
            # Asking for more work is what ends the invoke answered last (END, REPORT).
            life.end_invoke(env)
        if env.state not in (INIT, READY, RESTORING):
            return _error(
                req,
                protocol.STATUS_FATAL,
                "EnvironmentShutDown",
                "this environment is shutting down",
            )
        env.parked = req
        req.on_close = lambda closed: self._parked_closed(env, closed)
        if env.state == INIT:
            life.init_done(env)
        elif env.state == RESTORING:
            life.restore_done(env)
        if env.pending is not None and env.parked is req and not life.closing:
            life.deliver(env)

    def _parked_closed(self, env: Environment, req: Request) -> None:
        if env.parked is req:
            env.parked = None

    def _answer(self, req: Request, env: Environment, request_id: str, is_error: bool) -> None:
        inv = env.current
        if inv is None or inv.request_id != request_id:
            how = env.finished.get(request_id)
            if how == "timeout":
                return _error(
                    req,
                    protocol.STATUS_GONE,
                    "InvocationTimedOut",
                    f"invoke {request_id} already timed out",
                )
            if env.state == INIT:
                return _error(
                    req,
                    protocol.STATUS_FORBIDDEN,
                    "InvalidStateTransition",
                    "no invoke has been handed out yet (init is not finished)",
                )
            if how == "answered":
                return _error(
                    req,
                    protocol.STATUS_BAD_REQUEST,
                    "InvalidRequestID",
                    f"invoke {request_id} was already answered",
                )
            return _error(
                req,
                protocol.STATUS_BAD_REQUEST,
                "InvalidRequestID",
                f"unknown request id {request_id}",
            )
        sent_id = req.headers.get(_INVOCATION_ID)
        if sent_id is not None and sent_id.decode("latin-1") != inv.invocation_id:
            return _error(
                req,
                protocol.STATUS_BAD_REQUEST,
                "InvalidInvocationID",
                "Lambda-Runtime-Invocation-Id does not match this invoke's attempt",
            )
        mode = req.headers.get(_RESPONSE_MODE)
        streaming = False
        if mode is not None:
            if is_error or mode.lower() != _STREAMING:
                return _error(
                    req,
                    protocol.STATUS_BAD_REQUEST,
                    "InvalidResponseModeHeader",
                    f"unsupported response mode {mode.decode('latin-1')!r}",
                )
            streaming = True
        life = self.lifecycle
        if req.too_large:
            _error(
                req,
                protocol.STATUS_TOO_LARGE,
                "RequestEntityTooLarge",
                f"Exceeded maximum allowed payload size ({MAX_SYNC_PAYLOAD} bytes).",
            )
            life.complete(env, inv, _RESPONSE_TOO_LARGE, error_type="Function.ResponseSizeTooLarge")
            return
        _accepted(req)
        if is_error:
            header = req.headers.get(_ERROR_TYPE, b"").decode("latin-1")
            payload = error_payload_from_runtime(header or "Runtime.Unknown", req.body)
            life.complete(env, inv, payload, error_type=header or _body_type(payload))
            return
        if streaming and req.trailers.get(_ERROR_TYPE):
            error_type = req.trailers[_ERROR_TYPE].decode("latin-1")
            life.complete(
                env,
                inv,
                _trailer_error(error_type, req.trailers.get(_ERROR_BODY)),
                error_type=error_type,
            )
            return
        content_type = req.headers.get(b"content-type", b"application/json")
        life.complete(env, inv, req.body, content_type=content_type)

    def _traces(self, req: Request) -> None:
        """OTLP/HTTP trace export (``--otel-console``): decode, answer, hand to the console."""
        from .otel import OtlpError, OtlpUnsupported, read_body

        if req.too_large:
            return _error(
                req,
                protocol.STATUS_TOO_LARGE,
                "RequestEntityTooLarge",
                "trace export body too large",
            )
        try:
            spans = read_body(
                req.body, req.headers.get(b"content-type"), req.headers.get(b"content-encoding")
            )
        except OtlpError as exc:
            status = 415 if isinstance(exc, OtlpUnsupported) else 400
            return _error(req, status, "InvalidRequest", f"OTLP trace export: {exc}")
        # An empty ExportTraceServiceResponse: everything was accepted.
        req.respond(protocol.STATUS_OK, [(b"Content-Type", b"application/x-protobuf")])
        self.lifecycle.spans_received(self.env, spans)

    def _init_error(self, req: Request) -> None:
        env = self.env
        if env.state != INIT or env.init_error is not None:
            return _error(
                req,
                protocol.STATUS_FORBIDDEN,
                "InvalidStateTransition",
                "init errors can only be reported once, during init",
            )
        _accepted(req)
        self.lifecycle.init_error_posted(env, *_posted_error(req))

    def _restore_next(self, req: Request) -> None:
        env = self.env
        if env.state != INIT or env.init_error is not None:
            return _error(
                req,
                protocol.STATUS_FORBIDDEN,
                "InvalidStateTransition",
                "/restore/next ends init, once: the environment is past init",
            )
        # The body of Lambda's answer carries nothing a runtime needs.
        req.respond(protocol.STATUS_OK, [_JSON], b"{}")
        self.lifecycle.snapshot_and_restore(env)

    def _restore_error(self, req: Request) -> None:
        env = self.env
        if env.state != RESTORING or env.restore_error is not None:
            return _error(
                req,
                protocol.STATUS_FORBIDDEN,
                "InvalidStateTransition",
                "restore errors can only be reported once, while restoring",
            )
        _accepted(req)
        self.lifecycle.restore_error_posted(env, *_posted_error(req))

    def _register(self, req: Request) -> None:
        if req.method != b"POST":
            return _error(req, 405, "MethodNotAllowed", "use POST for /extension/register")
        env = self.env
        if env.state != INIT:
            return _error(
                req,
                protocol.STATUS_FORBIDDEN,
                "InvalidStateTransition",
                "extensions can only register during init",
            )
        name = req.headers.get(_EXTENSION_NAME)
        if not name:
            return _error(
                req,
                protocol.STATUS_BAD_REQUEST,
                "InvalidRequest",
                "missing Lambda-Extension-Name header",
            )
        try:
            events = orjson.loads(req.body or b"{}").get("events", [])
        except (orjson.JSONDecodeError, AttributeError):
            return _error(
                req,
                protocol.STATUS_BAD_REQUEST,
                "InvalidRequest",
                'body must be JSON like {"events": []}',
            )
        if not isinstance(events, list):
            return _error(
                req, protocol.STATUS_BAD_REQUEST, "InvalidRequest", "events must be a list"
            )
        env.has_extension = True
        body = orjson.dumps(
            {
                "functionName": self.config.function_name,
                "functionVersion": "$LATEST",
                "handler": self.config.handler,
            }
        )
        headers: Headers = [_JSON, (_EXTENSION_ID, str(uuid.uuid4()).encode())]
        req.respond(protocol.STATUS_OK, headers, body)


class _Forwarder:
    """Takes a streamed response's body bytes as they arrive and hands them to the caller,
    with Lambda's limits: 200 MiB at most, and after the first 6 MiB, 2 MiB/s (``throttle``);
    and no faster than the caller reads them.

    Throttled bytes are held back until their time (and the runtime's connection is not read
    meanwhile, so the runtime feels the limit too); the end of the response waits for them.
    """

    __slots__ = (
        "api",
        "full_at",
        "held",
        "inv",
        "on_drained",
        "received",
        "released",
        "req",
        "sink",
        "throttle",
        "timer",
    )

    def __init__(
        self, api: RuntimeApi, req: Request, inv: Invocation, sink: StreamSink, throttle: bool
    ) -> None:
        self.api = api
        self.req = req
        self.inv = inv
        self.sink = sink
        self.throttle = throttle
        self.received = 0
        self.released = 0
        self.held: deque[bytes] = deque()
        self.timer: asyncio.TimerHandle | None = None
        # When the stream went past its full-speed part (time.monotonic()).
        self.full_at: float | None = None
        # Runs once nothing is held back any more (the end of the response, deferred).
        self.on_drained: Callable[[], None] | None = None

    def __call__(self, data: bytes) -> None:
        inv = self.inv
        if inv.done:
            # Timed out, or cut off at the limit: the rest goes nowhere.
            return
        received = self.received + len(data)
        if received > protocol.MAX_STREAMED_RESPONSE:
            self.held.clear()
            self.api.stream_too_large(self.req, inv)
            return
        self.received = inv.streamed = received
        if self.held or (self.throttle and self._wait(received) > _MIN_PAUSE):
            self.held.append(data)
            if self.timer is None:
                self._schedule()
            return
        self.released = received
        self._deliver(data)

    def _deliver(self, data: bytes) -> None:
        self.sink.stream_data(data)
        # A caller that reads slowly slows the runtime down, as on Lambda, instead of the
        # emulator buffering the whole stream.
        if self.sink.when_drained(self.req.conn.release):
            self.req.conn.hold()

    def _wait(self, upto: int) -> float:
        """Seconds until the stream may have delivered ``upto`` bytes."""
        if upto <= protocol.STREAM_FULL_SPEED_BYTES:
            return 0.0
        now = time.monotonic()
        if self.full_at is None:
            self.full_at = now
        over = upto - protocol.STREAM_FULL_SPEED_BYTES
        return self.full_at + over / protocol.STREAM_THROTTLED_BYTES_PER_S - now

    def _schedule(self) -> None:
        delay = max(0.0, self._wait(self.released + len(self.held[0])))
        self.req.conn.throttle(delay)
        self.timer = asyncio.get_running_loop().call_later(delay, self._release)

    def _release(self) -> None:
        self.timer = None
        held = self.held
        while held:
            if self.inv.done:
                held.clear()
                break
            if self._wait(self.released + len(held[0])) > _MIN_PAUSE:
                self._schedule()
                return
            data = held.popleft()
            self.released += len(data)
            self._deliver(data)
        callback, self.on_drained = self.on_drained, None
        if callback is not None:
            callback()
def _posted_error(req: Request) -> tuple[str, bytes]:
    """The error type (header) and body of an /init/error or /restore/error post."""
    error_type = req.headers.get(_ERROR_TYPE, b"").decode("latin-1") or "Runtime.Unknown"
    return error_type, (req.body if not req.too_large else b"")


def _body_type(payload: bytes) -> str:
    try:
        value = orjson.loads(payload).get("errorType")
    except (orjson.JSONDecodeError, AttributeError):
        value = None
    return value if isinstance(value, str) and value else "Runtime.Unknown"


def _trailer_error(error_type: str, encoded: bytes | None) -> bytes:
    """The error a streamed response reported in its trailers (body trailer: base64 JSON)."""
    if encoded:
        try:
            body = base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError):
            body = b""
        return error_payload_from_runtime(error_type, body)
    return error_payload_from_runtime(error_type, b"")


__all__ = ["READY", "RuntimeApi"]
