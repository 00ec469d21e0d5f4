"""Everything observability that is opt-in: the JSON log format, structlog routing, the
per-invoke DEBUG buffer, and the layer around the handler for traces and metrics.

Imported only when one of them is used (``AWS_LAMBDA_LOG_FORMAT=JSON``, user code importing
structlog, ``LAMBDA_RUNTIME_LOG_BUFFER``, ``LAMBDA_RUNTIME_METRICS``, OTEL_* variables): the
default Text path (:mod:`runtime.logs`) never loads it, and with nothing switched on there is
no layer at all, so the invoke hot path is exactly the lifecycle's. OpenTelemetry, structlog
and the metrics code are imported only by the parts that use them.

JSON format, one object per line::

    {"timestamp": "2026-11-27T04:48:07.123Z", "level": "INFO", "message": "...",
     "logger": "app", "requestId": "...", "xrayTraceId": "...", "tenantId": "...",
     "traceId": "...", "spanId": "...", <extra fields>,
     "errorType": "...", "errorMessage": "...", "stackTrace": [...], "location": "..."}

``level`` uses Lambda's names (TRACE, DEBUG, INFO, WARN, ERROR, FATAL) so Lambda's own level
handling understands every record (the Text format keeps Python's names, byte for byte as the
managed runtime writes them). ``xrayTraceId`` is there when the invoke came with an X-Ray
header, ``tenantId`` when the invoke has one, ``traceId``/``spanId`` when an OpenTelemetry span
is active. Extra fields (stdlib ``extra=``, structlog's bound keys and context variables) never
replace these keys.

Per-invoke state travels in an :class:`InvokeState` held by the ``current_invoke`` context
variable, set when the handler is called and cleared after the invoke's ``after_invoke`` step:
custom metrics, the DEBUG buffer, whether the invoke failed, the trace ids of its span. A
context variable (not a global) keeps this right for async handlers and for several invokes in
flight at once.
"""

from __future__ import annotations

import contextlib
import logging
import sys
import time
import traceback
from collections import deque
from contextvars import ContextVar
from types import TracebackType

import orjson

from runtime.config import ConfigError
from runtime.context import invoke_context
from runtime.loghandlers import FunctionLogHandler
from runtime.logs import (
    TRACE,
    Output,
    RuntimeLog,
    Writer,
    framed_text_line,
    text_line,
)

# typing costs milliseconds of cold start; it is only needed by the type checker.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from types import ModuleType
    from typing import Any

    from runtime.config import Config
    from runtime.context import LambdaContext
    from runtime.layers import Call, InitInfo, Layer
    from runtime.metrics import EmfWriter, MetricSet
    from runtime.tracing import Tracing

RUNTIME_LOGGER = "lambda_runtime"  # the "logger" of the runtime's own JSON lines
ExcInfo = tuple[type[BaseException], BaseException, TracebackType | None]


class InvokeState:
    """What observability records about the invoke in progress."""

    __slots__ = (
        "buffered",
        "cold_start",
        "duration_ns",
        "failed",
        "log_buffer",
        "metrics",
        "started_ms",
        "structlog_snapshot",
        "trace_ids",
    )

    def __init__(self, cold_start: bool, buffer_size: int = 0) -> None:
        self.cold_start = cold_start
        self.failed = False
        self.started_ms = 0
        self.duration_ns = 0
        # (line, level number, time) of records below the log level, kept in case it fails.
        self.log_buffer: deque[tuple[str, int, float]] | None = (
            deque(maxlen=buffer_size) if buffer_size else None
        )
        self.buffered = 0  # how many went into the buffer, to tell how many fell out of it
        self.metrics: MetricSet | None = None
        self.trace_ids: tuple[str, str] | None = None  # (trace id, span id) of the invoke span
        self.structlog_snapshot: dict[str, Any] | None = None


current_invoke: ContextVar[InvokeState | None] = ContextVar("lambda_runtime_invoke", default=None)


# --- JSON rendering -------------------------------------------------------------------------


