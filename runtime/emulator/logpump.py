"""Reading what a runtime writes: a non-blocking pipe, split into lines, handed to a sink.

The sink (the environment's lifecycle) decides which invoke a line belongs to and where it is
forwarded; this module only reads. A line longer than 256 KiB without a line break is passed on
in pieces, so output without line breaks still shows up.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable

_READ = 65536
_MAX_LINE = 256 * 1024
# Read at most this much per turn of the event loop: a runtime that writes without pause must
# not keep the loop (answers, timeouts, signals) waiting; the rest is read on the next turn.
_MAX_PER_TURN = 1 << 20


class LogPump:
    """Owns the read end of a runtime's output pipe (and closes it)."""

    def __init__(
        self, loop: asyncio.AbstractEventLoop, fd: int, sink: Callable[[list[bytes]], None]
    ) -> None:
        self.loop = loop
        self.fd = fd
        self.sink = sink
        self._partial = b""
        loop.add_reader(fd, self.read)

    @property
    def open(self) -> bool:
        return self.fd >= 0

    def read(self, budget: int = _MAX_PER_TURN) -> None:
        """Read what is there (up to ``budget`` bytes), without blocking; complete lines go to
        the sink."""
        fd = self.fd
        if fd < 0:
            return
        while budget > 0:
            try:
                data = os.read(fd, _READ)
            except BlockingIOError:
                return
            except OSError:
                data = b""
            if not data:
                self.close()
                return
            budget -= len(data)
            buf = self._partial + data if self._partial else data
            if b"\n" not in buf:
                if len(buf) > _MAX_LINE:
                    self._partial = b""
                    self.sink([buf])
                else:
                    self._partial = buf
                continue
            lines = buf.split(b"\n")
            self._partial = lines.pop()
            self.sink(lines)
            if len(data) < _READ:
                return

    def drain(self) -> None:
        """Everything written so far, the unterminated last line included, goes to the sink
        now (before the runtime's latest message to the emulator is acted on)."""
        # (No budget: what is in the pipe is at most its size, and all of it is needed now.)
        self.read(budget=1 << 62)
        self._flush_partial()

    def close(self) -> None:
        if self.fd >= 0:
            self.loop.remove_reader(self.fd)
            os.close(self.fd)
            self.fd = -1
        self._flush_partial()

    def _flush_partial(self) -> None:
        if self._partial:
            line, self._partial = self._partial, b""
            self.sink([line])
