"""The JSON log format, the per-invoke DEBUG buffer, and the runtime's own lines in both.

Imported only when one of them is used (``AWS_LAMBDA_LOG_FORMAT=JSON``,
``LAMBDA_RUNTIME_LOG_BUFFER``, or another opt-in that needs the failure of an invoke noted):
the default Text path (:mod:`runtime.logs`) never loads it.

JSON format, one object per line::

    {"timestamp": "2026-11-27T04:48:07.123Z", "level": "INFO", "message": "...",
     "logger": "app", "requestId": "...", "xrayTraceId": "...", "tenantId": "...",
     "traceId": "...", "spanId": "...", <extra fields>,
     "errorType": "...", "errorMessage": "...", "stackTrace": [...], "location": "..."}

``level`` is Python's name of the level (DEBUG, INFO, WARNING, ERROR, CRITICAL; a custom level
takes the name of the standard one below it, and anything below DEBUG is TRACE), as awslambdaric
and the managed runtime write it, so CloudWatch queries written for them keep working.
``xrayTraceId`` is there when the invoke came with an X-Ray header, ``tenantId`` when the invoke
has one, ``traceId``/``spanId`` when an OpenTelemetry span is active. Extra fields (stdlib
``extra=``, structlog's bound keys and context variables) never replace these keys.
"""

from __future__ import annotations

import contextlib
import logging
import sys
import time
import traceback
from types import TracebackType

import orjson

from runtime.context import invoke_context
from runtime.loghandlers import FunctionLogHandler
from runtime.logs import (
    DEBUG,
    TRACE,
    WARNING,
    LogRouting,
    Output,
    RuntimeLog,
    Writer,
    level_name,
    timestamp,
)
from runtime.observability.state import InvokeState, current_invoke

# typing costs milliseconds of cold start; it is only needed by the type checker.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from runtime.config import Config

RUNTIME_LOGGER = "lambda_runtime"  # the "logger" of the runtime's own JSON lines
ExcInfo = tuple[type[BaseException], BaseException, TracebackType | None]


# --- JSON rendering -------------------------------------------------------------------------


def fallback(value: Any) -> str:
    try:
        return str(value)
    except Exception:
        return f"<unprintable {type(value).__name__} object>"


def to_json(value: Any) -> str:
    """One line of JSON; values JSON cannot hold become their ``str``."""
    try:
        return orjson.dumps(value, default=fallback, option=orjson.OPT_NON_STR_KEYS).decode()
    except TypeError:  # e.g. an int beyond 64 bits, or a cycle: the slow path still logs it
        import json

        return json.dumps(value, default=fallback, ensure_ascii=False)


def _xray_root(header: str) -> str:
    for part in header.split(";"):
        if part.startswith("Root="):
            return part[5:]
    return header


def _span_ids() -> tuple[str, str] | None:
    # Only when OpenTelemetry is already loaded (by tracing or by user code): never imported here.
    otel = sys.modules.get("opentelemetry.trace")
    if otel is not None:
        span_context = otel.get_current_span().get_span_context()
        if span_context.is_valid:
            return f"{span_context.trace_id:032x}", f"{span_context.span_id:016x}"
    state = current_invoke.get()
    return state.trace_ids if state is not None else None


def _json_head(levelno: int, created: float, message: Any, logger: str | None) -> dict[str, Any]:
    out: dict[str, Any] = {
        "timestamp": timestamp(created),
        "level": level_name(levelno),
        "message": message,
    }
    if logger is not None:
        out["logger"] = logger
    ctx = invoke_context()
    if ctx is None:
        out["requestId"] = ""
    else:
        out["requestId"] = ctx.aws_request_id
        if ctx.xray_trace_id:
            out["xrayTraceId"] = _xray_root(ctx.xray_trace_id)
        if ctx.tenant_id is not None:
            out["tenantId"] = ctx.tenant_id
    ids = _span_ids()
    if ids is not None:
        out["traceId"], out["spanId"] = ids
    return out


def _add_exception(out: dict[str, Any], exc_info: ExcInfo, location: str | None) -> None:
    kind, value, tb = exc_info
    out["errorType"] = kind.__name__
    out["errorMessage"] = fallback(value)
    out["stackTrace"] = traceback.format_tb(tb)
    if location is not None:
        out["location"] = location


def json_line(
    levelno: int,
    message: Any,
    *,
    logger: str | None = None,
    created: float | None = None,
    fields: dict[str, Any] | None = None,
    exc_info: ExcInfo | None = None,
    location: str | None = None,
    stack_info: str | None = None,
) -> str:
    """A JSON-format record. Fields never replace the standard keys."""
    out = _json_head(levelno, time.time() if created is None else created, message, logger)
    if fields:
        for key, value in fields.items():
            if key not in out:
                out[key] = value
    if exc_info is not None:
        _add_exception(out, exc_info, location)
    if stack_info:
        out["stackInfo"] = stack_info
    return to_json(out) + "\n"


