"""A handler that imports structlog only inside the handler, on the first invoke."""

from __future__ import annotations

from typing import Any


def handler(event: Any, context: Any) -> str:
    import structlog

    structlog.get_logger().info("lazy import", k="v")
    return "ok"
