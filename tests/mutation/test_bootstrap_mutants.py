"""Lifecycle promises of runtime.bootstrap that `make mutate` showed no unit test held (see
README.md here).

Most tests drive the real code in-process (``main``, ``Invoker``, ``InvokeSteps``,
``snapshot_and_restore``) against a Runtime API on a loopback socket; two start a process
(what only a fresh interpreter or several invokes in flight show). Each checks what a user
sees: what the Runtime API receives, the function log, the exit status, the context."""

from __future__ import annotations

import asyncio
import base64
import io
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from runtime_support import Post, RuntimeAPIStub, RuntimeProcess
from test_http import REQ, Peer, Received, peer, resp, send

import runtime
from runtime import bootstrap, snapstart
from runtime import protocol as p
from runtime.api import Invocation, RuntimeAPIFatal, RuntimeClient
from runtime.config import Config
from runtime.context import LambdaContext
from runtime.layers import InitInfo, Layer
from runtime.logs import RuntimeLog

__all__ = ["peer"]  # the fixture, from test_http

ARN = "arn:aws:lambda:us-east-1:123456789012:function:orders"


def make_config(port: int, **env: str) -> Config:
    return Config.from_environ(
        ["app.handler"],
        {
            "AWS_LAMBDA_RUNTIME_API": f"127.0.0.1:{port}",
            "AWS_LAMBDA_FUNCTION_NAME": "orders",
            "AWS_LAMBDA_FUNCTION_VERSION": "7",
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "512",
            "AWS_LAMBDA_LOG_GROUP_NAME": "/aws/lambda/orders",
            "AWS_LAMBDA_LOG_STREAM_NAME": "2026/12/07/[7]0123456789abcdef",
            **env,
        },
    )


def invocation(request_id: str, body: bytes = b"{}", **headers: str) -> Invocation:
    raw = {
        p.REQUEST_ID_KEY: request_id,
        p.DEADLINE_KEY: str(int(time.time() * 1000) + 30_000),
        p.FUNCTION_ARN_KEY: ARN,
        "content-type": "application/json",
        **{name.lower(): value for name, value in headers.items()},
    }
    return Invocation(raw, body)


class Log:
    """The function log as the runtime writes it (to a buffer instead of stdout)."""

    def __init__(self) -> None:
        self.stream = io.StringIO()
        self.runtime_log = RuntimeLog(self.stream)

    @property
    def text(self) -> str:
        return self.stream.getvalue()


def port_of(stub: RuntimeAPIStub) -> int:
    return int(stub.address.rpartition(":")[2])


def body_of(post: Post) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(post.body)
    return loaded


# --- configuration errors (main) ----------------------------------------------------------------


def _main_with_bad_config(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], stub: RuntimeAPIStub
) -> tuple[object, str]:
    monkeypatch.setenv("AWS_LAMBDA_RUNTIME_API", stub.address)
    monkeypatch.setenv("AWS_LAMBDA_MAX_CONCURRENCY", "lots")
    with pytest.raises(SystemExit) as exited:
        bootstrap.main(["app.handler"])
    return exited.value.code, capsys.readouterr().err


