"""Execution environments: real child processes, and the scheduler that hands them invokes.

Design choices:

* **One Runtime API port per environment.** Each environment gets its own listening socket on
  127.0.0.1 (an ephemeral port) and its process is started with
  ``AWS_LAMBDA_RUNTIME_API=127.0.0.1:<that port>``. Every connection that arrives on that port
  belongs to that environment, so ``/next``, ``/response`` and the state checks need no
  identification scheme and work with any runtime, including ones that open a new connection
  per call. The Invoke API has its own port (9000 by default).
* **Process groups.** Each runtime starts in a new session (so its own process group); every
  kill (timeout, crash clean-up, out of memory, idle shutdown) signals the whole group, so
  children the function started die with it. Exits are noticed through a pidfd registered with
  the event loop, and the group is killed before the leader is reaped so the group id cannot be
  reused in between.
* **Memory.** While an environment initializes or runs an invoke, a timer samples every
  ``memory_poll_interval`` seconds the resident set of every process in its group (members are
  found by scanning ``/proc`` for new pids and reading their process group, as this kernel may
  lack ``/proc/<pid>/task/<tid>/children``; the scan runs on every 8th sample and when an
  environment starts). The peak is "Max Memory Used"; going over the
  memory size kills the environment with ``Runtime.OutOfMemory``. Peaks shorter than the
  interval can be missed.
* **Scheduling.** An invoke takes the most recently used free environment (warm start), else a
  new one is started (cold start) as long as fewer than ``concurrency`` invokes are in flight;
  a synchronous invoke over the limit gets 429, an Event invoke waits in a queue. An
  environment is free again as soon as its runtime answered; the next invoke waits for its
  ``/next`` (so a quick succession of invokes reuses one warm environment).
* **End of an invoke.** As on Lambda, an invoke ends when its runtime asks for the next one
  (``/next``), not when it posts the response: the caller gets the response at once, but END
  and REPORT (and with them the end of the invoke's log, ``Tail`` and the Python API's
  ``log``/``report``) wait for that ``/next``, so what the runtime does after posting (span
  export, the EMF metrics line, ...) is part of the invoke and of its Duration. The function
  timeout bounds this too: a runtime that has not asked again by the invoke's deadline gets
  ``Status: timeout`` and is replaced, and one that dies first gets ``Status: error``.
* **Init.** Init ends at the first ``/next``. It is limited to ``init_timeout`` (10 s). When it
  fails (``/init/error``, exit, timeout, out of memory) Lambda retries init once inside the
  invoke, limited by the function timeout: so does the emulator, with a fresh process; a second
  failure answers the invoke with the init error.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import signal
import subprocess
import time
import uuid
from collections import OrderedDict, deque
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

import orjson

from . import reports
from .invocation import EVENT, Invocation
from .output import Console
from .reports import PlatformLog, Report

if TYPE_CHECKING:
    from .config import EmulatorConfig
    from .otel import Span, SpanConsole
    from .server import HttpServer, Request

INIT = 1
READY = 2
DEAD = 3

# Durations are measured with time.monotonic, not loop.time(): uvloop's clock has only
# millisecond resolution.
_now = time.monotonic
_PAGE = os.sysconf("SC_PAGE_SIZE")
_MIB = 1024 * 1024
_FINISHED_KEEP = 64
_MAX_LINE = 256 * 1024
# After /init/error the runtime should exit by itself; give it this long to flush and go.
_INIT_ERROR_EXIT_WAIT = 1.0
# How long stopping the emulator waits for answered invokes to reach their runtime's /next.
_CLOSE_WAIT = 2.0


def _read_small(path: str) -> bytes | None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        return os.read(fd, 4096)
    except OSError:
        return None
    finally:
        os.close(fd)


def _rss_bytes(pid: int) -> int | None:
    data = _read_small(f"/proc/{pid}/statm")
    if not data:
        return None
    try:
        return int(data.split()[1]) * _PAGE
    except (IndexError, ValueError):
        return None


def _process_group(pid: int) -> int | None:
    data = _read_small(f"/proc/{pid}/stat")
    if not data:
        return None
    # The command name may contain spaces and parentheses: fields start after the last ')'.
    fields = data[data.rfind(b")") + 2 :].split()
    try:
        return int(fields[2])
    except (IndexError, ValueError):
        return None


def _killpg(pgid: int, sig: int) -> None:
    if pgid <= 1:
        return
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


class Environment:
    """One execution environment: a runtime process (or, with --no-spawn, an external one)."""

    def __init__(self, env_id: int, *, external: bool = False) -> None:
        self.id = env_id
        self.external = external
        self.state = INIT
        self.proc: subprocess.Popen[bytes] | None = None
        self.pid = 0
        self.pidfd = -1
        self.out_fd = -1
        self.server: HttpServer | None = None
        self.address = ""
        self.log_stream = time.strftime("%Y/%m/%d", time.gmtime()) + "/[$LATEST]" + uuid.uuid4().hex
        # The parked /next request, the invoke assigned but not yet handed out, and the one the
        # runtime is working on.
        self.parked: Request | None = None
        self.pending: Invocation | None = None
        self.current: Invocation | None = None
        # The invoke answered but not over yet: its END/REPORT wait for the runtime's /next.
        self.ending: Invocation | None = None
        # Request ids this environment already finished: "answered" or "timeout" (for 400/410).
        self.finished: OrderedDict[str, str] = OrderedDict()
        self.spawn_time = 0.0
        self.init_duration_ms: float | None = None
        self.report_init = not external
        self.init_timer: asyncio.TimerHandle | None = None
        self.init_error: tuple[str, bytes] | None = None
        self.start_error: OSError | None = None
        # True for the re-init Lambda runs inside an invoke after a failed init.
        self.suppressed = False
        self.has_extension = False
        self.members: set[int] = set()
        self.peak_rss = 0
        self.oom = False
        self.init_timed_out = False
        self.returncode: int | None = None
        self.line_buf = b""
        self.idle_since = 0.0
        self.kill_timer: asyncio.TimerHandle | None = None
        self.exited = asyncio.Event()

    def remember(self, request_id: str, how: str) -> None:
        self.finished[request_id] = how
        if len(self.finished) > _FINISHED_KEEP:
            self.finished.popitem(last=False)

    @property
    def max_memory_mb(self) -> int:
        return math.ceil(self.peak_rss / _MIB) if self.peak_rss else 0


class Scheduler:
    """Owns the environments; every state change of an invoke goes through here."""

    def __init__(
        self,
        config: EmulatorConfig,
        console: Console,
        base_env: Mapping[str, str],
        make_server: Callable[[Environment], HttpServer],
        on_finished: Callable[[Invocation], None] | None = None,
        on_event_done: Callable[[Invocation], None] | None = None,
        on_ended: Callable[[Invocation], None] | None = None,
        spans: SpanConsole | None = None,
    ) -> None:
        self.config = config
        self.on_event_done = on_event_done
        # Called when an invoke's log is complete (after its REPORT).
        self.on_ended = on_ended
        # With --otel-console: receives the spans the runtimes export, prints them per invoke.
        self.spans = spans
        self._endings_changed = asyncio.Event()
        # --no-spawn serves one hand-started runtime, so one invoke at a time.
        self.limit = 1 if config.no_spawn else config.concurrency
        self.console = console
        self.base_env = dict(base_env)
        self.make_server = make_server
        self.on_finished = on_finished
        self.platform = PlatformLog(
            config.log_format == "JSON", config.function_name, config.region
        )
        self.loop = asyncio.get_running_loop()
        self.envs: dict[int, Environment] = {}
        # Every environment whose process is not reaped yet (including dying ones).
        self.processes: set[Environment] = set()
        self.free: list[Environment] = []
        # With --no-spawn: the one environment whose runtime the user starts by hand.
        self.external: Environment | None = None
        self.in_flight = 0
        self.events: deque[Invocation] = deque()
        # Event invokes waiting to be retried, by the timer that will requeue them.
        self.retry_timers: dict[asyncio.TimerHandle, Invocation] = {}
        self._next_id = 1
        self._poll_handle: asyncio.TimerHandle | None = None
        self._dirty: set[Environment] = set()
        self._known_pids: set[int] = set()
        self._ticks = 0
        self._new_process = False
        self._idle_handle: asyncio.TimerHandle | None = None
        self.closing = False
        self.timeout = config.timeout
        self.mem_limit = config.memory * _MIB
        self.function_arn = config.function_arn.encode()

    @property
    def started(self) -> int:
        """How many environments were started so far (cold starts, init retries included)."""
        return self._next_id - 1

    # ------------------------------------------------------------------ invokes in

    def submit(self, inv: Invocation) -> bool:
        """Start a synchronous invoke; False when the concurrency limit is reached (429)."""
        if self.closing or self.in_flight >= self.limit:
            return False
        self.in_flight += 1
        self._dispatch(inv)
        return True

    def submit_event(self, inv: Invocation) -> None:
        self.events.append(inv)
        self._pump()

    def _pump(self) -> None:
        events = self.events
        while events and self.in_flight < self.limit and not self.closing:
            self.in_flight += 1
            self._dispatch(events.popleft())

    def _dispatch(self, inv: Invocation) -> None:
        if self.external is not None:
            env = self.external
            if env in self.free:
                self.free.remove(env)
            env.pending = inv
            inv.env = env
            if env.parked is not None and env.state == READY:
                self.deliver(env)
            return
        if self.free:
            env = self.free.pop()
            env.pending = inv
            inv.env = env
            if env.parked is not None:
                self.deliver(env)
            else:
                self._await_next(env, inv)
        else:
            self._spawn(inv, suppressed=False)

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
        self._retire(env)
        self._kill(env, signal.SIGKILL)
        payload = reports.timeout_payload(inv.request_id, self.timeout)
        self._finish_failed(env, inv, payload, "Sandbox.Timedout", "timeout")

    def _release(self, env: Environment) -> None:
        """The invoke in flight on ``env`` is over (env may be dead)."""
        self.in_flight -= 1
        if env.state == READY and not self.closing:
            env.idle_since = _now()
            self.free.append(env)
            self._schedule_idle_check()
        if self.events:
            self._pump()

    # ------------------------------------------------------------------ output

    def _line_prefix(self, env: Environment) -> bytes:
        return self.console.prefix(env.id) if len(self.envs) > 1 else b""

    def log_line(self, env: Environment | None, inv: Invocation | None, line: bytes) -> None:
        """A platform line: into the invoke's log and onto the console."""
        if inv is not None:
            inv.add_log(line)
        if self.console.enabled:
            self.console.line(line, self._line_prefix(env) if env is not None else b"")

    def read_output(self, env: Environment) -> None:
        """Read what the runtime wrote, without blocking; attribute lines to the running invoke."""
        fd = env.out_fd
        if fd < 0:
            return
        while True:
            try:
                data = os.read(fd, 65536)
            except BlockingIOError:
                return
            except OSError:
                data = b""
            if not data:
                self._close_output(env)
                return
            buf = env.line_buf + data if env.line_buf else data
            if b"\n" not in buf:
                if len(buf) > _MAX_LINE:
                    # Output without line breaks still shows up, in pieces.
                    env.line_buf = b""
                    self._emit(env, [buf])
                else:
                    env.line_buf = buf
                continue
            lines = buf.split(b"\n")
            env.line_buf = lines.pop()
            self._emit(env, lines)
            if len(data) < 65536:
                return

    def _emit(self, env: Environment, lines: list[bytes]) -> None:
        inv = env.current or env.ending or (env.pending if env.state == INIT else None)
        console = self.console.enabled
        prefix = self._line_prefix(env) if console else b""
        for line in lines:
            if line.endswith(b"\r"):
                line = line[:-1]
            if inv is not None:
                inv.add_log(line)
            if console:
                self.console.line(line, prefix)

    def _flush_partial(self, env: Environment) -> None:
        if env.line_buf:
            line, env.line_buf = env.line_buf, b""
            self._emit(env, [line])

    def _drain(self, env: Environment) -> None:
        """Everything the runtime wrote before its last message to us belongs to that invoke."""
        if env.out_fd >= 0:
            self.read_output(env)
        self._flush_partial(env)

    def _close_output(self, env: Environment) -> None:
        if env.out_fd >= 0:
            self.loop.remove_reader(env.out_fd)
            os.close(env.out_fd)
            env.out_fd = -1
        self._flush_partial(env)

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
            self.spans.flush(env.id, None, self._line_prefix(env))

    # ------------------------------------------------------------------ spawning

    def _spawn(self, inv: Invocation | None, *, suppressed: bool) -> Environment:
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
            self._retire(env)
            self._init_failed(env)
            self._reaped(env)
            return
        phase = "invoke" if env.suppressed else "init"
        self.log_line(env, env.pending, self.platform.init_start(phase=phase))
        self._popen(env)
        if env.proc is None:
            self._retire(env)
            self._init_failed(env)
            self._reaped(env)

    def _popen(self, env: Environment) -> None:
        cmd = self.config.command()
        read_fd, write_fd = os.pipe()
        try:
            proc = subprocess.Popen(
                cmd,
                cwd=self.config.task_root,
                env=self.runtime_env(env),
                stdin=subprocess.DEVNULL,
                stdout=write_fd,
                stderr=write_fd,
                start_new_session=True,
            )
        except OSError as exc:
            os.close(read_fd)
            os.close(write_fd)
            env.start_error = exc
            env.state = DEAD
            return
        os.close(write_fd)
        os.set_blocking(read_fd, False)
        env.proc = proc
        env.pid = proc.pid
        env.members = {proc.pid}
        self._new_process = True
        env.out_fd = read_fd
        self.loop.add_reader(read_fd, self.read_output, env)
        try:
            env.pidfd = os.pidfd_open(proc.pid)
        except OSError:
            env.pidfd = -1
        if env.pidfd >= 0:
            self.loop.add_reader(env.pidfd, self._on_exit, env)
        else:
            # No pidfd (old kernel): poll for the exit instead.
            self.loop.call_later(0.05, self._poll_exit, env)
        self._ensure_polling()

    def _poll_exit(self, env: Environment) -> None:
        if env.proc is not None and env.proc.poll() is None:
            self.loop.call_later(0.05, self._poll_exit, env)
        else:
            self._on_exit(env)

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
            self._sample(env)
        if env.suppressed:
            # Lambda reports no Init Duration when init ran inside the invoke.
            env.report_init = False
        if env.pending is None and not self.closing:
            env.idle_since = now
            self.free.append(env)
            self._schedule_idle_check()

    def init_error_posted(self, env: Environment, error_type: str, body: bytes) -> None:
        env.init_error = (error_type, body)
        if env.external:
            # Nothing to kill: fail the waiting invoke now and wait for the runtime to return.
            self._init_failed(env)
            env.init_error = None
            return
        env.kill_timer = self.loop.call_later(
            _INIT_ERROR_EXIT_WAIT, self._kill, env, signal.SIGKILL
        )

    def _init_timeout(self, env: Environment) -> None:
        env.init_timer = None
        if env.state != INIT:
            return
        env.init_timed_out = True
        if env.proc is not None:
            self._kill(env, signal.SIGKILL)
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
            self._spawn(inv, suppressed=True)
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
                payload = _error_payload(env.init_error[0], env.init_error[1])
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

    # ------------------------------------------------------------------ invokes out

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
            (b"Lambda-Runtime-Aws-Request-Id", inv.request_id.encode()),
            (b"Lambda-Runtime-Deadline-Ms", str(inv.deadline_ms).encode()),
            (b"Lambda-Runtime-Invoked-Function-Arn", self.function_arn),
            (b"Lambda-Runtime-Trace-Id", inv.trace_id.encode()),
            (b"Lambda-Runtime-Invocation-Id", inv.invocation_id.encode()),
        ]
        if inv.client_context is not None:
            headers.append((b"Lambda-Runtime-Client-Context", inv.client_context.encode()))
        if inv.tenant_id is not None:
            headers.append((b"Lambda-Runtime-Aws-Tenant-Id", inv.tenant_id.encode()))
        if not req.respond(200, headers, inv.event):
            # The runtime dropped that connection; keep the invoke for its next /next (or for
            # the crash report when the process is gone).
            env.current = None
            env.pending = inv
            self._await_next(env, inv)
            return
        inv.timer = self.loop.call_later(deadline - now, self._on_timeout, env, inv)
        self.log_line(env, inv, self.platform.start(inv.request_id))
        self._dirty.add(env)
        if self._poll_handle is None:
            self._ensure_polling()

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
        what the runtime writes is still this invoke's (``_emit`` reads ``env.ending``).
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
        self._release(env)
        if inv.kind != EVENT:
            self._answer(inv)

    def end_invoke(self, env: Environment) -> None:
        """The runtime asked for its next invoke: the one it answered last is over."""
        inv = env.ending
        if inv is None:
            return
        # What the runtime wrote after posting (EMF line, export warnings, ...) is still its.
        self._drain(env)
        self._write_end(env, inv, None, None)
        self._after_end(inv)

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
            self._retire(env)
            self._kill(env, signal.SIGKILL)
        self._write_end(env, inv, "timeout", "Sandbox.Timedout")
        if not env.external:
            self._redispatch_pending(env)
        self._after_end(inv)

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
        if self.closing:
            self._stop_invoke(pending)
        else:
            self._dispatch(pending)

    def _stop_invoke(self, inv: Invocation) -> None:
        """The emulator is stopping: ``inv`` gets a ServiceException (the caller a 503)."""
        if inv.done:
            return
        inv.finish(
            reports.error_payload("ServiceException", "The emulator is shutting down"),
            function_error=True,
            error_type="ServiceException",
        )
        inv.close_log()
        if inv.kind == EVENT and self.on_event_done is not None:
            self.on_event_done(inv)
        if self.on_ended is not None:
            self.on_ended(inv)

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
            self.spans.flush(env.id, inv.request_id, self._line_prefix(env), hint=status is None)
        self._endings_changed.set()

    def _answer(self, inv: Invocation) -> None:
        """The caller of a synchronous invoke gets its result."""
        if self.on_finished is not None:
            # Before the answer goes out, so a caller that reads the record finds it.
            self.on_finished(inv)
        inv.answer()

    def _after_end(self, inv: Invocation) -> None:
        """Whoever waits for the end of the invoke (Tail, the Python API, Event bookkeeping)."""
        if inv.kind == EVENT:
            report = inv.report
            failed = inv.function_error or (report is not None and report.status is not None)
            if failed and self._retry_event(inv):
                return
            self._answer(inv)
            inv.close_log()
            if self.on_event_done is not None:
                self.on_event_done(inv)
        else:
            inv.close_log()
        if self.on_ended is not None:
            self.on_ended(inv)

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
        self._retire(env)
        self._kill(env, signal.SIGKILL)
        self._finish_failed(env, inv, payload, "Sandbox.Timedout", "timeout")

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
        self._release(env)
        if inv.kind != EVENT:
            self._answer(inv)
        self._after_end(inv)

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

    def _retry_event(self, inv: Invocation) -> bool:
        """Lambda retries a failed Event invoke twice, after a delay; True when scheduled."""
        if self.closing or inv.attempt > self.config.event_retries:
            return False
        delay = self.config.event_retry_delays[min(inv.attempt, 2) - 1]
        inv.new_attempt()

        def requeue() -> None:
            self.retry_timers.pop(handle, None)
            if self.closing:
                self._stop_invoke(inv)
                return
            self.submit_event(inv)

        handle = self.loop.call_later(delay, requeue)
        self.retry_timers[handle] = inv
        return True

    # ------------------------------------------------------------------ process end

    def _retire(self, env: Environment) -> None:
        """Take env out of service (it is being killed or has died)."""
        env.state = DEAD
        self.envs.pop(env.id, None)
        if env in self.free:
            self.free.remove(env)
        self._dirty.discard(env)
        if env.init_timer is not None:
            env.init_timer.cancel()
            env.init_timer = None
        if env.parked is not None:
            env.parked = None

    def _kill(self, env: Environment, sig: int) -> None:
        if env.proc is not None and env.returncode is None:
            _killpg(env.pid, sig)

    def _on_exit(self, env: Environment) -> None:
        proc = env.proc
        if proc is None or env.returncode is not None:
            return
        if env.pidfd >= 0:
            self.loop.remove_reader(env.pidfd)
        # Kill what the runtime left behind while the leader (a zombie) still holds the group id.
        _killpg(env.pid, signal.SIGKILL)
        try:
            returncode = proc.wait(timeout=1)
        except subprocess.TimeoutExpired:
            _killpg(env.pid, signal.SIGKILL)
            returncode = proc.wait()
        env.returncode = returncode
        if env.pidfd >= 0:
            os.close(env.pidfd)
            env.pidfd = -1
        if env.kill_timer is not None:
            env.kill_timer.cancel()
            env.kill_timer = None
        self._drain(env)
        was_state = env.state
        current = env.current
        ending = env.ending
        self._retire(env)
        error_type = "Runtime.OutOfMemory" if env.oom else "Runtime.ExitError"
        if ending is not None:
            # It died after answering, before asking for more: the caller has its answer, but
            # the invoke did not end well.
            payload = reports.exit_payload(ending.request_id, error_type, returncode)
            self._log_error_lines(env, ending, payload, error_type)
            self._write_end(env, ending, "error", error_type)
            self._after_end(ending)
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
            self.spans.flush(env.id, None, self._line_prefix(env))
        env.state = DEAD
        self.envs.pop(env.id, None)
        if env.out_fd >= 0 and env.proc is None:
            self._close_output(env)
        if env.server is not None:
            env.server.close()
            env.server = None
        self.processes.discard(env)
        env.exited.set()

    def shutdown_env(self, env: Environment) -> None:
        """Stop an environment the way Lambda does: SIGKILL, or SIGTERM first when the runtime
        registered an extension (it asked for a chance to clean up)."""
        self._retire(env)
        if env.proc is None or env.returncode is not None:
            if env.proc is None and env.external:
                self._reaped(env)
            return
        if env.has_extension and self.config.shutdown_grace > 0:
            _killpg(env.pid, signal.SIGTERM)
            env.kill_timer = self.loop.call_later(
                self.config.shutdown_grace, self._kill, env, signal.SIGKILL
            )
        else:
            _killpg(env.pid, signal.SIGKILL)

    # ------------------------------------------------------------------ idle environments

    def _schedule_idle_check(self) -> None:
        if self._idle_handle is None:
            delay = min(1.0, self.config.idle_timeout)
            self._idle_handle = self.loop.call_later(delay, self._idle_check)

    def _idle_check(self) -> None:
        self._idle_handle = None
        now = _now()
        limit = self.config.idle_timeout
        for env in list(self.free):
            if (
                env.pending is None
                and env.ending is None
                and not env.external
                and now - env.idle_since >= limit
            ):
                self.shutdown_env(env)
        if self.free:
            self._schedule_idle_check()

    # ------------------------------------------------------------------ memory

    def _ensure_polling(self) -> None:
        if self._poll_handle is None and not self.closing:
            self._poll_handle = self.loop.call_later(
                self.config.memory_poll_interval, self._poll_memory
            )

    def _poll_memory(self) -> None:
        self._poll_handle = None
        watched = [
            env
            for env in self.envs.values()
            if env.proc is not None
            and env.returncode is None
            and (
                env.state == INIT
                or env.current is not None
                or env.ending is not None
                or env in self._dirty
            )
        ]
        self._dirty.clear()
        if not watched:
            return
        # Finding new processes means listing /proc, which costs far more than reading a few
        # statm files: do it on every 8th sample (and whenever an environment starts).
        self._ticks += 1
        if self._ticks % 8 == 1 or self._new_process:
            self._new_process = False
            self._discover_members()
        for env in watched:
            self._sample(env)
        self._ensure_polling()

    def _discover_members(self) -> None:
        try:
            pids = {int(name) for name in os.listdir("/proc") if name.isdigit()}
        except OSError:
            return
        new = pids - self._known_pids
        self._known_pids = pids
        if not new:
            return
        groups = {env.pid: env for env in self.envs.values() if env.proc is not None}
        for pid in new:
            pgid = _process_group(pid)
            if pgid is not None and pgid in groups:
                groups[pgid].members.add(pid)

    def _sample(self, env: Environment) -> None:
        total = 0
        gone = []
        for pid in env.members:
            rss = _rss_bytes(pid)
            if rss is None:
                gone.append(pid)
            else:
                total += rss
        for pid in gone:
            env.members.discard(pid)
        if total > env.peak_rss:
            env.peak_rss = total
        if total > self.mem_limit and not env.oom and env.returncode is None:
            env.oom = True
            self._kill(env, signal.SIGKILL)

    # ------------------------------------------------------------------ stop

    async def close(self) -> None:
        """Answer everything still open, stop every environment and reap every process."""
        self.closing = True
        for handle in (self._poll_handle, self._idle_handle):
            if handle is not None:
                handle.cancel()
        self._poll_handle = self._idle_handle = None
        for handle, waiting in list(self.retry_timers.items()):
            handle.cancel()
            self._stop_invoke(waiting)
        self.retry_timers.clear()
        while self.events:
            self._stop_invoke(self.events.popleft())
        # Invokes already answered get a moment to finish their after-response work (span
        # export, metrics line), so their log is complete.
        await self._wait_endings()
        for env in list(self.envs.values()):
            ending = env.ending
            if ending is not None:
                self._write_end(env, ending, None, None)
                self._after_end(ending)
            for inv in (env.current, env.pending):
                if inv is not None and not inv.done:
                    self._stop_invoke(inv)
            env.current = env.pending = None
            self.shutdown_env(env)
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
            _killpg(env.pid, signal.SIGKILL)
            if env.proc is not None:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    env.proc.wait(timeout=2)
            if env.pidfd >= 0:
                self.loop.remove_reader(env.pidfd)
                os.close(env.pidfd)
                env.pidfd = -1
            self._close_output(env)
            self._reaped(env)


def _error_payload(error_type: str, body: bytes) -> bytes:
    """The error JSON a runtime posted; Lambda falls back to the header when it is unreadable."""
    if body:
        try:
            parsed = orjson.loads(body)
        except orjson.JSONDecodeError:
            parsed = None
        if isinstance(parsed, dict):
            return body
    return reports.error_payload(
        error_type or "Runtime.Unknown", "Unknown application error occurred"
    )


error_payload_from_runtime = _error_payload

__all__ = ["DEAD", "INIT", "READY", "Environment", "Scheduler", "error_payload_from_runtime"]
