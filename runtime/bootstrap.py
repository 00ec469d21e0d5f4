"""The runtime's lifecycle, top to bottom: init, the invoke loop, shutdown.

This is the one place that wires the optional parts (the observability package) in: the core
modules never import them, and they never import this module.

Init reads the configuration, routes logs, puts the task root and layers on ``sys.path``, imports
the handler (reporting a failure to ``/init/error``) and, when the user registered shutdown hooks,
registers an internal extension so Lambda sends SIGTERM. With SnapStart, the snapshot and
restore phase (:func:`snapshot_and_restore`) comes next. The loop then takes one event at a time
from ``/next``, calls the handler and posts exactly one response or one error for it. Shutdown is
SIGTERM (hooks, then exit 0) or the Runtime API telling us the sandbox is gone (exit 1).
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from collections.abc import Callable, Sequence
from types import FrameType

import orjson

from runtime import logs, shutdown
from runtime.api import Invocation, RuntimeAPIFatal, RuntimeClient
from runtime.config import Config, ConfigError, runtime_api_address
from runtime.context import (
    ClientContext,
    CognitoIdentity,
    LambdaContext,
    enter_invoke,
    leave_invoke,
)
from runtime.errors import LambdaError, encode_error, error_body, error_type_of, xray_cause
from runtime.handler import load_handler, setup_sys_path
from runtime.layers import InitInfo, compose
from runtime.marshal import decode_event, encode_result
from runtime.traceid import UNSET, TraceIdVariable

# typing costs milliseconds of cold start; it is only needed by the type checker.
TYPE_CHECKING = False
if TYPE_CHECKING:
    import asyncio
    from collections.abc import Callable
    from types import ModuleType
    from typing import Any, NoReturn

    from runtime.handler import Handler
    from runtime.layers import Call, Layer
    from runtime.logs import RuntimeLog

EXTENSION_NAME = "lambda-runtime"
CONFIG_ERROR_TYPE = "Runtime.InvalidConfiguration"
# Lambda gives an environment with only internal extensions roughly 500 ms between SIGTERM and
# SIGKILL (the emulator's default grace is the same); the hooks get less, so the runtime still
# reports a hook that overran and exits by itself. Locally nothing may come after SIGTERM, so
# the bound is ours to keep.
SHUTDOWN_BUDGET_SECONDS = 0.4
# SnapStart hook failures: the error types and exit statuses awslambdaric uses.
BEFORE_SNAPSHOT_ERROR = "Runtime.BeforeSnapshotError"
AFTER_RESTORE_ERROR = "Runtime.AfterRestoreError"
BEFORE_SNAPSHOT_EXIT = 64
AFTER_RESTORE_EXIT = 65


def main(argv: Sequence[str] | None = None, started_ns: int | None = None) -> NoReturn:
    if started_ns is None:
        started_ns = time.time_ns()
    args = sys.argv[1:] if argv is None else argv
    try:
        config = Config.from_environ(args)
    except ConfigError as exc:
        sys.stderr.write(f"lambda-runtime: {exc}\n")
        _report_config_error(exc)
        sys.exit(2)
    log = install_logs(config)
    client = RuntimeClient(config.runtime_api_host, config.runtime_api_port, log.warning)
    try:
        handler, init_info = init(config, client, log, started_ns)
        try:
            layers = build_layers(config, init_info)
        except ConfigError as exc:
            # Configuration that only its own module can check, once loaded.
            log.write("ERROR", str(exc))
            _post_config_error(client, exc)
            sys.exit(2)
        if config.snap_start:
            snapshot_and_restore(client, log)
        if config.max_concurrency:
            client.close()  # each slot has its own connection
            serve_concurrently(config, handler, log, layers)
        Invoker(config, client, handler, log, layers).loop()
    except RuntimeAPIFatal as exc:
        log.write("ERROR", f"runtime exiting: {exc}")
        sys.exit(1)


# --- init -----------------------------------------------------------------------------------


def _report_config_error(exc: ConfigError) -> None:
    """Tell the caller what is wrong (not just "exit status 2") when the Runtime API is there."""
    try:
        host, port = runtime_api_address(os.environ)
    except ConfigError:
        return  # no usable Runtime API address: stderr is all there is

    def warn(message: str) -> None:
        sys.stderr.write(f"lambda-runtime: {message}\n")

    try:
        _post_config_error(RuntimeClient(host, port, warn), exc)
    except RuntimeAPIFatal as fatal:
        warn(str(fatal))


def _post_config_error(client: RuntimeClient, exc: ConfigError) -> None:
    body = {"errorMessage": str(exc), "errorType": CONFIG_ERROR_TYPE, "stackTrace": []}
    client.post_init_error(CONFIG_ERROR_TYPE, encode_error(body), None)


def init(
    config: Config, client: RuntimeClient, log: RuntimeLog, started_ns: int
) -> tuple[Handler, InitInfo]:
    setup_sys_path(config.task_root, config.layer_root)
    import_started_ns = time.time_ns()
    try:
        handler = load_handler(config.handler)
    except BaseException as exc:
        body = _safe_error_body(exc, "")
        log.error(body)
        client.post_init_error(body["errorType"], encode_error(body), _safe_xray_cause(exc))
        sys.exit(1)
    if shutdown.registered():
        import signal  # only environments with hooks pay for it

        client.register_extension(EXTENSION_NAME)

        def on_sigterm(signum: int, frame: FrameType | None) -> None:
            # Once: a repeated SIGTERM must neither start the hooks over nor end them midway.
            # (Not SIG_IGN: what a hook starts would inherit it and could not be stopped.)
            signal.signal(signal.SIGTERM, _ignore_signal)
            shutdown.run_hooks(SHUTDOWN_BUDGET_SECONDS, log.warning)
            for stream in (sys.stdout, sys.stderr):
                with contextlib.suppress(OSError, ValueError):
                    stream.flush()
            os._exit(0)

        signal.signal(signal.SIGTERM, on_sigterm)
    loaded_ns = time.time_ns()
    return handler, InitInfo(started_ns, loaded_ns, loaded_ns - import_started_ns)


def _ignore_signal(signum: int, frame: FrameType | None) -> None:
    pass


def snapshot_and_restore(client: RuntimeClient, log: RuntimeLog) -> None:
    """SnapStart, between init and the first ``/next``: the before-snapshot hooks, then
    ``/restore/next``, which answers in each environment restored from the snapshot, then
    what must not be shared between those environments is refreshed and the after-restore
    hooks run. A failing hook is reported as awslambdaric reports it, and the runtime exits."""
    from runtime import snapstart

    try:
        snapstart.run_before_snapshot()
    except BaseException as exc:
        _report_hook_error(exc, log, client.post_init_error, BEFORE_SNAPSHOT_ERROR)
        sys.exit(BEFORE_SNAPSHOT_EXIT)
    client.restore_next()
    snapstart.refresh_after_restore()
    try:
        snapstart.run_after_restore()
    except BaseException as exc:
        _report_hook_error(exc, log, client.post_restore_error, AFTER_RESTORE_ERROR)
        sys.exit(AFTER_RESTORE_EXIT)


def _report_hook_error(
    exc: BaseException,
    log: RuntimeLog,
    post: Callable[[str, bytes, bytes | None], None],
    error_type: str,
) -> None:
    # The body names the exception, as for any other error; the header says which phase failed.
    body = _safe_error_body(exc, "")
    log.error(body)
    post(error_type, encode_error(body), _safe_xray_cause(exc))


def install_logs(config: Config) -> RuntimeLog:
    """Route stdlib logging (and structlog, once imported) to the function log; returns the
    runtime's own log. ``print()`` output stays on stdout, line-buffered.

    The Text format with nothing else switched on is the core's (:mod:`runtime.logs`); the
    JSON format, the DEBUG buffer, and anything that must see failed invokes are the
    observability package's.
    """
    output, level, as_json = logs.prepare(config)
    if as_json or config.observability.enabled:
        from runtime.observability import log_routing

        routing = log_routing(config, output, level, as_json)
    else:
        routing = logs.text_routing(output, level)

    def route_logging(module: ModuleType) -> None:
        from runtime.loghandlers import attach, default_handler

        handler = routing.handler or default_handler(routing.writer)
        attach(handler, routing.runtime_log.warning, routing.lowest)

    def route_structlog(module: ModuleType) -> None:
        from runtime.observability.structlog_bridge import configure_structlog

        configure_structlog(module, routing.writer, json=routing.as_json, min_level=routing.lowest)

    logs.when_imported("logging", route_logging, pin=True)
    logs.when_imported("structlog", route_structlog)
    logs.warn_bad_settings(config, routing.runtime_log)
    return routing.runtime_log


def build_layers(config: Config, init_info: InitInfo) -> list[Layer]:
    """The layers this configuration asks for; each is imported only when it is used."""
    structlog_loaded = "structlog" in sys.modules
    if not config.observability.enabled and not structlog_loaded:
        return []
    from runtime.observability import build_layers as observability_layers

    return observability_layers(config, init_info, structlog_loaded)


# --- the invoke loop --------------------------------------------------------------------------


class Invoker:
    """Turns one Invocation into exactly one response or one error."""

    def __init__(
        self,
        config: Config,
        client: RuntimeClient,
        handler: Handler,
        log: RuntimeLog,
        layers: Sequence[Layer] = (),
        run_async: Callable[[Any], Any] | None = None,
    ) -> None:
        self._config = config
        self._client = client
        self._handler = handler
        self._log = log
        self._call: Call = compose(self._call_handler, layers)
        self._after_invoke = [layer.after_invoke for layer in layers]
        self._memory = str(config.memory_limit_in_mb)
        self._event_loop: asyncio.AbstractEventLoop | None = None
        # With several invokes in flight (runtime.concurrency) awaitables run on the loop's own
        # thread, and _X_AMZN_TRACE_ID, one per process, is left alone.
        self._run_elsewhere = run_async
        self._trace_id = TraceIdVariable() if run_async is None else UNSET
        self._invocation: Invocation | None = None
        # A stream's own failure, already reported in its trailers: not to be posted again.
        self._streamed_error: BaseException | None = None

    def loop(self) -> NoReturn:
        next_invocation = self._client.next_invocation
        handle = self.handle
        while True:
            handle(next_invocation())

    def handle(self, invocation: Invocation) -> None:
        context = new_context(self._config, self._memory, invocation)
        token = enter_invoke(context)
        self._invocation = invocation
        try:
            try:
                # Inside the try: a value the environment cannot hold (a NUL byte) fails this
                # invoke, not the runtime.
                self._trace_id.set(invocation.trace_id)
                fill_context_headers(context, invocation)
                event = decode_event(invocation.body, invocation.content_type)
                result = self._call(event, context)
                if result is _STREAMED:
                    return
                body, content_type = encode_result(result)
            except RuntimeAPIFatal:
                # A 500 to a streamed response: the environment is broken, so nothing more is
                # posted for this invoke (an /error accepted now would keep the runtime going).
                raise
            except BaseException as exc:
                if exc is not self._streamed_error:
                    self._report(invocation, exc)
                self._streamed_error = None
            else:
                # With nothing to run between invokes, /next goes out with the response.
                self._client.post_response(
                    invocation, body, content_type, then_next=not self._after_invoke
                )
        finally:
            for after_invoke in self._after_invoke:
                after_invoke()
            self._invocation = None
            leave_invoke(token)

    def _call_handler(self, event: Any, context: LambdaContext) -> Any:
        result = self._handler(event, context)
        if hasattr(result, "__await__"):
            result = self._run_async(result)
        kind = type(result)
        # runtime.streaming.is_stream_result, inlined: that module is imported only by
        # functions that stream, and the common results (dict, str, ...) fail both at once.
        if hasattr(kind, "__next__") or hasattr(kind, "__anext__"):
            # Streamed here, inside the layers, so that a span covers the whole stream.
            return self._stream(result)
        return result

    def _stream(self, stream: Any) -> object:
        """Post a streamed result. An error before the first chunk propagates (a normal
        /error follows); one after it went into the trailers, is logged, and is re-raised for
        the layers to see, marked so that it is not posted again."""
        invocation = self._invocation
        assert invocation is not None
        loop = None
        if hasattr(type(stream), "__anext__"):
            if self._event_loop is None:
                self._event_loop = _environment_loop()
            loop = self._event_loop
        request_id = invocation.request_id

        def describe(exc: BaseException) -> tuple[str, bytes]:
            body = _safe_error_body(exc, request_id)
            return str(body["errorType"]), encode_error(body)

        outcome = self._client.post_stream(invocation, stream, loop, describe)
        if outcome.fatal:
            raise RuntimeAPIFatal(f"the streamed response to {request_id} was answered 500")
        if outcome.problem is not None:
            self._log.warning(outcome.problem)
        error = outcome.error
        if error is not None:
            self._log.error(_safe_error_body(error, request_id))
            self._streamed_error = error
            raise error
        return _STREAMED

    def _run_async(self, awaitable: Any) -> Any:
        if self._run_elsewhere is not None:
            return self._run_elsewhere(awaitable)
        if self._event_loop is None:
            self._event_loop = _environment_loop()
        return self._event_loop.run_until_complete(awaitable)

    def _report(self, invocation: Invocation, exc: BaseException) -> None:
        body = _safe_error_body(exc, invocation.request_id)
        self._log.error(body)
        self._client.post_error(
            invocation, body["errorType"], encode_error(body), _safe_xray_cause(exc)
        )


class InvokeSteps:
    """The steps of :meth:`Invoker.handle` around the handler call, for the invokers of
    another shape (the task slots of :mod:`runtime.concurrency`)."""

    def __init__(self, config: Config) -> None:
        self._config = config
        self._memory = str(config.memory_limit_in_mb)

    def context(self, invocation: Invocation) -> LambdaContext:
        return new_context(self._config, self._memory, invocation)

    def event(self, context: LambdaContext, invocation: Invocation) -> Any:
        """The event, once the context is current: a failure here is the invoke's error."""
        fill_context_headers(context, invocation)
        return decode_event(invocation.body, invocation.content_type)

    def error(self, exc: BaseException, request_id: str) -> tuple[dict[str, Any], bytes | None]:
        """The error body and X-Ray cause of a failed invoke."""
        return _safe_error_body(exc, request_id), _safe_xray_cause(exc)


