"""Handlers that open their own spans through the OpenTelemetry API (for --otel-console)."""

import time

from opentelemetry import trace

tracer = trace.get_tracer("tests.traced")


def handler(event, context):
    with tracer.start_as_current_span("outer-work") as span:
        span.set_attribute("work.kind", "outer")
        time.sleep(event.get("outer", 0.05))
        with tracer.start_as_current_span("inner-work") as inner:
            inner.set_attribute("work.items", 3)
            time.sleep(event.get("inner", 0.1))
    return {"ok": True}


def fail(event, context):
    with tracer.start_as_current_span("failing-step"):
        raise ValueError("traced failure")
