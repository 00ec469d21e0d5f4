"""The Invoke API that callers (boto3, the AWS CLI, curl, scripts written for RIE) talk to.

``POST /2015-03-31/functions/{name}/invocations`` where ``name`` is the function name, ``function``
(the path of AWS's Runtime Interface Emulator), a full or partial ARN, optionally with the
``$LATEST`` qualifier (as ``name:$LATEST`` or ``?Qualifier=$LATEST``).

``POST /2021-11-15/functions/{name}/response-streaming-invocations`` (InvokeWithResponseStream,
boto3's ``invoke_with_response_stream``) takes the same names and headers (``RequestResponse``
or ``DryRun``) and answers 200 ``application/vnd.amazon.eventstream``: a ``PayloadChunk`` event
per piece of the function's stream as it arrives (one for a buffered result), then
``InvokeComplete`` with ``ErrorCode`` (the error type) and ``ErrorDetails`` (its message) for a
function error and ``LogResult`` with ``Tail``.

Headers honoured: ``X-Amz-Invocation-Type`` (``RequestResponse``, ``Event``: 202 and run in the
background with Lambda's two retries, ``DryRun``: 204), ``X-Amz-Log-Type: Tail`` (answers
``X-Amz-Log-Result``, once the invoke is over so that the tail ends with its REPORT),
``X-Amz-Client-Context`` (base64 JSON), ``X-Amzn-Trace-Id`` (one is made up in X-Ray format
when absent) and ``X-Amz-Tenant-Id``. Errors of the API itself carry ``x-amzn-ErrorType`` and a
``{"Type", "message"}`` body, which botocore turns into the usual exceptions
(``TooManyRequestsException``, ``ResourceNotFoundException``, ...).
"""

from __future__ import annotations

import base64
import binascii
import os
import re
import time
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING
from urllib.parse import parse_qs, unquote

import orjson

from runtime import protocol
from runtime.errors import LambdaError
from runtime.marshal import decode_event
from runtime.protocol import MAX_CLIENT_CONTEXT, MAX_EVENT_PAYLOAD, MAX_SYNC_PAYLOAD

from . import eventstream
from .config import ConfigError
from .control_api import answer_read
from .functions import Function, FunctionRegistry, ShuttingDown
from .invocation import EVENT, REQUEST_RESPONSE, Invocation
from .reports import api_error
from .server import Headers, HttpConnection, Request

if TYPE_CHECKING:
    from .config import EmulatorConfig
    from .scheduler import Scheduler

_FUNCTIONS = protocol.FUNCTIONS_PREFIX.encode()
_STREAM_FUNCTIONS = protocol.STREAM_FUNCTIONS_PREFIX.encode()
_INVOCATIONS = b"/invocations"
_STREAM_INVOCATIONS = b"/response-streaming-invocations"
_VERSION = (protocol.EXECUTED_VERSION_HEADER.encode(), b"$LATEST")
_UNHANDLED = (protocol.FUNCTION_ERROR_HEADER.encode(), b"Unhandled")
_INVOCATION_TYPE = protocol.INVOCATION_TYPE_HEADER.lower().encode()
_LOG_TYPE = protocol.LOG_TYPE_HEADER.lower().encode()
_TAIL = protocol.LOG_TYPE_TAIL.encode()
_CLIENT_CONTEXT = protocol.INVOKE_CLIENT_CONTEXT_HEADER.lower().encode()
_TRACE_ID = protocol.INVOKE_TRACE_ID_HEADER.lower().encode()
_TENANT_ID = protocol.INVOKE_TENANT_ID_HEADER.lower().encode()
_REQUEST_ID = protocol.AMZN_REQUEST_ID_HEADER.encode()
_LOG_RESULT = protocol.LOG_RESULT_HEADER.encode()
_ERROR_TYPE = protocol.AMZN_ERROR_TYPE_HEADER.encode()
_DRY_RUN = protocol.INVOCATION_TYPE_DRY_RUN
_EVENT = protocol.INVOCATION_TYPE_EVENT.encode()
_REQUEST_RESPONSE = protocol.INVOCATION_TYPE_REQUEST_RESPONSE.encode()
_EMPTY_EVENT = b"{}"
# SnapStart failures Lambda answers as Invoke API errors (botocore's Lambda model), not as
# function errors: the hook's own error is in the function's log.
_API_FAILURES = {
    "Runtime.AfterRestoreError": (
        400,
        "SnapStartException",
        "The afterRestore() runtime hook encountered an error. For more information, check "
        "the Amazon CloudWatch logs.",
    ),
    "SnapStartTimeoutException": (
        408,
        "SnapStartTimeoutException",
        "Lambda couldn't restore the snapshot within the timeout limit.",
    ),
}
# Control characters (tab included): Lambda refuses them in these header values, and one
# forwarded into a Runtime API header would make the /next answer malformed.
_CONTROL = re.compile(rb"[\x00-\x1f\x7f]")