# What the handler call returns once it has streamed its result itself.
_STREAMED = object()


def serve_concurrently(
    config: Config, handler: Handler, log: RuntimeLog, layers: list[Layer]
) -> NoReturn:
    """Lambda Managed Instances: N invokes in flight, in N slots of one process (or of P
    forked workers), each with its own Runtime API connection (runtime.concurrency)."""
    from runtime import concurrency

    def slot_invoker(own: RuntimeClient, run_async: Callable[[Any], Any]) -> Invoker:
        guarded = concurrency.guard(handler)
        return Invoker(config, own, guarded, log, layers, run_async=run_async)

    tasks = None
    if concurrency.runs_as_tasks(handler, layers):
        tasks = concurrency.Tasks(handler, InvokeSteps(config))
    concurrency.run(config, log, slot_invoker, _environment_loop, tasks)


def _environment_loop() -> asyncio.AbstractEventLoop:
    """One loop for the life of the environment, so clients and pools that async handlers
    create at module level stay usable from one invoke to the next: the loop user code set up
    at import time if there is one, else a new one made current."""
    import asyncio
    import warnings

    with warnings.catch_warnings():
        # Python 3.12+ warns when get_event_loop() would have to create a loop.
        warnings.simplefilter("ignore", DeprecationWarning)
        try:
            loop = asyncio.get_event_loop_policy().get_event_loop()
        except RuntimeError:
            loop = None
    if loop is None or loop.is_closed() or loop.is_running():
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
    return loop


