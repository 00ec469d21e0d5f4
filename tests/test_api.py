"""The Runtime API client against a real socket peer on 127.0.0.1: what goes on the wire."""

from __future__ import annotations

import socket
import sys
import threading
from collections.abc import Iterator

import pytest

from runtime import __version__
from runtime.api import RuntimeClient, user_agent

EVENT = (
    b"HTTP/1.1 200 OK\r\nLambda-Runtime-Aws-Request-Id: {rid}\r\n"
    b"Lambda-Runtime-Deadline-Ms: 1\r\nContent-Length: 2\r\n\r\n{}"
)
ACCEPTED = b"HTTP/1.1 202 Accepted\r\nContent-Length: 0\r\n\r\n"


class Peer:
    """Answers requests in order with canned responses and keeps each request head."""

    def __init__(self, answers: list[bytes]) -> None:
        self.heads: list[str] = []
        self._answers = answers
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        self._listener.settimeout(10)  # bounded: a client that never comes ends the thread
        conn, _ = self._listener.accept()
        with conn:
            conn.settimeout(10)
            buffer = b""
            for answer in self._answers:
                while b"\r\n\r\n" not in buffer:
                    chunk = conn.recv(65536)
                    if not chunk:
                        return
                    buffer += chunk
                head, _, buffer = buffer.partition(b"\r\n\r\n")
                text = head.decode("latin-1")
                length = 0
                for line in text.split("\r\n")[1:]:
                    name, _, value = line.partition(":")
                    if name.lower() == "content-length":
                        length = int(value)
                while len(buffer) < length:
                    buffer += conn.recv(65536)
                buffer = buffer[length:]
                self.heads.append(text)
                conn.sendall(answer)

    def close(self) -> None:
        self._thread.join(5)
        self._listener.close()


@pytest.fixture
def peer() -> Iterator[Peer]:
    p = Peer([EVENT.replace(b"{rid}", b"r1"), ACCEPTED, EVENT.replace(b"{rid}", b"r2")])
    yield p
    p.close()


def test_user_agent_names_the_runtime_and_python_versions() -> None:
    python = f"{sys.version_info[0]}.{sys.version_info[1]}"
    assert user_agent() == f"lambda-runtime/{__version__} python/{python}"


def test_every_runtime_api_request_carries_the_user_agent(peer: Peer) -> None:
    client = RuntimeClient("127.0.0.1", peer.port, lambda message: None)
    first = client.next_invocation()
    # The response with GET /next pipelined behind it, then the next event read from it.
    client.post_response(first, b'"ok"', "application/json", then_next=True)
    second = client.next_invocation()
    client.close()
    assert (first.request_id, second.request_id) == ("r1", "r2")
    lines = [head.split("\r\n") for head in peer.heads]
    assert [request[0].split(" ")[0] for request in lines] == ["GET", "POST", "GET"]
    for request in lines:
        assert request.count(f"User-Agent: {user_agent()}") == 1, request
