"""Where function output and platform lines are shown: one stream, written in batches.

Lines are collected for up to 10 ms and written together, so a busy emulator makes one write
per batch instead of one per line. When more than one environment
is alive, each line gets a per-environment prefix (coloured on a terminal) so interleaved
output stays readable.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable
from typing import BinaryIO

_FLUSH_DELAY = 0.01
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
        try:
            stream.write(data)
            stream.flush()
        except (OSError, ValueError):
            # A closed or broken stderr must not take the emulator down.
            pass


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
