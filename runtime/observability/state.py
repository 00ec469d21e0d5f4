"""What observability records about the invoke in progress, in one context variable.

This module is the bottom of the observability package: it imports nothing else of the
runtime, so every other part (JSON logs, metrics, tracing, the layer) can depend on it without
depending on each other. ``tests/test_architecture.py`` keeps it so.

The layer (:mod:`runtime.observability.layer`) sets a fresh :class:`InvokeState` when the
handler is called and clears it after the invoke's ``after_invoke`` step. A context variable
(not a global) keeps this right for async handlers and for several invokes in flight at once.
"""

from __future__ import annotations

from collections import deque
from contextvars import ContextVar

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing
if TYPE_CHECKING:
    from typing import Any


class InvokeState:
    """What observability records about one invoke."""

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
        # The invoke's custom metrics (a runtime.observability.metrics.MetricSet), when on.
        self.metrics: Any = None
        self.trace_ids: tuple[str, str] | None = None  # (trace id, span id) of the invoke span
        self.structlog_snapshot: dict[str, Any] | None = None


current_invoke: ContextVar[InvokeState | None] = ContextVar("lambda_runtime_invoke", default=None)