def new_context(config: Config, memory: str, invocation: Invocation) -> LambdaContext:
    return LambdaContext(
        aws_request_id=invocation.request_id,
        deadline_ms=invocation.deadline_ms,
        invoked_function_arn=invocation.function_arn,
        function_name=config.function_name,
        function_version=config.function_version,
        memory_limit_in_mb=memory,
        log_group_name=config.log_group_name,
        log_stream_name=config.log_stream_name,
        tenant_id=invocation.tenant_id,
        xray_trace_id=invocation.trace_id,
    )


def fill_context_headers(context: LambdaContext, invocation: Invocation) -> None:
    try:
        if invocation.client_context:
            fields = orjson.loads(invocation.client_context)
            context.client_context = ClientContext(fields if isinstance(fields, dict) else {})
        if invocation.cognito_identity:
            fields = orjson.loads(invocation.cognito_identity)
            if isinstance(fields, dict):
                context.identity = CognitoIdentity(
                    fields.get("cognitoIdentityId"), fields.get("cognitoIdentityPoolId")
                )
    except orjson.JSONDecodeError as exc:
        raise LambdaError(
            "Runtime.LambdaContextUnmarshalError", f"Unable to parse context header: {exc}"
        ) from None


def _safe_error_body(exc: BaseException, request_id: str) -> dict[str, Any]:
    try:
        return error_body(exc, request_id)
    except Exception as broken:  # the error could not even be described: still report one
        return {
            "errorMessage": f"<error formatting failed: {type(broken).__name__}>",
            "errorType": error_type_of(exc),
            "requestId": request_id,
            "stackTrace": [],
        }


def _safe_xray_cause(exc: BaseException) -> bytes | None:
    try:
        return xray_cause(exc)
    except Exception:
        return None
