"""Benchmark handlers: as small as possible, so the numbers measure the runtime, not user code.

Both runtimes load this same file with LAMBDA_TASK_ROOT pointing at this folder.
"""

from typing import Any


def echo(event: Any, context: Any) -> Any:
    return event


# --- section "concurrency": invokes that wait (I/O-like) or compute ---------------------------

WAIT_S = 0.05
CPU_ROUNDS = 1000  # a few ms of SHA-256


def sleep_sync(event: Any, context: Any) -> Any:
    import time

    time.sleep(WAIT_S)
    return event


async def sleep_async(event: Any, context: Any) -> Any:
    import asyncio

    await asyncio.sleep(WAIT_S)
    return event


def cpu(event: Any, context: Any) -> Any:
    import hashlib

    digest = b""
    for _ in range(CPU_ROUNDS):
        digest = hashlib.sha256(digest).digest()
    return event