def lambda_level(levelno: int) -> str:
    """Lambda's name for a stdlib level number (custom levels fall to the one below)."""
    if levelno >= logging.CRITICAL:
        return "FATAL"
    if levelno >= logging.ERROR:
        return "ERROR"
    if levelno >= logging.WARNING:
        return "WARN"
    if levelno >= logging.INFO:
        return "INFO"
    if levelno >= logging.DEBUG:
        return "DEBUG"
    return "TRACE"


def _python_level(levelno: int) -> str:
    name = logging.getLevelName(levelno)
    if name.startswith("Level "):
        return "TRACE" if levelno < logging.DEBUG else name
    return str(name)


def _timestamp(created: float) -> str:
    whole = int(created)
    millis = int((created - whole) * 1000)
    return f"{time.strftime('%Y-%m-%dT%H:%M:%S', time.gmtime(whole))}.{millis:03d}Z"


def _fallback(value: Any) -> str:
    try:
        return str(value)
    except Exception:
        return f"<unprintable {type(value).__name__} object>"


def to_json(value: Any) -> str:
    """One line of JSON; values JSON cannot hold become their ``str``."""
    try:
        return orjson.dumps(value, default=_fallback, option=orjson.OPT_NON_STR_KEYS).decode()
    except TypeError:  # e.g. an int beyond 64 bits, or a cycle: the slow path still logs it
        import json

        return json.dumps(value, default=_fallback, ensure_ascii=False)


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
        "timestamp": _timestamp(created),
        "level": lambda_level(levelno),
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
    out["errorMessage"] = _fallback(value)
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


def log_setup(
    config: Config, output: Output, level: int, as_json: bool
) -> tuple[Writer, logging.Handler, RuntimeLog]:
    """The writer, root handler and runtime log for the JSON format or the DEBUG buffer."""
    writer: Writer
    if config.observability.log_buffer:
        # The visible level stays what it would be without the buffer: INFO for JSON (set by
        # the caller), Python's WARNING for Text.
        level = level or logging.WARNING
        lowest = TRACE if config.observability.log_buffer == "trace" else logging.DEBUG
        writer = BufferingWriter(output, level, lowest)
    else:
        writer = Writer(output, level)
    handler = FunctionLogHandler(writer, json_record if as_json else None)
    return writer, handler, ObservedRuntimeLog(writer, json=as_json)


# --- structlog ------------------------------------------------------------------------------

_STRUCTLOG_LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "msg": logging.INFO,
    "warning": logging.WARNING,
    "warn": logging.WARNING,
    "error": logging.ERROR,
    "exception": logging.ERROR,
    "critical": logging.CRITICAL,
    "fatal": logging.CRITICAL,
}


def _resolve_exc_info(value: Any) -> ExcInfo | None:
    if value is None or value is False:
        return None
    if isinstance(value, BaseException):
        return type(value), value, value.__traceback__
    if isinstance(value, tuple) and len(value) == 3 and value[1] is not None:
        return value  # type: ignore[return-value]
    current = sys.exc_info()
    return current if current[1] is not None else None  # type: ignore[return-value]


def _caller_location() -> str | None:
    """``file:function:line`` of the user code that called structlog."""
    frame = sys._getframe(1)
    while frame is not None:
        module = frame.f_globals.get("__name__", "")
        if module != __name__ and not module.startswith("structlog"):
            code = frame.f_code
            return f"{code.co_filename}:{code.co_name}:{frame.f_lineno}"
        frame = frame.f_back  # type: ignore[assignment]
    return None


def _logfmt_value(value: Any) -> str:
    text = value if isinstance(value, str) else _fallback(value)
    if text and not any(c in text for c in ' "=\t\r\n'):
        return text
    return to_json(text)