def make_trace_id() -> str:
    """A new X-Ray trace header, as Lambda passes it to the runtime when the caller sent none."""
    return (
        f"Root=1-{int(time.time()):08x}-{os.urandom(12).hex()};"
        f"Parent={os.urandom(8).hex()};Sampled=0"
    )


class InvokeApi:
    """server.Handler for the Invoke API port."""

    # Request heads (request line and headers) over 16 KiB are refused (431, or 414 for a long
    # URL), as Lambda's front end does.
    max_head = 16 * 1024

    def __init__(
        self,
        config: EmulatorConfig,
        scheduler: Callable[[], Scheduler],
        on_event: Callable[[Invocation], None] | None = None,
        *,
        functions: FunctionRegistry | None = None,
    ) -> None:
        self.config = config
        self._scheduler = scheduler
        self.on_event = on_event
        if functions is None:
            # One function, whose scheduler is the one given.
            functions = FunctionRegistry([Function(config)], region=config.region, rie_alias=True)
            functions.bind(lambda fn: scheduler())
        self.functions = functions

    # -- server.Handler

    def start(self, req: Request) -> None:
        kind = req.headers.get(_INVOCATION_TYPE)
        req.max_body = MAX_EVENT_PAYLOAD if kind == _EVENT else MAX_SYNC_PAYLOAD

    def connection_lost(self, conn: HttpConnection) -> None:
        pass

    def finish(self, req: Request) -> None:
        target = req.target
        path, _, query = target.partition(b"?")
        if (
            req.method == b"GET"
            and (path.startswith(_FUNCTIONS) or path == _FUNCTIONS[:-1])
            and not path.endswith(_INVOCATIONS)
        ):
            return answer_read(req, path, query, self.functions, _api_error)
        stream = path.startswith(_STREAM_FUNCTIONS) and path.endswith(_STREAM_INVOCATIONS)
        if stream:
            # InvokeWithResponseStream: the same checks, the answer as an event stream.
            prefix, suffix = _STREAM_FUNCTIONS, _STREAM_INVOCATIONS
        else:
            prefix, suffix = _FUNCTIONS, _INVOCATIONS
        if not (stream or (path.startswith(_FUNCTIONS) and path.endswith(_INVOCATIONS))):
            return _api_error(
                req,
                404,
                "UnknownOperationException",
                f"unknown operation {req.method.decode()} {path.decode('latin-1')}",
            )
        if req.method != b"POST":
            return _api_error(req, 405, "UnknownOperationException", "Invoke takes POST")
        name = unquote(path[len(prefix) : -len(suffix)].decode("latin-1"))
        qualifier = None
        if query:
            values = parse_qs(query.decode("latin-1")).get("Qualifier")
            qualifier = values[0] if values else None
        fn = self.functions.lookup(name, qualifier)
        if isinstance(fn, str):
            return _api_error(req, 404, "ResourceNotFoundException", fn)
        headers = req.headers
        kind_raw = headers.get(_INVOCATION_TYPE, _REQUEST_RESPONSE)
        kind = kind_raw.decode("latin-1")
        if kind not in (REQUEST_RESPONSE, EVENT, _DRY_RUN) or (stream and kind == EVENT):
            return _api_error(
                req,
                400,
                "ValidationException",
                f"1 validation error detected: Value '{kind}' at 'invocationType' failed to "
                "satisfy constraint: Member must satisfy enum value set: "
                + ("[RequestResponse, DryRun]" if stream else "[Event, RequestResponse, DryRun]"),
            )
        if req.too_large:
            limit = MAX_EVENT_PAYLOAD if kind == EVENT else MAX_SYNC_PAYLOAD - 100
            return _api_error(
                req,
                413,
                "RequestEntityTooLargeException",
                f"Request must be smaller than {limit} bytes for the "
                f"{'InvokeAsync' if kind == EVENT else 'InvokeFunction'} operation",
            )
        body = req.body
        if not body:
            body = _EMPTY_EVENT
        else:
            try:
                orjson.loads(body)
            except orjson.JSONDecodeError as exc:
                # orjson refuses some valid JSON (lone surrogate escapes, deep nesting): the
                # payload is refused only if the runtime's exact decoding refuses it too.
                try:
                    decode_event(body, None)
                except LambdaError:
                    return _api_error(
                        req,
                        400,
                        "InvalidRequestContentException",
                        f"Could not parse request body into json: {exc}",
                    )
        log_type = headers.get(_LOG_TYPE)
        if log_type is not None and log_type not in (_TAIL, b"None"):
            return _api_error(
                req, 400, "ValidationException", "X-Amz-Log-Type must be None or Tail"
            )
        client_context = None
        raw_context = headers.get(_CLIENT_CONTEXT)
        if raw_context:
            client_context = _decode_client_context(raw_context)
            if client_context is None:
                return _api_error(
                    req,
                    400,
                    "InvalidRequestContentException",
                    "Client context must be a valid Base64-encoded JSON object "
                    f"of at most {MAX_CLIENT_CONTEXT} bytes.",
                )
            if "\x7f" in client_context:  # the one control character JSON allows raw
                return _api_error(
                    req,
                    400,
                    "InvalidParameterValueException",
                    "Client context must not contain control characters",
                )
        trace = headers.get(_TRACE_ID)
        tenant = headers.get(_TENANT_ID)
        for header, value in (
            (protocol.INVOKE_TRACE_ID_HEADER, trace),
            (protocol.INVOKE_TENANT_ID_HEADER, tenant),
        ):
            if value is not None and _CONTROL.search(value):
                return _api_error(
                    req,
                    400,
                    "InvalidParameterValueException",
                    f"{header} must not contain control characters",
                )
        if kind == _DRY_RUN:
            req.respond(204, [(_REQUEST_ID, str(uuid.uuid4()).encode()), _VERSION])
            return
        trace_id = trace.decode("latin-1") if trace and b"Root=" in trace else make_trace_id()
        inv = Invocation(
            body,
            kind=kind,
            trace_id=trace_id,
            client_context=client_context,
            tenant_id=tenant.decode("latin-1") if tenant else None,
        )
        sched = self._function_scheduler(req, fn)
        if sched is None:
            return
        if kind == EVENT:
            if sched.closing:
                return _api_error(req, 503, "ServiceException", "The emulator is shutting down")
            req.respond(202, [(_REQUEST_ID, inv.request_id.encode())])
            if self.on_event is not None:
                self.on_event(inv)
            sched.submit_event(inv)
            return
        if stream:
            sink = EventStreamSink(req, inv.request_id, tail=log_type == _TAIL)
            inv.sink = sink
            inv.on_done = sink.done
        elif log_type == _TAIL:
            inv.on_done = lambda done: self._respond_with_tail(req, done)
        else:
            inv.on_done = lambda done: self._respond(req, done, False)
        if not sched.submit(inv):
            _api_error(
                req,
                429,
                "TooManyRequestsException",
                "Rate Exceeded.",
                Reason="ReservedFunctionConcurrentInvocationLimitExceeded",
            )

    def _function_scheduler(self, req: Request, fn: Function) -> Scheduler | None:
        """``fn``'s scheduler, made on its first invoke; None when that failed (answered)."""
        try:
            return self.functions.scheduler(fn)
        except ShuttingDown:
            _api_error(req, 503, "ServiceException", "The emulator is shutting down")
            return None
        except (ConfigError, OSError) as exc:
            # A layer that cannot be unpacked: the function cannot start, as on Lambda.
            _api_error(req, 502, "ServiceException", f"{fn.name} cannot start: {exc}")
            return None

    def _respond_with_tail(self, req: Request, inv: Invocation) -> None:
        """The log tail ends with the invoke's REPORT, as on Lambda: so the answer waits for the
        end of the invoke (the runtime's next /next), which is what the caller asked for."""
        if inv.ended or inv.error_type == "ServiceException":
            self._respond(req, inv, True)
        else:
            inv.on_end = lambda ended: self._respond(req, ended, True)

    def _respond(self, req: Request, inv: Invocation, tail: bool) -> None:
        if inv.error_type == "ServiceException":
            _service_error(req, inv)
            return
        api_failure = _API_FAILURES.get(inv.error_type or "")
        if api_failure is not None:
            _api_error(req, *api_failure, request_id=inv.request_id)
            return
        headers: Headers = [
            (b"Content-Type", inv.content_type),
            (_REQUEST_ID, inv.request_id.encode()),
            _VERSION,
        ]
        if inv.function_error:
            headers.append(_UNHANDLED)
        if tail:
            headers.append((_LOG_RESULT, inv.log_tail()))
        req.respond(200, headers, inv.payload)


