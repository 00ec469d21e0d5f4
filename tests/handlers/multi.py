"""Handlers for the multi-concurrency tests: each one reports the process, the invoke it
thinks it serves, and logs from the handler and from a thread it starts."""

from __future__ import annotations

import asyncio
import contextvars
import hashlib
import logging
import os
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

log = logging.getLogger("concurrent")


def _what(event: Any, context: Any) -> dict[str, Any]:
    return {
        "pid": os.getpid(),
        "request_id": context.aws_request_id,
        "trace_id": getattr(context, "xray_trace_id", None),
        "env_trace": os.environ.get("_X_AMZN_TRACE_ID"),
        "tag": event.get("tag") if isinstance(event, dict) else None,
    }


def _log_from_thread(tag: Any) -> None:
    thread = threading.Thread(target=log.info, args=("from a thread %s", tag))
    thread.start()
    thread.join()
    # A pool's workers outlive the invoke that started them: each call still belongs to its
    # submitter.
    _POOL.submit(log.info, "from a pool %s", tag).result()


_POOL = ThreadPoolExecutor(max_workers=2)


def sync_sleep(event: Any, context: Any) -> dict[str, Any]:
    started = time.monotonic()
    log.info("start %s", event.get("tag"))
    time.sleep(event.get("sleep", 0.05))
    _log_from_thread(event.get("tag"))
    out = _what(event, context)
    # Read after the sleep: another invoke's context would show here if they leaked.
    out["request_id_after"] = context.aws_request_id
    out["span"] = (started, time.monotonic())
    return out


async def async_sleep(event: Any, context: Any) -> dict[str, Any]:
    started = time.monotonic()
    log.info("start %s", event.get("tag"))
    await asyncio.sleep(event.get("sleep", 0.05))
    await asyncio.to_thread(log.info, "from a thread %s", event.get("tag"))
    out = _what(event, context)
    out["span"] = (started, time.monotonic())
    out["loop"] = id(asyncio.get_running_loop())
    return out


def faulty(event: Any, context: Any) -> dict[str, Any]:
    action = event.get("action")
    if action == "raise":
        raise ValueError(f"boom {event.get('tag')}")
    if action == "exit":
        sys.exit(3)
    if action == "crash":
        time.sleep(0.3)  # the others are in flight by then
        os._exit(9)
    if action == "hang":
        time.sleep(event.get("sleep", 2.0))
    else:
        time.sleep(0.05)
    return _what(event, context)


async def async_faulty(event: Any, context: Any) -> dict[str, Any]:
    if event.get("action") == "exit":
        sys.exit(4)
    await asyncio.sleep(0.05)
    return _what(event, context)


def cpu(event: Any, context: Any) -> dict[str, Any]:
    digest = b""
    for _ in range(event.get("rounds", 20000)):
        digest = hashlib.sha256(digest).digest()
    return _what(event, context)


def die(event: Any, context: Any) -> None:
    os._exit(9)  # the process crashes (no exception to report)


def observed(event: Any, context: Any) -> dict[str, Any]:
    import structlog

    from runtime import add_metric

    tag = event["tag"]
    structlog.contextvars.bind_contextvars(tag=tag)
    add_metric("Tag", tag)
    time.sleep(0.05)
    # Another invoke's binding or metric would show here if they leaked.
    structlog.get_logger().info("observed")
    # A thread the handler starts adds to its invoke's metrics.
    thread = threading.Thread(target=add_metric, args=("FromThread", tag))
    thread.start()
    thread.join()
    return _what(event, context)


_SEEN: contextvars.ContextVar[str | None] = contextvars.ContextVar("seen", default=None)


async def async_threads(event: Any, context: Any) -> dict[str, Any]:
    """How many threads the process runs while this invoke (and its peers) wait, and whether
    a context variable set by an earlier invoke of the same slot is still visible."""
    before = _SEEN.get()
    _SEEN.set(context.aws_request_id)
    await asyncio.sleep(event.get("sleep", 0.2))
    return {**_what(event, context), "threads": threading.active_count(), "seen": before}


async def async_stream_result(event: Any, context: Any) -> Any:
    """An async handler that returns a stream (not an async generator function itself)."""
    loop = asyncio.get_running_loop()

    async def chunks() -> Any:
        for part in (b"one ", b"two ", context.aws_request_id.encode()):
            await asyncio.sleep(0.01)
            # The steps run on the environment loop, as the handler did.
            assert asyncio.get_running_loop() is loop
            yield part

    return chunks()