def test_a_configuration_error_is_posted_as_an_init_error(
    runtime_api: RuntimeAPIStub,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Kills x__post_config_error__mutmut_6..11: the init error body has the keys of every
    error report (docs/handlers.md "Error reports"), so Lambda shows the message and type."""
    code, err = _main_with_bad_config(monkeypatch, capsys, runtime_api)
    assert code == 2
    post = runtime_api.wait_post()
    assert post.kind == "init_error"
    assert post.header(p.ERROR_TYPE_HEADER) == "Runtime.InvalidConfiguration"
    body = body_of(post)
    assert body == {
        "errorMessage": body["errorMessage"],
        "errorType": "Runtime.InvalidConfiguration",
        "stackTrace": [],
    }
    assert "AWS_LAMBDA_MAX_CONCURRENCY='lots'" in body["errorMessage"]
    assert f"lambda-runtime: {body['errorMessage']}\n" in err


@pytest.mark.parametrize("status", [400, 500], ids=["refused", "fatal"])
def test_a_refused_configuration_error_report_is_explained_on_stderr(
    runtime_api: RuntimeAPIStub,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    status: int,
) -> None:
    """Kills x__report_config_error__mutmut_3, _10, _14 and _15: when the Runtime API refuses
    the init error (400) or answers it 500, stderr says so, and the exit status is still 2."""
    runtime_api.status_overrides["init_error"] = status
    code, err = _main_with_bad_config(monkeypatch, capsys, runtime_api)
    assert code == 2
    lines = err.splitlines()
    assert lines[0].startswith("lambda-runtime: AWS_LAMBDA_MAX_CONCURRENCY='lots'")
    # The second line is the Runtime API's answer, with its status.
    assert len(lines) == 2, err
    assert lines[1].startswith("lambda-runtime: ")
    assert str(status) in lines[1] and p.INIT_ERROR_PATH in lines[1]


# --- one error per failed invoke (Invoker._report, _safe_error_body) ---------------------------


class _BadNote:
    def __str__(self) -> str:
        raise RuntimeError("this note cannot be printed")


def _fail_with_unprintable_note(event: Any, context: LambdaContext) -> Any:
    exc = ValueError("the order is gone")
    exc.__notes__ = [_BadNote()]
    raise exc


def _invoke_and_get_error(
    stub: RuntimeAPIStub, handler: Callable[[Any, LambdaContext], Any], inv: Invocation
) -> tuple[Post, str]:
    log = Log()
    client = RuntimeClient("127.0.0.1", port_of(stub), log.runtime_log.warning)
    try:
        bootstrap.Invoker(make_config(port_of(stub)), client, handler, log.runtime_log).handle(inv)
    finally:
        client.close()
    post = stub.wait_post()
    stub.expect_no_post(0.1)
    return post, log.text


def _fail(event: Any, context: LambdaContext) -> Any:
    raise KeyError("sku-42")


def test_a_failed_invoke_names_its_request_and_gives_xray_the_cause(
    runtime_api: RuntimeAPIStub,
) -> None:
    """Kills xǁInvokerǁ_report__mutmut_3, _10 and _19, and x__safe_error_body__mutmut_2 and
    _4: the error body carries the invoke's requestId (as the managed runtime's does), and the
    X-Ray error cause header names the exception, so the trace shows why the invoke failed."""
    post, log = _invoke_and_get_error(runtime_api, _fail, invocation("req-report-1"))
    assert post.kind == "error" and post.request_id == "req-report-1"
    body = body_of(post)
    assert body["errorType"] == "KeyError"
    assert body["requestId"] == "req-report-1"
    cause = post.header(p.XRAY_CAUSE_HEADER)
    assert cause is not None
    (exception,) = json.loads(cause)["exceptions"]
    assert exception["type"] == "KeyError" and exception["message"] == "'sku-42'"
    assert "KeyError: 'sku-42'" in log


def test_an_error_that_cannot_be_described_is_still_reported(
    runtime_api: RuntimeAPIStub,
) -> None:
    """Kills x__safe_error_body__mutmut_5..18: when describing the exception fails (a note
    whose str() raises), the invoke still gets one error with the usual keys, its type and
    request id, and a message naming what went wrong while describing it."""
    post, log = _invoke_and_get_error(
        runtime_api, _fail_with_unprintable_note, invocation("req-bad-note")
    )
    assert post.header(p.ERROR_TYPE_HEADER) == "ValueError"
    assert body_of(post) == {
        "errorMessage": "<error formatting failed: RuntimeError>",
        "errorType": "ValueError",
        "requestId": "req-bad-note",
        "stackTrace": [],
    }
    assert "ValueError: <error formatting failed: RuntimeError>" in log


def _invoke(
    stub: RuntimeAPIStub,
    handler: Callable[[Any, LambdaContext], Any],
    inv: Invocation,
    run_async: Callable[[Any], Any] | None = None,
    layers: list[Layer] | None = None,
) -> Post:
    """One invoke through Invoker.handle; returns what the stub received."""
    log = Log()
    client = RuntimeClient("127.0.0.1", port_of(stub), log.runtime_log.warning)
    invoker = bootstrap.Invoker(
        make_config(port_of(stub)), client, handler, log.runtime_log, layers or (), run_async
    )
    try:
        invoker.handle(inv)
        post = stub.wait_post()
        if not layers:
            # The pipelined GET /next (see below) arrives with the post: wait for it.
            with stub.changed:
                stub.changed.wait_for(lambda: stub.next_calls > 0, 5.0)
    finally:
        client.close()
    assert log.text == "", log.text
    return post


TRACE_HEADER = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1"


def test_the_handler_sees_its_invoke_and_the_response_is_posted_with_next_behind_it(
    runtime_api: RuntimeAPIStub, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Kills xǁInvokerǁ__init____mutmut_11, _12 and _16, xǁInvokerǁhandle__mutmut_3, _11, _12,
    _18, _37, _38, _42 and _43: the handler sees the configured memory, the client context,
    the X-Ray trace header in _X_AMZN_TRACE_ID, a text/plain event as bytes; the result is
    posted as JSON, and GET /next goes out right behind it (docs/handlers.md), before the
    runtime asks for it."""
    monkeypatch.setenv("_X_AMZN_TRACE_ID", "left over from init")
    seen: dict[str, Any] = {}

    def handler(event: Any, context: LambdaContext) -> Any:
        assert context.client_context is not None
        seen.update(
            event=event,
            memory=context.memory_limit_in_mb,
            custom=context.client_context.custom,
            trace=os.environ.get("_X_AMZN_TRACE_ID"),
        )
        return {"ok": True}

    client_context = json.dumps({"custom": {"tenant": "t-7"}, "env": {}, "client": {}})
    inv = invocation(
        "req-plain",
        b"plain text",
        **{
            p.CLIENT_CONTEXT_HEADER: client_context,
            p.TRACE_ID_HEADER: TRACE_HEADER,
            "Content-Type": "text/plain",
        },
    )
    post = _invoke(runtime_api, handler, inv)
    assert seen == {
        "event": b"plain text",
        "memory": "512",
        "custom": {"tenant": "t-7"},
        "trace": TRACE_HEADER,
    }
    assert (post.kind, post.request_id) == ("response", "req-plain")
    assert json.loads(post.body) == {"ok": True}
    assert post.header("Content-Type") == "application/json"
    # handle() alone, no next_invocation(): this GET /next is the one pipelined behind the post.
    assert runtime_api.next_calls == 1
    assert runtime_api.next_times[0] >= post.received


