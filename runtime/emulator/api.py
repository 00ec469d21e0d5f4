"""The Python API: run the emulator in a background thread and invoke it over HTTP (httpx).

>>> with Emulator("app.handler", task_root="examples/hello") as fn:   # doctest: +SKIP
...     result = fn.invoke({"name": "World"})
...     result.payload, result.error, result.report.max_memory_used_mb
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import inspect
import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import Any, BinaryIO

import httpx
import orjson

from runtime import protocol

from .app import EmulatorCore, new_event_loop
from .config import OPTIONS, EmulatorConfig, unknown_options
from .debug import invoke_wait
from .invocation import Invocation
from .output import Console, stderr_stream
from .reports import Report

_KEEP = 1000


class FunctionError(Exception):
    """Raised by :meth:`InvokeResult.raise_for_error` when the invoke failed."""

    def __init__(self, result: InvokeResult) -> None:
        error = result.error or {}
        super().__init__(f"{error.get('errorType')}: {error.get('errorMessage')}")
        self.result = result


class InvokeResult:
    """The outcome of one invoke, as the caller sees it plus what the platform logged.

    ``log`` and ``report`` belong to the end of the invoke, which comes a little after the
    response (when the runtime asks for its next invoke, as on Lambda): reading either waits for
    that end, bounded by the invoke's timeout; the response fields never wait.
    """

    def __init__(
        self,
        status_code: int,
        raw: bytes,
        headers: Mapping[str, str],
        request_id: str,
        function_error: str | None,
        log: str = "",
        report: Report | None = None,
        attempts: int = 1,
        *,
        until_end: Callable[[], tuple[str, Report | None]] | None = None,
    ) -> None:
        self.status_code = status_code
        self.raw = raw
        self.headers = headers
        self.request_id = request_id
        # "Unhandled" when the function (or its runtime) failed, else None.
        self.function_error = function_error
        self.attempts = attempts
        self._log = log
        self._report = report
        self._until_end = until_end
        self._payload: Any = None

    def __repr__(self) -> str:
        return (
            f"InvokeResult(status_code={self.status_code}, request_id={self.request_id!r}, "
            f"function_error={self.function_error!r}, raw={self.raw[:60]!r})"
        )

    def _settle(self) -> None:
        if self._until_end is not None:
            self._log, self._report = self._until_end()
            self._until_end = None

    @property
    def log(self) -> str:
        """This invoke's log: function output and platform lines, START to REPORT."""
        self._settle()
        return self._log

    @property
    def report(self) -> Report | None:
        """What the REPORT line says (Duration until the runtime's next /next, memory, ...)."""
        self._settle()
        return self._report

    @property
    def ok(self) -> bool:
        return self.status_code < 300 and self.function_error is None

    @property
    def content_type(self) -> str:
        return self.headers.get("content-type", "")

    @property
    def payload(self) -> Any:
        """The response decoded as JSON when it is JSON, else the raw bytes."""
        if self._payload is None:
            if "json" in self.content_type or not self.content_type:
                try:
                    self._payload = orjson.loads(self.raw)
                except orjson.JSONDecodeError:
                    self._payload = self.raw
            else:
                self._payload = self.raw
        return self._payload

    @property
    def error(self) -> dict[str, Any] | None:
        """The error document (``errorType``, ``errorMessage``, ...) of a failed invoke."""
        if self.function_error is None and self.status_code < 400:
            return None
        value = self.payload
        return value if isinstance(value, dict) else {"errorMessage": str(value)}

    @property
    def log_tail(self) -> str | None:
        """The ``X-Amz-Log-Result`` header decoded, when the invoke asked for ``Tail``."""
        value = self.headers.get(protocol.LOG_RESULT_HEADER.lower())
        return base64.b64decode(value).decode("utf-8", "replace") if value else None

    def raise_for_error(self) -> InvokeResult:
        if not self.ok:
            raise FunctionError(self)
        return self


