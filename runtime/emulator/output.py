"""Where function output and platform lines are shown: one stream, written in batches.

Lines are collected for up to 10 ms and written together, so a busy emulator makes one write
per batch instead of one per line. When more than one environment
is alive, each line gets a per-environment prefix (coloured on a terminal) so interleaved
output stays readable.

Function output must never stop the emulator: a stderr that nobody reads (a full pipe) would
block a plain write, and with it the event loop (no answers, no timeouts, no SIGTERM). So when
the stream is a real file descriptor, batches go to a writer thread through a bounded queue
(:data:`QUEUE_LIMIT` bytes); what does not fit is dropped and counted, and once the reader
catches up the thread writes ``N bytes of function output dropped: stderr is not being read``.
The invoke's own log (Tail, the Python API's ``log``) is kept whatever happens to the console.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import threading
from collections import deque
from collections.abc import Callable
from typing import BinaryIO

_FLUSH_DELAY = 0.01
# Bytes of console output held for a slow or stuck reader before output is dropped.
QUEUE_LIMIT = 4 << 20
# How long stopping waits for the queue to drain into a slow reader.
_CLOSE_WAIT = 1.0
_COLORS = (b"36", b"33", b"35", b"32", b"34", b"31", b"96", b"93", b"95", b"92")


class Console:
    def __init__(self, stream: Callable[[], BinaryIO | None] | None) -> None:
        # A callable so the Python API can follow sys.stderr when pytest swaps it per test.
        self._stream = stream
        self._pending: list[bytes] = []
        self._scheduled = False
        self._color: bool | None = None
        self._prefixes: dict[int, bytes] = {}
        self.loop: asyncio.AbstractEventLoop | None = None
        self._writer: _FdWriter | None = None

    @property
    def enabled(self) -> bool:
        return self._stream is not None

    def _use_color(self, stream: BinaryIO) -> bool:
        if self._color is None:
            try:
                self._color = stream.isatty()
            except (AttributeError, ValueError):
                self._color = False
        return self._color

    def prefix(self, env_id: int) -> bytes:
        cached = self._prefixes.get(env_id)
        if cached is not None:
            return cached
        stream = self._stream() if self._stream is not None else None
        tag = b"[env-%d] " % env_id
        if stream is not None and self._use_color(stream):
            tag = b"\x1b[" + _COLORS[(env_id - 1) % len(_COLORS)] + b"m" + tag + b"\x1b[0m"
        if len(self._prefixes) > 1000:
            self._prefixes.clear()
        self._prefixes[env_id] = tag
        return tag

    def line(self, line: bytes, prefix: bytes = b"") -> None:
        if self._stream is None:
            return
        self._pending.append(prefix + line + b"\n" if prefix else line + b"\n")
        if not self._scheduled:
            self._scheduled = True
            if self.loop is not None:
                # A short delay gathers the lines of many invokes into one write.
                self.loop.call_later(_FLUSH_DELAY, self.flush)
            else:
                self.flush()

    def flush(self) -> None:
        self._scheduled = False
        if not self._pending or self._stream is None:
            return
        data = b"".join(self._pending)
        self._pending.clear()
        stream = self._stream()
        if stream is None:
            return
        fd = _fileno(stream)
        if fd is not None:
            writer = self._writer
            if writer is None or writer.fd != fd:
                if writer is not None:
                    writer.close(0)
                # Whatever the stream buffered must come out before what the thread writes.
                with contextlib.suppress(OSError, ValueError):
                    stream.flush()
                writer = self._writer = _FdWriter(fd)
            writer.put(data)
            return
        try:
            stream.write(data)
            stream.flush()
        except (OSError, ValueError):
            # A closed or broken stderr must not take the emulator down.
            pass

    @property
    def dropped(self) -> int:
        """Bytes dropped so far because the reader was stuck."""
        return self._writer.dropped_total if self._writer is not None else 0

    def close(self, timeout: float = _CLOSE_WAIT) -> None:
        """Flush, then give a slow reader up to ``timeout`` seconds to take the rest."""
        self.flush()
        if self._writer is not None:
            self._writer.close(timeout)
            self._writer = None


def _fileno(stream: BinaryIO) -> int | None:
    try:
        fd = stream.fileno()
    except (AttributeError, OSError, ValueError):
        return None
    return fd if isinstance(fd, int) and fd >= 0 else None


class _FdWriter:
    """Writes batches to a file descriptor from its own thread; never blocks its caller."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self._queue: deque[bytes] = deque()
        self._queued = 0
        # Dropped since the last notice, and in all.
        self._dropped = 0
        self.dropped_total = 0
        self._broken = False
        self._closed = False
        self._cond = threading.Condition()
        self._idle = threading.Event()
        self._idle.set()
        self._thread: threading.Thread | None = None

    def put(self, data: bytes) -> None:
        with self._cond:
            if self._closed or self._broken:
                return
            if self._queued + len(data) > QUEUE_LIMIT:
                self._dropped += len(data)
                self.dropped_total += len(data)
                return
            self._queue.append(data)
            self._queued += len(data)
            self._idle.clear()
            if self._thread is None:
                # A daemon: a reader that never reads must not keep the emulator from exiting.
                self._thread = threading.Thread(
                    target=self._run, name="lambda-emulator-output", daemon=True
                )
                self._thread.start()
            self._cond.notify()

    def close(self, timeout: float) -> None:
        """Wait up to ``timeout`` for what is queued to be written, then stop the thread
        (a thread stuck in a write is left to die with the process)."""
        if timeout > 0:
            self._idle.wait(timeout)
        with self._cond:
            self._closed = True
            self._cond.notify()

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._queue and not self._closed:
                    if self._dropped:
                        break
                    self._idle.set()
                    self._cond.wait()
                if self._queue:
                    data = self._queue.popleft()
                    self._queued -= len(data)
                elif self._dropped and not self._closed:
                    # The reader caught up: say what it missed.
                    data = (
                        b"lambda-runtime emulator: %d bytes of function output dropped: "
                        b"stderr is not being read\n" % self._dropped
                    )
                    self._dropped = 0
                else:
                    self._idle.set()
                    return
            if not self._write(data):
                with self._cond:
                    self._broken = True
                    self._queue.clear()
                    self._queued = 0
                    self._idle.set()
                return

    def _write(self, data: bytes) -> bool:
        view = memoryview(data)
        while view:
            try:
                written = os.write(self.fd, view)
            except InterruptedError:
                continue
            except OSError:
                # Closed or broken (EPIPE): nobody will read it any more.
                return False
            view = view[written:]
        return True