async def _where_am_i(event: Any, context: LambdaContext) -> Any:
    await asyncio.sleep(0)
    return {"loop": id(asyncio.get_running_loop()), "thread": threading.get_ident()}


def test_an_async_handler_runs_on_the_loop_user_code_set_up(
    runtime_api: RuntimeAPIStub, user_loop: asyncio.AbstractEventLoop
) -> None:
    """Kills xǁInvokerǁ__init____mutmut_13, xǁInvokerǁ_call_handler__mutmut_6 and _10.._13,
    and xǁInvokerǁ_run_async__mutmut_1, _3, _4 and _5: an ``async def`` handler is awaited and
    its result posted, on the loop the function made current at import time, so clients bound
    to that loop keep working (docs/handlers.md)."""
    post = _invoke(runtime_api, _where_am_i, invocation("req-async"))
    assert json.loads(post.body) == {"loop": id(user_loop), "thread": threading.get_ident()}


def _async_invoke_in_a_new_thread(
    stub: RuntimeAPIStub, closed_loop: asyncio.AbstractEventLoop | None
) -> tuple[dict[str, Any], asyncio.AbstractEventLoop]:
    """An async handler's invoke in a thread with no event loop yet (or ``closed_loop`` as
    its current loop); returns the handler's result and the thread's current loop after it."""
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            if closed_loop is not None:
                asyncio.set_event_loop(closed_loop)
            post = _invoke(stub, _where_am_i, invocation("req-new-loop"))
            outcome["result"] = json.loads(post.body)
            outcome["current"] = asyncio.get_event_loop_policy().get_event_loop()
        except BaseException as exc:
            outcome["error"] = exc

    thread = threading.Thread(target=run)
    thread.start()
    thread.join(30)
    if "error" in outcome:
        raise outcome["error"]
    current: asyncio.AbstractEventLoop = outcome["current"]
    current.close()
    assert outcome["result"]["thread"] == thread.ident
    return outcome["result"], current


def test_without_a_loop_an_async_handler_gets_a_new_one_made_current(
    runtime_api: RuntimeAPIStub,
) -> None:
    """Kills x__environment_loop__mutmut_8, _10, _12 and _13: with no event loop set up, the
    runtime makes one, runs the handler on it and makes it the current loop, so code that asks
    asyncio for the loop outside a coroutine gets the one its invokes run on."""
    result, current = _async_invoke_in_a_new_thread(runtime_api, None)
    assert result["loop"] == id(current)


def test_a_closed_loop_left_by_user_code_is_replaced(runtime_api: RuntimeAPIStub) -> None:
    """Kills x__environment_loop__mutmut_9: a current loop that user code closed (say, with
    asyncio.run at import time) is not used: the handler runs on a new loop, made current."""
    closed = asyncio.new_event_loop()
    closed.close()
    result, current = _async_invoke_in_a_new_thread(runtime_api, closed)
    assert current is not closed
    assert result["loop"] == id(current)


