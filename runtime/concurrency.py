"""Several invokes in flight in one environment (Lambda Managed Instances).

With ``AWS_LAMBDA_MAX_CONCURRENCY=N`` the runtime runs N *slots* after the one init: each slot
has its own Runtime API connection and its own ``/next`` -> handler -> ``/response`` loop
(``/next`` pipelined behind the response, as in the single-invoke loop). Slots come in two
shapes, chosen at init:

* Tasks (:class:`TaskSlots`), for an ``async def`` handler with no layers: N tasks on the one
  environment event loop, in the main thread, each with a non-blocking client
  (:class:`AsyncRuntimeClient`: the loop's socket calls, with :mod:`runtime.http`'s request
  heads and parser and :mod:`runtime.api`'s status rules). An invoke is await ``/next`` ->
  await the handler -> await the post: no thread and no hand-off between threads, which on a
  busy CPU cost more than the invoke itself. A stream such a handler returns is posted by
  the blocking client in a worker thread, its steps run on the loop (async generator
  *functions*, the usual streaming handlers, take the thread path).
* Threads (:class:`Slots`), for everything else: a sync handler runs on its slot's thread with
  the blocking client of the single-invoke path. An awaitable it returns (a sync function
  returning a coroutine, or an async handler with layers, which wrap a sync call) runs as a
  task on the environment event loop, in a thread of its own (:class:`LoopThread`); the slot
  waits for it. Async generator handlers (streams) take this path too.

Either way module-level async clients share the one loop, as in the single-invoke path, and
the handler's awaitable runs as a task of its own, in a copy of its invoke's context.

Isolation: every slot thread and every task has its own context variables (the context, the
observability state, structlog's and OpenTelemetry's context); threads a handler starts get a
copy of its context (:func:`runtime.context.isolate_threads`). ``_X_AMZN_TRACE_ID`` is one
process-wide variable and cannot belong to one of N invokes: in this mode the runtime removes
it and never sets it; the invoke's trace header is ``context.xray_trace_id``.

Faults: an exception, or ``sys.exit``, in a handler fails that invoke only (``sys.exit`` as
``Runtime.ExitError``) and its slot goes on. A handler that blocks holds its slot (and, async,
the loop) but no other slot's connection. The Runtime API failing for good (``/next`` failing
after a few retries with backoff, or a 500) ends the process, and with it every invoke.

Process mode (``LAMBDA_RUNTIME_PROCESSES=P``): after init the runtime forks P workers, each
serving its share of the N slots as above. For CPU-bound handlers, which threads cannot run
in parallel under the GIL. The parent only waits: a worker that dies takes the others down
(Lambda then sees the environment fail), SIGTERM is passed on to the workers.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
import time

from runtime import protocol as p
from runtime.api import (
    RuntimeAPIFatal,
    RuntimeClient,
    error_request,
    fatal_answer,
    invocation_of,
    report_post,
    response_request,
    user_agent,
)
from runtime.context import enter_invoke, isolate_threads, leave_invoke
from runtime.errors import LambdaError, encode_error
from runtime.http import (
    ConnectError,
    Connection,
    ConnectionClosed,
    HTTPError,
    RequestError,
    ResponseFeed,
)
from runtime.traceid import NAME as TRACE_ID_VARIABLE

TYPE_CHECKING = False
if TYPE_CHECKING:
    import asyncio
    from collections.abc import Callable, Sequence
    from typing import Any, NoReturn, Protocol

    from runtime.api import Invocation
    from runtime.bootstrap import InvokeSteps
    from runtime.config import Config
    from runtime.handler import Handler
    from runtime.http import Buffer, Response
    from runtime.layers import Layer
    from runtime.logs import RuntimeLog
    from runtime.streaming import StreamOutcome

    class SlotInvoker(Protocol):
        """What a slot needs of :class:`runtime.bootstrap.Invoker`."""

        def handle(self, invocation: Invocation) -> None: ...

    # (a slot's own client, the function that runs an awaitable on the loop) -> its Invoker
    MakeInvoker = Callable[[RuntimeClient, Callable[[Any], Any]], SlotInvoker]
    EnvironmentLoop = Callable[[], asyncio.AbstractEventLoop]

EXIT_ERROR_TYPE = "Runtime.ExitError"
# code flags of an ``async def`` function (inspect.CO_COROUTINE, without importing inspect)
CO_COROUTINE = 0x80
CONNECT_TIMEOUT_SECONDS = 5.0
READ_SIZE = 65536
# /next retries: several slots (or workers) start at once and the Runtime API may not take
# them all at the same moment; awslambdaric retries the same way (0.1 s, doubling).
NEXT_RETRIES = 4
NEXT_BACKOFF_SECONDS = 0.1


def split_slots(slots: int, processes: int) -> list[int]:
    """How many slots each of ``processes`` workers serves: as even as it gets, all > 0."""
    if not 1 <= processes <= slots:
        raise ValueError(f"cannot spread {slots} slots over {processes} processes")
    share, extra = divmod(slots, processes)
    return [share + (1 if k < extra else 0) for k in range(processes)]


def exit_error(exc: SystemExit) -> LambdaError:
    """``sys.exit`` in a handler, as the error of that invoke alone."""
    return LambdaError(
        EXIT_ERROR_TYPE,
        f"the handler called sys.exit({exc.code!r}); with several invokes in flight only this "
        "invoke fails, the runtime goes on",
    )


def next_with_retry(
    client: RuntimeClient,
    warn: Callable[[str], None],
    retries: int = NEXT_RETRIES,
    backoff: float = NEXT_BACKOFF_SECONDS,
) -> Invocation:
    """``/next``, retried ``retries`` times with a doubling pause; the last failure is raised."""
    for attempt in range(retries + 1):
        try:
            return client.next_invocation()
        except RuntimeAPIFatal as exc:
            if attempt == retries:
                raise
            warn(f"/next failed ({exc}); retrying in {backoff:.1f} s")
            time.sleep(backoff)
            backoff *= 2
    raise AssertionError("unreachable")


class LoopThread:
    """The environment event loop, run forever in a thread of its own; slots submit to it."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self._thread = threading.Thread(target=self._run, name="lambda-event-loop", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        import asyncio

        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    def run(self, awaitable: Any) -> Any:
        """Run ``awaitable`` (any awaitable: a coroutine, an async generator's step) as a task on
        the loop and wait for its result in this thread.

        The task starts in a copy of the calling thread's context variables (asyncio copies the
        caller's context when it schedules the call), so it sees this invoke's context.
        """
        import asyncio

        return asyncio.run_coroutine_threadsafe(_guarded(awaitable), self.loop).result()


