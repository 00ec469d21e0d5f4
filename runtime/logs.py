"""Function logs: stdlib ``logging`` records in Lambda's Text format, and the runtime's own lines.

Text format, as the managed Python runtime writes it, one record per line with inner newlines
turned into ``\\r`` so CloudWatch keeps a multi-line record as one event::

    [LEVEL]\\t2026-11-27T04:48:07.123Z\\t<request id>\\t<message>
"""

from __future__ import annotations

import logging
import sys
import time
from typing import Any, TextIO

from runtime.config import Config
from runtime.context import current_context

_LEVELS = {
    "TRACE": logging.DEBUG,
    "DEBUG": logging.DEBUG,
    "INFO": logging.INFO,
    "WARN": logging.WARNING,
    "WARNING": logging.WARNING,
    "ERROR": logging.ERROR,
    "FATAL": logging.CRITICAL,
    "CRITICAL": logging.CRITICAL,
}


def _request_id() -> str:
    ctx = current_context.get()
    return ctx.aws_request_id if ctx is not None else ""


def _timestamp(created: float) -> str:
    whole = int(created)
    millis = int((created - whole) * 1000)
    return f"{time.strftime('%Y-%m-%dT%H:%M:%S', time.gmtime(whole))}.{millis:03d}Z"


def text_line(level: str, message: str, created: float | None = None) -> str:
    stamp = _timestamp(time.time() if created is None else created)
    body = message.replace("\r\n", "\r").replace("\n", "\r")
    return f"[{level}]\t{stamp}\t{_request_id()}\t{body}\n"


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        if record.exc_info:
            message = f"{message}\n{self.formatException(record.exc_info)}"
        elif record.exc_text:
            message = f"{message}\n{record.exc_text}"
        if record.stack_info:
            message = f"{message}\n{record.stack_info}"
        return text_line(record.levelname, message, record.created)


class LambdaLogHandler(logging.Handler):
    """Writes each record as one line to the stream the function's log is read from."""

    def __init__(self, stream: TextIO) -> None:
        super().__init__()
        self.stream = stream
        self.setFormatter(TextFormatter())

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record)
            self.stream.write(line)
            self.stream.flush()
        except Exception:
            self.handleError(record)


class RuntimeLog:
    """The runtime's own messages and the unhandled-error record of a failed invoke."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream

    def write(self, level: str, message: str) -> None:
        try:
            self._stream.write(text_line(level, message))
            self._stream.flush()
        except (OSError, ValueError):
            pass  # a closed or broken stdout must not take the invoke down with it

    def error(self, error_body: dict[str, Any]) -> None:
        from runtime.errors import format_for_log

        self.write("ERROR", format_for_log(error_body))

    def warning(self, message: str) -> None:
        self.write("WARNING", message)


def install(config: Config) -> RuntimeLog:
    """Route stdlib logging and print() to the function log; returns the runtime's own log."""
    stdout = sys.stdout
    # A pipe makes stdout block-buffered: print() output would show up late, out of order with
    # log records, or never if the process is killed. Lambda users expect it line by line.
    if hasattr(stdout, "reconfigure"):
        stdout.reconfigure(line_buffering=True)
    if hasattr(sys.stderr, "reconfigure"):
        sys.stderr.reconfigure(line_buffering=True)
    root = logging.getLogger()
    for existing in list(root.handlers):
        root.removeHandler(existing)
    root.addHandler(LambdaLogHandler(stdout))
    if config.log_level:
        root.setLevel(_LEVELS.get(config.log_level.upper(), logging.WARNING))
    return RuntimeLog(stdout)
