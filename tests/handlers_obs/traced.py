"""Handlers that use the OpenTelemetry API the normal way."""

from __future__ import annotations

import logging
from typing import Any

from opentelemetry import trace

tracer = trace.get_tracer(__name__)
log = logging.getLogger("app.traced")


def handler(event: Any, context: Any) -> dict[str, Any]:
    with tracer.start_as_current_span("load-order") as span:
        span.set_attribute("order.id", "o-1")
        log.warning("inside a user span")
        ctx = span.get_span_context()
    return {"trace_id": f"{ctx.trace_id:032x}", "span_id": f"{ctx.span_id:016x}"}


def fail(event: Any, context: Any) -> None:
    raise ValueError("traced failure")


def http(event: Any, context: Any) -> dict[str, Any]:
    return {"statusCode": int(event.get("status", 200)), "body": "x"}
