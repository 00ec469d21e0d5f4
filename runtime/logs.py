"""Function logs: where records go, in which format, and the runtime's own lines.

Text format (``AWS_LAMBDA_LOG_FORMAT`` unset or ``Text``), as the managed Python runtime writes
it, one record per line with inner newlines turned into ``\\r`` so CloudWatch keeps a multi-line
record as one event::

    [LEVEL]\\t2026-11-27T04:48:07.123Z\\t<request id>\\t<message>

The JSON format (``AWS_LAMBDA_LOG_FORMAT=JSON``), structlog's routing and the per-invoke DEBUG
buffer live in :mod:`runtime.observability`, imported only when one of them is used: this
module is the default path and is kept small, because every cold start loads it. It never
imports that package: the lifecycle (:func:`runtime.bootstrap.install_logs`) picks the
:class:`LogRouting` (this module's Text one, or the package's) and installs it.

Where records go: when Lambda passes ``_LAMBDA_TELEMETRY_LOG_FD``, each record is one telemetry
frame on that descriptor (big-endian u32 type, u32 length, u64 timestamp in microseconds, then
the UTF-8 record; the type carries the level and the format), so Lambda sees levels and exact
timestamps, and a multi-line record keeps its line breaks (a frame is one event). Otherwise
records go to stdout. ``print()`` output is never touched: it reaches stdout unchanged,
line-buffered.

Stdlib ``logging`` is not imported here: its handler (:mod:`runtime.loghandlers`) is attached
(by the lifecycle, through :func:`when_imported`) from inside the first ``import logging`` of
user code or a library, so a function that never
logs through it does not load it. Duplicate lines: only the runtime's handler writes
root-logger records to the function log. A handler that writes to stdout or stderr and is
added to the root logger next to it is not added (one warning says so); see
:class:`runtime.loghandlers._RootHandlers`.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time

from runtime.config import Config
from runtime.context import invoke_context

# typing costs milliseconds of cold start; it is only needed by the type checker.
TYPE_CHECKING = False
if TYPE_CHECKING:
    import logging
    from collections.abc import Callable
    from types import ModuleType
    from typing import Any, TextIO

# The stdlib's level numbers, without importing logging (only user code that logs pays for it).
TRACE, DEBUG, INFO, WARNING, ERROR, CRITICAL = 5, 10, 20, 30, 40, 50  # TRACE: Lambda's, below DEBUG
_LEVELS = {
    "TRACE": TRACE,
    "DEBUG": DEBUG,
    "INFO": INFO,
    "WARN": WARNING,
    "WARNING": WARNING,
    "ERROR": ERROR,
    "FATAL": CRITICAL,
    "CRITICAL": CRITICAL,
}


_NAMES = ((CRITICAL, "CRITICAL"), (ERROR, "ERROR"), (WARNING, "WARNING"), (INFO, "INFO"))


def level_number(name: str) -> int:
    """A Lambda or Python level name (any case) as a stdlib level number; unknown: INFO."""
    return _LEVELS.get(name.strip().upper(), INFO)


def level_name(levelno: int) -> str:
    """The name a record of this level shows in the JSON format: Python's (WARNING, CRITICAL),
    as awslambdaric writes it; a custom level takes the name of the standard level below it,
    and anything below DEBUG is Lambda's TRACE."""
    for number, name in _NAMES:
        if levelno >= number:
            return name
    return "DEBUG" if levelno >= DEBUG else "TRACE"


def _request_id() -> str:
    ctx = invoke_context()
    return ctx.aws_request_id if ctx is not None else ""


def timestamp(created: float) -> str:
    """ISO 8601 UTC with milliseconds, as Lambda's log lines show a record's time."""
    whole = int(created)
    millis = int((created - whole) * 1000)
    return f"{time.strftime('%Y-%m-%dT%H:%M:%S', time.gmtime(whole))}.{millis:03d}Z"


def text_line(level: str, message: str, created: float | None = None) -> str:
    stamp = timestamp(time.time() if created is None else created)
    body = message.replace("\r\n", "\r").replace("\n", "\r")
    return f"[{level}]\t{stamp}\t{_request_id()}\t{body}\n"


def framed_text_line(level: str, message: str, created: float) -> str:
    # A frame is one event whatever it holds, so the record keeps its real line breaks.
    return f"[{level}]\t{timestamp(created)}\t{_request_id()}\t{message}\n"


# --- outputs --------------------------------------------------------------------------------