class TaggedConsole(Console):
    """A view of a shared console that starts every line with a tag (the function's name, when
    one emulator serves several functions); batching and the stream stay the shared one's."""

    def __init__(self, shared: Console, tag: str) -> None:
        super().__init__(shared._stream)
        self.shared = shared
        self.tag = f"[{tag}] ".encode()

    def prefix(self, env_id: int) -> bytes:
        return self.shared.prefix(env_id)

    def line(self, line: bytes, prefix: bytes = b"") -> None:
        self.shared.line(line, self.tag + prefix)

    def flush(self) -> None:
        self.shared.flush()


def stderr_stream() -> BinaryIO | None:
    stream = sys.stderr
    if stream is None:
        return None
    buffer = getattr(stream, "buffer", None)
    if buffer is not None:
        return buffer  # type: ignore[no-any-return]
    return _TextAdapter(stream)  # type: ignore[return-value]


class _TextAdapter:
    """Lets a text-only stream (pytest's capture, StringIO) take bytes."""

    def __init__(self, stream: object) -> None:
        self._stream = stream

    def write(self, data: bytes) -> int:
        self._stream.write(data.decode("utf-8", "replace"))  # type: ignore[attr-defined]
        return len(data)

    def flush(self) -> None:
        self._stream.flush()  # type: ignore[attr-defined]

    def isatty(self) -> bool:
        return False