async def _guarded(awaitable: Any) -> Any:
    try:
        return await awaitable
    except SystemExit as exc:
        # A task re-raises SystemExit out of the loop, which would stop it for every slot.
        raise exit_error(exc) from None


def guard(handler: Handler) -> Handler:
    """``handler``, with ``sys.exit`` in it the error of that invoke alone (in the awaitable
    an async handler returns, :meth:`LoopThread.run` sees to it)."""

    def guarded(event: Any, context: Any) -> Any:
        try:
            return handler(event, context)
        except SystemExit as exc:
            raise exit_error(exc) from None

    return guarded


class Slots:
    """N slots in this process; :meth:`run` returns only when one fails for good."""

    def __init__(
        self,
        config: Config,
        log: RuntimeLog,
        make_invoker: MakeInvoker,
        environment_loop: EnvironmentLoop,
        slots: int,
    ) -> None:
        self._config = config
        self._log = log
        self._make_invoker = make_invoker
        self._slots = slots
        self._loop_lock = threading.Lock()
        self._loop: LoopThread | None = None
        # A loop user code made at import is current in this (the main) thread only: find it
        # here. Without asyncio imported there is none, and the first async invoke makes one.
        self._user_loop = environment_loop() if "asyncio" in sys.modules else None
        self._failed = threading.Event()
        self.failure: BaseException | None = None

    def loop_thread(self) -> LoopThread:
        """The event loop thread, started by the first async invoke."""
        with self._loop_lock:
            if self._loop is None:
                import asyncio

                self._loop = LoopThread(self._user_loop or asyncio.new_event_loop())
            return self._loop

    def _run_on_loop(self, awaitable: Any) -> Any:
        return self.loop_thread().run(awaitable)

    def run(self) -> BaseException:
        for number in range(self._slots):
            threading.Thread(target=self._serve, name=f"lambda-slot-{number}", daemon=True).start()
        self._failed.wait()
        assert self.failure is not None
        return self.failure

    def _serve(self) -> None:
        config = self._config
        log = self._log
        try:
            client = RuntimeClient(config.runtime_api_host, config.runtime_api_port, log.warning)
            handle = self._make_invoker(client, self._run_on_loop).handle
            while True:
                handle(next_with_retry(client, log.warning))
        except BaseException as exc:  # a slot never ends on its own: the environment is done
            self.failure = exc
            self._failed.set()


