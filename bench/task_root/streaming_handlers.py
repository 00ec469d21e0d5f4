"""Handlers for bench.section_streaming."""

import time
from collections.abc import Iterator
from typing import Any

import orjson

CHUNK = 64 * 1024


def buffered(event: Any, context: Any) -> Any:
    """Echo the event (a long JSON string) as a buffered result."""
    return event


def streamed(event: Any, context: Any) -> Iterator[memoryview]:
    """Echo the same bytes, streamed in 64 KiB chunks."""
    view = memoryview(orjson.dumps(event))
    for start in range(0, len(view), CHUNK):
        yield view[start : start + CHUNK]


def streamed_65000(event: Any, context: Any) -> Iterator[memoryview]:
    """The same in 65,000-byte chunks: each fits one loopback TCP segment with its framing
    (64 KiB plus framing is just over loopback's MSS, so each such chunk costs two)."""
    view = memoryview(orjson.dumps(event))
    for start in range(0, len(view), 65000):
        yield view[start : start + 65000]


def stamped(event: Any, context: Any) -> Iterator[bytes]:
    """Chunks carrying the time.monotonic_ns() of their yield, a few ms apart."""
    for _ in range(int(event.get("chunks", 20))):
        time.sleep(float(event.get("pause", 0.005)))
        yield b"T%d;" % time.monotonic_ns()