class StructlogRenderer:
    """The last processor of structlog's chain: the event dict as a function-log record.

    Bound keys become fields (JSON) or ``key=value`` pairs after the message (Text). It returns
    the line with its level and time for :class:`StructlogSink`.
    """

    def __init__(self, *, json: bool, framed: bool) -> None:
        self.json = json
        self.framed = framed

    def __call__(
        self, logger: Any, method_name: str, event_dict: dict[str, Any]
    ) -> tuple[tuple[str], dict[str, Any]]:
        levelno = _STRUCTLOG_LEVELS.get(method_name, logging.INFO)
        created = time.time()
        event = event_dict.pop("event", "")
        exc_info = _resolve_exc_info(event_dict.pop("exc_info", None))
        stack = event_dict.pop("stack_info", None)
        stack_info = "".join(traceback.format_stack(sys._getframe(1))) if stack else None
        name = event_dict.pop("logger", None) or getattr(logger, "name", None)
        if self.json:
            line = json_line(
                levelno,
                event,
                logger=name if name is None else str(name),
                created=created,
                fields=event_dict,
                exc_info=exc_info,
                location=_caller_location() if exc_info is not None else None,
                stack_info=stack_info,
            )
        else:
            message = str(event)
            if event_dict:
                pairs = " ".join(f"{k}={_logfmt_value(v)}" for k, v in event_dict.items())
                message = f"{message} {pairs}"
            if exc_info is not None:
                formatted = "".join(traceback.format_exception(*exc_info)).rstrip("\n")
                message = f"{message}\n{formatted}"
            if stack_info:
                message = f"{message}\nStack (most recent call last):\n{stack_info.rstrip()}"
            level = _python_level(levelno)
            if self.framed:
                line = framed_text_line(level, message, created)
            else:
                line = text_line(level, message, created)
        return (line,), {"levelno": levelno, "created": created}


class StructlogSink:
    """The logger structlog wraps: hands rendered lines to the function log's :class:`Writer`."""

    def __init__(self, writer: Writer, name: str | None = None) -> None:
        self._writer = writer
        self.name = name

    def _write(self, level: int, line: Any, levelno: int | None, created: float | None) -> None:
        text = line if isinstance(line, str) else _fallback(line)
        if not text.endswith("\n"):  # a user's own renderer returned a bare line
            text += "\n"
        when = time.time() if created is None else created
        # A closed or broken output must not raise into user code.
        with contextlib.suppress(OSError, ValueError):
            self._writer.emit(text, level if levelno is None else levelno, when)

    def debug(self, line: Any, levelno: int | None = None, created: float | None = None) -> None:
        self._write(logging.DEBUG, line, levelno, created)

    def info(self, line: Any, levelno: int | None = None, created: float | None = None) -> None:
        self._write(logging.INFO, line, levelno, created)

    def warning(self, line: Any, levelno: int | None = None, created: float | None = None) -> None:
        self._write(logging.WARNING, line, levelno, created)

    def error(self, line: Any, levelno: int | None = None, created: float | None = None) -> None:
        self._write(logging.ERROR, line, levelno, created)

    def critical(self, line: Any, levelno: int | None = None, created: float | None = None) -> None:
        self._write(logging.CRITICAL, line, levelno, created)

    msg = info
    warn = warning
    exception = error
    fatal = critical
    failure = error
    err = error


class StructlogSinkFactory:
    def __init__(self, writer: Writer) -> None:
        self._writer = writer

    def __call__(self, *args: Any) -> StructlogSink:
        name = args[0] if args and isinstance(args[0], str) else None
        return StructlogSink(self._writer, name)


def configure_structlog(module: ModuleType, writer: Writer, *, json: bool, min_level: int) -> bool:
    """Point structlog at the function log, unless user code configured it already."""
    if module.is_configured():
        return False
    processors: list[Any] = [
        module.contextvars.merge_contextvars,
        StructlogRenderer(json=json, framed=writer.output.framed),
    ]
    if not min_level:
        # No level configured: follow the root logger's level as stdlib records do (WARNING
        # by default, or whatever user code sets), so both APIs show the same records.
        drop = module.DropEvent

        def root_level(logger: Any, method: str, event: Any) -> Any:
            if not logging.getLogger().isEnabledFor(_STRUCTLOG_LEVELS.get(method, logging.INFO)):
                raise drop
            return event

        processors.insert(0, root_level)
    module.configure(
        processors=processors,
        wrapper_class=module.make_filtering_bound_logger(min_level),
        logger_factory=StructlogSinkFactory(writer),
        cache_logger_on_first_use=True,
    )
    return True


