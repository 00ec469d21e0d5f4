"""An async handler: awaited on one event loop that lives as long as the environment."""

from __future__ import annotations

import asyncio
from typing import Any

from runtime import LambdaContext


async def fetch(item: str) -> str:
    await asyncio.sleep(0.01)  # stands in for an HTTP call or a database query
    return item.upper()


async def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    items = event.get("items", ["a", "b", "c"])
    results = await asyncio.gather(*(fetch(item) for item in items))
    return {"results": results, "request_id": context.aws_request_id}
