"""The state machine of execution environments and their invokes: init, invoke, timeout, end.

Design choices:

* **One Runtime API port per environment.** Each environment gets its own listening socket on
  127.0.0.1 (an ephemeral port) and its process is started with
  ``AWS_LAMBDA_RUNTIME_API=127.0.0.1:<that port>``. Every connection that arrives on that port
  belongs to that environment, so ``/next``, ``/response`` and the state checks need no
  identification scheme and work with any runtime, including ones that open a new connection
  per call. The Invoke API has its own port (9000 by default).
* **Init.** Init ends at the first ``/next``. It is limited to ``init_timeout`` (10 s). When it
  fails (``/init/error``, exit, timeout, out of memory) Lambda retries init once inside the
  invoke, limited by the function timeout: so does the emulator, with a fresh process; a second
  failure answers the invoke with the init error.
* **End of an invoke.** As on Lambda, an invoke ends when its runtime asks for the next one
  (``/next``), not when it posts the response: the caller gets the response at once, but END
  and REPORT (and with them the end of the invoke's log, ``Tail`` and the Python API's
  ``log``/``report``) wait for that ``/next``, so what the runtime does after posting (span
  export, the EMF metrics line, ...) is part of the invoke and of its Duration. The function
  timeout bounds this too: a runtime that has not asked again by the invoke's deadline gets
  ``Status: timeout`` and is replaced, and one that dies first gets ``Status: error``.

Which environment takes an invoke is not decided here but by :mod:`runtime.emulator.scheduler`,
which this module tells about free slots and finished invokes through :class:`Placement`.
Processes (:mod:`.process`), their memory (:mod:`.memory`) and their output (:mod:`.logpump`) are
run by the modules named after them; this one decides what their events mean.
"""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Protocol

import orjson

from runtime import protocol

from . import reports
from .environment import DEAD, INIT, READY, Environment
from .invocation import EVENT, Invocation
from .logpump import LogPump
from .memory import MIB, MemoryMonitor, ProcessTree
from .output import Console
from .process import RuntimeProcess
from .reports import PlatformLog, Report

if TYPE_CHECKING:
    from .config import EmulatorConfig
    from .otel import Span, SpanConsole
    from .server import HttpServer

# Durations are measured with time.monotonic, not loop.time(): uvloop's clock has only
# millisecond resolution.
_now = time.monotonic
# After /init/error the runtime should exit by itself; give it this long to flush and go.
_INIT_ERROR_EXIT_WAIT = 1.0
# How long stopping the emulator waits for answered invokes to reach their runtime's /next.
_CLOSE_WAIT = 2.0


class Placement(Protocol):
    """What the lifecycle tells the scheduler (which owns the free environments and the
    concurrency count)."""

    def env_free(self, env: Environment) -> None:
        """``env`` is initialized and has nothing assigned: it can take an invoke."""

    def env_retired(self, env: Environment) -> None:
        """``env`` is out of service (killed, dead or shut down)."""

    def invoke_released(self, env: Environment) -> None:
        """The invoke in flight on ``env`` is answered (env may be dead): one slot is free."""

    def redispatch(self, inv: Invocation) -> None:
        """``inv`` was assigned to an environment that can no longer take it."""

    def invoke_over(self, inv: Invocation) -> None:
        """``inv`` ended (END and REPORT written): its log is complete."""


