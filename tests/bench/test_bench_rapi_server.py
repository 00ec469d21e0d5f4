"""bench.rapi_server: the Runtime API server the published ratios come from, run as the
benchmark runs it (its own process, driven through bench.runtimes.Server), spoken to over real
sockets on 127.0.0.1 by a hand-written client, so every byte on the wire is the test's."""

from __future__ import annotations

import json
import re
import socket
import time
from collections.abc import Iterator
from typing import Any

import pytest

from bench.rapi_server import DEADLINE_AHEAD_MS, FUNCTION_ARN, MAX_HEADER_BYTES, BatchStats
from bench.runtimes import Server
from runtime import protocol

SMALL = b'{"a":1}'
BIG = json.dumps({"items": list(range(20_000)), "name": "caf\u00e9"}).encode()


class Client:
    """One keep-alive connection, reading responses by Content-Length."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.buf = b""

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def _fill(self) -> None:
        chunk = self.sock.recv(65536)
        if not chunk:
            raise EOFError("server closed the connection")
        self.buf += chunk

    def read_response(self) -> tuple[int, dict[str, str], bytes]:
        while b"\r\n\r\n" not in self.buf:
            self._fill()
        head, _, self.buf = self.buf.partition(b"\r\n\r\n")
        status_line, *lines = head.decode().split("\r\n")
        headers = {}
        for line in lines:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        length = int(headers.get("content-length", "0"))
        while len(self.buf) < length:
            self._fill()
        body, self.buf = self.buf[:length], self.buf[length:]
        return int(status_line.split()[1]), headers, body

    def closed_by_server(self) -> bool:
        try:
            return self.sock.recv(1) == b""
        except ConnectionResetError:
            return True

    def close(self) -> None:
        self.sock.close()


def get_next() -> bytes:
    return f"GET {protocol.NEXT_PATH} HTTP/1.1\r\nHost: x\r\n\r\n".encode()


def post(path: str, body: bytes, extra: str = "") -> bytes:
    return (
        f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body)}\r\n{extra}\r\n"
    ).encode() + body


def post_chunked(path: str, body: bytes, pieces: int = 3) -> bytes:
    step = max(1, len(body) // pieces)
    chunks = b"".join(
        f"{len(body[i : i + step]):x};ext=1\r\n".encode() + body[i : i + step] + b"\r\n"
        for i in range(0, len(body), step)
    )
    head = f"POST {path} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n".encode()
    return head + chunks + b"0\r\nX-Trailer: t\r\n\r\n"


@pytest.fixture
def server() -> Iterator[Server]:
    srv = Server()
    srv.load("small", SMALL)
    srv.load("big", BIG)
    srv.reset()
    yield srv
    srv.stop()


@pytest.fixture
def client(server: Server) -> Iterator[Client]:
    c = Client(server.port)
    yield c
    c.close()


def message(server: Server, timeout: float = 10.0) -> tuple[Any, ...]:
    assert server.conn.poll(timeout), "the server sent the harness nothing"
    msg: tuple[Any, ...] = server.conn.recv()
    return msg


def park(server: Server, client: Client) -> BatchStats:
    """Send /next with nothing to serve and wait for the server to report the runtime idle."""
    client.send(get_next())
    msg = message(server)
    assert msg[0] == "idle", msg
    stats: BatchStats = msg[2]
    return stats


def no_message(server: Server, wait: float = 0.3) -> None:
    if server.conn.poll(wait):
        pytest.fail(f"unexpected message to the harness: {server.conn.recv()!r}")


def test_next_carries_the_headers_lambda_sends(server: Server, client: Client) -> None:
    park(server, client)
    server.start_batch("small", 1)
    status, headers, body = client.read_response()
    assert status == 200 and body == SMALL
    assert headers["content-type"] == "application/json"
    assert re.fullmatch(r"[0-9a-f-]{36}", headers[protocol.REQUEST_ID_KEY])
    assert headers[protocol.FUNCTION_ARN_KEY] == FUNCTION_ARN
    deadline_in = int(headers[protocol.DEADLINE_KEY]) - time.time() * 1000
    assert DEADLINE_AHEAD_MS - 5000 < deadline_in <= DEADLINE_AHEAD_MS
    assert re.fullmatch(
        r"Root=1-[0-9a-f]{8}-[0-9a-f]{24};Parent=[0-9a-f]{16};Sampled=0",
        headers[protocol.TRACE_ID_KEY],
    )


def test_a_batch_is_served_and_checked_then_the_runtime_is_reported_idle(
    server: Server, client: Client
) -> None:
    park(server, client)
    server.start_batch("small", 3)
    ids, traces = set(), set()
    for i in range(3):
        _, headers, body = client.read_response()
        ids.add(headers[protocol.REQUEST_ID_KEY])
        traces.add(headers[protocol.TRACE_ID_KEY])
        # Runtimes differ in JSON spacing: an equal document is a right answer.
        echo = b'{ "a": 1 }' if i == 0 else body
        client.send(post(protocol.response_path(headers[protocol.REQUEST_ID_KEY]), echo))
        assert client.read_response()[0] == protocol.STATUS_ACCEPTED
        if i < 2:
            client.send(get_next())
    stats = park(server, client)
    assert len(ids) == len(traces) == 3  # a new request id and trace id per invoke
    assert (stats.served, stats.responses, stats.errors) == (3, 3, 0)
    assert len(stats.wall_ns) == 3 and all(w > 0 for w in stats.wall_ns)
    # The batch's first /next is the one that was parked before the batch started.
    assert stats.first_next_ns <= stats.started_ns <= stats.last_response_ns <= stats.finished_ns


def test_pipelined_response_and_next_are_served_in_order(server: Server, client: Client) -> None:
    """Our runtime writes its /response and the next GET /next in one go; the server must
    answer the post first, count it, and only then hand out the next event."""
    park(server, client)
    server.start_batch("big", 3)
    _, headers, body = client.read_response()
    assert body == BIG
    for framing in ("length", "chunked"):
        path = protocol.response_path(headers[protocol.REQUEST_ID_KEY])
        answer = post(path, body) if framing == "length" else post_chunked(path, body)
        client.send(answer + get_next())  # one write: both requests in the same segment(s)
        status, _, _ = client.read_response()
        assert status == protocol.STATUS_ACCEPTED, framing
        status, headers, body = client.read_response()
        assert status == 200 and body == BIG, framing
    client.send(post(protocol.response_path(headers[protocol.REQUEST_ID_KEY]), body) + get_next())
    assert client.read_response()[0] == protocol.STATUS_ACCEPTED
    msg = message(server)
    assert msg[0] == "idle"
    assert (msg[2].served, msg[2].responses, msg[2].errors) == (3, 3, 0)


def test_expect_100_continue_is_answered_before_the_body(server: Server, client: Client) -> None:
    park(server, client)
    server.start_batch("small", 1)
    _, headers, body = client.read_response()
    path = protocol.response_path(headers[protocol.REQUEST_ID_KEY])
    client.send(
        post(path, b"", extra="Expect: 100-continue\r\n").replace(
            b"Content-Length: 0", f"Content-Length: {len(body)}".encode()
        )
    )
    # Without the interim answer a client like curl waits a second before sending the body.
    assert client.read_response()[0] == 100
    client.send(body)
    assert client.read_response()[0] == protocol.STATUS_ACCEPTED
    stats = park(server, client)
    assert stats.responses == 1


def test_wrong_echo_is_fatal(server: Server, client: Client) -> None:
    park(server, client)
    server.start_batch("small", 1)
    _, headers, _ = client.read_response()
    client.send(post(protocol.response_path(headers[protocol.REQUEST_ID_KEY]), b'{"a":2}'))
    assert client.read_response()[0] == protocol.STATUS_ACCEPTED
    msg = message(server)
    assert msg[0] == "fatal" and "wrong echo" in msg[1]


def test_response_for_an_unknown_or_answered_request_is_fatal(
    server: Server, client: Client
) -> None:
    park(server, client)
    server.start_batch("small", 1)
    _, headers, body = client.read_response()
    path = protocol.response_path(headers[protocol.REQUEST_ID_KEY])
    client.send(post(path, body))
    assert client.read_response()[0] == protocol.STATUS_ACCEPTED
    no_message(server)
    client.send(post(path, body))  # the same request id again
    client.read_response()
    msg = message(server)
    assert msg[0] == "fatal" and headers[protocol.REQUEST_ID_KEY] in msg[1]
    client.send(post(protocol.response_path("not-a-request"), body))
    client.read_response()
    msg = message(server)
    assert msg[0] == "fatal" and "not-a-request" in msg[1]


def test_invoke_error_is_fatal_and_names_the_error(server: Server, client: Client) -> None:
    park(server, client)
    server.start_batch("small", 1)
    _, headers, _ = client.read_response()
    request_id = headers[protocol.REQUEST_ID_KEY]
    err = b'{"errorMessage":"boom","errorType":"ValueError"}'
    client.send(
        post(
            protocol.error_path(request_id),
            err,
            extra=f"{protocol.ERROR_TYPE_HEADER}: Unhandled\r\n",
        )
    )
    assert client.read_response()[0] == protocol.STATUS_ACCEPTED
    msg = message(server)
    assert msg[0] == "fatal"
    assert request_id in msg[1] and "Unhandled" in msg[1] and "boom" in msg[1]


def test_init_error_is_fatal(server: Server, client: Client) -> None:
    err = b'{"errorMessage":"no module","errorType":"Runtime.ImportModuleError"}'
    client.send(
        post(
            protocol.INIT_ERROR_PATH,
            err,
            extra=f"{protocol.ERROR_TYPE_HEADER}: Runtime.ImportModuleError\r\n",
        )
    )
    assert client.read_response()[0] == protocol.STATUS_ACCEPTED
    msg = message(server)
    assert msg[0] == "fatal"
    assert "init error" in msg[1] and "Runtime.ImportModuleError" in msg[1]
    assert "no module" in msg[1]


def test_unexpected_request_gets_404_and_stops_the_run(server: Server, client: Client) -> None:
    client.send(f"GET {protocol.RUNTIME_BASE}/nope HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    assert client.read_response()[0] == 404
    msg = message(server)
    assert msg[0] == "fatal" and "/nope" in msg[1]


def test_malformed_request_is_fatal(server: Server, client: Client) -> None:
    client.send(b"GARBAGE\r\n\r\n")
    msg = message(server)
    assert msg[0] == "fatal" and "bad request line" in msg[1]
    assert client.closed_by_server()


def test_extension_registers_and_parks_until_reset(server: Server, client: Client) -> None:
    client.send(post(protocol.EXTENSION_REGISTER_PATH, b"{}"))
    status, headers, body = client.read_response()
    assert status == 200 and json.loads(body)["functionName"] == "bench"
    assert headers[protocol.EXTENSION_ID_HEADER.lower()]
    client.send(f"GET {protocol.EXTENSION_NEXT_PATH} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    no_message(server)
    server.reset()
    assert client.closed_by_server()


def test_reset_drops_the_old_runtime_and_its_connections(server: Server, client: Client) -> None:
    park(server, client)
    idle = Client(server.port)  # a second connection that is between requests
    idle.send(post(protocol.EXTENSION_REGISTER_PATH, b"{}"))
    assert idle.read_response()[0] == 200
    server.reset()
    # The old runtime's parked /next is closed, not served by a later batch, and so is its
    # connection that was waiting for a request.
    assert client.closed_by_server()
    assert idle.closed_by_server()
    idle.close()
    fresh = Client(server.port)
    try:
        stats = park(server, fresh)
        assert stats.served == 0
        server.start_batch("small", 1)
        assert fresh.read_response()[2] == SMALL
    finally:
        fresh.close()


def test_oversized_head_and_truncated_body_are_fatal(server: Server) -> None:
    big = Client(server.port)
    big.send(b"GET / HTTP/1.1\r\nX-Pad: " + b"a" * (MAX_HEADER_BYTES + 10))
    msg = message(server)
    assert msg[0] == "fatal" and "request head too large" in msg[1]
    big.close()
    cut = Client(server.port)
    cut.send(post(protocol.INIT_ERROR_PATH, b"x" * 100)[:-40])
    cut.sock.shutdown(socket.SHUT_WR)
    msg = message(server)
    assert msg[0] == "fatal" and "after 60 of 100 body bytes" in msg[1]
    cut.close()


def test_connection_close_is_honoured(server: Server, client: Client) -> None:
    client.send(
        post(protocol.EXTENSION_REGISTER_PATH, b"{}").replace(
            b"Host: x\r\n", b"Host: x\r\nConnection: close\r\n"
        )
    )
    assert client.read_response()[0] == 200
    assert client.closed_by_server()
    no_message(server)


def test_several_parked_next_are_served_at_once_and_the_batch_end_is_reported(
    server: Server,
) -> None:
    clients = [Client(server.port) for _ in range(3)]
    try:
        for c in clients:
            park(server, c)
        server.conn.send(("batch", "small", 3, True))
        answers = [c.read_response() for c in clients]  # all three were parked at once
        for c, (status, headers, body) in zip(clients, answers, strict=True):
            assert status == 200 and body == SMALL
            rid = headers[protocol.REQUEST_ID_HEADER.lower()]
            c.send(post(protocol.response_path(rid), SMALL))
            assert c.read_response()[0] == protocol.STATUS_ACCEPTED
        msg = message(server)
        assert msg[0] == "batch_done", msg
        assert msg[1].responses == 3
    finally:
        for c in clients:
            c.close()
