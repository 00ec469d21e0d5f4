"""Observability built in: JSON logs, structlog, a custom span and a custom metric.

Nothing to set up in code: the runtime routes stdlib logging and structlog to the function
log, starts the invoke span, and writes the metric line. Run it locally with the emulator:

    .venv/bin/lambda-runtime invoke app.handler --task-root examples/observability \\
        --log-format JSON --env LAMBDA_RUNTIME_METRICS=emf \\
        --env OTEL_TRACES_EXPORTER=console \\
        --event '{"orderId": "o-42", "items": [{"sku": "tea", "price": 4.5}]}'

On Lambda, set AWS_LAMBDA_LOG_FORMAT=JSON (the function's log format), LAMBDA_RUNTIME_METRICS=emf,
and point OTEL_EXPORTER_OTLP_ENDPOINT at your collector (e.g. the ADOT collector extension on
http://localhost:4318).
"""

from __future__ import annotations

import logging
from typing import Any

import structlog
from opentelemetry import trace

from runtime import LambdaContext, add_metric, add_property

logger = logging.getLogger(__name__)  # stdlib logging: extra= keys become JSON fields
log = structlog.get_logger("orders")  # structlog: bound keys become JSON fields
tracer = trace.get_tracer(__name__)  # spans nest under the runtime's invoke span


def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    order_id = event.get("orderId", "unknown")
    items = event.get("items", [])
    order_log = log.bind(order_id=order_id)
    order_log.info("order received", items=len(items))

    with tracer.start_as_current_span("price-order") as span:
        span.set_attribute("order.items", len(items))
        total = sum(float(item.get("price", 0)) for item in items)
        # Records inside a span carry its traceId and spanId.
        logger.info("order priced", extra={"orderId": order_id, "total": total})

    add_metric("OrdersPlaced", 1, "Count")
    add_metric("OrderValue", total, "None")
    add_property("orderId", order_id)
    if not items:
        order_log.warning("empty order")
    return {"orderId": order_id, "total": total}