# --- async handlers: the slots as tasks on the environment event loop ---------------------------


def runs_as_tasks(handler: Handler, layers: Sequence[Layer]) -> bool:
    """Whether the slots run as tasks on the event loop: an ``async def`` handler (also behind
    a bound method or ``functools.partial``) and no layers. Layers wrap a *sync* call (a span
    around it, its duration), so with layers, as with a sync handler that returns awaitables
    or streams, the slots stay threads."""
    from runtime.streaming import _code_flags

    return not layers and bool(_code_flags(handler) & CO_COROUTINE)


class _Receiver:
    """The asyncio protocol of one connection: feeds what arrives to the parser and wakes the
    task waiting for enough of it. Reading stays registered with the loop for the life of the
    connection, so a wait costs a future, not two selector changes."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.feed = ResponseFeed()
        self.transport: asyncio.Transport | None = None
        self._waiter: asyncio.Future[None] | None = None
        self._wanted = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.feed.feed(data)
        self._wanted -= len(data)
        if self._wanted <= 0:
            self._wake()

    def eof_received(self) -> bool:
        self.feed.end()
        self._wake()
        return False  # close the transport

    def connection_lost(self, exc: Exception | None) -> None:
        self.feed.end()
        self._wake()

    # Never called: the runtime's requests are small next to the socket buffer, and a large
    # body is buffered by the transport. Part of the protocol interface.
    def pause_writing(self) -> None: ...

    def resume_writing(self) -> None: ...

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def read(self, method: str) -> Response:
        feed = self.feed
        while True:
            if feed.buffered or feed.ended:
                response = feed.parse(method)
                if response is not None:
                    return response
            self._wanted = feed.need if feed.buffered else 1
            self._waiter = self.loop.create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None


class AsyncConnection:
    """:class:`runtime.http.Connection`'s protocol on the event loop: the same request heads
    (its :meth:`~runtime.http.Connection.encode_request`), the same parser
    (:class:`runtime.http.ResponseFeed`), the same pipelining and stale keep-alive rules.
    One task at a time per connection."""

    def __init__(self, loop: asyncio.AbstractEventLoop, host: str, port: int) -> None:
        self._loop = loop
        self._host = host
        self._port = port
        self._encoder = Connection(host, port, user_agent=user_agent())  # heads only, no socket
        self._receiver: _Receiver | None = None
        self._served = 0
        self._pending: tuple[str, str] | None = None

    async def open(self) -> None:
        """Connect now, rather than on the first request."""
        if self._receiver is None:
            await self._connect()

    def close(self) -> None:
        receiver = self._receiver
        self._receiver = None
        self._served = 0
        self._pending = None
        if receiver is not None and receiver.transport is not None:
            receiver.transport.abort()

    async def _connect(self) -> _Receiver:
        import asyncio
        import socket

        self.close()
        loop = self._loop
        receiver = _Receiver(loop)
        # (Not an asyncio.Protocol subclass only to leave asyncio unimported until needed.)
        connecting = loop.create_connection(lambda: receiver, self._host, self._port)  # type: ignore[type-var]
        try:
            await asyncio.wait_for(connecting, CONNECT_TIMEOUT_SECONDS)
        except (OSError, asyncio.TimeoutError) as exc:
            raise ConnectError(f"cannot connect to {self._host}:{self._port}: {exc!r}") from exc
        transport = receiver.transport
        assert transport is not None
        sock = transport.get_extra_info("socket")
        if sock is not None:  # asyncio sets it on TCP connections already; kept explicit
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._receiver = receiver
        return receiver

    async def request(
        self,
        method: str,
        target: str,
        headers: Sequence[tuple[str, str]] = (),
        body: Buffer = b"",
        then: tuple[str, str] | None = None,
    ) -> Response:
        """As :meth:`runtime.http.Connection.request` (``then``: a pipelined bare request)."""
        if self._pending is not None:
            if self._pending == (method, target) and not headers and not body:
                return await self._read_pending(method, target)
            self.close()
        head, data, length, second = self._encoder.encode_request(
            method, target, headers, body, then
        )
        receiver = self._receiver
        if receiver is None or receiver.feed.buffered or receiver.feed.ended:
            receiver = await self._connect()
        try:
            while True:
                reused = self._served > 0
                transport = receiver.transport
                assert transport is not None
                # Written at once when the socket takes it, else buffered by the transport; a
                # connection that is gone shows in the read.
                if length <= READ_SIZE:
                    transport.write(head + data + second if length or second else head)
                else:
                    transport.writelines((head, data, second))
                try:
                    response = await receiver.read(method)
                except (ConnectionClosed, OSError) as exc:
                    if reused and not receiver.feed.started:
                        receiver = await self._connect()
                        continue
                    raise self._closed(method, target, exc) from exc
                break
        except OSError as exc:
            raise self._closed(method, target, exc) from exc
        except BaseException:
            self.close()
            raise
        if not receiver.feed.keep_alive:
            self.close()
        else:
            self._served += 1
            self._pending = then
        return response

    async def _read_pending(self, method: str, target: str) -> Response:
        self._pending = None
        receiver = self._receiver
        assert receiver is not None
        try:
            response = await receiver.read(method)
        except (ConnectionClosed, OSError) as exc:
            if not receiver.feed.started:  # as in Connection._read_pending: send it again
                self.close()
                return await self.request(method, target)
            raise self._closed(method, target, exc) from exc
        except BaseException:
            self.close()
            raise
        if not receiver.feed.keep_alive:
            self.close()
        else:
            self._served += 1
        return response

    def _closed(self, method: str, target: str, exc: BaseException) -> HTTPError:
        self.close()
        if isinstance(exc, ConnectError):
            return exc
        text = str(exc) if isinstance(exc, HTTPError) else f"{type(exc).__name__}: {exc}"
        return ConnectionClosed(f"{method} {target} on {self._host}:{self._port}: {text}")


class AsyncRuntimeClient:
    """The calls a task slot makes, with :mod:`runtime.api`'s status rules."""

    def __init__(
        self, loop: asyncio.AbstractEventLoop, host: str, port: int, warn: Callable[[str], None]
    ) -> None:
        self._conn = AsyncConnection(loop, host, port)
        self._host_port = (host, port)
        self._blocking: RuntimeClient | None = None
        self._address = f"{host}:{port}"
        self._warn = warn

    async def next_invocation(self) -> Invocation:
        return invocation_of(await self._call("GET", p.NEXT_PATH, (), b""))

    async def post_response(
        self, invocation: Invocation, body: Buffer, content_type: str, *, then_next: bool = False
    ) -> None:
        target, headers = response_request(invocation, content_type)
        await self._post(target, headers, body, ("GET", p.NEXT_PATH) if then_next else None)

    async def post_error(
        self, invocation: Invocation, error_type: str, body: bytes, xray_cause: bytes | None
    ) -> None:
        await self._post(*error_request(invocation, error_type, xray_cause), body)

    async def open(self) -> None:
        try:
            await self._conn.open()
        except HTTPError as exc:
            raise RuntimeAPIFatal(f"Runtime API at {self._address} failed: {exc}") from exc

    def blocking(self) -> RuntimeClient:
        """A blocking client on a connection of its own, made on first use, for a worker
        thread (streamed posts)."""
        if self._blocking is None:
            host, port = self._host_port
            self._blocking = RuntimeClient(host, port, self._warn)
        return self._blocking

    def close(self) -> None:
        self._conn.close()

    async def _call(
        self,
        method: str,
        target: str,
        headers: Sequence[tuple[str, str]],
        body: Buffer,
        then: tuple[str, str] | None = None,
    ) -> Response:
        try:
            response = await self._conn.request(method, target, headers, body, then)
        except RequestError:
            raise
        except HTTPError as exc:
            raise RuntimeAPIFatal(f"Runtime API at {self._address} failed: {exc}") from exc
        if response.status == p.STATUS_FATAL:
            raise fatal_answer(method, target, response)
        return response

    async def _post(
        self,
        target: str,
        headers: list[tuple[str, str]],
        body: Buffer,
        then: tuple[str, str] | None = None,
    ) -> None:
        try:
            response = await self._call("POST", target, headers, body, then)
        except RequestError as exc:
            self._warn(f"could not post to {target!r}: {exc}")
            return
        if response.status != p.STATUS_ACCEPTED:
            report_post(target, response, self._warn)