_BLANK_RECORD = logging.LogRecord("", 0, "", 0, "", None, None).__dict__
_STANDARD_ATTRS = frozenset(_BLANK_RECORD) | {"message", "asctime"}
_N_STANDARD_ATTRS = len(_BLANK_RECORD)


def json_record(record: logging.LogRecord) -> str:
    """A stdlib record in the JSON format: ``extra=`` keys become fields."""
    msg = record.msg
    message = msg if isinstance(msg, dict) and not record.args else record.getMessage()
    out = _json_head(record.levelno, record.created, message, record.name)
    attrs = record.__dict__
    if len(attrs) > _N_STANDARD_ATTRS:  # only then can there be extra= keys
        for key, value in attrs.items():
            if key not in _STANDARD_ATTRS and key not in out:
                out[key] = value
    exc_info = record.exc_info
    if exc_info and exc_info[0] is not None and exc_info[1] is not None:
        location = f"{record.pathname}:{record.funcName}:{record.lineno}"
        _add_exception(out, exc_info, location)  # type: ignore[arg-type]
    elif record.exc_text:
        out["stackTrace"] = record.exc_text.splitlines(keepends=True)
    if record.stack_info:
        out["stackInfo"] = record.stack_info
    return to_json(out) + "\n"


# --- the DEBUG buffer and the runtime's own lines ---------------------------------------------


class BufferingWriter(Writer):
    """A :class:`Writer` that keeps records in [buffer_from, threshold) in the invoke's buffer."""

    def __init__(self, output: Output, threshold: int, buffer_from: int) -> None:
        super().__init__(output, threshold)
        self.buffer_from = min(buffer_from, threshold)

    def emit(self, line: str, levelno: int, created: float) -> None:
        if levelno >= self.threshold:
            self.output.write(line, levelno, created)
        elif levelno >= self.buffer_from:
            state = current_invoke.get()
            if state is not None and state.log_buffer is not None:
                state.log_buffer.append((line, levelno, created))
                state.buffered += 1


class ObservedRuntimeLog(RuntimeLog):
    """The runtime's lines in either format; a failed invoke's error brings its DEBUG records
    out first and counts as a failure for the metrics."""

    def __init__(self, writer: Writer, *, json: bool) -> None:
        super().__init__(sys.stdout, writer=writer)
        self._json = json

    def render(self, level: str, levelno: int, message: str, created: float) -> str:
        if self._json:
            return json_line(levelno, message, logger=RUNTIME_LOGGER, created=created)
        return super().render(level, levelno, message, created)

    def error(self, error_body: dict[str, Any]) -> None:
        state = current_invoke.get()
        if state is not None:
            state.failed = True
            with contextlib.suppress(OSError, ValueError):
                self._flush_buffer(state)
        if not self._json:
            super().error(error_body)
            return
        created = time.time()
        headline = f"{error_body.get('errorType', '')}: {error_body.get('errorMessage', '')}"
        out = _json_head(logging.ERROR, created, headline, RUNTIME_LOGGER)
        if error_body.get("requestId"):
            out["requestId"] = error_body["requestId"]
        for key, value in error_body.items():
            if key != "requestId":
                out[key] = value
        with contextlib.suppress(OSError, ValueError):
            self._writer.emit(to_json(out) + "\n", logging.ERROR, created)

    def _flush_buffer(self, state: InvokeState) -> None:
        """Write the records kept for this invoke, oldest first."""
        kept = state.log_buffer
        if not kept:
            return
        buffered, dropped = list(kept), state.buffered - len(kept)
        kept.clear()
        state.buffered = 0
        output = self._writer.output
        if dropped:
            created = buffered[0][2]
            note = (
                f"{dropped} earlier record(s) of this invoke below the log level were dropped "
                "from the log buffer (LAMBDA_RUNTIME_LOG_BUFFER_SIZE)"
            )
            line = self.render("WARNING", logging.WARNING, note, created)
            output.write(line, logging.WARNING, created)
        for line, levelno, created in buffered:
            output.write(line, levelno, created)


def log_routing(config: Config, output: Output, level: int, as_json: bool) -> LogRouting:
    """The writer, root handler and runtime log for the JSON format or the DEBUG buffer."""
    writer: Writer
    if config.observability.log_buffer:
        # The visible level stays what it would be without the buffer: INFO for JSON (set by
        # the caller), Python's WARNING for Text.
        level = level or WARNING
        lowest = TRACE if config.observability.log_buffer == "trace" else DEBUG
        writer = BufferingWriter(output, level, lowest)
    else:
        writer = Writer(output, level)
    handler = FunctionLogHandler(writer, json_record if as_json else None)
    return LogRouting(writer, ObservedRuntimeLog(writer, json=as_json), as_json, handler)
