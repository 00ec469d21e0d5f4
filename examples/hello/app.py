"""The example function: greets whoever the event names and says what the context knows."""

from __future__ import annotations

import logging
from typing import Any

from runtime import LambdaContext

logger = logging.getLogger(__name__)


def handler(event: Any, context: LambdaContext) -> dict[str, Any]:
    name = event.get("name", "world") if isinstance(event, dict) else "world"
    logger.warning("greeting %s", name)
    return {
        "message": f"Hello, {name}!",
        "request_id": context.aws_request_id,
        "function_name": context.function_name,
        "memory_limit_in_mb": context.memory_limit_in_mb,
        "remaining_time_in_millis": context.get_remaining_time_in_millis(),
    }
