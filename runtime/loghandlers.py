"""Stdlib :mod:`logging` into the function log: the root logger's handler and its formatter.

Imported only once ``logging`` is: the lifecycle (:func:`runtime.bootstrap.install_logs`)
attaches the handler from the moment user code (or a library it imports) first imports
``logging``, so a function that never
logs through it does not pay for importing it (``logging`` with ``threading``, ``traceback``,
``string`` and ``weakref`` is several milliseconds of a cold start).
"""

from __future__ import annotations

import logging
import sys

from runtime.logs import StreamOutput, Writer, framed_text_line, text_line

# typing costs milliseconds of cold start; it is only needed by the type checker.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import TextIO


class TextFormatter(logging.Formatter):
    def full_message(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        if record.exc_info:
            message = f"{message}\n{self.formatException(record.exc_info)}"
        elif record.exc_text:
            message = f"{message}\n{record.exc_text}"
        if record.stack_info:
            message = f"{message}\n{record.stack_info}"
        return message

    def format(self, record: logging.LogRecord) -> str:
        return text_line(record.levelname, self.full_message(record), record.created)


class LambdaLogHandler(logging.Handler):
    """Text format on a stream: the default, kept as short as it can be."""

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


class FunctionLogHandler(logging.Handler):
    """Any format, any output: ``render`` makes the line, the :class:`Writer` decides."""

    def __init__(
        self, writer: Writer, render: Callable[[logging.LogRecord], str] | None = None
    ) -> None:
        super().__init__()
        self.writer = writer
        self.render = render if render is not None else self.render_text
        self._text = TextFormatter()
        self._framed = writer.output.framed

    def render_text(self, record: logging.LogRecord) -> str:
        message = self._text.full_message(record)
        if self._framed:
            return framed_text_line(record.levelname, message, record.created)
        return text_line(record.levelname, message, record.created)

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.writer.emit(self.render(record), record.levelno, record.created)
        except Exception:
            self.handleError(record)


def default_handler(writer: Writer) -> logging.Handler:
    """The Text format's handler; on a stream (the default), the leanest one (the level is
    applied by :func:`attach`)."""
    output = writer.output
    if isinstance(output, StreamOutput):
        return LambdaLogHandler(output.stream)
    return FunctionLogHandler(writer)


# --- duplicate handlers ---------------------------------------------------------------------


def _writes_to_stdio(handler: logging.Handler) -> bool:
    if not isinstance(handler, logging.StreamHandler) or isinstance(handler, logging.FileHandler):
        return False
    stream = getattr(handler, "stream", None)
    if stream is None:
        return False
    if stream in (sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__):
        return True
    try:
        return stream.fileno() in (1, 2)
    except Exception:
        return False


class _RootHandlers(list):  # type: ignore[type-arg]
    """The root logger's handler list while the runtime's handler is in it.

    Rule: a handler that writes to stdout or stderr (``StreamHandler()``, ``basicConfig``'s
    handler added next to ours by a library, ...) is not added: every record it would print is
    already in the function log once, and Lambda captures both streams, so it would only
    duplicate lines (in another format, without the request id). Handlers that write elsewhere
    (files, sockets, error trackers) are added as usual. Code that replaces the root handlers
    outright (``basicConfig(force=True)``, ``dictConfig``, ``root.handlers = [...]``) removes
    ours first and is not second-guessed.
    """

    def __init__(self, ours: logging.Handler, warn: Callable[[str], None]) -> None:
        super().__init__([ours])
        self._ours = ours
        self._warn = warn
        self._warned: set[str] = set()

    def append(self, handler: logging.Handler) -> None:
        if handler is not self._ours and self._ours in self and _writes_to_stdio(handler):
            kind = type(handler).__name__
            if kind not in self._warned:
                self._warned.add(kind)
                self._warn(
                    f"logging: a {kind} writing to stdout/stderr was added to the root logger "
                    "and ignored: the runtime already writes every record to the function log "
                    "once (it would only duplicate lines)"
                )
            return
        super().append(handler)


def attach(handler: logging.Handler, warn: Callable[[str], None], lowest: int) -> None:
    """Make *handler* the root logger's only handler, with the duplicate-handler rule; a
    non-zero *lowest* is the lowest level any record may need (the log level, or the DEBUG
    buffer's)."""
    root = logging.getLogger()
    for existing in list(root.handlers):
        root.removeHandler(existing)
    root.handlers = _RootHandlers(handler, warn)
    if lowest:
        root.setLevel(lowest)
        handler.setLevel(lowest)
