"""Runtime API client promises that `make mutate` showed no test held (see README.md here).

A post answered with an unexpected status is logged with (an excerpt of) the answer's body:
that line is all a user has to find out why Lambda refused a result."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import socket
import threading
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
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
        # Names lower-cased: their case means nothing in HTTP.
        headers = {name.lower(): value for name, value in self.headers.items()}
        self.server.seen = (self.path, headers, body)  # type: ignore[attr-defined]
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
    assert headers["lambda-extension-name"] == "my-ext"
    assert headers["content-type"] == "application/json"
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


# What goes on the wire, seen by a raw socket peer: header values exactly as sent, requests
# that arrive pipelined, chunked bodies with their trailers.

ACCEPTED = b"HTTP/1.1 202 Accepted\r\nContent-Length: 0\r\n\r\n"
EVENT = (
    b"HTTP/1.1 200 OK\r\nLambda-Runtime-Aws-Request-Id: r2\r\n"
    b"Lambda-Runtime-Deadline-Ms: 1\r\nContent-Length: 2\r\n\r\n{}"
)


@dataclass
class Request:
    method: str
    target: str
    headers: dict[str, str]  # names lower-cased: their case means nothing in HTTP
    body: bytes
    trailers: dict[str, str]
    # Bytes of a further request had already arrived when this one was read in full.
    pipelined: bool


class Wire:
    """Serves one connection: answers the requests in order with ``answers`` (202 Accepted
    once they run out) and keeps each request, until the client closes. ``linger`` seconds:
    how long to wait, after the first request, for one sent right behind it before
    answering."""

    def __init__(self, answers: list[bytes], linger: float = 0.0) -> None:
        self.requests: list[Request] = []
        self._answers = answers
        self._linger = linger
        self._buffer = b""
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def client(self, warnings: list[str] | None = None) -> RuntimeClient:
        sink = warnings if warnings is not None else []
        return RuntimeClient("127.0.0.1", self.port, sink.append)

    def done(self) -> list[Request]:
        """The requests, once the client has closed the connection."""
        self._thread.join(10)
        self._listener.close()
        return self.requests

    def _serve(self) -> None:
        self._listener.settimeout(10)  # bounded: a client that never comes ends the thread
        try:
            conn, _ = self._listener.accept()
        except OSError:
            return
        with conn:
            conn.settimeout(10)
            for _ in range(16):  # bounded: no test sends more
                request = self._read(conn)
                if request is None:
                    return
                self.requests.append(request)
                answer = self._answers.pop(0) if self._answers else ACCEPTED
                try:
                    conn.sendall(answer)
                except OSError:
                    return

    def _more(self, conn: socket.socket) -> bool:
        chunk = conn.recv(65536)
        self._buffer += chunk
        return bool(chunk)

    def _line(self, conn: socket.socket) -> str | None:
        while b"\r\n" not in self._buffer:
            if not self._more(conn):
                return None
        line, _, self._buffer = self._buffer.partition(b"\r\n")
        return line.decode("latin-1")

    def _fields(self, conn: socket.socket) -> dict[str, str]:
        fields: dict[str, str] = {}
        while line := self._line(conn):
            name, _, value = line.partition(":")
            fields[name.lower()] = value.strip()
        return fields

    def _read(self, conn: socket.socket) -> Request | None:
        start = self._line(conn)
        if not start:
            return None
        method, target, _ = start.split(" ")
        headers = self._fields(conn)
        body = b""
        trailers: dict[str, str] = {}
        if headers.get("transfer-encoding") == "chunked":
            while size := int(self._line(conn) or "0", 16):
                while len(self._buffer) < size + 2:
                    self._more(conn)
                body += self._buffer[:size]
                self._buffer = self._buffer[size + 2 :]
            trailers = self._fields(conn)
        else:
            length = int(headers.get("content-length", "0"))
            while len(self._buffer) < length:
                self._more(conn)
            body, self._buffer = self._buffer[:length], self._buffer[length:]
        if not self._buffer and self._linger:
            conn.settimeout(self._linger)
            with contextlib.suppress(TimeoutError):
                self._more(conn)
            conn.settimeout(10)
        self._linger = 0.0
        return Request(method, target, headers, body, trailers, bool(self._buffer))


def _invocation(invocation_id: str | None = None) -> Invocation:
    headers = {"lambda-runtime-aws-request-id": "r1"}
    if invocation_id is not None:
        headers["lambda-runtime-invocation-id"] = invocation_id
    return Invocation(headers, b"{}")


def test_a_response_goes_out_alone_with_the_callers_content_type() -> None:
    """Kills post_response mutants 1 and 16 (``GET /next`` pipelined although not asked for:
    a runtime that has work between invokes would take an event it is not ready for) and 4
    (the Content-Type the result was encoded with, not sent), and response_request mutant 5
    (the invocation id not echoed)."""
    wire = Wire([])
    client = wire.client()
    client.post_response(_invocation("tok-5"), b"plain words", "text/plain; charset=utf-8")
    client.close()
    [post] = wire.done()
    assert (post.method, post.target) == ("POST", "/2018-06-01/runtime/invocation/r1/response")
    assert post.headers["content-type"] == "text/plain; charset=utf-8"
    assert post.headers["lambda-runtime-invocation-id"] == "tok-5"
    assert post.body == b"plain words"


def test_then_next_sends_get_next_in_the_same_send_as_the_response() -> None:
    """Kills post_response mutants 10, 14 and 15 (``then_next`` ignored): the promise is one
    round trip per invoke, so ``GET /next`` must already be there when the post is read, before
    it is answered (the peer waits a second for it)."""
    wire = Wire([ACCEPTED, EVENT], linger=1.0)
    client = wire.client()
    client.post_response(_invocation(), b'"ok"', "application/json", then_next=True)
    assert client.next_invocation().request_id == "r2"
    client.close()
    post, get = wire.done()
    assert post.pipelined
    assert (get.method, get.target) == ("GET", "/2018-06-01/runtime/invocation/next")


@pytest.mark.parametrize(
    ("error_type", "sent"),
    [
        ("ValueError", "ValueError"),
        ("Runtime.UserCodeSyntaxError", "Runtime.UserCodeSyntaxError"),
        ("My Error", "MyError"),
        ("Odd~Name!", "Odd~Name!"),
        ("Caf\u00e9\tError\x7f", "CafError"),
        ("\u00e9\u00e8", "Runtime.Unknown"),
        ("", "Runtime.Unknown"),
    ],
    ids=["plain", "runtime", "space", "tilde", "non-ascii-and-controls", "nothing-left", "empty"],
)
def test_the_error_type_header_is_the_type_as_one_printable_token(
    error_type: str, sent: str
) -> None:
    """Kills _error_headers mutants 1 to 11: the header keeps exactly the printable ASCII
    characters of the type (``!`` to ``~``, space dropped), and is ``Runtime.Unknown`` when
    none is left (a header must not be empty or carry a space, a control or non-ASCII)."""
    wire = Wire([])
    client = wire.client()
    client.post_error(_invocation(), error_type, b"{}", None)
    client.close()
    [post] = wire.done()
    assert post.headers["lambda-runtime-function-error-type"] == sent


def test_every_error_post_is_json_with_its_type_and_xray_cause() -> None:
    """Kills _error_headers mutants 13 and 16 (Content-Type missing or not application/json)
    and every post_restore_error mutant (wrong path, headers, body, type or cause): the three
    error posts (/error, /init/error, /restore/error) carry the same headers and the body."""
    wire = Wire([])
    client = wire.client()
    client.post_error(_invocation("tok-1"), "KeyError", b'{"a":1}', b'{"c":1}')
    client.post_init_error("Runtime.ImportModuleError", b'{"b":2}', b'{"c":2}')
    client.post_restore_error("Runtime.AfterRestoreError", b'{"d":3}', b'{"c":3}')
    client.close()
    seen = [
        (
            r.target,
            r.headers.get("content-type"),
            r.headers.get("lambda-runtime-function-error-type"),
            r.headers.get("lambda-runtime-function-xray-error-cause"),
            r.body,
        )
        for r in wire.done()
    ]
    base = "/2018-06-01/runtime"
    assert seen == [
        (f"{base}/invocation/r1/error", "application/json", "KeyError", '{"c":1}', b'{"a":1}'),
        (f"{base}/init/error", "application/json", "Runtime.ImportModuleError", '{"c":2}',
         b'{"b":2}'),
        (f"{base}/restore/error", "application/json", "Runtime.AfterRestoreError", '{"c":3}',
         b'{"d":3}'),
    ]


def _answer(status: str, body: bytes) -> bytes:
    return f"HTTP/1.1 {status}\r\nContent-Length: {len(body)}\r\n\r\n".encode() + body


def test_restore_next_is_a_bare_get_and_any_answer_but_200_is_fatal() -> None:
    """Kills every restore_next mutant and both fatal_answer mutants: SnapStart's
    ``/restore/next`` is a GET without a body; a refusal ends the environment with the status
    and the body Lambda gave, and a 500 says it was a container error."""
    wire = Wire([_answer("200 OK", b""), _answer("403 Forbidden", b'{"errorType":"no"}'),
                 _answer("500 Internal Server Error", b"broken")])
    client = wire.client()
    client.restore_next()
    with pytest.raises(RuntimeAPIFatal) as refused:
        client.restore_next()
    with pytest.raises(RuntimeAPIFatal) as broken:
        client.restore_next()
    client.close()
    assert str(refused.value) == '/restore/next answered 403: {"errorType":"no"}'
    assert str(broken.value) == (
        "GET /2018-06-01/runtime/restore/next answered 500 (container error): broken"
    )
    requests = wire.done()
    assert [(r.method, r.target, r.body) for r in requests] == [
        ("GET", "/2018-06-01/runtime/restore/next", b"")
    ] * 3
    assert all("content-length" not in r.headers for r in requests)


def _describe(exc: BaseException) -> tuple[str, bytes]:
    return "Custom.Failure", json.dumps({"errorMessage": str(exc)}).encode()


async def _fails_after_one_chunk() -> AsyncIterator[bytes]:
    yield b"first "
    await asyncio.sleep(0)
    raise ValueError("half way")


def test_a_stream_posts_its_chunks_and_reports_a_late_error_in_the_trailers() -> None:
    """Kills post_stream mutants 1 to 13: the stream goes to this invoke's /response, with its
    invocation id, run on the given event loop (an async generator needs it), and an error
    after the first chunk reaches Lambda as the trailers the caller's ``describe_error``
    made."""
    wire = Wire([])
    client = wire.client()
    loop = asyncio.new_event_loop()
    try:
        stream = _fails_after_one_chunk()
        outcome = client.post_stream(_invocation("tok-9"), stream, loop, _describe)
    finally:
        loop.close()
        client.close()
    assert isinstance(outcome.error, ValueError)
    [post] = wire.done()
    assert post.target == "/2018-06-01/runtime/invocation/r1/response"
    assert post.headers["lambda-runtime-function-response-mode"] == "streaming"
    assert post.headers["lambda-runtime-invocation-id"] == "tok-9"
    assert post.body == b"first "
    assert post.trailers["lambda-runtime-function-error-type"] == "Custom.Failure"
    assert base64.b64decode(post.trailers["lambda-runtime-function-error-body"]) == (
        b'{"errorMessage": "half way"}'
    )


def test_a_stream_without_invocation_id_sends_none() -> None:
    """Kills post_stream mutant 14 (a made-up invocation id sent when Lambda gave none)."""
    wire = Wire([])
    client = wire.client()
    client.post_stream(_invocation(), iter([b"all"]), None, _describe)
    client.close()
    [post] = wire.done()
    assert post.body == b"all"
    assert "lambda-runtime-invocation-id" not in post.headers


@pytest.mark.parametrize("call", ["stream", "next"])
def test_a_garbled_answer_is_fatal_and_names_the_runtime_api(call: str) -> None:
    """Kills post_stream mutant 15 and _call mutant 12: a Runtime API answering something
    that is not HTTP ends the environment with a message saying where and what."""
    wire = Wire([b"NOT HTTP AT ALL\r\n\r\n"])
    client = wire.client()
    with pytest.raises(RuntimeAPIFatal) as info:
        if call == "stream":
            client.post_stream(_invocation(), iter([b"all"]), None, _describe)
        else:
            client.next_invocation()
    client.close()
    wire.done()
    assert str(info.value).startswith(f"Runtime API at 127.0.0.1:{wire.port} failed: ")


def _event(headers: list[tuple[str, str]], body: bytes) -> bytes:
    head = "".join(f"{name}: {value}\r\n" for name, value in headers)
    return f"HTTP/1.1 200 OK\r\n{head}Content-Length: {len(body)}\r\n\r\n".encode() + body


def _next(answer: bytes) -> Invocation:
    wire = Wire([answer])
    client = wire.client()
    invocation = client.next_invocation()
    client.close()
    wire.done()
    return invocation


FULL_EVENT = [
    ("Lambda-Runtime-Aws-Request-Id", "r1"),
    ("Lambda-Runtime-Deadline-Ms", "1700000000123"),
    ("Lambda-Runtime-Invoked-Function-Arn", "arn:aws:lambda:us-east-1:123456789012:function:f"),
    ("Lambda-Runtime-Trace-Id", "Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=1"),
    ("Lambda-Runtime-Client-Context", '{"custom":{"k":"v"}}'),
    ("Lambda-Runtime-Cognito-Identity", '{"cognitoIdentityId":"id-1"}'),
    ("Lambda-Runtime-Aws-Tenant-Id", "tenant-7"),
    ("Lambda-Runtime-Invocation-Id", "tok-3"),
    ("Content-Type", "application/json"),
]


def test_an_event_hands_out_every_header_lambda_sent() -> None:
    """With the next test, kills Invocation.__init__ mutants 1 to 37 (but 5, 7, 8 and 15,
    judged in equivalent.tsv): here those that lose or misread a header (the context a handler
    sees: request id, deadline, ARN, trace id, client context, identity, tenant id; the
    invocation id echoed on the answer; the content type the event is decoded by)."""
    invocation = _next(_event(FULL_EVENT, b'{"a":1}'))
    assert invocation.body == b'{"a":1}'
    assert invocation.headers == {name.lower(): value for name, value in FULL_EVENT} | {
        "content-length": "7"
    }
    assert (
        invocation.request_id,
        invocation.deadline_ms,
        invocation.function_arn,
        *_optional_fields(invocation),
    ) == ("r1", 1700000000123, *(value for _, value in FULL_EVENT[2:]))


def _optional_fields(invocation: Invocation) -> tuple[str | None, ...]:
    """The fields of an Invocation whose header Lambda may leave out."""
    return (
        invocation.trace_id,
        invocation.client_context,
        invocation.cognito_identity,
        invocation.tenant_id,
        invocation.invocation_id,
        invocation.content_type,
    )


@pytest.mark.parametrize("deadline", [None, "soon"], ids=["missing", "not-a-number"])
def test_an_event_with_only_a_request_id_gets_empty_defaults(deadline: str | None) -> None:
    """Kills the Invocation.__init__ mutants that change a default: without the headers, the
    deadline is 0 (also when it is not a number), the ARN is empty and the optional ones are
    None."""
    headers = [("Lambda-Runtime-Aws-Request-Id", "r1")]
    if deadline is not None:
        headers.append(("Lambda-Runtime-Deadline-Ms", deadline))
    invocation = _next(_event(headers, b""))
    assert (invocation.deadline_ms, invocation.function_arn) == (0, "")
    assert _optional_fields(invocation) == (None,) * 6


@pytest.mark.parametrize(
    ("answer", "warning"),
    [
        ("410 Gone", "answered 410: the invoke had already timed out; result dropped"),
        ("413 Too Large", "answered 413: the payload is over Lambda's limit and was refused"),
    ],
    ids=["410", "413"],
)
def test_a_timed_out_or_refused_result_is_logged_and_the_client_goes_on(
    answer: str, warning: str
) -> None:
    """Kills report_post mutants 3 and 5: a 410 (the invoke timed out) or a 413 (the result
    is over Lambda's limit) is said in the log, in words, and is no reason to stop."""
    wire = Wire([_answer(answer, b'{"errorMessage":"x"}')])
    warnings: list[str] = []
    client = wire.client(warnings)
    client.post_response(_invocation(), b'"ok"', "application/json")
    client.close()
    wire.done()
    assert warnings == [f"/2018-06-01/runtime/invocation/r1/response {warning}"]


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        (_answer("404 Not Found", b'{"e":1}'), '/invocation/next answered 404: {"e":1}'),
        (_event([], b"{}"), "/invocation/next answered without Lambda-Runtime-Aws-Request-Id"),
    ],
    ids=["not-200", "no-request-id"],
)
def test_a_next_answer_without_an_event_is_fatal_and_says_why(answer: bytes, message: str) -> None:
    """Kills invocation_of mutants 2, 3 and 6 to 9: without an event there is nothing to
    answer; the environment ends with the status and body Lambda gave, or what was missing."""
    wire = Wire([answer])
    client = wire.client()
    with pytest.raises(RuntimeAPIFatal) as info:
        client.next_invocation()
    client.close()
    wire.done()
    assert str(info.value) == message


def test_a_post_that_cannot_be_made_is_logged_and_the_client_goes_on() -> None:
    """Kills _post mutant 14: a request id that cannot be part of a URL path makes the post
    impossible (nothing is sent); the log says which post and why."""
    wire = Wire([])
    warnings: list[str] = []
    client = wire.client(warnings)
    client.post_response(Invocation({"lambda-runtime-aws-request-id": "r 1"}, b""), b"1", "x")
    client.post_response(_invocation(), b"2", "x")
    client.close()
    assert [post.body for post in wire.done()] == [b"2"]
    [warning] = warnings
    assert warning.startswith("could not post to '/2018-06-01/runtime/invocation/r 1/response': ")