class Lifecycle:
    """Starts environments and moves them (and their invokes) through their states."""

    def __init__(
        self,
        config: EmulatorConfig,
        console: Console,
        base_env: Mapping[str, str],
        make_server: Callable[[Environment], HttpServer],
        placement: Placement,
        on_finished: Callable[[Invocation], None] | None = None,
        spans: SpanConsole | None = None,
    ) -> None:
        self.config = config
        self.console = console
        self.base_env = dict(base_env)
        self.make_server = make_server
        self.placement = placement
        self.on_finished = on_finished
        # With --otel-console: receives the spans the runtimes export, prints them per invoke.
        self.spans = spans
        self.platform = PlatformLog(
            config.log_format == "JSON", config.function_name, config.region
        )
        self.loop = asyncio.get_running_loop()
        self.envs: dict[int, Environment] = {}
        # Every environment whose process is not reaped yet (including dying ones).
        self.processes: set[Environment] = set()
        self.closing = False
        self.timeout = config.timeout
        self.function_arn = config.function_arn.encode()
        self.memory = MemoryMonitor(
            self.loop,
            interval=config.memory_poll_interval,
            limit_bytes=config.memory * MIB,
            busy=self._busy_trees,
            live=self._live_trees,
        )
        self._next_id = 1
        self._endings_changed = asyncio.Event()

    @property
    def started(self) -> int:
        """How many environments were started so far (cold starts, init retries included)."""
        return self._next_id - 1

    # ------------------------------------------------------------------ output

    def line_prefix(self, env: Environment) -> bytes:
        return self.console.prefix(env.id) if len(self.envs) > 1 else b""

    def log_line(self, env: Environment | None, inv: Invocation | None, line: bytes) -> None:
        """A platform line: into the invoke's log and onto the console."""
        if inv is not None:
            inv.add_log(line)
        if self.console.enabled:
            self.console.line(line, self.line_prefix(env) if env is not None else b"")

    def _output_lines(self, env: Environment, lines: list[bytes]) -> None:
        """What the runtime wrote belongs to the invoke running (or ending, or initializing)."""
        inv = env.current or env.ending or (env.pending if env.state == INIT else None)
        console = self.console.enabled
        prefix = self.line_prefix(env) if console else b""
        for line in lines:
            if line.endswith(b"\r"):
                line = line[:-1]
            if inv is not None:
                inv.add_log(line)
            if console:
                self.console.line(line, prefix)

    def _drain(self, env: Environment) -> None:
        """Everything the runtime wrote before its last message to us belongs to that invoke."""
        if env.output is not None:
            env.output.drain()

    def spans_received(self, env: Environment, spans: list[Span]) -> None:
        """Spans a runtime exported (--otel-console): they are shown with the invoke running
        on ``env`` when it ends, or now when none runs."""
        assert self.spans is not None
        self.spans.add(env.id, spans)
        if (
            env.current is None
            and env.ending is None
            and not (env.state == INIT and env.pending is not None)
        ):
            self.spans.flush(env.id, None, self.line_prefix(env))

    # ------------------------------------------------------------------ memory

    def _busy_trees(self) -> list[ProcessTree]:
        return [
            env.memory
            for env in self.envs.values()
            if env.memory is not None and env.running and env.busy
        ]

    def _live_trees(self) -> list[ProcessTree]:
        return [env.memory for env in self.envs.values() if env.memory is not None]

    def _over_limit(self, env: Environment) -> None:
        if not env.oom and env.running:
            env.oom = True
            self.kill(env, signal.SIGKILL)

    # ------------------------------------------------------------------ starting

    def spawn(self, inv: Invocation | None, *, suppressed: bool) -> Environment:
        """A new environment (a cold start), initializing for ``inv`` when given."""
        env = Environment(self._next_id)
        self._next_id += 1
        env.suppressed = suppressed
        env.pending = inv
        if inv is not None:
            inv.env = env
        self.envs[env.id] = env
        self.processes.add(env)
        now = _now()
        env.spawn_time = now
        limit = self.config.init_timeout
        if suppressed and inv is not None and inv.invoke_start is not None:
            limit = max(0.0, inv.invoke_start + self.timeout - now)
        env.init_timer = self.loop.call_later(limit, self._init_timeout, env)
        self.loop.create_task(self._start(env))
        return env

    def add_external(self, env: Environment) -> None:
        """The environment of a runtime started by hand (--no-spawn)."""
        self.envs[env.id] = env

    def runtime_env(self, env: Environment) -> dict[str, str]:
        variables = dict(self.base_env)
        variables["AWS_LAMBDA_RUNTIME_API"] = env.address
        variables["AWS_LAMBDA_LOG_STREAM_NAME"] = env.log_stream
        if self.spans is not None:
            # The environment's own Runtime API port takes the spans (POST /v1/traces), so they
            # are known to come from this environment.
            variables["OTEL_EXPORTER_OTLP_ENDPOINT"] = f"http://{env.address}"
        return variables

    async def _start(self, env: Environment) -> None:
        server = self.make_server(env)
        try:
            await server.listen("127.0.0.1", 0)
        except OSError as exc:
            env.start_error = exc
        if self.closing or (env.state == DEAD and env.pending is None):
            server.close()
            self._reaped(env)
            return
        env.server = server
        env.address = f"127.0.0.1:{server.port}"
        if env.init_timed_out or env.start_error is not None:
            self.retire(env)
            self._init_failed(env)
            self._reaped(env)
            return
        phase = "invoke" if env.suppressed else "init"
        self.log_line(env, env.pending, self.platform.init_start(phase=phase))
        try:
            process = RuntimeProcess.spawn(
                self.config.command(), cwd=self.config.task_root, env=self.runtime_env(env)
            )
        except OSError as exc:
            env.start_error = exc
            self.retire(env)
            self._init_failed(env)
            self._reaped(env)
            return
        env.process = process
        env.memory = ProcessTree(process.pid, lambda: self._over_limit(env))
        env.output = LogPump(
            self.loop, process.out_fd, lambda lines: self._output_lines(env, lines)
        )
        process.watch_exit(self.loop, lambda: self._on_exit(env))
        self.memory.process_started()

    # ------------------------------------------------------------------ init

    def init_done(self, env: Environment) -> None:
        """The first /next arrived: init succeeded."""
        env.state = READY
        if env.init_timer is not None:
            env.init_timer.cancel()
            env.init_timer = None
        now = _now()
        if not env.external:
            env.init_duration_ms = (now - env.spawn_time) * 1000
            if env.memory is not None:
                self.memory.check(env.memory)
        if env.suppressed:
            # Lambda reports no Init Duration when init ran inside the invoke.
            env.report_init = False
        if env.pending is None and not self.closing:
            env.idle_since = now
            self.placement.env_free(env)

    def init_error_posted(self, env: Environment, error_type: str, body: bytes) -> None:
        env.init_error = (error_type, body)
        if env.external:
            # Nothing to kill: fail the waiting invoke now and wait for the runtime to return.
            self._init_failed(env)
            env.init_error = None
            return
        env.kill_timer = self.loop.call_later(_INIT_ERROR_EXIT_WAIT, self.kill, env, signal.SIGKILL)

    def _init_timeout(self, env: Environment) -> None:
        env.init_timer = None
        if env.state != INIT:
            return
        env.init_timed_out = True
        if env.process is not None:
            self.kill(env, signal.SIGKILL)
        # A runtime that has not even started yet is handled when _start finishes.

    def _init_failed(self, env: Environment) -> None:
        """Init did not finish (env is dead or external): report it, retry once, or give up."""
        if env.init_timer is not None:
            env.init_timer.cancel()
            env.init_timer = None
        inv = env.pending
        env.pending = None
        now = _now()
        duration_ms = (now - env.spawn_time) * 1000
        if env.init_timed_out:
            status, error_type = "timeout", None
        elif env.init_error is not None:
            status, error_type = "error", env.init_error[0]
        elif env.start_error is not None:
            status, error_type = "error", "Runtime.InvalidEntrypoint"
        elif env.oom:
            status, error_type = "error", "Runtime.OutOfMemory"
        else:
            status, error_type = "error", "Runtime.ExitError"
        phase = "invoke" if env.suppressed else "init"
        self.log_line(env, inv, self.platform.init_report(duration_ms, phase, status, error_type))
        if inv is None or inv.done:
            return
        if not env.suppressed and not env.external and not self.closing:
            # Lambda's "suppressed init": init again, inside the invoke and its timeout.
            inv.invoke_start = now
            self.spawn(inv, suppressed=True)
            return
        if inv.invoke_start is None:
            inv.invoke_start = now
        request_id = inv.request_id
        self.log_line(env, inv, self.platform.start(request_id))
        if status == "timeout":
            payload = reports.timeout_payload(request_id, self.timeout)
            self.log_line(env, inv, self.platform.timeout(request_id, self.timeout))
            error_type = "Sandbox.Timedout"
            report_status = "timeout"
        else:
            assert error_type is not None
            if env.init_error is not None:
                payload = reports.error_payload_from_runtime(env.init_error[0], env.init_error[1])
            elif env.start_error is not None:
                payload = reports.error_payload(
                    error_type,
                    f"RequestId: {request_id} Error: fork/exec {self.config.command()[0]}: "
                    f"{(env.start_error.strerror or str(env.start_error)).lower()}",
                )
            else:
                payload = reports.exit_payload(request_id, error_type, env.returncode or 0)
            report_status = "error"
            self._log_error_lines(env, inv, payload, error_type)
        self._finish_failed(env, inv, payload, error_type, report_status)

    # ------------------------------------------------------------------ invokes

    def assign(self, env: Environment, inv: Invocation) -> None:
        """``inv`` goes to ``env`` (initialized): now if its runtime waits in /next, else at its
        next /next."""
        env.pending = inv
        inv.env = env
        if env.parked is not None and env.state == READY:
            self.deliver(env)
        else:
            self._await_next(env, inv)

    def _await_next(self, env: Environment, inv: Invocation) -> None:
        """The invoke waits for the runtime's next /next: not forever, if the runtime hangs.
        (A runtime started by hand with --no-spawn may take its time: it is being debugged.)"""
        if not env.external:
            inv.timer = self.loop.call_later(self.timeout, self._next_timeout, env, inv)

    def _next_timeout(self, env: Environment, inv: Invocation) -> None:
        """A runtime answered its last invoke but never asked for the next one (it is stuck):
        the waiting invoke times out and the environment is replaced."""
        inv.timer = None
        if env.pending is not inv or inv.done or env.ending is not None:
            # (With an invoke still ending, that invoke's own deadline comes first and hands
            # this one to a new environment.)
            return
        env.pending = None
        inv.invoke_start = _now() - self.timeout
        self.log_line(env, inv, self.platform.start(inv.request_id))
        self.log_line(env, inv, self.platform.timeout(inv.request_id, self.timeout))
        self.retire(env)
        self.kill(env, signal.SIGKILL)
        payload = reports.timeout_payload(inv.request_id, self.timeout)
        self._finish_failed(env, inv, payload, "Sandbox.Timedout", "timeout")

    def deliver(self, env: Environment) -> None:
        """Hand ``env.pending`` to the runtime through its parked /next."""
        inv = env.pending
        req = env.parked
        assert inv is not None and req is not None
        env.pending = None
        env.parked = None
        env.current = inv
        if inv.timer is not None:
            inv.timer.cancel()
            inv.timer = None
        now = _now()
        if inv.invoke_start is None:
            inv.invoke_start = now
        deadline = inv.invoke_start + self.timeout
        inv.deadline_ms = int((time.time() + (deadline - now)) * 1000)
        headers = [
            (b"Content-Type", b"application/json"),
            (_REQUEST_ID, inv.request_id.encode()),
            (_DEADLINE, str(inv.deadline_ms).encode()),
            (_FUNCTION_ARN, self.function_arn),
            (_TRACE_ID, inv.trace_id.encode()),
            (_INVOCATION_ID, inv.invocation_id.encode()),
        ]
        if inv.client_context is not None:
            headers.append((_CLIENT_CONTEXT, inv.client_context.encode()))
        if inv.tenant_id is not None:
            headers.append((_TENANT_ID, inv.tenant_id.encode()))
        if not req.respond(protocol.STATUS_OK, headers, inv.event):
            # The runtime dropped that connection; keep the invoke for its next /next (or for
            # the crash report when the process is gone).
            env.current = None
            env.pending = inv
            self._await_next(env, inv)
            return
        inv.timer = self.loop.call_later(deadline - now, self._on_timeout, env, inv)
        self.log_line(env, inv, self.platform.start(inv.request_id))
        if env.memory is not None:
            self.memory.mark(env.memory)

    def complete(
        self,
        env: Environment,
        inv: Invocation,
        payload: bytes,
        *,
        content_type: bytes = b"application/json",
        error_type: str | None = None,
    ) -> None:
        """The runtime answered the invoke (a result, or a function error when error_type).

        The caller gets the answer now; the invoke itself ends at the runtime's next ``/next``
        (:meth:`end_invoke`), or at its deadline, or when the environment dies. Until then,
        what the runtime writes is still this invoke's (the output goes to ``env.ending``).
        """
        env.current = None
        env.remember(inv.request_id, "answered")
        if inv.timer is not None:
            inv.timer.cancel()
            inv.timer = None
        inv.set_result(
            payload,
            content_type=content_type,
            function_error=error_type is not None,
            error_type=error_type,
        )
        env.ending = inv
        assert inv.invoke_start is not None
        # Lambda's timeout covers the whole invoke, the work after the response included.
        remaining = inv.invoke_start + self.timeout - _now()
        inv.timer = self.loop.call_later(max(0.0, remaining), self._end_timeout, env, inv)
        self.placement.invoke_released(env)
        if inv.kind != EVENT:
            self.answer(inv)

    def end_invoke(self, env: Environment) -> None:
        """The runtime asked for its next invoke: the one it answered last is over."""
        inv = env.ending
        if inv is None:
            return
        # What the runtime wrote after posting (EMF line, export warnings, ...) is still its.
        self._drain(env)
        self._write_end(env, inv, None, None)
        self.placement.invoke_over(inv)

    def _end_timeout(self, env: Environment, inv: Invocation) -> None:
        """The invoke's deadline passed after its response but before the runtime's /next:
        a timeout, as on Lambda (the caller already has its answer)."""
        inv.timer = None
        if env.ending is not inv:
            return
        self._drain(env)
        self.log_line(env, inv, self.platform.timeout(inv.request_id, self.timeout))
        if not env.external:
            # The runtime is stuck (or too slow): replace it, like any timed-out environment.
            self.retire(env)
            self.kill(env, signal.SIGKILL)
        self._write_end(env, inv, "timeout", "Sandbox.Timedout")
        if not env.external:
            self._redispatch_pending(env)
        self.placement.invoke_over(inv)

    def _on_timeout(self, env: Environment, inv: Invocation) -> None:
        inv.timer = None
        if env.current is not inv or inv.done:
            return
        self._drain(env)
        env.current = None
        env.remember(inv.request_id, "timeout")
        self.log_line(env, inv, self.platform.timeout(inv.request_id, self.timeout))
        payload = reports.timeout_payload(inv.request_id, self.timeout)
        if env.external:
            # The runtime is not ours to kill; its late answer will get 410.
            self._finish_failed(env, inv, payload, "Sandbox.Timedout", "timeout")
            return
        self.retire(env)
        self.kill(env, signal.SIGKILL)
        self._finish_failed(env, inv, payload, "Sandbox.Timedout", "timeout")

    def _redispatch_pending(self, env: Environment) -> None:
        """The invoke assigned to ``env`` but never handed out goes to another environment."""
        pending = env.pending
        if pending is None or pending.done:
            return
        env.pending = None
        pending.env = None
        if pending.timer is not None:
            pending.timer.cancel()
            pending.timer = None
        self.placement.redispatch(pending)

    def answer(self, inv: Invocation) -> None:
        """The caller of a synchronous invoke gets its result."""
        if self.on_finished is not None:
            # Before the answer goes out, so a caller that reads the record finds it.
            self.on_finished(inv)
        inv.answer()

    def _write_end(
        self, env: Environment, inv: Invocation, status: str | None, error_type: str | None
    ) -> None:
        """END and REPORT: the invoke is over and its log complete."""
        if env.ending is inv:
            env.ending = None
        if inv.timer is not None:
            inv.timer.cancel()
            inv.timer = None
        assert inv.invoke_start is not None
        duration = (_now() - inv.invoke_start) * 1000
        report = Report(
            inv.request_id,
            duration,
            reports.billed_ms(duration),
            self.config.memory,
            env.max_memory_mb,
            env.init_duration_ms if env.report_init else None,
            status=status,
            error_type=None if status == "timeout" else error_type,
        )
        env.report_init = False
        inv.report = report
        end = self.platform.end(inv.request_id)
        if end is not None:
            self.log_line(env, inv, end)
        self.log_line(env, inv, self.platform.report(report, inv.error_type))
        inv.ended = True
        if self.spans is not None:
            self.spans.flush(env.id, inv.request_id, self.line_prefix(env), hint=status is None)
        self._endings_changed.set()

    def _finish_failed(
        self,
        env: Environment,
        inv: Invocation,
        payload: bytes,
        error_type: str,
        status: str,
    ) -> None:
        """The platform ends the invoke with an error (timeout, crash, failed init): it is
        answered and over at once."""
        if inv.timer is not None:
            inv.timer.cancel()
            inv.timer = None
        if env.current is inv:
            env.current = None
        inv.set_result(payload, function_error=True, error_type=error_type)
        self._write_end(env, inv, status, error_type)
        self.placement.invoke_released(env)
        if inv.kind != EVENT:
            self.answer(inv)
        self.placement.invoke_over(inv)

    def _log_error_lines(
        self, env: Environment, inv: Invocation, payload: bytes, error_type: str
    ) -> None:
        # Lambda prints the platform's error message and type between START and END.
        try:
            message = orjson.loads(payload).get("errorMessage")
        except (orjson.JSONDecodeError, AttributeError):
            message = None
        if isinstance(message, str) and message:
            self.log_line(env, inv, message.encode())
        self.log_line(env, inv, error_type.encode())

    # ------------------------------------------------------------------ process end

    def retire(self, env: Environment) -> None:
        """Take env out of service (it is being killed or has died)."""
        env.state = DEAD
        self.envs.pop(env.id, None)
        self.placement.env_retired(env)
        if env.memory is not None:
            self.memory.forget(env.memory)
        if env.init_timer is not None:
            env.init_timer.cancel()
            env.init_timer = None
        if env.parked is not None:
            env.parked = None

    def kill(self, env: Environment, sig: int) -> None:
        if env.process is not None:
            env.process.kill(sig)

    def _on_exit(self, env: Environment) -> None:
        process = env.process
        if process is None or not process.running:
            return
        returncode = process.reap()
        if env.kill_timer is not None:
            env.kill_timer.cancel()
            env.kill_timer = None
        self._drain(env)
        was_state = env.state
        current = env.current
        ending = env.ending
        self.retire(env)
        error_type = "Runtime.OutOfMemory" if env.oom else "Runtime.ExitError"
        if ending is not None:
            # It died after answering, before asking for more: the caller has its answer, but
            # the invoke did not end well.
            payload = reports.exit_payload(ending.request_id, error_type, returncode)
            self._log_error_lines(env, ending, payload, error_type)
            self._write_end(env, ending, "error", error_type)
            self.placement.invoke_over(ending)
        if was_state == INIT:
            self._init_failed(env)
        elif was_state == READY:
            if current is not None and not current.done:
                payload = reports.exit_payload(current.request_id, error_type, returncode)
                self._log_error_lines(env, current, payload, error_type)
                self._finish_failed(env, current, payload, error_type, "error")
            # Died between invokes: the assigned invoke was never handed out, start afresh.
            self._redispatch_pending(env)
        env.current = None
        self._reaped(env)

    def _reaped(self, env: Environment) -> None:
        if self.spans is not None:
            self.spans.flush(env.id, None, self.line_prefix(env))
        env.state = DEAD
        self.envs.pop(env.id, None)
        if env.server is not None:
            env.server.close()
            env.server = None
        self.processes.discard(env)
        if self.closing and env.output is not None:
            # A descendant (e.g. debugpy's adapter) may hold the output pipe a moment longer
            # than the runtime; the loop stops before that end of file would be read.
            env.output.close()
        env.exited.set()

    def shutdown(self, env: Environment) -> None:
        """Stop an environment the way Lambda does: SIGKILL, or SIGTERM first when the runtime
        registered an extension (it asked for a chance to clean up)."""
        self.retire(env)
        if not env.running:
            if env.process is None and env.external:
                self._reaped(env)
            return
        if env.has_extension and self.config.shutdown_grace > 0:
            self.kill(env, signal.SIGTERM)
            env.kill_timer = self.loop.call_later(
                self.config.shutdown_grace, self.kill, env, signal.SIGKILL
            )
        else:
            self.kill(env, signal.SIGKILL)

    # ------------------------------------------------------------------ stop

    def begin_close(self) -> None:
        """No new work from now on."""
        self.closing = True
        self.memory.stop()

    async def close(self, stop_invoke: Callable[[Invocation], None]) -> None:
        """End what can end, stop what cannot (``stop_invoke``), shut down and reap every
        environment."""
        # Invokes already answered get a moment to finish their after-response work (span
        # export, metrics line), so their log is complete.
        await self._wait_endings()
        for env in list(self.envs.values()):
            ending = env.ending
            if ending is not None:
                self._write_end(env, ending, None, None)
                self.placement.invoke_over(ending)
            for inv in (env.current, env.pending):
                if inv is not None and not inv.done:
                    stop_invoke(inv)
            env.current = env.pending = None
            self.shutdown(env)
        waiters = [env.exited.wait() for env in list(self.processes)]
        if waiters:
            _, still = await asyncio.wait(
                [asyncio.ensure_future(w) for w in waiters],
                timeout=self.config.shutdown_grace + 5,
            )
            for fut in still:
                fut.cancel()
        for env in list(self.processes):
            # Last resort for a process that did not exit in time.
            if env.process is not None:
                env.process.abandon()
            if env.output is not None:
                env.output.close()
            self._reaped(env)

    async def _wait_endings(self) -> None:
        """Wait (bounded) until no answered invoke is waiting for its runtime's /next."""
        give_up = _now() + _CLOSE_WAIT
        while True:
            # (Each one also ends by itself at its deadline, through its timer.)
            if all(env.ending is None for env in self.envs.values()):
                return
            left = give_up - _now()
            if left <= 0:
                return
            self._endings_changed.clear()
            try:
                await asyncio.wait_for(self._endings_changed.wait(), left)
            except asyncio.TimeoutError:
                return


_REQUEST_ID = protocol.REQUEST_ID_HEADER.encode()
_DEADLINE = protocol.DEADLINE_HEADER.encode()
_FUNCTION_ARN = protocol.FUNCTION_ARN_HEADER.encode()
_TRACE_ID = protocol.TRACE_ID_HEADER.encode()
_INVOCATION_ID = protocol.INVOCATION_ID_HEADER.encode()
_CLIENT_CONTEXT = protocol.CLIENT_CONTEXT_HEADER.encode()
_TENANT_ID = protocol.TENANT_ID_HEADER.encode()
