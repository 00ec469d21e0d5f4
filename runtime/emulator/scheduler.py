"""Which environment takes an invoke: concurrency, warm reuse, 429, Event queue and retries.

An invoke takes the most recently used free environment (warm start), else a new one is started
(cold start) as long as fewer than ``concurrency`` invokes are in flight; a synchronous invoke
over the limit gets 429, an Event invoke waits in a queue (a failed one is retried twice, after
a delay, as on Lambda). An environment is free again as soon as its runtime answered; the next
invoke waits for its ``/next`` (so a quick succession of invokes reuses one warm environment).
Environments idle for ``idle_timeout`` are shut down.

With ``--max-concurrency N`` each environment is N slots (see :mod:`.environment`), placed like
environments: ``concurrency`` counts environments, so up to ``concurrency * N`` invokes are in
flight; an invoke takes a free slot whose runtime waits in ``/next`` first, else a slot still
initializing, and only then starts a new environment. Such environments are not shut down when
idle (as on Lambda Managed Instances, they live on).

What happens to an environment and an invoke once placed (init, delivery, timeouts, end) is
:mod:`runtime.emulator.lifecycle`'s job; this module only implements its :class:`Placement`.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING

from . import reports
from .environment import READY, Environment
from .invocation import EVENT, Invocation
from .lifecycle import Lifecycle, Placement

if TYPE_CHECKING:
    from .config import EmulatorConfig

_now = time.monotonic


class Scheduler:
    """Owns the free environments and the count of invokes in flight; places every invoke."""

    def __init__(
        self,
        config: EmulatorConfig,
        make_lifecycle: Callable[[Placement], Lifecycle],
        on_event_done: Callable[[Invocation], None] | None = None,
        on_ended: Callable[[Invocation], None] | None = None,
    ) -> None:
        self.config = config
        self.on_event_done = on_event_done
        # Called when an invoke's log is complete (after its REPORT).
        self.on_ended = on_ended
        self.lifecycle = make_lifecycle(self)
        # --no-spawn serves one hand-started runtime, so one invoke at a time.
        self.limit = 1 if config.no_spawn else config.concurrency * config.slots
        self.loop = asyncio.get_running_loop()
        self.free: list[Environment] = []
        # With --no-spawn: the one environment whose runtime the user starts by hand.
        self.external: Environment | None = None
        self.in_flight = 0
        self.events: deque[Invocation] = deque()
        # Event invokes waiting to be retried, by the timer that will requeue them.
        self.retry_timers: dict[asyncio.TimerHandle, Invocation] = {}
        self._idle_handle: asyncio.TimerHandle | None = None

    @property
    def closing(self) -> bool:
        return self.lifecycle.closing

    def attach_external(self, env: Environment) -> None:
        """With --no-spawn: every invoke goes to ``env``, whose runtime the user starts."""
        self.lifecycle.add_external(env)
        self.external = env

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
            self.lifecycle.assign(env, inv)
        elif self.free:
            self.lifecycle.assign(self._take_free(), inv)
        else:
            slot = self.lifecycle.waiting_slot() if self.config.max_concurrency else None
            if slot is not None:
                self.lifecycle.assign(slot, inv)
            else:
                self.lifecycle.spawn(inv, suppressed=False)

    def _take_free(self) -> Environment:
        """The most recently freed environment; among slots, one whose runtime waits in /next
        (a slot whose handler still runs after a timeout is free but cannot take it now)."""
        free = self.free
        if self.config.max_concurrency:
            for index in range(len(free) - 1, -1, -1):
                if free[index].parked is not None:
                    return free.pop(index)
        return free.pop()

    # ------------------------------------------------------------------ Placement

    def env_free(self, env: Environment) -> None:
        if env.stale:
            # Stopped once its invoke has ended (see invoke_over), not put back in service.
            if env.ending is None and env.pending is None:
                self.lifecycle.shutdown(env)
            return
        self.free.append(env)
        self._schedule_idle_check()

    def reload(self) -> int:
        """The function's code changed (--watch): every environment now running is stale, the
        next invoke starts a fresh one; the number of environments that were running."""
        envs = [env for env in self.lifecycle.envs.values() if not env.external]
        for env in envs:
            env.stale = True
        for env in [env for env in self.free if env.stale]:
            # One still ending its invoke (answered, not asked for the next yet) is stopped
            # once that invoke is over (invoke_over), so its END and REPORT are not lost.
            self.free.remove(env)
            if env.ending is None and env.pending is None:
                self.lifecycle.shutdown(env)
        return len(envs)

    def env_retired(self, env: Environment) -> None:
        if env in self.free:
            self.free.remove(env)

    def invoke_released(self, env: Environment) -> None:
        self.in_flight -= 1
        if env.state == READY and not self.closing:
            env.idle_since = _now()
            self.env_free(env)
        if self.events:
            self._pump()

    def redispatch(self, inv: Invocation) -> None:
        if self.closing:
            self._stop_invoke(inv)
        else:
            self._dispatch(inv)

    def invoke_over(self, inv: Invocation) -> None:
        """Whoever waits for the end of the invoke (Tail, the Python API, Event bookkeeping)."""
        env = inv.env
        if (
            env is not None
            and env.stale
            and env.state == READY
            and env.ending is None
            and env.pending is None
            and env.current is None
        ):
            self.lifecycle.shutdown(env)
        if inv.kind == EVENT:
            report = inv.report
            failed = inv.function_error or (report is not None and report.status is not None)
            if failed and self._retry_event(inv):
                return
            self.lifecycle.answer(inv)
            inv.close_log()
            if self.on_event_done is not None:
                self.on_event_done(inv)
        else:
            inv.close_log()
        if self.on_ended is not None:
            self.on_ended(inv)

    # ------------------------------------------------------------------ Event retries

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
                and not env.shared
                and now - env.idle_since >= limit
            ):
                self.lifecycle.shutdown(env)
        if self.free:
            self._schedule_idle_check()

    # ------------------------------------------------------------------ stop

    async def close(self) -> None:
        """Answer everything still open, stop every environment and reap every process."""
        self.lifecycle.begin_close()
        if self._idle_handle is not None:
            self._idle_handle.cancel()
            self._idle_handle = None
        for handle, waiting in list(self.retry_timers.items()):
            handle.cancel()
            self._stop_invoke(waiting)
        self.retry_timers.clear()
        while self.events:
            self._stop_invoke(self.events.popleft())
        await self.lifecycle.close(self._stop_invoke)
