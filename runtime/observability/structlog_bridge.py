"""structlog into the function log: a renderer as the last processor and a sink as its logger.

Imported when user code imports structlog (the hook is set up by the lifecycle), never by the
runtime itself; structlog is handed in as a module, so importing this costs no structlog import.
Bound keys and context variables become fields of the JSON record, or ``key=value`` pairs after
the message in the Text format. A user's own ``structlog.configure`` before the first import
wins: the runtime then configures nothing.
"""

from __future__ import annotations

import contextlib
import logging
import sys
import time
import traceback

from runtime.logs import (
    CRITICAL,
    DEBUG,
    ERROR,
    INFO,
    WARNING,
    Writer,
    framed_text_line,
    level_name,
    text_line,
)
from runtime.observability.jsonlog import ExcInfo, fallback, json_line, to_json

# typing costs milliseconds of cold start; it is only needed by the type checker.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from types import ModuleType
    from typing import Any

_STRUCTLOG_LEVELS = {
    "debug": DEBUG,
    "info": INFO,
    "msg": INFO,
    "warning": WARNING,
    "warn": WARNING,
    "error": ERROR,
    "exception": ERROR,
    "critical": CRITICAL,
    "fatal": CRITICAL,
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
    text = value if isinstance(value, str) else fallback(value)
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
        levelno = _STRUCTLOG_LEVELS.get(method_name, INFO)
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
            level = level_name(levelno)
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
        text = line if isinstance(line, str) else fallback(line)
        if not text.endswith("\n"):  # a user's own renderer returned a bare line
            text += "\n"
        when = time.time() if created is None else created
        # A closed or broken output must not raise into user code.
        with contextlib.suppress(OSError, ValueError):
            self._writer.emit(text, level if levelno is None else levelno, when)

    def debug(self, line: Any, levelno: int | None = None, created: float | None = None) -> None:
        self._write(DEBUG, line, levelno, created)

    def info(self, line: Any, levelno: int | None = None, created: float | None = None) -> None:
        self._write(INFO, line, levelno, created)

    def warning(self, line: Any, levelno: int | None = None, created: float | None = None) -> None:
        self._write(WARNING, line, levelno, created)

    def error(self, line: Any, levelno: int | None = None, created: float | None = None) -> None:
        self._write(ERROR, line, levelno, created)

    def critical(self, line: Any, levelno: int | None = None, created: float | None = None) -> None:
        self._write(CRITICAL, line, levelno, created)

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
            if not logging.getLogger().isEnabledFor(_STRUCTLOG_LEVELS.get(method, INFO)):
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


def snapshot_contextvars() -> dict[str, Any]:
    module = sys.modules.get("structlog.contextvars")
    return dict(module.get_contextvars()) if module is not None else {}


def restore_contextvars(snapshot: dict[str, Any]) -> None:
    """Keys bound with structlog's bind_contextvars during an invoke do not leak into the next."""
    module = sys.modules.get("structlog.contextvars")
    if module is None or module.get_contextvars() == snapshot:
        return
    module.clear_contextvars()
    if snapshot:
        module.bind_contextvars(**snapshot)


