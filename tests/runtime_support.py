"""A scripted Runtime API server on a real socket and a runtime process, for the tests.

The fixtures that use them live in conftest.py; test modules import these names from here
(a module name of its own: `conftest` is ambiguous when several test folders run together).
"""

from __future__ import annotations

import os
import queue
import select
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from runtime import protocol

REPO = Path(__file__).resolve().parent.parent
HANDLERS = Path(__file__).resolve().parent / "handlers"
NEXT = protocol.NEXT_PATH


@dataclass
class Event:
    body: bytes
    request_id: str
    headers: dict[str, str]


@dataclass
class Post:
    """One request the runtime sent: ``kind`` is response, error, init_error or register."""

    kind: str
    path: str
    headers: dict[str, str]
    body: bytes
    request_id: str | None = None
    # time.monotonic() when the stub had read the whole request, before answering it.
    received: float = 0.0

    def header(self, name: str) -> str | None:
        for key, value in self.headers.items():
            if key.lower() == name.lower():
                return value
        return None


@dataclass
class RuntimeAPIStub:
    """Hands out queued events on /next and records every post, like the Runtime API."""

    events: queue.Queue[Event] = field(default_factory=queue.Queue)
    posts: queue.Queue[Post] = field(default_factory=queue.Queue)
    status_overrides: dict[str, int] = field(default_factory=dict)
    next_calls: int = 0
    # time.monotonic() of each GET /next as it arrived (before an event was there to hand out).
    next_times: list[float] = field(default_factory=list)
    # Called in the server thread with each post, before it is answered or queued: what a test
    # checks here is checked at the moment the post arrived.
    on_post: Callable[[Post], None] | None = None
    # Response and error posts received so far.
    answered: int = 0
    changed: threading.Condition = field(default_factory=threading.Condition)
    server: ThreadingHTTPServer | None = None

    @property
    def address(self) -> str:
        assert self.server is not None
        host, port = self.server.server_address[:2]
        return f"{host}:{port}"

    def push(
        self,
        body: bytes | str,
        *,
        headers: Mapping[str, str] | None = None,
        deadline_ms: int | None = None,
        request_id: str | None = None,
        content_type: str | None = "application/json",
    ) -> str:
        request_id = request_id or str(uuid.uuid4())
        base = {
            protocol.REQUEST_ID_HEADER: request_id,
            protocol.DEADLINE_HEADER: str(
                deadline_ms if deadline_ms is not None else int(time.time() * 1000) + 30_000
            ),
            protocol.FUNCTION_ARN_HEADER: "arn:aws:lambda:us-east-1:123456789012:function:test",
        }
        if content_type is not None:
            base["Content-Type"] = content_type
        base.update(headers or {})
        raw = body.encode() if isinstance(body, str) else body
        self.events.put(Event(raw, request_id, base))
        return request_id

    def wait_post(self, timeout: float = 15.0) -> Post:
        try:
            return self.posts.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"the runtime posted nothing within {timeout}s") from None

    def wait_idle(self, timeout: float = 15.0) -> None:
        """Wait until the runtime has asked for the next event after its last answer.

        Whatever the runtime does for an invoke after posting its answer (metrics, span
        export, buffered log lines) it does before that GET /next: once it arrived, all of the
        invoke's output is in the pipe. Use this, not a sleep, before reading the output."""
        with self.changed:
            if not self.changed.wait_for(
                lambda: len(self.next_times) > self.answered, timeout
            ):
                raise AssertionError(
                    f"no GET /next within {timeout}s after answer {self.answered}"
                )

    def expect_no_post(self, wait: float = 0.3) -> None:
        try:
            post = self.posts.get(timeout=wait)
        except queue.Empty:
            return
        raise AssertionError(f"unexpected extra post: {post}")