def test_with_several_invokes_in_flight_awaitables_run_on_the_slots_loop(
    runtime_api: RuntimeAPIStub,
) -> None:
    """Kills xǁInvokerǁ__init____mutmut_14 and xǁInvokerǁ_run_async__mutmut_2: under
    AWS_LAMBDA_MAX_CONCURRENCY a slot's awaitable runs on the loop runtime.concurrency gives
    it (on that loop's thread, shared by the slots), not on a loop of the slot's own."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()

    def on_the_slots_loop(awaitable: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(awaitable, loop).result(10)

    try:
        post = _invoke(runtime_api, _where_am_i, invocation("req-slot-async"), on_the_slots_loop)
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()
    assert json.loads(post.body) == {"loop": id(loop), "thread": thread.ident}


def _context_seen(stub: RuntimeAPIStub, inv: Invocation) -> LambdaContext:
    seen: list[LambdaContext] = []

    def handler(event: Any, context: LambdaContext) -> Any:
        seen.append(context)
        return None

    _invoke(stub, handler, inv)
    return seen[0]


def test_the_context_carries_every_field_of_the_invoke_and_the_function(
    runtime_api: RuntimeAPIStub,
) -> None:
    """Kills x_new_context__mutmut_2..5, _7.._10, _19, _20 and x_fill_context_headers__mutmut_7
    .._19: the context object has the fields awslambdaric's has (docs/handlers.md), filled from
    the invoke's headers and the function's configuration, the Cognito identity included."""
    deadline = int(time.time() * 1000) + 20_000
    identity = json.dumps(
        {"cognitoIdentityId": "us-east-1:id-1", "cognitoIdentityPoolId": "pool-9"}
    )
    inv = invocation(
        "req-context",
        **{
            p.DEADLINE_HEADER: str(deadline),
            p.TENANT_ID_HEADER: "tenant-3",
            p.TRACE_ID_HEADER: TRACE_HEADER,
            p.COGNITO_IDENTITY_HEADER: identity,
        },
    )
    context = _context_seen(runtime_api, inv)
    assert context.aws_request_id == "req-context"
    assert 0 < context.get_remaining_time_in_millis() <= 20_000
    assert context.invoked_function_arn == ARN
    assert (context.function_name, context.function_version) == ("orders", "7")
    assert context.memory_limit_in_mb == "512"
    assert context.log_group_name == "/aws/lambda/orders"
    assert context.log_stream_name == "2026/12/07/[7]0123456789abcdef"
    assert context.tenant_id == "tenant-3"
    assert context.xray_trace_id == TRACE_HEADER
    assert context.identity.cognito_identity_id == "us-east-1:id-1"
    assert context.identity.cognito_identity_pool_id == "pool-9"
    assert context.client_context is None


def test_a_client_context_that_is_not_an_object_is_an_empty_one(
    runtime_api: RuntimeAPIStub,
) -> None:
    """Kills x_fill_context_headers__mutmut_6: valid JSON that is not an object (a list) in
    the client context header does not fail the invoke: the handler gets an empty one."""
    inv = invocation("req-list-context", **{p.CLIENT_CONTEXT_HEADER: "[1, 2]"})
    context = _context_seen(runtime_api, inv)
    assert context.client_context is not None
    assert context.client_context.custom is None and context.client_context.env is None


def test_a_malformed_context_header_fails_the_invoke_with_its_own_error_type(
    runtime_api: RuntimeAPIStub,
) -> None:
    """Kills x_fill_context_headers__mutmut_20..28: a client context header that is not JSON
    fails the invoke with Runtime.LambdaContextUnmarshalError, the type awslambdaric uses,
    and a message saying that a context header could not be parsed, and why."""
    inv = invocation("req-bad-context", **{p.CLIENT_CONTEXT_HEADER: "{not json"})
    post, log = _invoke_and_get_error(runtime_api, _fail, inv)
    assert post.header(p.ERROR_TYPE_HEADER) == "Runtime.LambdaContextUnmarshalError"
    body = body_of(post)
    assert body["errorType"] == "Runtime.LambdaContextUnmarshalError"
    assert body["errorMessage"].startswith("Unable to parse context header: ")
    assert len(body["errorMessage"]) > len("Unable to parse context header: ")
    assert "Runtime.LambdaContextUnmarshalError: Unable to parse context header" in log


# --- the layers init chooses (build_layers) --------------------------------------------------


def _init_info() -> InitInfo:
    now = time.time_ns()
    return InitInfo(now, now, 0)


def test_emf_metrics_are_written_when_asked_for_without_structlog(
    runtime_api: RuntimeAPIStub,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Kills x_build_layers__mutmut_5 and _6: LAMBDA_RUNTIME_METRICS=emf gets its metrics line
    on stdout after each invoke (docs/observability.md), whether or not structlog is loaded."""
    monkeypatch.delitem(sys.modules, "structlog", raising=False)
    config = make_config(port_of(runtime_api), LAMBDA_RUNTIME_METRICS="emf")
    layers = bootstrap.build_layers(config, _init_info())
    _invoke(runtime_api, lambda event, context: "ok", invocation("req-emf"), layers=layers)
    (line,) = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert line["_aws"]["CloudWatchMetrics"]


