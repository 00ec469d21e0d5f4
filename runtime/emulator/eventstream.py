"""``application/vnd.amazon.eventstream`` frames, as Lambda's InvokeWithResponseStream sends them.

A message: total length (u32 BE), headers length (u32 BE), CRC32 of those 8 bytes, the headers,
the payload, CRC32 of everything before it. A header: name length (u8), name, value type (u8),
value; only strings (type 7: u16 length, UTF-8) are needed here. botocore's
``botocore.eventstream`` decodes these and is the reference the tests hold this module to.

Lambda's events: ``PayloadChunk`` (the payload is the raw bytes the function streamed) and, last,
``InvokeComplete`` (a JSON payload with ``ErrorCode``, ``ErrorDetails`` and ``LogResult``, each
present only when set). Function errors appear only there: the HTTP status stays 200.
"""

from __future__ import annotations

import json
import struct
import zlib
from collections.abc import Iterator, Mapping

__all__ = [
    "CONTENT_TYPE",
    "MAX_PAYLOAD",
    "encode_message",
    "invoke_complete",
    "payload_chunk",
    "payload_chunks",
]

CONTENT_TYPE = "application/vnd.amazon.eventstream"
# The event-stream format's own ceiling for one message's payload (older botocore releases
# refuse anything larger); a bigger chunk from the function is split over several events.
MAX_PAYLOAD = 16 * 1024 * 1024
_MAX_HEADERS = 128 * 1024
_STRING = 7
_PRELUDE = struct.Struct(">II")
_CRC = struct.Struct(">I")


def _encode_headers(headers: Mapping[str, str]) -> bytes:
    parts = []
    for name, value in headers.items():
        raw_name = name.encode("utf-8")
        raw_value = value.encode("utf-8")
        if not 0 < len(raw_name) <= 255:
            raise ValueError(f"event-stream header name must be 1-255 bytes: {name!r}")
        if len(raw_value) > 0xFFFF:
            raise ValueError(f"event-stream header {name!r} value is over 65535 bytes")
        parts.append(
            bytes((len(raw_name),))
            + raw_name
            + bytes((_STRING,))
            + struct.pack(">H", len(raw_value))
            + raw_value
        )
    block = b"".join(parts)
    if len(block) > _MAX_HEADERS:
        raise ValueError(f"event-stream headers are {len(block)} bytes, over {_MAX_HEADERS}")
    return block


def encode_message(
    headers: Mapping[str, str], payload: bytes | bytearray | memoryview = b""
) -> bytes:
    """One event-stream message with string ``headers`` and ``payload``."""
    block = _encode_headers(headers)
    size = memoryview(payload).nbytes
    if size > MAX_PAYLOAD:
        raise ValueError(f"event-stream payload is {size} bytes, over {MAX_PAYLOAD}; split it")
    total = _PRELUDE.size + _CRC.size + len(block) + size + _CRC.size
    prelude = _PRELUDE.pack(total, len(block))
    head = prelude + _CRC.pack(zlib.crc32(prelude)) + block
    crc = zlib.crc32(payload, zlib.crc32(head))
    return b"".join((head, payload, _CRC.pack(crc)))


_CHUNK_HEADERS = {
    ":event-type": "PayloadChunk",
    ":content-type": "application/octet-stream",
    ":message-type": "event",
}
_COMPLETE_HEADERS = {
    ":event-type": "InvokeComplete",
    ":content-type": "application/json",
    ":message-type": "event",
}


def payload_chunk(data: bytes | bytearray | memoryview) -> bytes:
    """A ``PayloadChunk`` event carrying ``data`` (at most :data:`MAX_PAYLOAD` bytes)."""
    return encode_message(_CHUNK_HEADERS, data)


def payload_chunks(data: bytes | bytearray | memoryview) -> Iterator[bytes]:
    """``PayloadChunk`` events for ``data`` of any size: one, or several when it is too large
    for one message. Nothing for empty data (an empty event carries nothing)."""
    view = memoryview(data).cast("B")
    for start in range(0, len(view), MAX_PAYLOAD):
        yield payload_chunk(view[start : start + MAX_PAYLOAD])


def invoke_complete(
    error_code: str | None = None,
    error_details: str | None = None,
    log_result: str | None = None,
) -> bytes:
    """The closing ``InvokeComplete`` event: ``error_code`` and ``error_details`` describe a
    function error (the caller decides their text), ``log_result`` is the base64 log tail
    (``LogType=Tail``); fields left ``None`` are absent from the event."""
    body: dict[str, str] = {}
    if error_code is not None:
        body["ErrorCode"] = error_code
    if error_details is not None:
        body["ErrorDetails"] = error_details
    if log_result is not None:
        body["LogResult"] = log_result
    return encode_message(_COMPLETE_HEADERS, json.dumps(body, separators=(",", ":")).encode())
