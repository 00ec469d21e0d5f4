"""The observability layer around the handler: per-invoke state, the invoke span, the metric
line, and what must happen after the response is posted (flushing spans, the EMF line).

Built by :func:`runtime.observability.build_layers` only when something asks for it; with
nothing switched on there is no layer at all, so the invoke hot path is exactly the lifecycle's.
"""

from __future__ import annotations

import sys
import time

from runtime.observability.state import InvokeState, current_invoke

# typing costs milliseconds of cold start; it is only needed by the type checker.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    from runtime.context import LambdaContext
    from runtime.layers import Call
    from runtime.observability.metrics import EmfWriter, MetricSet
    from runtime.observability.tracing import Tracing


class Observability:
    """The layer: state per invoke, the invoke span, and the after-invoke flush of both."""

    def __init__(
        self,
        *,
        tracing: Tracing | None = None,
        emf: EmfWriter | None = None,
        buffer_size: int = 0,
        restore_structlog: bool = False,
        cold_start: bool = True,
    ) -> None:
        self._tracing = tracing
        self._emf = emf
        self._buffer_size = buffer_size
        self._snapshot_structlog: Callable[[], dict[str, Any]] | None = None
        self._restore_structlog: Callable[[dict[str, Any]], None] | None = None
        if restore_structlog:
            from runtime.observability.structlog_bridge import (
                restore_contextvars,
                snapshot_contextvars,
            )

            self._snapshot_structlog = snapshot_contextvars
            self._restore_structlog = restore_contextvars
        # Provisioned concurrency initialises long before the first invoke: that invoke does
        # not wait for init, so it is not a cold start for the caller.
        self._next_is_cold = cold_start

    def wrap(self, call: Call) -> Call:
        tracing = self._tracing
        metric_set: type[MetricSet] | None = None
        if self._emf is not None:
            from runtime.observability.metrics import MetricSet

            metric_set = MetricSet
        snapshot_structlog = self._snapshot_structlog

        def observed(event: Any, context: LambdaContext) -> Any:
            state = InvokeState(self._next_is_cold, self._buffer_size)
            self._next_is_cold = False
            if metric_set is not None:
                state.metrics = metric_set()
            if snapshot_structlog is not None:
                state.structlog_snapshot = snapshot_structlog()
            current_invoke.set(state)
            state.started_ms = time.time_ns() // 1_000_000
            started = time.perf_counter_ns()
            try:
                if tracing is not None:
                    return tracing.invoke(call, event, context, state)
                return call(event, context)
            except BaseException:
                state.failed = True
                raise
            finally:
                state.duration_ns = time.perf_counter_ns() - started

        return observed

    def after_invoke(self) -> None:
        state = current_invoke.get()
        if state is None:
            return
        # Nothing here may raise into the lifecycle: the next /next must always happen.
        try:
            if self._emf is not None:
                self._emf.emit(state)
            if state.structlog_snapshot is not None and self._restore_structlog is not None:
                self._restore_structlog(state.structlog_snapshot)
        except Exception as exc:
            sys.stderr.write(f"lambda-runtime: after-invoke step failed: {exc!r}\n")
        finally:
            current_invoke.set(None)
            if self._tracing is not None:
                self._tracing.flush()
