"""Several invokes in flight in one environment (Lambda Managed Instances).

With ``AWS_LAMBDA_MAX_CONCURRENCY=N`` the runtime runs N *slots* after the one init: each slot
is a thread with its own Runtime API connection (its own :class:`RuntimeClient`) and its own
``/next`` -> handler -> ``/response`` loop (``/next`` pipelined behind the response, as in the
single-invoke loop). A sync handler runs on its slot's thread. An async handler (coroutine, or
any awaitable it returns) runs as a task on the one environment event loop, which runs in a
thread of its own: the slot hands it over and waits for its result, so N slots are N tasks on
one loop, and module-level async clients are shared as in the single-invoke path.

Why threads for the I/O even with async handlers: the Runtime API client is the same blocking
one as the single-invoke hot path, so both paths share every line of protocol handling; a
parked ``/next`` costs a thread's stack (mostly untouched memory), not a process.

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

from runtime.api import RuntimeAPIFatal, RuntimeClient
from runtime.context import isolate_threads
from runtime.errors import LambdaError
from runtime.traceid import NAME as TRACE_ID_VARIABLE

TYPE_CHECKING = False
if TYPE_CHECKING:
    import asyncio
    from collections.abc import Callable
    from typing import Any, NoReturn, Protocol

    from runtime.api import Invocation
    from runtime.config import Config
    from runtime.handler import Handler
    from runtime.logs import RuntimeLog

    class SlotInvoker(Protocol):
        """What a slot needs of :class:`runtime.bootstrap.Invoker`."""

        def handle(self, invocation: Invocation) -> None: ...

    # (a slot's own client, the function that runs an awaitable on the loop) -> its Invoker
    MakeInvoker = Callable[[RuntimeClient, Callable[[Any], Any]], SlotInvoker]
    EnvironmentLoop = Callable[[], asyncio.AbstractEventLoop]

EXIT_ERROR_TYPE = "Runtime.ExitError"
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


def run(
    config: Config, log: RuntimeLog, make_invoker: MakeInvoker, environment_loop: EnvironmentLoop
) -> NoReturn:
    """Serve ``config.max_concurrency`` invokes at once until the environment ends."""
    isolate_threads()
    os.environ.pop(TRACE_ID_VARIABLE, None)  # see the module docstring
    if config.processes:
        _run_processes(config, log, make_invoker, environment_loop)
    failure = Slots(config, log, make_invoker, environment_loop, config.max_concurrency).run()
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
    config: Config, log: RuntimeLog, make_invoker: MakeInvoker, environment_loop: EnvironmentLoop
) -> NoReturn:
    import signal

    workers: list[int] = []
    parent = os.getpid()
    for share in split_slots(config.max_concurrency, config.processes):
        pid = os.fork()
        if pid == 0:
            _die_with(parent)
            _worker(config, log, make_invoker, environment_loop, share)
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
) -> NoReturn:
    try:
        if "asyncio" in sys.modules:
            import asyncio

            # The parent's loop (if user code made one at import) shares its selector with
            # every other worker after fork: each worker gets its own.
            asyncio.set_event_loop(asyncio.new_event_loop())
        failure = Slots(config, log, make_invoker, environment_loop, slots).run()
    except BaseException as exc:
        failure = exc
    _exit_for(failure, log)