def make_handler(stub: RuntimeAPIStub) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        # The head and the body are two writes: with Nagle on, the body waits for the
        # runtime's delayed ACK of the head (40 ms per response).
        disable_nagle_algorithm = True

        def log_message(self, format: str, *args: object) -> None:
            pass

        def _reply(self, status: int, body: bytes = b"", headers: Mapping[str, str] = {}) -> None:
            self.send_response(status)
            for key, value in headers.items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            if self.path != NEXT:
                self._reply(404, b'{"errorMessage":"unknown path"}')
                return
            with stub.changed:
                stub.next_times.append(time.monotonic())
                stub.next_calls += 1
                stub.changed.notify_all()
            while True:
                try:
                    event = stub.events.get(timeout=0.05)
                except queue.Empty:
                    if getattr(self.server, "_stopping", False) or self._client_gone():
                        self.close_connection = True
                        return
                    continue
                if self._client_gone():
                    # A runtime killed while parked in /next must not take the event meant for
                    # the next one: put it back in front.
                    with stub.events.mutex:
                        stub.events.queue.appendleft(event)
                        stub.events.not_empty.notify()
                    self.close_connection = True
                    return
                break
            self._reply(200, event.body, event.headers)

        def _client_gone(self) -> bool:
            readable, _, _ = select.select([self.connection], [], [], 0)
            if not readable:
                return False
            try:
                return self.connection.recv(1, socket.MSG_PEEK) == b""
            except OSError:
                return True

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            body = self.rfile.read(length)
            received = time.monotonic()
            path = self.path
            headers = dict(self.headers.items())
            # /invocation/{request_id}/response or /error
            request_id, _, kind = path[len(protocol.INVOCATION_PREFIX) :].partition("/")
            if path == protocol.INIT_ERROR_PATH:
                post = Post("init_error", path, headers, body, received=received)
            elif path == protocol.EXTENSION_REGISTER_PATH:
                post = Post("register", path, headers, body, received=received)
                stub.posts.put(post)
                self._reply(200, b"{}", {protocol.EXTENSION_ID_HEADER: str(uuid.uuid4())})
                return
            elif path.startswith(protocol.INVOCATION_PREFIX) and "/" + kind in (
                protocol.RESPONSE_SUFFIX,
                protocol.ERROR_SUFFIX,
            ):
                post = Post(kind, path, headers, body, request_id=request_id, received=received)
            else:
                self._reply(404, b'{"errorMessage":"unknown path"}')
                return
            if stub.on_post is not None:
                stub.on_post(post)
            if post.kind in ("response", "error"):
                with stub.changed:
                    stub.answered += 1
                    stub.changed.notify_all()
            stub.posts.put(post)
            status = stub.status_overrides.get(
                post.request_id or post.kind, protocol.STATUS_ACCEPTED
            )
            self._reply(
                status,
                b'{"status":"OK"}'
                if status == protocol.STATUS_ACCEPTED
                else b'{"errorMessage":"x"}',
            )

    return Handler


class RuntimeProcess:
    def __init__(self, proc: subprocess.Popen[bytes]) -> None:
        self.proc = proc
        self._output: bytes | None = None
        self._read_early = b""

    def output_so_far(self) -> str:
        """Everything the runtime has written until now, without waiting: what it wrote before
        an event (say, the post the stub is receiving) is in the pipe by then."""
        assert self.proc.stdout is not None and self._output is None
        fd = self.proc.stdout.fileno()
        os.set_blocking(fd, False)
        try:
            while True:
                try:
                    chunk = os.read(fd, 65536)
                except BlockingIOError:
                    break
                if not chunk:
                    break
                self._read_early += chunk
        finally:
            os.set_blocking(fd, True)
        return self._read_early.decode("utf-8", "replace")

    def stop(self) -> str:
        """Kill the runtime (it never exits on its own while the API is up); return its output."""
        if self._output is None:
            if self.proc.poll() is None:
                self.proc.kill()
            out, _ = self.proc.communicate(timeout=10)
            self._output = self._read_early + out
        return self._output.decode("utf-8", "replace")

    def wait_exit(self, timeout: float = 15.0) -> int:
        code = self.proc.wait(timeout=timeout)
        self.stop()
        return code


def runtime_env(api: RuntimeAPIStub, task_root: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "_HANDLER"))}
    env.update(
        AWS_LAMBDA_RUNTIME_API=api.address,
        LAMBDA_TASK_ROOT=str(task_root),
        LAMBDA_RUNTIME_LAYER_ROOT=str(task_root / "_no_layers"),
        AWS_LAMBDA_FUNCTION_NAME="test-function",
        AWS_LAMBDA_FUNCTION_VERSION="$LATEST",
        AWS_LAMBDA_FUNCTION_MEMORY_SIZE="256",
        AWS_LAMBDA_LOG_GROUP_NAME="/aws/lambda/test-function",
        AWS_LAMBDA_LOG_STREAM_NAME="2026/11/27/[$LATEST]0123456789abcdef",
        PYTHONPATH=str(REPO),
    )
    env.update(extra)
    return env