class StreamOutput:
    """Lines on a text stream (stdout), flushed one by one."""

    framed = False

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream

    def write(self, line: str, levelno: int, created: float) -> None:
        stream = self.stream
        stream.write(line)
        stream.flush()


def _frame_level(levelno: int) -> int:
    if levelno >= CRITICAL:
        return 6
    if levelno >= ERROR:
        return 5
    if levelno >= WARNING:
        return 4
    if levelno >= INFO:
        return 3
    if levelno >= DEBUG:
        return 2
    return 1


class FrameOutput:
    """Telemetry frames on a file descriptor: one record per frame, level and time in the head."""

    framed = True

    def __init__(self, fd: int, *, text: bool) -> None:
        import threading

        self.fd = fd
        self._format_bits = 0b11 if text else 0b10
        self._lock = threading.Lock()

    def frame(self, line: str, levelno: int, created: float) -> bytes:
        payload = line.encode("utf-8", "backslashreplace")
        kind = 0xA55A0000 | _frame_level(levelno) << 2 | self._format_bits
        return (
            kind.to_bytes(4, "big")
            + len(payload).to_bytes(4, "big")
            + int(created * 1_000_000).to_bytes(8, "big")
            + payload
        )

    def write(self, line: str, levelno: int, created: float) -> None:
        view = memoryview(self.frame(line, levelno, created))
        with self._lock:  # one frame must never interleave with another thread's
            while view:
                view = view[os.write(self.fd, view) :]


Output = StreamOutput | FrameOutput


class Writer:
    """Applies the log level and writes what passes to the output."""

    buffer_from = 0  # the level from which records below the threshold are kept (subclass)

    def __init__(self, output: Output, threshold: int = 0) -> None:
        self.output = output
        self.threshold = threshold

    def emit(self, line: str, levelno: int, created: float) -> None:
        if levelno >= self.threshold:
            self.output.write(line, levelno, created)


# --- the runtime's own lines ----------------------------------------------------------------


class RuntimeLog:
    """The runtime's own messages and the unhandled-error record of a failed invoke."""

    def __init__(self, stream: TextIO, *, writer: Writer | None = None) -> None:
        self._writer = writer if writer is not None else Writer(StreamOutput(stream))
        self._framed = self._writer.output.framed

    def render(self, level: str, levelno: int, message: str, created: float) -> str:
        if self._framed:
            return framed_text_line(level, message, created)
        return text_line(level, message, created)

    def write(self, level: str, message: str) -> None:
        levelno = level_number(level)
        created = time.time()
        # A closed or broken stdout must not take the invoke down with it.
        with contextlib.suppress(OSError, ValueError):
            self._writer.emit(self.render(level, levelno, message, created), levelno, created)

    def error(self, error_body: dict[str, Any]) -> None:
        from runtime.errors import format_for_log

        self.write("ERROR", format_for_log(error_body))

    def warning(self, message: str) -> None:
        self.write("WARNING", message)


# --- configured when imported ---------------------------------------------------------------


def _find_spec(name: str, skip: object = None) -> Any:
    for finder in sys.meta_path:
        find = getattr(finder, "find_spec", None)
        if finder is skip or find is None:
            continue
        spec = find(name, None)
        if spec is not None:
            return spec
    return None


class _ConfigureOnImport:
    """A meta-path finder that runs a step right after ``import <name>`` finishes.

    The runtime imports neither ``logging`` nor structlog itself, to keep them out of the cold
    start; when user code does, this configures the module before the user's next line runs,
    so the user's own configuration afterwards still wins. With a *spec* given, that is the
    module imported whatever ``sys.path`` holds by then: the standard library's ``logging``
    cannot be shadowed by a ``logging.py`` in the task root, as when the runtime imports it
    at init.
    """

    def __init__(self, name: str, then: Callable[[ModuleType], None], spec: Any = None) -> None:
        self.name = name
        self.then = then
        self.spec = spec
        self._finding = False

    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> Any:
        # Another finder that consults the whole of sys.meta_path itself (an import watcher,
        # such as the emulator's) calls back in while we look: that inner call must not wrap
        # the loader and remove us a second time.
        if fullname != self.name or self._finding:
            return None
        self._finding = True
        try:
            spec = self.spec if self.spec is not None else _find_spec(fullname, skip=self)
        finally:
            self._finding = False
        if spec is None:
            return None
        if spec.loader is not None and hasattr(spec.loader, "exec_module"):
            spec.loader = _ThenConfigure(spec.loader, self.then)
            # Returning a spec ends the import system's walk of sys.meta_path, so removing
            # ourselves now cannot make it skip another finder.
            sys.meta_path.remove(self)
        return spec