def _structlog_contextvars() -> dict[str, Any]:
    module = sys.modules.get("structlog.contextvars")
    return dict(module.get_contextvars()) if module is not None else {}


def _restore_structlog_contextvars(snapshot: dict[str, Any]) -> None:
    """Keys bound with structlog's bind_contextvars during an invoke do not leak into the next."""
    module = sys.modules.get("structlog.contextvars")
    if module is None or module.get_contextvars() == snapshot:
        return
    module.clear_contextvars()
    if snapshot:
        module.bind_contextvars(**snapshot)


# --- the layer ------------------------------------------------------------------------------


def build_layers(config: Config, init_info: InitInfo) -> list[Layer]:
    """The observability layer this configuration asks for, or none at all."""
    obs = config.observability
    tracing: Tracing | None = None
    if obs.trace_exporters:
        from runtime.tracing import Tracing

        try:
            tracing = Tracing.from_config(config, init_info)
        except ValueError as exc:
            # Same outcome as any other bad configuration read at init.
            raise ConfigError(f"tracing configuration: {exc}") from None
    emf: EmfWriter | None = None
    if obs.metrics == "emf":
        from runtime.metrics import EmfWriter

        emf = EmfWriter(config, init_info)
    restore_structlog = "structlog" in sys.modules
    if tracing is None and emf is None and not obs.log_buffer and not restore_structlog:
        return []
    return [
        Observability(
            tracing=tracing,
            emf=emf,
            buffer_size=obs.log_buffer_size if obs.log_buffer else 0,
            restore_structlog=restore_structlog,
            cold_start=config.initialization_type != "provisioned-concurrency",
        )
    ]


class Observability:
    """The layer: state per invoke, the invoke span, and the after-invoke flush of both."""

    def __init__(
        self,
        *,
        tracing: Tracing | None = None,
        emf: EmfWriter | None = None,
        buffer_size: int = 0,
        restore_structlog: bool = False,
        cold_start: bool = True,
    ) -> None:
        self._tracing = tracing
        self._emf = emf
        self._buffer_size = buffer_size
        self._restore_structlog = restore_structlog
        # Provisioned concurrency initialises long before the first invoke: that invoke does
        # not wait for init, so it is not a cold start for the caller.
        self._next_is_cold = cold_start

    def wrap(self, call: Call) -> Call:
        tracing = self._tracing
        metric_set: type[MetricSet] | None = None
        if self._emf is not None:
            from runtime.metrics import MetricSet

            metric_set = MetricSet

        def observed(event: Any, context: LambdaContext) -> Any:
            state = InvokeState(self._next_is_cold, self._buffer_size)
            self._next_is_cold = False
            if metric_set is not None:
                state.metrics = metric_set()
            if self._restore_structlog:
                state.structlog_snapshot = _structlog_contextvars()
            current_invoke.set(state)
            state.started_ms = time.time_ns() // 1_000_000
            started = time.perf_counter_ns()
            try:
                if tracing is not None:
                    return tracing.invoke(call, event, context, state)
                return call(event, context)
            except BaseException:
                state.failed = True
                raise
            finally:
                state.duration_ns = time.perf_counter_ns() - started

        return observed

    def after_invoke(self) -> None:
        state = current_invoke.get()
        if state is None:
            return
        # Nothing here may raise into the lifecycle: the next /next must always happen.
        try:
            if self._emf is not None:
                self._emf.emit(state)
            if state.structlog_snapshot is not None:
                _restore_structlog_contextvars(state.structlog_snapshot)
        except Exception as exc:
            sys.stderr.write(f"lambda-runtime: after-invoke step failed: {exc!r}\n")
        finally:
            current_invoke.set(None)
            if self._tracing is not None:
                self._tracing.flush()
