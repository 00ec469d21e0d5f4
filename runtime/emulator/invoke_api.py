"""The Invoke API that callers (boto3, the AWS CLI, curl, scripts written for RIE) talk to.

``POST /2015-03-31/functions/{name}/invocations`` where ``name`` is the function name, ``function``
(the path of AWS's Runtime Interface Emulator), a full or partial ARN, optionally with the
``$LATEST`` qualifier (as ``name:$LATEST`` or ``?Qualifier=$LATEST``).

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
import time
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING
from urllib.parse import parse_qs, unquote

import orjson

from runtime import protocol
from runtime.protocol import MAX_CLIENT_CONTEXT, MAX_EVENT_PAYLOAD, MAX_SYNC_PAYLOAD

from .invocation import EVENT, REQUEST_RESPONSE, Invocation
from .reports import api_error
from .server import Headers, HttpConnection, Request

if TYPE_CHECKING:
    from .config import EmulatorConfig
    from .scheduler import Scheduler

_FUNCTIONS = protocol.FUNCTIONS_PREFIX.encode()
_STREAM_FUNCTIONS = protocol.STREAM_FUNCTIONS_PREFIX.encode()
_INVOCATIONS = b"/invocations"
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


def make_trace_id() -> str:
    """A new X-Ray trace header, as Lambda passes it to the runtime when the caller sent none."""
    return (
        f"Root=1-{int(time.time()):08x}-{os.urandom(12).hex()};"
        f"Parent={os.urandom(8).hex()};Sampled=0"
    )


class InvokeApi:
    """server.Handler for the Invoke API port."""

    def __init__(
        self,
        config: EmulatorConfig,
        scheduler: Callable[[], Scheduler],
        on_event: Callable[[Invocation], None] | None = None,
    ) -> None:
        self.config = config
        self._scheduler = scheduler
        self.on_event = on_event
        name = config.function_name
        self.names = {name, protocol.RIE_FUNCTION_NAME}
        self.arn_prefix = f"arn:aws:lambda:{config.region}:"

    # -- server.Handler

    def start(self, req: Request) -> None:
        kind = req.headers.get(_INVOCATION_TYPE)
        req.max_body = MAX_EVENT_PAYLOAD if kind == _EVENT else MAX_SYNC_PAYLOAD

    def connection_lost(self, conn: HttpConnection) -> None:
        pass

    def finish(self, req: Request) -> None:
        target = req.target
        path, _, query = target.partition(b"?")
        if not (path.startswith(_FUNCTIONS) and path.endswith(_INVOCATIONS)):
            if path.startswith(_STREAM_FUNCTIONS):
                return _api_error(
                    req,
                    400,
                    "InvalidRequestContentException",
                    "response streaming invokes are not supported by this emulator",
                )
            return _api_error(
                req,
                404,
                "UnknownOperationException",
                f"unknown operation {req.method.decode()} {path.decode('latin-1')}",
            )
        if req.method != b"POST":
            return _api_error(req, 405, "UnknownOperationException", "Invoke takes POST")
        name = unquote(path[len(_FUNCTIONS) : -len(_INVOCATIONS)].decode("latin-1"))
        qualifier = None
        if query:
            values = parse_qs(query.decode("latin-1")).get("Qualifier")
            qualifier = values[0] if values else None
        if not self._known(name, qualifier):
            return _api_error(
                req,
                404,
                "ResourceNotFoundException",
                f"Function not found: {self.config.function_arn}"
                if name in self.names
                else f"Function not found: {name}",
            )
        headers = req.headers
        kind_raw = headers.get(_INVOCATION_TYPE, _REQUEST_RESPONSE)
        kind = kind_raw.decode("latin-1")
        if kind not in (REQUEST_RESPONSE, EVENT, _DRY_RUN):
            return _api_error(
                req,
                400,
                "ValidationException",
                f"1 validation error detected: Value '{kind}' at 'invocationType' failed to "
                "satisfy constraint: Member must satisfy enum value set: "
                "[Event, RequestResponse, DryRun]",
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
        if kind == _DRY_RUN:
            req.respond(204, [(_REQUEST_ID, str(uuid.uuid4()).encode()), _VERSION])
            return
        trace = headers.get(_TRACE_ID)
        trace_id = trace.decode("latin-1") if trace and b"Root=" in trace else make_trace_id()
        tenant = headers.get(_TENANT_ID)
        inv = Invocation(
            body,
            kind=kind,
            trace_id=trace_id,
            client_context=client_context,
            tenant_id=tenant.decode("latin-1") if tenant else None,
        )
        sched = self._scheduler()
        if kind == EVENT:
            if sched.closing:
                return _api_error(req, 503, "ServiceException", "The emulator is shutting down")
            req.respond(202, [(_REQUEST_ID, inv.request_id.encode())])
            if self.on_event is not None:
                self.on_event(inv)
            sched.submit_event(inv)
            return
        if log_type == _TAIL:
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

    def _known(self, name: str, qualifier: str | None) -> bool:
        if name.startswith("arn:"):
            # arn:aws:lambda:REGION:ACCOUNT:function:NAME[:QUALIFIER]
            parts = name.split(":")
            if (
                len(parts) not in (7, 8)
                or parts[5] != "function"
                or not name.startswith(self.arn_prefix)
            ):
                return False
            name = parts[6]
            if len(parts) == 8:
                qualifier = parts[7]
        elif name.count(":") >= 2:
            # ACCOUNT:function:NAME[:QUALIFIER]
            parts = name.split(":")
            if parts[1] != "function" or len(parts) > 4:
                return False
            name = parts[2]
            if len(parts) == 4:
                qualifier = parts[3]
        elif ":" in name:
            name, qualifier = name.split(":", 1)
        return name in self.names and qualifier in (None, "$LATEST")

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


def _api_error(req: Request, status: int, code: str, message: str, **extra: str) -> None:
    req.respond(
        status,
        [
            (b"Content-Type", b"application/json"),
            (_ERROR_TYPE, code.encode()),
            # A request id in the UUID form every other response uses.
            (_REQUEST_ID, str(uuid.uuid4()).encode()),
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
        value = orjson.loads(decoded)
    except (binascii.Error, ValueError):
        return None
    if not isinstance(value, dict):
        return None
    return decoded.decode("utf-8")
