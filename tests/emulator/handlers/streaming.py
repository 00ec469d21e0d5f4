"""Streaming handlers for the emulator's streaming tests."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import runtime
from runtime import HttpResponse, StreamResponse


def timed(event: dict[str, Any], context: Any) -> Iterator[bytes]:
    """Chunks with the time each was yielded, ``pause`` seconds apart."""
    pause = float(event.get("pause", 0.3))
    for index in range(int(event.get("count", 3))):
        if index:
            time.sleep(pause)
        yield f"{index}:{time.time():.6f}\n".encode()


async def async_timed(event: dict[str, Any], context: Any) -> AsyncIterator[str]:
    for index in range(int(event.get("count", 3))):
        if index:
            await asyncio.sleep(float(event.get("pause", 0.3)))
        yield f"{index}:{time.time():.6f}\n"


def returns_generator(event: dict[str, Any], context: Any) -> Iterator[str]:
    def body() -> Iterator[str]:
        yield StreamResponse(content_type="text/plain")  # type: ignore[misc]
        yield "returned "
        yield "generator"

    return body()


def http(event: dict[str, Any], context: Any) -> Iterator[object]:
    yield HttpResponse(
        status_code=201,
        headers={"content-type": "text/event-stream", "x-path": event.get("rawPath", "")},
        cookies=["a=1; Path=/", "b=2"],
    )
    for index in range(3):
        if index:
            time.sleep(float(event.get("queryStringParameters", {}).get("pause", "0.3")))
        yield f"data: {index} {time.time():.6f}\n\n"


def fails_midway(event: dict[str, Any], context: Any) -> Iterator[bytes]:
    yield b"first "
    yield b"second "
    raise ValueError("broke after two chunks")


def fails_first(event: dict[str, Any], context: Any) -> Iterator[bytes]:
    raise KeyError("nothing streamed")
    yield b"never"


def big(event: dict[str, Any], context: Any) -> Iterator[bytes]:
    chunk = b"x" * (64 * 1024)
    for _ in range(int(event.get("mib", 10)) * 16):
        yield chunk


def endless(event: dict[str, Any], context: Any) -> Iterator[bytes]:
    """A chunk every 0.1 s, forever: ends only by the timeout (or the client going)."""
    index = 0
    while True:
        yield f"{index}\n".encode()
        index += 1
        time.sleep(0.1)


def buffered(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return {"buffered": True, "event": event}


_log = logging.getLogger("streaming")


def observed(event: dict[str, Any], context: Any) -> Iterator[bytes]:
    """Logs and adds a metric while streaming, with pauses, so its span has a known length."""
    for index in range(3):
        if index:
            time.sleep(0.2)
        _log.info("chunk %d", index)
        runtime.add_metric("chunks", 1, "Count")
        yield f"{index}\n".encode()


async def loop_identity(event: dict[str, Any], context: Any) -> AsyncIterator[str]:
    """The loop the async generator runs on, and whether a module-level loop object survives."""
    await asyncio.sleep(0)
    yield str(id(asyncio.get_running_loop()))


def flood(event: dict[str, Any], context: Any) -> Iterator[bytes]:
    """``mib`` MiB as fast as it can be taken, then the time it was all taken."""
    chunk = b"y" * (64 * 1024)
    for _ in range(int(event.get("mib", 40)) * 16):
        yield chunk
    yield f"END:{time.time():.6f}".encode()