class Emulator:
    """A local Lambda function: ``start()``/``stop()`` or use it as a context manager.

    Keyword arguments are the emulator's options (:data:`runtime.emulator.config.OPTIONS`, the
    same as the ``serve`` flags: ``task_root``, ``layers``, ``timeout``, ``memory``,
    ``concurrency``, ``env``, ``function_name``, ``region``, ``runtime_cmd``,
    ``no_spawn``/``runtime_api``, ...), with the same defaults, except ``port``: 0 here (any
    free port: see :attr:`url`). ``echo=True`` copies function output and platform lines to
    ``sys.stderr`` (pytest shows them for failing tests); a binary stream works too.
    ``otel_console=True`` prints each invoke's spans as a tree after its REPORT, on the ``echo``
    stream, or on ``sys.stderr`` when ``echo`` is off.

    ``template="template.yaml"`` (with ``parameter_overrides={"Stage": "prod"}``) serves every
    function of a SAM or CloudFormation template instead of ``handler``: pick one with
    :meth:`function` (``emulator.function("HelloFunction").invoke(...)``); :meth:`invoke`
    works only when the template has a single function.
    ``http_port=0`` (or a port) also serves the function as a function URL, or with a
    template its ``HttpApi``/``Api`` routes and function URLs (``Host:
    NAME.lambda-url.localhost``): see :attr:`http_url`. Streamed responses are throttled as on
    Lambda unless ``stream_throttle=False``.
    """

    def __init__(self, handler: str = "", *, echo: bool | BinaryIO = False, **options: Any) -> None:
        unknown_options(options)
        options.setdefault("port", 0)
        if options.get("no_spawn") and options.get("runtime_api") is None:
            options["runtime_api"] = "127.0.0.1:0"
        self.config = EmulatorConfig(handler=handler, **options)
        stream: Callable[[], BinaryIO | None] | None
        if echo is True:
            stream = stderr_stream
        elif echo is False:
            stream = None
        else:
            fixed = echo
            stream = lambda: fixed  # noqa: E731
        self._console = Console(stream)
        self._events_done: OrderedDict[str, Invocation] = OrderedDict()
        self._events_cond = threading.Condition()
        # Notified whenever an invoke ends (its log complete), for InvokeResult.log / report.
        self._ended_cond = threading.Condition()
        self._stopped = False
        self._core = EmulatorCore(
            self.config,
            self._console,
            keep_records=_KEEP,
            on_event_done=self._event_done,
            on_ended=self._invoke_ended,
        )
        # The longest function timeout (the bound of waiting for an invoke's end).
        self._max_timeout = max(invoke_wait(fn.config) for fn in self._core.functions)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._client: httpx.Client | None = None

    # -- lifecycle

    def start(self) -> Emulator:
        if self._thread is not None:
            return self
        self._stopped = False
        loop = new_event_loop()
        thread = threading.Thread(target=loop.run_forever, name="lambda-emulator", daemon=True)
        thread.start()
        self._loop, self._thread = loop, thread
        try:
            asyncio.run_coroutine_threadsafe(self._core.start(), loop).result()
        except BaseException:
            self._stop_loop()
            raise
        http_timeout = self._max_timeout + self.config.init_timeout + 30
        self._client = httpx.Client(base_url=self.url, timeout=http_timeout)
        return self

    def stop(self) -> None:
        if self._thread is None or self._loop is None:
            return
        try:
            # Stopping first answers invokes in flight on other threads before their client goes.
            asyncio.run_coroutine_threadsafe(self._core.stop(), self._loop).result(timeout=60)
        finally:
            self._stop_loop()
            if self._client is not None:
                self._client.close()
                self._client = None
            with self._ended_cond:
                self._stopped = True
                self._ended_cond.notify_all()

    def _stop_loop(self) -> None:
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=30)
        loop.close()
        self._loop = self._thread = None

    def __enter__(self) -> Emulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- addresses

    @property
    def url(self) -> str:
        """Base URL of the Invoke API, e.g. for ``boto3.client("lambda", endpoint_url=...)``."""
        return self._core.url

    endpoint_url = url

    @property
    def http_url(self) -> str:
        """Base URL of the HTTP front (with ``http_port``, e.g. 0 for any free port): the
        function URL, or a template's routes."""
        url = self._core.http_url
        if url is None:
            raise RuntimeError("http_url is only defined with http_port set (0: any free port)")
        return url

    @property
    def function_name(self) -> str:
        return self.config.function_name

    @property
    def invoke_path(self) -> str:
        return protocol.invoke_path(self._only_function())

    def _only_function(self) -> str:
        functions = self._core.functions
        if len(functions) > 1:
            names = ", ".join(fn.name for fn in functions)
            raise RuntimeError(
                f"this emulator serves {len(functions)} functions ({names}): pick one with "
                "emulator.function(NAME)"
            )
        return functions.default.name

    @property
    def functions(self) -> list[str]:
        """The names of the functions served (one without a template)."""
        return [fn.name for fn in self._core.functions]

    def function(self, name: str) -> FunctionClient:
        """The function ``name`` (its FunctionName, template logical id or ARN), to invoke."""
        fn = self._core.functions.lookup(name)
        if isinstance(fn, str):
            raise KeyError(fn)
        return FunctionClient(self, fn.name)

    @property
    def runtime_api(self) -> str:
        """With ``no_spawn``: the ``HOST:PORT`` to give the runtime as AWS_LAMBDA_RUNTIME_API."""
        address = self._core.runtime_api_address
        if address is None:
            raise RuntimeError("runtime_api is only defined with no_spawn=True")
        return address

    def runtime_environment(self) -> dict[str, str]:
        """With ``no_spawn``: the environment to start the runtime with by hand."""
        result: dict[str, str] = self._call(self._core.external_env_vars)
        return result

    # -- invoking

    def invoke(
        self,
        event: Any = None,
        *,
        payload: bytes | None = None,
        tail: bool = False,
        client_context: Mapping[str, Any] | None = None,
        trace_id: str | None = None,
        tenant_id: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> InvokeResult:
        """A RequestResponse invoke. ``event`` is JSON-encoded; ``payload`` sends raw bytes."""
        return self._invoke(
            self.invoke_path,
            event,
            payload=payload,
            tail=tail,
            client_context=client_context,
            trace_id=trace_id,
            tenant_id=tenant_id,
            headers=headers,
        )

    def _invoke(
        self,
        path: str,
        event: Any = None,
        *,
        payload: bytes | None = None,
        tail: bool = False,
        client_context: Mapping[str, Any] | None = None,
        trace_id: str | None = None,
        tenant_id: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> InvokeResult:
        response = self._post(
            path,
            event,
            payload,
            protocol.INVOCATION_TYPE_REQUEST_RESPONSE,
            tail,
            client_context,
            trace_id,
            tenant_id,
            headers,
        )
        return self._result(response)

    def invoke_event(self, event: Any = None, *, payload: bytes | None = None) -> str:
        """An Event (asynchronous) invoke; returns its request id for :meth:`wait_event`."""
        return self._invoke_event(self.invoke_path, event, payload)

    def _invoke_event(self, path: str, event: Any, payload: bytes | None) -> str:
        response = self._post(
            path, event, payload, protocol.INVOCATION_TYPE_EVENT, False, None, None, None, None
        )
        if response.status_code != 202:
            raise RuntimeError(f"Event invoke refused: {response.status_code} {response.text}")
        return response.headers[protocol.AMZN_REQUEST_ID_HEADER]

    def wait_event(self, request_id: str, timeout: float = 30.0) -> InvokeResult:
        """Wait until an Event invoke is over (retries included) and return its last attempt."""
        with self._events_cond:
            if not self._events_cond.wait_for(lambda: request_id in self._events_done, timeout):
                raise TimeoutError(f"Event invoke {request_id} not finished after {timeout} s")
            inv = self._events_done[request_id]
        headers = {"content-type": inv.content_type.decode("latin-1")}
        return InvokeResult(
            status_code=200,
            raw=inv.payload,
            headers=headers,
            request_id=request_id,
            function_error="Unhandled" if inv.function_error else None,
            log=inv.log_bytes().decode("utf-8", "replace"),
            report=inv.report,
            attempts=inv.attempt,
        )

    def _invoke_ended(self, inv: Invocation) -> None:
        with self._ended_cond:
            self._ended_cond.notify_all()

    def _wait_end(self, inv: Invocation) -> tuple[str, Report | None]:
        """The invoke's log and report once it is over (bounded: its timeout, plus room for
        killing and reaping a runtime that overran it)."""
        with self._ended_cond:
            self._ended_cond.wait_for(lambda: inv.ended or self._stopped, self._max_timeout + 10)
        return inv.log_bytes().decode("utf-8", "replace"), inv.report

    def _event_done(self, inv: Invocation) -> None:
        with self._events_cond:
            self._events_done[inv.request_id] = inv
            if len(self._events_done) > _KEEP:
                self._events_done.popitem(last=False)
            self._events_cond.notify_all()

    def _post(
        self,
        path: str,
        event: Any,
        payload: bytes | None,
        kind: str,
        tail: bool,
        client_context: Mapping[str, Any] | None,
        trace_id: str | None,
        tenant_id: str | None,
        extra: Mapping[str, str] | None,
    ) -> httpx.Response:
        if self._client is None:
            raise RuntimeError("the emulator is not started (use start() or a with block)")
        body = payload if payload is not None else orjson.dumps(event if event is not None else {})
        headers = {protocol.INVOCATION_TYPE_HEADER: kind}
        if tail:
            headers[protocol.LOG_TYPE_HEADER] = protocol.LOG_TYPE_TAIL
        if client_context is not None:
            headers[protocol.INVOKE_CLIENT_CONTEXT_HEADER] = base64.b64encode(
                orjson.dumps(dict(client_context))
            ).decode()
        if trace_id is not None:
            headers[protocol.INVOKE_TRACE_ID_HEADER] = trace_id
        if tenant_id is not None:
            headers[protocol.INVOKE_TENANT_ID_HEADER] = tenant_id
        if extra:
            headers.update(extra)
        return self._client.post(path, content=body, headers=headers)

    def _result(self, response: httpx.Response) -> InvokeResult:
        request_id = response.headers.get(protocol.AMZN_REQUEST_ID_HEADER, "")
        inv = self._core.records.get(request_id)
        return InvokeResult(
            status_code=response.status_code,
            raw=response.content,
            headers=response.headers,
            request_id=request_id,
            function_error=response.headers.get(protocol.FUNCTION_ERROR_HEADER),
            until_end=(lambda: self._wait_end(inv)) if inv is not None else None,
        )

    # -- state

    def stats(self, function: str | None = None) -> dict[str, int]:
        """``environments`` alive, ``busy`` invokes in flight, ``started`` environments so far
        (of ``function``, else of every function)."""

        def collect() -> dict[str, int]:
            totals = {"environments": 0, "busy": 0, "started": 0, "processes": 0}
            for fn in self._core.functions:
                sched = fn.scheduler
                if sched is None or function not in (None, fn.name, fn.logical_id):
                    continue
                totals["environments"] += len(sched.lifecycle.envs)
                totals["busy"] += sched.in_flight
                totals["started"] += sched.lifecycle.started
                totals["processes"] += len(sched.lifecycle.processes)
            return totals

        result: dict[str, int] = self._call(collect)
        return result

    def _call(self, fn: Callable[[], Any]) -> Any:
        loop = self._loop
        if loop is None:
            raise RuntimeError("the emulator is not started")

        async def run() -> Any:
            return fn()

        return asyncio.run_coroutine_threadsafe(run(), loop).result(timeout=10)


class FunctionClient:
    """One function of an emulator serving a template: ``emulator.function("Name")``."""

    def __init__(self, emulator: Emulator, name: str) -> None:
        self.emulator = emulator
        self.name = name

    def __repr__(self) -> str:
        return f"FunctionClient({self.name!r})"

    @property
    def invoke_path(self) -> str:
        return protocol.invoke_path(self.name)

    def invoke(self, event: Any = None, **options: Any) -> InvokeResult:
        """Like :meth:`Emulator.invoke`, for this function."""
        return self.emulator._invoke(self.invoke_path, event, **options)

    def invoke_event(self, event: Any = None, *, payload: bytes | None = None) -> str:
        return self.emulator._invoke_event(self.invoke_path, event, payload)

    def wait_event(self, request_id: str, timeout: float = 30.0) -> InvokeResult:
        return self.emulator.wait_event(request_id, timeout)

    def stats(self) -> dict[str, int]:
        return self.emulator.stats(self.name)


def _signature() -> inspect.Signature:
    """``Emulator(handler="", *, echo=False, <every option>=<its default>)`` for help() and
    editors: the options are the Config's (port excepted, see the class docstring)."""
    keyword = inspect.Parameter.KEYWORD_ONLY
    params = [
        inspect.Parameter("self", inspect.Parameter.POSITIONAL_OR_KEYWORD),
        inspect.Parameter(
            "handler", inspect.Parameter.POSITIONAL_OR_KEYWORD, default="", annotation=str
        ),
        inspect.Parameter("echo", keyword, default=False, annotation="bool | BinaryIO"),
    ]
    types = {f.name: f.type for f in dataclasses.fields(EmulatorConfig)}
    for option in OPTIONS:
        if option.name != "handler":
            default = 0 if option.name == "port" else option.default
            params.append(
                inspect.Parameter(
                    option.name, keyword, default=default, annotation=types[option.name]
                )
            )
    return inspect.Signature(params, return_annotation=None)


Emulator.__init__.__signature__ = _signature()  # type: ignore[attr-defined]
