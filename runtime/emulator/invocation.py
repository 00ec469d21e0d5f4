"""One accepted invoke, from the Invoke API to its single answer."""

from __future__ import annotations

import asyncio
import base64
import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

from runtime import protocol

from .reports import Report

if TYPE_CHECKING:
    from .environment import Environment

REQUEST_RESPONSE = protocol.INVOCATION_TYPE_REQUEST_RESPONSE
EVENT = protocol.INVOCATION_TYPE_EVENT

TAIL_BYTES = 4096
# A function that prints without end must not grow the emulator without bound.
_MAX_LOG_BYTES = 1 << 20


def new_request_id() -> str:
    """A random (version 4) UUID string, made directly: uuid.uuid4() costs several times more,
    and this runs on every invoke."""
    h = os.urandom(16).hex()
    variant = "89ab"[int(h[16], 16) & 3]
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{variant}{h[17:20]}-{h[20:]}"


class StreamSink(Protocol):
    """Where a streamed response goes as the runtime sends it (a caller that can take it
    chunk by chunk). The end, or the failure, comes as usual through ``on_done``."""

    def stream_started(self, content_type: bytes) -> None:
        """The runtime began a streamed response with this content type."""

    def stream_data(self, data: bytes) -> None:
        """Bytes of the response body, as they arrive."""

    def when_drained(self, callback: Callable[[], None]) -> bool:
        """True when the caller is behind: ``callback`` runs once it has caught up (or gone),
        and the runtime is not read from meanwhile."""


class Invocation:
    """State of one invoke, which ends in two steps, as on Lambda.

    * **Answered** (``done``): the runtime posted its response or error, or the platform failed
      the invoke. :meth:`answer` (or :meth:`finish`) runs ``on_done`` exactly once: that is
      when the caller gets its result.
    * **Ended** (``ended``): the invoke is over and its log complete (END and REPORT written):
      when the runtime asks for its next invoke, or dies, or the invoke's time is up. After a
      crash or a timeout both steps happen together. :meth:`close_log` runs ``on_end`` once.
    """

    __slots__ = (
        "attempt",
        "client_context",
        "content_type",
        "deadline_ms",
        "done",
        "ended",
        "env",
        "error_type",
        "event",
        "function_error",
        "invocation_id",
        "invoke_start",
        "kind",
        "log",
        "log_size",
        "log_truncated",
        "on_done",
        "on_end",
        "payload",
        "report",
        "request_id",
        "sink",
        "streamed",
        "streaming",
        "tenant_id",
        "timer",
        "trace_id",
    )

    def __init__(
        self,
        event: bytes,
        *,
        kind: str = REQUEST_RESPONSE,
        trace_id: str,
        client_context: str | None = None,
        tenant_id: str | None = None,
        on_done: Callable[[Invocation], None] | None = None,
    ) -> None:
        self.request_id = new_request_id()
        self.invocation_id = os.urandom(16).hex()
        self.attempt = 1
        self.event = event
        self.kind = kind
        self.trace_id = trace_id
        self.client_context = client_context
        self.tenant_id = tenant_id
        self.on_done = on_done
        self.on_end: Callable[[Invocation], None] | None = None
        self.env: Environment | None = None
        # time.monotonic() when the invoke began (its timeout counts from here), once dispatched.
        self.invoke_start: float | None = None
        self.deadline_ms = 0
        self.timer: asyncio.TimerHandle | None = None
        self.streaming = False
        # Callers that take a stream as it comes set this; others get it assembled.
        self.sink: StreamSink | None = None
        # Body bytes the runtime streamed to ``sink`` (they are not in ``payload``).
        self.streamed = 0
        self.log: list[bytes] = []
        self.log_size = 0
        self.log_truncated = False
        self.done = False
        self.ended = False
        self.payload = b""
        self.content_type = b"application/json"
        # True when the caller must see X-Amz-Function-Error: Unhandled.
        self.function_error = False
        self.error_type: str | None = None
        self.report: Report | None = None

    def add_log(self, line: bytes) -> None:
        self.log_size += len(line) + 1
        self.log.append(line)
        if self.log_size > _MAX_LOG_BYTES:
            # Keep the tail, which is what Tail and a failing test want to see.
            while self.log_size > _MAX_LOG_BYTES // 2 and len(self.log) > 1:
                self.log_size -= len(self.log.pop(0)) + 1
            self.log_truncated = True

    def log_bytes(self) -> bytes:
        if not self.log:
            return b""
        return b"\n".join(self.log) + b"\n"

    def log_tail(self) -> bytes:
        """Base64 of the last 4 KB of this invoke's log (the ``X-Amz-Log-Result`` value)."""
        return base64.b64encode(self.log_bytes()[-TAIL_BYTES:])

    def set_result(
        self,
        payload: bytes,
        *,
        content_type: bytes = b"application/json",
        function_error: bool = False,
        error_type: str | None = None,
    ) -> None:
        self.payload = payload
        self.content_type = content_type
        self.function_error = function_error
        self.error_type = error_type

    def answer(self) -> bool:
        """Give the caller the result set by :meth:`set_result` (once)."""
        if self.done:
            return False
        self.done = True
        if self.on_done is not None:
            self.on_done(self)
        return True

    def finish(
        self,
        payload: bytes,
        *,
        content_type: bytes = b"application/json",
        function_error: bool = False,
        error_type: str | None = None,
    ) -> bool:
        """Answer with ``payload`` unless answered already; cancels the invoke's timer."""
        if self.done:
            return False
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        self.set_result(
            payload, content_type=content_type, function_error=function_error, error_type=error_type
        )
        return self.answer()

    def close_log(self) -> None:
        """The invoke's log is complete: run ``on_end`` (once)."""
        self.ended = True
        callback, self.on_end = self.on_end, None
        if callback is not None:
            callback(self)

    def new_attempt(self) -> None:
        """Reset for a retry of an Event invoke (same request id, new invocation id)."""
        self.attempt += 1
        self.invocation_id = os.urandom(16).hex()
        self.env = None
        self.invoke_start = None
        self.done = False
        self.ended = False
        self.payload = b""
        self.function_error = False
        self.error_type = None
        self.report = None
        self.streaming = False
        self.streamed = 0
