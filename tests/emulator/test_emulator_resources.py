"""Running out of file descriptors loses no invoke: a failed environment start is answered
(500 ServiceException) and frees its slot; idle connections are capped and timed out; accept
errors do not flood the log."""

from __future__ import annotations

import asyncio
import os
import resource
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import pytest
from emulator_support import serve_child

from runtime.emulator.server import HttpServer, Request

PATH = "/2015-03-31/functions/function/invocations"


@pytest.mark.parametrize("loop", ["auto", "asyncio"])
def test_idle_connections_cannot_starve_the_emulator(loop):
    def low_limit() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (64, 64))

    proc, url = serve_child(
        "faults.ok",
        "--concurrency",
        "1",
        env={"LAMBDA_EMULATOR_LOOP": loop},
        preexec_fn=low_limit,
    )
    idle: list[socket.socket] = []
    try:
        host, port = url.removeprefix("http://").rsplit(":", 1)
        address = (host, int(port))
        for _ in range(150):
            idle.append(socket.create_connection(address))
        time.sleep(0.5)
        # Answered at once, with a reason, rather than left hanging.
        started = time.monotonic()
        r = httpx.post(url + PATH, json={}, timeout=5)
        assert r.status_code == 503 and "Too many open connections" in r.text
        assert time.monotonic() - started < 3
        for sock in idle:
            sock.close()
        idle.clear()
        time.sleep(0.3)
        # The concurrency slot (1) was not lost: every invoke gets through.
        for _ in range(3):
            r = httpx.post(url + PATH, json={}, timeout=10)
            assert r.status_code == 200 and r.json()["ok"] is True, r.text
    finally:
        for sock in idle:
            sock.close()
        proc.terminate()
        _, err = proc.communicate(timeout=20)
    assert proc.returncode == 0
    assert err.count(b"Traceback") == 0, err[-3000:].decode(errors="replace")
    assert len(err) < 20_000


@contextmanager
def _descriptors_exhausted(spare: int) -> Iterator[None]:
    """Use up this process's descriptors but ``spare``: the lowest free ones stay free (new
    descriptors take the lowest number), the limit is put just above the highest taken."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    fillers: list[int] = []
    try:
        while True:
            try:
                fd = os.open("/dev/null", os.O_RDONLY)
            except OSError:
                break
            fillers.append(fd)
            if len(fillers) >= 4096:
                break
        top = max(fillers)
        resource.setrlimit(resource.RLIMIT_NOFILE, (top + 1, hard))
        for fd in sorted(fillers)[:spare]:
            os.close(fd)
            fillers.remove(fd)
        yield
    finally:
        for fd in fillers:
            os.close(fd)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_failed_environment_start_is_answered_and_frees_its_slot(make):
    fn = make("faults.ok", concurrency=1)
    with httpx.Client(base_url=fn.url, timeout=10) as client:
        client.get("/")  # the connection is open before descriptors run out
        # Two spare descriptors: the emulator's accepted connection and its pidfd-less spawn
        # would need more (a listener, a pipe), so starting the environment fails.
        with _descriptors_exhausted(spare=1):
            r = client.post(fn.invoke_path, json={})
        assert r.status_code == 500, r.text
        assert r.headers["X-Amzn-ErrorType"] == "ServiceException"
        assert "could not start an execution environment" in r.json()["message"]
        # The slot is free again: not 429.
        r = client.post(fn.invoke_path, json={})
        assert r.status_code == 200 and r.json()["ok"] is True, r.text


class _Echo:
    def start(self, request: Request) -> None:
        pass

    def finish(self, request: Request) -> None:
        request.respond(200, [], b"ok")

    def connection_lost(self, conn: object) -> None:
        pass


def test_idle_and_slow_head_connections_are_closed():
    loop = asyncio.new_event_loop()
    server = HttpServer(_Echo(), idle_timeout=0.5, head_timeout=0.5)
    loop.run_until_complete(server.listen("127.0.0.1", 0))
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        idle = socket.create_connection(("127.0.0.1", server.port), timeout=5)
        slow = socket.create_connection(("127.0.0.1", server.port), timeout=5)
        busy = socket.create_connection(("127.0.0.1", server.port), timeout=5)
        slow.sendall(b"POST / HTTP/1.1\r\nHost: x\r\n")
        for _ in range(4):
            busy.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            assert busy.recv(1000).startswith(b"HTTP/1.1 200")
            time.sleep(0.3)
        assert slow.recv(1000).startswith(b"HTTP/1.1 408")
        assert idle.recv(1000) == b""  # closed
    finally:
        for sock in (idle, slow, busy):
            sock.close()
        loop.call_soon_threadsafe(server.close)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
        # (Aborted transports release their sockets on the next turn of the loop.)
        loop.run_until_complete(asyncio.sleep(0.05))
        loop.close()