async def next_with_retry_async(
    client: AsyncRuntimeClient,
    warn: Callable[[str], None],
    retries: int = NEXT_RETRIES,
    backoff: float = NEXT_BACKOFF_SECONDS,
) -> Invocation:
    """:func:`next_with_retry` for a task slot."""
    import asyncio

    for attempt in range(retries + 1):
        try:
            return await client.next_invocation()
        except RuntimeAPIFatal as exc:
            if attempt == retries:
                raise
            warn(f"/next failed ({exc}); retrying in {backoff:.1f} s")
            await asyncio.sleep(backoff)
            backoff *= 2
    raise AssertionError("unreachable")


class _Stepped:
    """An async stream as a sync iterator for a worker thread: each step runs on the loop."""

    def __init__(self, stream: Any, loop: asyncio.AbstractEventLoop) -> None:
        self._stream = stream
        self._loop = loop

    def __iter__(self) -> _Stepped:
        return self

    def __next__(self) -> Any:
        import asyncio

        try:
            return asyncio.run_coroutine_threadsafe(_next(self._stream), self._loop).result()
        except StopAsyncIteration:
            raise StopIteration from None

    def close(self) -> None:
        import asyncio

        aclose = getattr(self._stream, "aclose", None)
        if aclose is not None:
            asyncio.run_coroutine_threadsafe(_guarded(aclose()), self._loop).result()


