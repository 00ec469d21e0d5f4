"""Runtime API client promises that `make mutate` showed no test held (see README.md here).

A post answered with an unexpected status is logged with (an excerpt of) the answer's body:
that line is all a user has to find out why Lambda refused a result."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from runtime.api import Invocation, RuntimeAPIFatal, RuntimeClient


class _Refuser(BaseHTTPRequestHandler):
    """Answers every post with 400 and the body the test put on the server."""

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", "0")))
        body: bytes = self.server.answer  # type: ignore[attr-defined]
        self.send_response(400)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


def _serve(handler: type[BaseHTTPRequestHandler]) -> Iterator[ThreadingHTTPServer]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture
def refuser() -> Iterator[ThreadingHTTPServer]:
    yield from _serve(_Refuser)


def _warning_for(server: ThreadingHTTPServer, answer: bytes) -> str:
    server.answer = answer  # type: ignore[attr-defined]
    warnings: list[str] = []
    client = RuntimeClient("127.0.0.1", server.server_address[1], warnings.append)
    try:
        client.post_response(Invocation({"lambda-runtime-aws-request-id": "r1"}, b""), b"{}", "x")
    finally:
        client.close()
    assert len(warnings) == 1
    prefix = "/2018-06-01/runtime/invocation/r1/response answered unexpected status 400: "
    assert warnings[0].startswith(prefix)
    return warnings[0][len(prefix) :]


@pytest.mark.parametrize(
    ("answer", "logged"),
    [
        (b'{"errorMessage":"bad"}', '{"errorMessage":"bad"}'),
        (b"a" * 500, "a" * 500),
        (b"a" * 501, "a" * 500 + "..."),
        (b"b" * 4000, "b" * 500 + "..."),
    ],
    ids=["short", "exactly-500", "501", "long"],
)
def test_the_body_of_a_refusal_is_logged_up_to_500_bytes(
    refuser: ThreadingHTTPServer, answer: bytes, logged: str
) -> None:
    """Catches a changed bound, a lost or misplaced ``...`` marking the cut, and text added to
    a body that was not cut."""
    assert _warning_for(refuser, answer) == logged


def test_a_body_that_is_not_utf8_is_still_logged(refuser: ThreadingHTTPServer) -> None:
    """Catches a strict decode: bytes that are not UTF-8 would make the log line itself fail."""
    assert _warning_for(refuser, b"bad \xff byte") == "bad \ufffd byte"


class _Registrar(BaseHTTPRequestHandler):
    """Accepts an extension registration and keeps what was sent."""

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self.server.seen = (self.path, dict(self.headers.items()), body)  # type: ignore[attr-defined]
        status: int = getattr(self.server, "status", 200)
        answer = b"" if status == 200 else b'{"errorMessage":"wrong state"}'
        self.send_response(status)
        self.send_header("Lambda-Extension-Identifier", "ext-1")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def registrar() -> Iterator[ThreadingHTTPServer]:
    yield from _serve(_Registrar)


def _register(server: ThreadingHTTPServer) -> str:
    client = RuntimeClient("127.0.0.1", server.server_address[1], lambda message: None)
    try:
        return client.register_extension("my-ext")
    finally:
        client.close()


def test_the_extension_registration_is_a_json_request_for_no_events(
    registrar: ThreadingHTTPServer,
) -> None:
    """Catches a registration Lambda's Extensions API would refuse: a changed Content-Type
    header or body (the SIGTERM at shutdown depends on this registration)."""
    assert _register(registrar) == "ext-1"
    path, headers, body = registrar.seen  # type: ignore[attr-defined]
    assert path == "/2020-01-01/extension/register"
    assert headers["Lambda-Extension-Name"] == "my-ext"
    assert headers["Content-Type"] == "application/json"
    assert body == b'{"events":[]}'


def test_a_refused_registration_is_fatal_with_the_status_and_body(
    registrar: ThreadingHTTPServer,
) -> None:
    """Catches a refusal that loses its explanation or fails with an unrelated error."""
    registrar.status = 403  # type: ignore[attr-defined]
    with pytest.raises(RuntimeAPIFatal) as info:
        _register(registrar)
    assert str(info.value) == (
        'extension registration answered 403: {"errorMessage":"wrong state"}'
    )


def test_an_error_post_echoes_the_invocation_id(runtime_api: Any, start_runtime: Any) -> None:
    """Catches the per-attempt token missing from (or breaking) the /error post, as it is
    echoed on /response."""
    runtime_api.push("{}", headers={"Lambda-Runtime-Invocation-Id": "tok-err"})
    start_runtime("basic.fail")
    post = runtime_api.wait_post()
    assert post.kind == "error"
    assert post.header("Lambda-Runtime-Invocation-Id") == "tok-err"


def test_an_init_error_carries_the_xray_cause(runtime_api: Any, start_runtime: Any) -> None:
    """Catches the X-Ray error cause dropped from /init/error (it is sent on /error too)."""
    runtime_api.push("{}")
    start_runtime("raises_at_import.handler")
    post = runtime_api.wait_post()
    assert post.kind == "init_error"
    cause = json.loads(post.header("Lambda-Runtime-Function-XRay-Error-Cause") or "null")
    assert cause["exceptions"][0]["type"] == json.loads(post.body)["errorType"]