def test_keys_bound_in_structlog_do_not_leak_into_the_next_invoke(
    runtime_api: RuntimeAPIStub,
) -> None:
    """Kills x_build_layers__mutmut_1..4, _8 and _10.._13: a function that imported structlog
    at init gets the keys it binds with bind_contextvars reset after each invoke
    (docs/observability.md), even with no other observability switched on."""
    structlog = pytest.importorskip("structlog")
    layers = bootstrap.build_layers(make_config(port_of(runtime_api)), _init_info())

    def handler(event: Any, context: LambdaContext) -> Any:
        bound = dict(structlog.contextvars.get_contextvars())
        structlog.contextvars.bind_contextvars(order=context.aws_request_id)
        return bound

    try:
        posts = [
            _invoke(runtime_api, handler, invocation(rid), layers=layers)
            for rid in ("req-first", "req-second")
        ]
    finally:
        structlog.contextvars.clear_contextvars()
    assert [json.loads(post.body) for post in posts] == [{}, {}]


def _runtime_root() -> str:
    """The folder of the runtime package this test imported (under `make mutate`, the mutated
    one), for the processes a test starts."""
    return str(Path(bootstrap.__file__).resolve().parents[1])


def test_a_function_without_observability_does_not_import_it() -> None:
    """Kills x_build_layers__mutmut_7: with no observability setting and no structlog, init
    does not import runtime.observability (cold start: docs/performance.md)."""
    script = (
        "import sys, time; from runtime import bootstrap; from runtime.config import Config; "
        "from runtime.layers import InitInfo; "
        "config = Config.from_environ(['app.handler'], {'AWS_LAMBDA_RUNTIME_API': '127.0.0.1:9'}); "
        "assert bootstrap.build_layers(config, InitInfo(0, 0, 0)) == []; "
        "print(sorted(m for m in sys.modules if m.startswith('runtime.observability')))"
    )
    root = _runtime_root()
    done = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
        cwd=root,
        env={**os.environ, "PYTHONPATH": root},
    )
    assert done.stdout.strip() == "[]"


# --- the steps of a task slot (InvokeSteps) ------------------------------------------------------


def test_task_slots_give_the_handler_the_same_context_and_event(
    runtime_api: RuntimeAPIStub,
) -> None:
    """Kills xǁInvokeStepsǁ__init____mutmut_2 and _3, xǁInvokeStepsǁcontext__mutmut_2,
    xǁInvokeStepsǁevent__mutmut_1 and _6: an async handler under AWS_LAMBDA_MAX_CONCURRENCY
    sees the configured memory, the client context of the invoke, and a non-JSON event as
    bytes, exactly as with one invoke at a time."""
    steps = bootstrap.InvokeSteps(make_config(port_of(runtime_api)))
    client_context = json.dumps({"custom": {"tenant": "t-7"}, "env": {}, "client": {}})
    inv = invocation(
        "req-slot",
        b"plain text",
        **{p.CLIENT_CONTEXT_HEADER: client_context, "Content-Type": "text/plain"},
    )
    context = steps.context(inv)
    assert context.memory_limit_in_mb == "512"
    assert context.aws_request_id == "req-slot"
    assert steps.event(context, inv) == b"plain text"
    assert context.client_context is not None
    assert context.client_context.custom == {"tenant": "t-7"}


def test_task_slots_report_errors_like_the_invoke_loop(runtime_api: RuntimeAPIStub) -> None:
    """Kills xǁInvokeStepsǁerror__mutmut_2 and _5: a task slot's failed invoke names its
    request id and gives X-Ray the cause, as Invoker does."""
    steps = bootstrap.InvokeSteps(make_config(port_of(runtime_api)))
    try:
        _fail({}, None)  # type: ignore[arg-type]
    except KeyError as exc:
        body, cause = steps.error(exc, "req-slot-error")
    assert body["requestId"] == "req-slot-error" and body["errorType"] == "KeyError"
    assert cause is not None
    assert json.loads(cause)["exceptions"][0]["type"] == "KeyError"