async def _next(stream: Any) -> Any:
    return await _guarded(stream.__anext__())


class Tasks:
    """What task slots need from the lifecycle: the handler and the steps around its call."""

    def __init__(self, handler: Handler, steps: InvokeSteps) -> None:
        self.handler = guard(handler)
        self.steps = steps


class TaskInvoker:
    """:class:`runtime.bootstrap.Invoker` for a task slot (no layers, see
    :func:`runs_as_tasks`): one invocation to exactly one response or one error, with every
    wait an ``await`` on the loop."""

    def __init__(self, client: AsyncRuntimeClient, tasks: Tasks, log: RuntimeLog) -> None:
        from runtime.marshal import encode_result

        self._client = client
        self._handler = tasks.handler
        self._steps = tasks.steps
        self._log = log
        self._encode = encode_result

    async def handle(self, invocation: Invocation) -> None:
        import asyncio

        steps = self._steps
        context = steps.context(invocation)
        token = enter_invoke(context)
        try:
            try:
                result = self._handler(steps.event(context, invocation), context)
                if hasattr(result, "__await__"):
                    # A task of its own, in a copy of this context, as the other modes run an
                    # awaitable: what the handler sets in its context stays in this invoke.
                    result = await asyncio.ensure_future(_guarded(result))
                kind = type(result)
                if hasattr(kind, "__next__") or hasattr(kind, "__anext__"):
                    outcome = await self._stream(invocation, result)
                else:
                    body, content_type = self._encode(result)
                    outcome = None
            except BaseException as exc:
                await self._report(invocation, exc)
            else:
                if outcome is None:
                    await self._client.post_response(invocation, body, content_type, then_next=True)
                else:
                    self._streamed(invocation, outcome)
        finally:
            leave_invoke(token)

    async def _stream(self, invocation: Invocation, stream: Any) -> StreamOutcome:
        """Post a stream the handler returned, with the blocking client in a worker thread (a
        streamed post is not what the non-blocking client does); an async stream steps on
        this loop. An error before the first chunk propagates, as in the other modes."""
        import asyncio

        if hasattr(type(stream), "__anext__"):
            stream = _Stepped(stream, asyncio.get_running_loop())
        request_id = invocation.request_id

        def describe(exc: BaseException) -> tuple[str, bytes]:
            body, _ = self._steps.error(exc, request_id)
            return str(body["errorType"]), encode_error(body)

        post = self._client.blocking().post_stream
        return await asyncio.to_thread(post, invocation, stream, None, describe)

    def _streamed(self, invocation: Invocation, outcome: StreamOutcome) -> None:
        if outcome.fatal:
            raise RuntimeAPIFatal(
                f"the streamed response to {invocation.request_id} was answered 500"
            )
        if outcome.problem is not None:
            self._log.warning(outcome.problem)
        if outcome.error is not None:  # already in the stream's trailers: logged, not posted
            body, _ = self._steps.error(outcome.error, invocation.request_id)
            self._log.error(body)

    async def _report(self, invocation: Invocation, exc: BaseException) -> None:
        body, xray_cause = self._steps.error(exc, invocation.request_id)
        self._log.error(body)
        await self._client.post_error(invocation, body["errorType"], encode_error(body), xray_cause)


