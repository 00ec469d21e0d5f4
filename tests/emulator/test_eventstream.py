"""The event-stream encoder, held to botocore's own decoder and to a real boto3 client."""

from __future__ import annotations

import base64
import struct
import threading
import zlib
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.eventstream import EventStreamBuffer
from hypothesis import given, settings
from hypothesis import strategies as st

from runtime import protocol as p
from runtime.emulator.eventstream import (
    CONTENT_TYPE,
    MAX_PAYLOAD,
    encode_message,
    invoke_complete,
    payload_chunk,
    payload_chunks,
)


def decode(data: bytes, split: int = 0) -> list[Any]:
    buffer = EventStreamBuffer()
    if split:
        for start in range(0, len(data), split):
            buffer.add_data(data[start : start + split])
    else:
        buffer.add_data(data)
    return list(buffer)


def test_layout_of_a_message() -> None:
    frame = encode_message({":a": "bc"}, b"xyz")
    header = b"\x02:a\x07\x00\x02bc"
    total = 12 + len(header) + 3 + 4
    assert frame[:8] == struct.pack(">II", total, len(header))
    assert frame[8:12] == struct.pack(">I", zlib.crc32(frame[:8]))
    assert frame[12:-4] == header + b"xyz"
    assert frame[-4:] == struct.pack(">I", zlib.crc32(frame[:-4]))
    assert len(frame) == total


def test_payload_chunk_as_botocore_reads_it() -> None:
    (message,) = decode(payload_chunk(bytearray(b"hello")))
    assert message.headers == {
        ":event-type": "PayloadChunk",
        ":content-type": "application/octet-stream",
        ":message-type": "event",
    }
    assert message.payload == b"hello"


def test_invoke_complete_leaves_absent_fields_out() -> None:
    (message,) = decode(invoke_complete())
    assert message.headers[":event-type"] == "InvokeComplete"
    assert message.headers[":content-type"] == "application/json"
    assert message.payload == b"{}"
    (message,) = decode(invoke_complete("Unhandled", "boom", "bG9n"))
    assert message.payload == b'{"ErrorCode":"Unhandled","ErrorDetails":"boom","LogResult":"bG9n"}'


def test_large_payloads_are_split_over_events() -> None:
    data = bytes(range(256)) * (MAX_PAYLOAD // 256) + b"tail"
    frames = list(payload_chunks(memoryview(data)))
    assert len(frames) == 2
    assert b"".join(m.payload for f in frames for m in decode(f)) == data
    assert list(payload_chunks(b"")) == []
    with pytest.raises(ValueError, match="split it"):
        payload_chunk(data)


def test_bad_headers_are_refused() -> None:
    with pytest.raises(ValueError, match="1-255 bytes"):
        encode_message({"": "x"})
    with pytest.raises(ValueError, match="1-255 bytes"):
        encode_message({"n" * 256: "x"})
    with pytest.raises(ValueError, match="over 65535"):
        encode_message({"n": "v" * 65536})


header_names = st.text(min_size=1, max_size=40).filter(lambda s: len(s.encode()) <= 255)


@settings(max_examples=200, deadline=None)
@given(
    headers=st.dictionaries(header_names, st.text(max_size=300), max_size=6),
    payload=st.binary(max_size=4096),
    split=st.integers(min_value=0, max_value=64),
)
def test_round_trip_through_botocore(headers: dict[str, str], payload: bytes, split: int) -> None:
    frame = encode_message(headers, payload)
    # Two messages back to back, delivered in arbitrary pieces, as a socket would.
    messages = decode(frame + frame, split)
    assert len(messages) == 2
    for message in messages:
        assert message.headers == headers
        assert message.payload == payload


# --- a real boto3 client against frames served on 127.0.0.1 --------------------------------


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    body = b""
    requests: list[str]

    def do_POST(self) -> None:
        self.requests.append(self.path)
        self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self.send_response(200)
        self.send_header("Content-Type", CONTENT_TYPE)
        self.send_header("X-Amz-Executed-Version", "$LATEST")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        # Each frame in its own HTTP chunk, like a server forwarding them as they come.
        for frame in self.server.frames:  # type: ignore[attr-defined]
            self.wfile.write(b"%x\r\n%s\r\n" % (len(frame), frame))
        self.wfile.write(b"0\r\n\r\n")

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def frames_server() -> Iterator[tuple[ThreadingHTTPServer, list[str]]]:
    requests: list[str] = []
    handler = type("Handler", (_Handler,), {"requests": requests})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server, requests
    server.shutdown()
    server.server_close()
    thread.join(5)


def test_boto3_invoke_with_response_stream_parses_the_frames(
    frames_server: tuple[ThreadingHTTPServer, list[str]],
) -> None:
    server, requests = frames_server
    log = base64.b64encode(b"START RequestId: x\n").decode()
    server.frames = [  # type: ignore[attr-defined]
        payload_chunk(b"first "),
        *payload_chunks("sécond".encode()),
        payload_chunk(b"\x00\xff binary"),
        invoke_complete("Function.Error", "it broke", log),
    ]
    client = boto3.client(
        "lambda",
        endpoint_url=f"http://127.0.0.1:{server.server_address[1]}",
        region_name="us-east-1",
        aws_access_key_id="test",
        aws_secret_access_key="test",
        config=Config(retries={"max_attempts": 0}),
    )
    try:
        response = client.invoke_with_response_stream(FunctionName="fn", Payload=b"{}")
        events = list(response["EventStream"])
    finally:
        client.close()
    assert requests == [p.stream_invoke_path("fn")]
    assert response["StatusCode"] == 200
    assert response["ExecutedVersion"] == "$LATEST"
    assert response["ResponseStreamContentType"] == CONTENT_TYPE
    assert events == [
        {"PayloadChunk": {"Payload": b"first "}},
        {"PayloadChunk": {"Payload": "sécond".encode()}},
        {"PayloadChunk": {"Payload": b"\x00\xff binary"}},
        {
            "InvokeComplete": {
                "ErrorCode": "Function.Error",
                "ErrorDetails": "it broke",
                "LogResult": log,
            }
        },
    ]