# --- streamed responses (Invoker._stream) --------------------------------------------------------

STREAM_RID = "req-stream-1"


def _stream_invoke(
    server: Peer, handler: Callable[[Any, LambdaContext], Any]
) -> tuple[Received, bytes, str]:
    """One invoke of ``handler`` through Invoker.handle; returns the post the peer received,
    whatever else arrived after it, and the function log."""
    log = Log()
    client = RuntimeClient("127.0.0.1", server.port, log.runtime_log.warning)
    invoker = bootstrap.Invoker(make_config(server.port), client, handler, log.runtime_log)
    try:
        invoker.handle(invocation(STREAM_RID))
    finally:
        client.close()
        server.stop()
    connection = server.conns[0]
    return connection.requests[0], connection.extra, log.text


def _chunks(event: Any, context: LambdaContext) -> Iterator[bytes]:
    yield b"one,"
    yield b"two"


def _fails_midway(event: Any, context: LambdaContext) -> Iterator[bytes]:
    yield b"partial"
    raise ValueError("stock ran out")


def test_a_streamed_response_is_posted_once_and_nothing_follows(
    peer: Callable[..., Peer],
) -> None:
    """Kills xǁInvokerǁ_stream__mutmut_1, _2, _25.._33, _35 and _38: a generator handler's
    chunks go out as one streamed response to its own request id (docs/streaming.md), with no
    error trailers, no /error after it, and nothing in the log."""
    received, extra, log = _stream_invoke(peer([REQ, send(resp(202))]), _chunks)
    assert received.target == f"{p.INVOCATION_PREFIX}{STREAM_RID}{p.RESPONSE_SUFFIX}"
    headers = {name.lower(): value for name, value in received.headers}
    assert headers[p.RESPONSE_MODE_HEADER.lower()] == p.RESPONSE_MODE_STREAMING
    assert received.body == b"one,two"
    assert received.trailers == []
    assert extra == b""
    assert log == ""


def test_an_error_mid_stream_goes_into_the_trailers_and_the_log_once(
    peer: Callable[..., Peer],
) -> None:
    """Kills xǁInvokerǁ_stream__mutmut_14.._24, _37, _39, _40, _42, _43 and _44: an exception
    after the first chunk ends the stream with the usual error report (type, message,
    requestId) in the trailers, is logged once, and is not posted again as an /error."""
    received, extra, log = _stream_invoke(peer([REQ, send(resp(202))]), _fails_midway)
    assert received.body == b"partial"
    trailers = dict(received.trailers)
    assert trailers[p.ERROR_TYPE_HEADER] == "ValueError"
    error = json.loads(base64.b64decode(trailers[p.ERROR_BODY_TRAILER]))
    assert error["errorType"] == "ValueError"
    assert error["errorMessage"] == "stock ran out"
    assert error["requestId"] == STREAM_RID
    assert any("raise ValueError" in line for line in error["stackTrace"])
    assert extra == b""
    assert log.count("ValueError: stock ran out") == 1
    assert "[ERROR]" in log


@pytest.fixture
def user_loop() -> Iterator[asyncio.AbstractEventLoop]:
    """An event loop user code set up at import time (as a module-level client would)."""
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    yield loop
    asyncio.set_event_loop(None)
    loop.close()


def test_an_async_generator_streams_on_the_environments_loop(
    peer: Callable[..., Peer], user_loop: asyncio.AbstractEventLoop
) -> None:
    """Kills xǁInvokerǁ_stream__mutmut_4.._13: an async generator handler streams, and runs on
    the loop the function set up at import time (docs/streaming.md, docs/handlers.md)."""
    loops: list[asyncio.AbstractEventLoop] = []

    async def chunks(event: Any, context: LambdaContext) -> AsyncIterator[bytes]:
        loops.append(asyncio.get_running_loop())
        yield b"async,"
        await asyncio.sleep(0)
        yield b"chunks"

    received, extra, log = _stream_invoke(peer([REQ, send(resp(202))]), chunks)
    assert received.body == b"async,chunks"
    assert received.trailers == []
    assert extra == b""
    assert log == ""
    assert loops == [user_loop]


