"""Shutdown hooks: run when Lambda shuts the environment down (SIGTERM), within 0.4 s."""

from __future__ import annotations

from typing import Any

import runtime
from runtime import LambdaContext

pending: list[dict[str, Any]] = []


@runtime.on_shutdown
def flush() -> None:
    # A real function would send buffered metrics or close a database pool here.
    print(f"flushing {len(pending)} buffered records", flush=True)


def handler(event: dict[str, Any], context: LambdaContext) -> str:
    pending.append(event)
    return "buffered"