class _ThenConfigure:
    def __init__(self, loader: Any, then: Callable[[ModuleType], None]) -> None:
        self._loader = loader
        self._then = then

    def create_module(self, spec: Any) -> Any:
        return self._loader.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        self._loader.exec_module(module)
        module.__loader__ = self._loader
        if module.__spec__ is not None:
            module.__spec__.loader = self._loader
        try:
            self._then(module)
        except Exception as exc:  # never break the user's import over it
            sys.stderr.write(
                f"lambda-runtime: could not route {module.__name__} to the log: {exc!r}\n"
            )

    def __getattr__(self, name: str) -> Any:
        return getattr(self._loader, name)


def when_imported(name: str, then: Callable[[ModuleType], None], *, pin: bool = False) -> None:
    """Run ``then(module)`` now if *name* is imported, else right after it is."""
    sys.meta_path[:] = [
        f for f in sys.meta_path if not (isinstance(f, _ConfigureOnImport) and f.name == name)
    ]
    loaded = sys.modules.get(name)
    if loaded is not None:
        then(loaded)
        return
    spec = _find_spec(name) if pin else None
    sys.meta_path.insert(0, _ConfigureOnImport(name, then, spec))


# --- install --------------------------------------------------------------------------------


def _telemetry_output(text: bool) -> FrameOutput | None:
    raw = os.environ.pop("_LAMBDA_TELEMETRY_LOG_FD", None)
    if raw is None:
        return None
    try:
        fd = int(raw)
        os.fstat(fd)
        os.set_inheritable(fd, False)
    except (ValueError, OSError) as exc:
        message = f"_LAMBDA_TELEMETRY_LOG_FD={raw!r} is not usable ({exc}); logging to stdout"
        sys.stdout.write(text_line("WARNING", message))
        return None
    return FrameOutput(fd, text=text)


def prepare(config: Config) -> tuple[Output, int, bool]:
    """Make stdout line-buffered and pick the output, the log level (0: none set) and whether
    the format is JSON."""
    stdout = sys.stdout
    # A pipe makes stdout block-buffered: print() output would show up late, out of order with
    # log records, or never if the process is killed. Lambda users expect it line by line.
    if hasattr(stdout, "reconfigure"):
        stdout.reconfigure(line_buffering=True)
    if hasattr(sys.stderr, "reconfigure"):
        sys.stderr.reconfigure(line_buffering=True)
    as_json = config.log_format.strip().upper() == "JSON"
    level = level_number(config.log_level) if config.log_level else 0
    if as_json and not level:
        level = INFO  # Lambda's default application log level for the JSON format
    output: Output = _telemetry_output(text=not as_json) or StreamOutput(stdout)
    return output, level, as_json


class LogRouting:
    """How the function log is written: the writer every record goes through, the runtime's
    own log, the format, and the root logger's handler (None: the core's Text handler for this
    writer, built only once ``logging`` is imported)."""

    __slots__ = ("as_json", "handler", "runtime_log", "writer")

    def __init__(
        self,
        writer: Writer,
        runtime_log: RuntimeLog,
        as_json: bool = False,
        handler: logging.Handler | None = None,
    ) -> None:
        self.writer = writer
        self.runtime_log = runtime_log
        self.as_json = as_json
        self.handler = handler

    @property
    def lowest(self) -> int:
        """The lowest level a record may need (the log level, or the DEBUG buffer's); 0: none."""
        return self.writer.buffer_from or self.writer.threshold


def text_routing(output: Output, level: int) -> LogRouting:
    """The default: the Text format, no buffer."""
    writer = Writer(output, level)
    return LogRouting(writer, RuntimeLog(sys.stdout, writer=writer))


def warn_bad_settings(config: Config, log: RuntimeLog) -> None:
    # Lambda's console refuses such values; set by hand (or locally) they must not pass silently.
    if config.log_level and config.log_level.strip().upper() not in _LEVELS:
        log.warning(
            f"AWS_LAMBDA_LOG_LEVEL={config.log_level!r} is not a log level "
            f"(TRACE, DEBUG, INFO, WARN, ERROR, FATAL); using INFO"
        )
    if config.log_format.strip().upper() not in ("TEXT", "JSON"):
        log.warning(f"AWS_LAMBDA_LOG_FORMAT={config.log_format!r} is not Text or JSON; using Text")
