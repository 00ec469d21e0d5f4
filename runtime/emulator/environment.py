"""One execution environment: the state an environment carries through its life.

States: ``INIT`` (started, its runtime has not asked for work yet), ``READY`` (initialized),
``DEAD`` (retired: killed, exited or shut down); with SnapStart, ``RESTORING`` comes between
``INIT`` and ``READY`` (the snapshot was taken and restored; the after-restore hooks run).
Transitions are made by :mod:`runtime.emulator.lifecycle`; this module only holds the data.

With ``--max-concurrency N`` (Lambda Managed Instances) one runtime process serves N invokes at
once: it is N :class:`Environment` objects, its *slots*, one per invoke in flight, each with the
state of one invoke loop. The first slot (the *leader*) starts the process; the others share its
process, port, memory and output, and the scheduler places invokes on slots as on environments.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import OrderedDict
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .invocation import Invocation
    from .logpump import LogPump
    from .memory import ProcessTree
    from .process import RuntimeProcess
    from .server import HttpServer, Request

INIT = 1
READY = 2
DEAD = 3
RESTORING = 4

# Request ids remembered per environment, for 400 (already answered) and 410 (timed out).
_FINISHED_KEEP = 64


class Environment:
    """A runtime process (or, with --no-spawn, an external one) and its Runtime API port."""

    def __init__(self, env_id: int, *, external: bool = False) -> None:
        self.id = env_id
        self.external = external
        self.state = INIT
        self.process: RuntimeProcess | None = None
        self.output: LogPump | None = None
        self.memory: ProcessTree | None = None
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
        # SnapStart: when the restore began, how long it took (for the first REPORT), and the
        # error an after-restore hook reported.
        self.restore_start = 0.0
        self.restore_duration_ms: float | None = None
        self.restore_error: tuple[str, bytes] | None = None
        self.start_error: Exception | None = None
        # True for the re-init Lambda runs inside an invoke after a failed init.
        self.suppressed = False
        self.has_extension = False
        self.oom = False
        self.init_timed_out = False
        self.idle_since = 0.0
        self.kill_timer: asyncio.TimerHandle | None = None
        self.exited = asyncio.Event()
        # --max-concurrency: every slot is shared (a timeout fails its invoke, not the process);
        # the leader lists the other slots, each of which names the leader.
        self.shared = False
        self.leader: Environment = self
        self.siblings: list[Environment] = []
        # Its code changed (--watch): it finishes what it does, takes nothing new, then stops.
        self.stale = False

    def remember(self, request_id: str, how: str) -> None:
        self.finished[request_id] = how
        if len(self.finished) > _FINISHED_KEEP:
            self.finished.popitem(last=False)

    @property
    def running(self) -> bool:
        """Its process was started and is not reaped yet."""
        return self.process is not None and self.process.running

    @property
    def returncode(self) -> int | None:
        return self.process.returncode if self.process is not None else None

    @property
    def max_memory_mb(self) -> int:
        return self.memory.peak_mb if self.memory is not None else 0

    @property
    def busy(self) -> bool:
        """Initializing, or working on an invoke (answered or not): memory is sampled."""
        starting = self.state == INIT or self.state == RESTORING
        return starting or self.current is not None or self.ending is not None