class EventStreamSink:
    """Answers an InvokeWithResponseStream: 200 ``application/vnd.amazon.eventstream``, a
    ``PayloadChunk`` event per chunk as the runtime sends it, then ``InvokeComplete`` (with
    the function's error, and the log tail once the invoke is over when ``tail``). A buffered
    result goes out as one ``PayloadChunk``, as on Lambda."""

    __slots__ = ("req", "request_id", "started", "tail")

    def __init__(self, req: Request, request_id: str, *, tail: bool) -> None:
        self.req = req
        self.request_id = request_id
        self.tail = tail
        self.started = False

    def _head(self) -> None:
        if not self.started:
            self.started = True
            self.req.start_stream(
                200,
                [
                    (b"Content-Type", eventstream.CONTENT_TYPE.encode()),
                    (_REQUEST_ID, self.request_id.encode()),
                    _VERSION,
                ],
            )

    def stream_started(self, content_type: bytes) -> None:
        # The head waits for the first event: it carries nothing the caller needs earlier.
        pass

    def stream_data(self, data: bytes) -> None:
        # (A client that has gone simply stops receiving; the function runs to its end.)
        self._head()
        for event in eventstream.payload_chunks(data):
            self.req.send_chunk(event)

    def when_drained(self, callback: Callable[[], None]) -> bool:
        return self.req.streaming and self.req.conn.when_drained(callback)

    def done(self, inv: Invocation) -> None:
        if inv.error_type == "ServiceException" and not self.started:
            _api_error(self.req, 503, "ServiceException", "The emulator is shutting down")
            return
        self._head()
        if not inv.function_error and not inv.streaming and inv.payload:
            for event in eventstream.payload_chunks(inv.payload):
                self.req.send_chunk(event)
        if self.tail and not inv.ended:
            inv.on_end = self._complete
        else:
            self._complete(inv)

    def _complete(self, inv: Invocation) -> None:
        code = details = None
        if inv.function_error:
            code = inv.error_type or "Unhandled"
            details = _error_message(inv.payload)
        log = inv.log_tail().decode() if self.tail else None
        self.req.send_chunk(eventstream.invoke_complete(code, details, log))
        self.req.end_stream()