class TaskSlots:
    """N slots as N tasks on the environment event loop, run in this thread;
    :meth:`run` returns only when one fails for good."""

    def __init__(
        self,
        config: Config,
        log: RuntimeLog,
        tasks: Tasks,
        loop: asyncio.AbstractEventLoop,
        slots: int,
    ) -> None:
        self._config = config
        self._log = log
        self._tasks = tasks
        self._loop = loop
        self._slots = slots

    def run(self) -> BaseException:
        try:
            return self._loop.run_until_complete(self._serve_all())
        except BaseException as exc:  # e.g. KeyboardInterrupt out of a handler's task
            return exc

    async def _serve_all(self) -> BaseException:
        config = self._config
        loop = self._loop
        failed: asyncio.Future[BaseException] = loop.create_future()
        tasks = []
        for _ in range(self._slots):
            client = AsyncRuntimeClient(
                loop, config.runtime_api_host, config.runtime_api_port, self._log.warning
            )
            # One connection at a time, as slot threads come up one by one: N connects at the
            # same instant can overflow the server's accept queue, and a dropped SYN is only
            # retried a second later.
            try:
                await client.open()
            except RuntimeAPIFatal as exc:
                self._log.warning(f"slot connection failed ({exc}); its /next will retry")
            tasks.append(loop.create_task(self._serve(client, failed)))
        failure = await failed
        del tasks  # never awaited: the process exits with them still parked
        return failure

    async def _serve(
        self, client: AsyncRuntimeClient, failed: asyncio.Future[BaseException]
    ) -> None:
        log = self._log
        try:
            handle = TaskInvoker(client, self._tasks, log).handle
            while True:
                await handle(await next_with_retry_async(client, log.warning))
        except BaseException as exc:  # a slot never ends on its own: the environment is done
            if not failed.done():
                failed.set_result(exc)