def test_a_refused_stream_is_logged_as_a_warning(peer: Callable[..., Peer]) -> None:
    """Kills xǁInvokerǁ_stream__mutmut_35 and _36: Lambda cutting a stream off (413) is
    logged as a warning naming the status, and the loop goes on (docs/streaming.md)."""
    received, extra, log = _stream_invoke(peer([REQ, send(resp(413))]), _chunks)
    assert received.body == b"one,two"
    assert extra == b""
    assert "[WARNING]" in log and "413" in log
    assert "None" not in log


def test_a_500_to_a_streamed_response_ends_the_runtime_at_once(
    peer: Callable[..., Peer],
) -> None:
    """Kills xǁInvokerǁ_stream__mutmut_34: a 500 answering a streamed response means the
    environment is broken: nothing more is posted for the invoke, and the runtime's last log
    line ("runtime exiting: ...", from what this raises) names the request and the status
    (docs/handlers.md, docs/streaming.md: "a 500 is fatal, as for a buffered response")."""
    # Were an /error posted after the 500, it would be accepted: the runtime would go on.
    server = peer([REQ, send(resp(500, b"container error")), REQ, send(resp(202))])
    with pytest.raises(RuntimeAPIFatal) as fatal:
        _stream_invoke(server, _chunks)
    assert str(fatal.value) == f"the streamed response to {STREAM_RID} was answered 500"
    assert len(server.conns[0].requests) == 1


# --- SnapStart hooks (snapshot_and_restore, _report_hook_error) ----------------------------------


@pytest.fixture
def hooks(monkeypatch: pytest.MonkeyPatch) -> None:
    """The runtime's own hook lists, empty (snapshot-restore-py made unimportable), and the
    trace variable the refresh removes restored afterwards."""
    monkeypatch.setitem(sys.modules, snapstart.PACKAGE, None)  # type: ignore[arg-type]
    monkeypatch.setattr(snapstart, "_before_snapshot", [])
    monkeypatch.setattr(snapstart, "_after_restore", [])
    monkeypatch.setenv("_X_AMZN_TRACE_ID", "Root=1-00000000-000000000000000000000000")


def _hook_fails() -> None:
    raise ValueError("pool is busy")


def _run_snapstart_phase(server: Peer) -> tuple[object, Received, str]:
    """snapshot_and_restore against ``server``; returns the exit status, the error report the
    server received (the last request) and the function log."""
    log = Log()
    client = RuntimeClient("127.0.0.1", server.port, log.runtime_log.warning)
    try:
        with pytest.raises(SystemExit) as exited:
            bootstrap.snapshot_and_restore(client, log.runtime_log)
    finally:
        client.close()
        server.stop()
    connection = server.conns[0]
    assert connection.extra == b""
    return exited.value.code, connection.requests[-1], log.text


def _check_hook_report(received: Received, error_type: str, log: str) -> None:
    """The report of ``_hook_fails``'s exception as docs/snapstart.md describes it: the usual
    error body naming the exception, the phase in the error type header, an X-Ray cause, and
    the error logged."""
    headers = {name.lower(): value for name, value in received.headers}
    assert headers[p.ERROR_TYPE_HEADER.lower()] == error_type
    body = json.loads(received.body)
    # The managed runtime's four keys, with the empty requestId of an error outside an invoke.
    assert list(body)[:4] == ["errorMessage", "errorType", "requestId", "stackTrace"]
    assert body["errorMessage"] == "pool is busy"
    assert body["errorType"] == "ValueError"
    assert body["requestId"] == ""
    assert any("raise ValueError" in line for line in body["stackTrace"])
    (exception,) = json.loads(headers[p.XRAY_CAUSE_HEADER.lower()])["exceptions"]
    assert exception["type"] == "ValueError" and exception["message"] == "pool is busy"
    assert "ValueError: pool is busy" in log


@pytest.mark.usefixtures("hooks")
def test_a_failing_before_snapshot_hook_is_an_init_error_and_exit_64(
    peer: Callable[..., Peer],
) -> None:
    """Kills x_snapshot_and_restore__mutmut_1..9 and x__report_hook_error__mutmut_1..15: a
    before-snapshot hook that raises is reported to /init/error as Runtime.BeforeSnapshotError
    with its exception's error report, logged, and the runtime exits with 64 (awslambdaric's
    status), before /restore/next."""
    runtime.register_before_snapshot(_hook_fails)
    code, received, log = _run_snapstart_phase(peer([REQ, send(resp(202))]))
    assert code == bootstrap.BEFORE_SNAPSHOT_EXIT == 64
    assert (received.method, received.target) == ("POST", p.INIT_ERROR_PATH)
    _check_hook_report(received, "Runtime.BeforeSnapshotError", log)