def _error_message(payload: bytes) -> str:
    try:
        message = orjson.loads(payload).get("errorMessage")
    except (orjson.JSONDecodeError, AttributeError):
        message = None
    return message if isinstance(message, str) else payload.decode("utf-8", "replace")


def _api_error(
    req: Request, status: int, code: str, message: str, request_id: str = "", **extra: str
) -> None:
    req.respond(
        status,
        [
            (b"Content-Type", b"application/json"),
            (_ERROR_TYPE, code.encode()),
            # The invoke's own id when there was one; else one in the UUID form every other
            # response uses.
            (_REQUEST_ID, (request_id or str(uuid.uuid4())).encode()),
        ],
        api_error(code, message, service=status >= 500, **extra),
    )


def _service_error(req: Request, inv: Invocation) -> None:
    """The emulator, not the function, failed the invoke: 503 while stopping, else 500 (an
    environment that could not be started), with the reason."""
    try:
        message = str(orjson.loads(inv.payload)["errorMessage"])
    except (orjson.JSONDecodeError, KeyError, TypeError):
        message = "The emulator is shutting down"
    status = 503 if message == "The emulator is shutting down" else 500
    _api_error(req, status, "ServiceException", message)


def _decode_client_context(raw: bytes) -> str | None:
    if len(raw) > MAX_CLIENT_CONTEXT:
        return None
    try:
        decoded = base64.b64decode(raw, validate=True)
        value = decode_event(decoded, None)  # what json.loads accepts, as for payloads
    except (binascii.Error, LambdaError):
        return None
    if not isinstance(value, dict):
        return None
    # Tab, CR and LF can only be whitespace between JSON tokens here (raw inside a string they
    # are invalid JSON), so making them spaces keeps the value and keeps the Runtime API header
    # a single line.
    return decoded.translate(_JSON_SPACE).decode("utf-8")


_JSON_SPACE = bytes.maketrans(b"\t\r\n", b"   ")