def _serve_slots(
    config: Config,
    log: RuntimeLog,
    make_invoker: MakeInvoker,
    environment_loop: EnvironmentLoop,
    slots: int,
    tasks: Tasks | None,
) -> BaseException:
    if tasks is not None:
        return TaskSlots(config, log, tasks, environment_loop(), slots).run()
    return Slots(config, log, make_invoker, environment_loop, slots).run()


def run(
    config: Config,
    log: RuntimeLog,
    make_invoker: MakeInvoker,
    environment_loop: EnvironmentLoop,
    tasks: Tasks | None = None,
) -> NoReturn:
    """Serve ``config.max_concurrency`` invokes at once until the environment ends; with
    ``tasks`` (see :func:`runs_as_tasks`) the slots are tasks on the event loop."""
    isolate_threads()
    os.environ.pop(TRACE_ID_VARIABLE, None)  # see the module docstring
    if config.processes:
        _run_processes(config, log, make_invoker, environment_loop, tasks)
    failure = _serve_slots(
        config, log, make_invoker, environment_loop, config.max_concurrency, tasks
    )
    _exit_for(failure, log)


def _exit_for(failure: BaseException, log: RuntimeLog) -> NoReturn:
    if isinstance(failure, RuntimeAPIFatal):
        log.write("ERROR", f"runtime exiting: {failure}")
    else:
        log.write("ERROR", f"runtime exiting: a slot failed: {failure!r}")
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):
            stream.flush()
    # Other slots are still blocked in their calls: only a hard exit ends the process now.
    os._exit(1)


def _run_processes(
    config: Config,
    log: RuntimeLog,
    make_invoker: MakeInvoker,
    environment_loop: EnvironmentLoop,
    tasks: Tasks | None,
) -> NoReturn:
    import signal

    workers: list[int] = []
    parent = os.getpid()
    for share in split_slots(config.max_concurrency, config.processes):
        pid = os.fork()
        if pid == 0:
            _die_with(parent)
            _worker(config, log, make_invoker, environment_loop, share, tasks)
        workers.append(pid)

    stopping: list[int] = []

    def forward(signum: int, frame: object) -> None:
        stopping.append(signum)
        for pid in workers:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signum)

    signal.signal(signal.SIGTERM, forward)
    pid, status = os.wait()
    if stopping:
        # Shutdown: each worker runs the shutdown hooks (bounded) or dies of SIGTERM; Lambda
        # SIGKILLs whatever is left after its grace period anyway.
        for other in workers:
            if other != pid:
                with contextlib.suppress(ChildProcessError):
                    os.waitpid(other, 0)
        os._exit(0)
    code = os.waitstatus_to_exitcode(status)
    log.write("ERROR", f"runtime exiting: worker {pid} ended with status {code}")
    for other in workers:
        if other != pid:
            with contextlib.suppress(ProcessLookupError):
                os.kill(other, signal.SIGKILL)
    os._exit(code if code > 0 else 1)


def _die_with(parent: int) -> None:
    """A worker must not outlive the runtime process: whoever stops the environment (Lambda,
    the emulator, a test) stops that one, and orphans would keep serving."""
    import signal

    try:
        import ctypes

        pr_set_pdeathsig = 1
        ctypes.CDLL(None).prctl(pr_set_pdeathsig, signal.SIGKILL)  # Linux, as Lambda is
    except (OSError, AttributeError):
        pass
    if os.getppid() != parent:  # the parent died before prctl took effect
        os._exit(1)


def _worker(
    config: Config,
    log: RuntimeLog,
    make_invoker: MakeInvoker,
    environment_loop: EnvironmentLoop,
    slots: int,
    tasks: Tasks | None,
) -> NoReturn:
    try:
        if "asyncio" in sys.modules:
            import asyncio

            # The parent's loop (if user code made one at import) shares its selector with
            # every other worker after fork: each worker gets its own.
            asyncio.set_event_loop(asyncio.new_event_loop())
        failure = _serve_slots(config, log, make_invoker, environment_loop, slots, tasks)
    except BaseException as exc:
        failure = exc
    _exit_for(failure, log)