@pytest.mark.usefixtures("hooks")
def test_a_failing_after_restore_hook_is_a_restore_error_and_exit_65(
    peer: Callable[..., Peer],
) -> None:
    """Kills x_snapshot_and_restore__mutmut_10..18 (and the x__report_hook_error mutants
    again): an after-restore hook that raises, once /restore/next has answered, is reported to
    /restore/error as Runtime.AfterRestoreError, logged, and the runtime exits with 65."""
    runtime.register_after_restore(_hook_fails)
    server = peer([REQ, send(resp(200)), REQ, send(resp(202))])
    code, received, log = _run_snapstart_phase(server)
    assert code == bootstrap.AFTER_RESTORE_EXIT == 65
    first = server.conns[0].requests[0]
    assert (first.method, first.target) == ("GET", p.RESTORE_NEXT_PATH)
    assert (received.method, received.target) == ("POST", p.RESTORE_ERROR_PATH)
    _check_hook_report(received, "Runtime.AfterRestoreError", log)


# --- several invokes in flight (serve_concurrently) ----------------------------------------------


@pytest.mark.slow
def test_an_async_handler_keeps_its_layers_with_several_invokes_in_flight(
    runtime_api: RuntimeAPIStub, start_runtime: Callable[..., RuntimeProcess]
) -> None:
    """Kills x_serve_concurrently__mutmut_6, _8 and _17: under AWS_LAMBDA_MAX_CONCURRENCY an
    ``async def`` handler with observability switched on (here EMF metrics) runs on slot
    threads and still gets it for every invoke (the task path is only for no layers);
    _X_AMZN_TRACE_ID is never set (the trace header is in the context); a failed invoke is
    reported and logged (docs/multi-concurrency.md)."""
    proc = start_runtime(
        "multi.async_faulty",
        AWS_LAMBDA_MAX_CONCURRENCY="2",
        LAMBDA_RUNTIME_METRICS="emf",
        PYTHONPATH=_runtime_root(),
    )
    rid = runtime_api.push(json.dumps({"tag": 1}), headers={p.TRACE_ID_HEADER: TRACE_HEADER})
    post = runtime_api.wait_post()
    assert (post.kind, post.request_id) == ("response", rid)
    answer = json.loads(post.body)
    assert (answer["tag"], answer["trace_id"], answer["env_trace"]) == (1, TRACE_HEADER, None)
    # Both slots asked for an event at start; the one that answered asks again once the
    # invoke's output (the EMF line) is written.
    with runtime_api.changed:
        assert runtime_api.changed.wait_for(lambda: runtime_api.next_calls >= 3, 15.0)
    output = proc.output_so_far()
    assert len([line for line in output.splitlines() if '"CloudWatchMetrics"' in line]) == 1
    exiting = runtime_api.push(json.dumps({"action": "exit"}))
    post = runtime_api.wait_post()
    assert (post.kind, post.request_id) == ("error", exiting)
    assert post.header(p.ERROR_TYPE_HEADER) == "Runtime.ExitError"
    with runtime_api.changed:
        assert runtime_api.changed.wait_for(lambda: runtime_api.next_calls >= 4, 15.0)
    assert "Runtime.ExitError" in proc.stop()


def test_a_handler_that_fails_to_import_is_an_init_error_and_exit_1(
    runtime_api: RuntimeAPIStub, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Kills x_init__mutmut_10 and _13 (the init error's requestId, which the managed runtime
    sends as "") and _26, _27 (a failed init exits with status 1 once its error is posted)."""
    (tmp_path / "broken.py").write_text("raise ValueError('no config')\n")
    monkeypatch.setattr(sys, "path", list(sys.path))  # init puts the task root on it
    config = Config.from_environ(
        ["broken.handler"],
        {"AWS_LAMBDA_RUNTIME_API": runtime_api.address, "LAMBDA_TASK_ROOT": str(tmp_path)},
    )
    client = RuntimeClient("127.0.0.1", port_of(runtime_api), lambda message: None)
    log = Log()
    with pytest.raises(SystemExit) as exited:
        bootstrap.init(config, client, log.runtime_log, time.time_ns())
    assert exited.value.code == 1
    post = runtime_api.wait_post()
    assert post.kind == "init_error"
    body = body_of(post)
    assert (body["errorType"], body["errorMessage"], body["requestId"]) == (
        "ValueError",
        "no config",
        "",
    )
