"""``_X_AMZN_TRACE_ID``: the invoke's X-Ray trace header as an environment variable, set for
each invoke and removed when an invoke has none, as on Lambda.

Python code reads it from ``os.environ``; subprocesses inherit the C library's environment.
``os.environ[...] = value`` updates both, but glibc's ``setenv()`` keeps every distinct value it
was ever given (it cannot know whether an old string is still referenced), and every invoke
brings a new trace header: about 140 bytes per invoke for the life of the environment, 14 MiB
per 100,000 invokes (measured here; awslambdaric has the same growth). So once an environment
has served :data:`WARM_UP` invokes, the runtime stops calling ``setenv()``: the C environment's
entry points (``putenv()``) at a buffer of the runtime's own, rewritten in place for each
invoke, and ``os.environ``'s mapping is updated directly. Memory then stays flat. (The
rewrite happens between invokes; only a background thread reading the C environment at that
very moment could see a mix of two headers.)

The switch waits for a long-lived environment because it needs :mod:`ctypes`, a few
milliseconds to import, which a cold start or a short-lived environment should not pay. Where
ctypes, ``putenv()`` or ``os.environ``'s mapping are not what this expects, the runtime keeps
using ``os.environ`` as before.
"""

from __future__ import annotations

import os
import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

NAME = "_X_AMZN_TRACE_ID"
# By then setenv() has kept about 140 KB: negligible, and the ctypes import is amortised over
# at least this many invokes.
WARM_UP = 1000

# putenv() makes a buffer part of the environment, and the C library (or a thread reading the
# environment) may hold a pointer into it at any time: a buffer once given to putenv() is never
# freed. There are few: one per runtime, plus one per doubling for a longer trace header.
_GIVEN_TO_PUTENV: list[Any] = []


class TraceIdVariable:
    """Sets ``_X_AMZN_TRACE_ID`` for the invoke in progress (one per runtime)."""

    __slots__ = ("_own", "_served")

    def __init__(self) -> None:
        self._served = 0
        self._own: _OwnBuffer | None = None

    def set(self, value: str | None) -> None:
        """The trace header of this invoke, or None to remove the variable."""
        own = self._own
        if own is not None:
            own.set(value)
            return
        if value:
            os.environ[NAME] = value
        else:
            os.environ.pop(NAME, None)
        self._served += 1
        if self._served == WARM_UP:
            self._own = _OwnBuffer.create()


class _Unset:
    """Stands in for :class:`TraceIdVariable` with several invokes in flight: one process-wide
    variable cannot belong to one of them, so it is never set (``context.xray_trace_id`` is
    the invoke's own)."""

    __slots__ = ()

    def set(self, value: str | None) -> None:
        pass


UNSET = _Unset()


class _OwnBuffer:
    """The variable in a buffer the runtime owns, pointed at by the C environment."""

    __slots__ = (
        "_buffer",
        "_create_buffer",
        "_current",
        "_data",
        "_encoding",
        "_key",
        "_prefix",
        "_putenv",
        "_unsetenv",
        "_view",
    )

    def __init__(self, ctypes: Any, libc: Any, data: dict[bytes, bytes]) -> None:
        self._create_buffer = ctypes.create_string_buffer
        self._putenv = libc.putenv  # the buffer is passed as it is: a char array is a char *
        self._unsetenv = libc.unsetenv
        self._data = data
        self._key = NAME.encode()
        self._encoding = sys.getfilesystemencoding()  # what os.environ encodes with on POSIX
        self._prefix = self._key + b"="
        self._buffer: Any = None
        self._view: memoryview | None = None
        # The value last put in os.environ's mapping: when the mapping holds another object,
        # user code has set or deleted the variable since, and the C environment no longer
        # points at the buffer.
        self._current: bytes | None = None

    @classmethod
    def create(cls) -> _OwnBuffer | None:
        data = getattr(os.environ, "_data", None)
        if os.name != "posix" or not isinstance(data, dict):
            return None
        try:
            import ctypes

            libc = ctypes.CDLL(None)  # the C library the interpreter already uses
            own = cls(ctypes, libc, data)
            # Take over from setenv() now, so a failure shows here and not mid-invoke.
            own.set(os.environ.get(NAME))
        except Exception as exc:  # no ctypes, no putenv: keep the plain path
            sys.stderr.write(f"lambda-runtime: keeping setenv() for {NAME}: {exc!r}\n")
            return None
        return own

    def set(self, value: str | None) -> None:
        data = self._data
        key = self._key
        if not value:
            if self._current is not None or key in data:
                self._unsetenv(key)
                data.pop(key, None)
                self._current = None
            return
        encoded = value.encode(self._encoding, "surrogateescape")
        if b"\0" in encoded:
            raise ValueError(f"{NAME}: embedded null byte")  # as os.environ would
        line = self._prefix + encoded + b"\0"
        view = self._view
        if view is None or len(line) > len(view):
            # Grow (rarely: trace headers are about 100 bytes): a new buffer, twice what is
            # needed, so a header that keeps growing costs few buffers.
            buffer = self._create_buffer(max(256, 2 * len(line)))
            view = memoryview(buffer).cast("B")
            view[: len(line)] = line
            _GIVEN_TO_PUTENV.append(buffer)
            self._putenv(buffer)
            self._buffer, self._view = buffer, view
        else:
            view[: len(line)] = line
            if self._current is None or data.get(key) is not self._current:
                self._putenv(self._buffer)
        data[key] = self._current = encoded
