"""Handlers that add custom metrics to the invoke's EMF line."""

from __future__ import annotations

from typing import Any

from runtime import add_metric, add_property


def handler(event: Any, context: Any) -> str:
    add_metric("OrdersPlaced", 1, "Count")
    add_metric("BasketValue", 42.5)
    add_metric("Latency", 3, "Milliseconds", resolution=1)
    add_metric("Latency", 4, "Milliseconds", resolution=1)
    add_property("orderId", "o-42")
    if event.get("fail"):
        raise RuntimeError("failed after adding metrics")
    return "ok"


def not_serialisable(event: Any, context: Any) -> object:
    return object()  # fails after the handler returned (marshal error): still an error
