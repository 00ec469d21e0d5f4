"""Memory of runtime process trees: resident set sampling, peak ("Max Memory Used"), the limit.

While an environment initializes or runs an invoke, a timer samples every ``interval`` seconds
the resident set of every process in its process group. Members are found by scanning ``/proc``
for new pids and reading their process group, as this kernel may lack
``/proc/<pid>/task/<tid>/children``; the scan runs on every 8th sample and when a process starts,
because listing ``/proc`` costs far more than reading a few ``statm`` files. Going over the limit
calls the tree's ``on_over_limit`` (the environment is then killed with
``Runtime.OutOfMemory``). Peaks shorter than the interval can be missed.

A process that leaves the group (``start_new_session=True``, a daemonizing tool) still belongs
to its tree: members are also found by parent pid, and the emulator is a child subreaper
(:func:`runtime.emulator.process.become_subreaper`), so an orphan is re-parented to it rather
than to init; such an orphan is attributed by the environment's marker in its environment
(its ``AWS_LAMBDA_LOG_STREAM_NAME``, unique per environment and inherited by descendants).
:meth:`ProcessTree.collect` rebuilds the whole tree from ``/proc`` before it is killed.

This module knows nothing of environments or invokes: its callers say which trees to watch.
"""

from __future__ import annotations

import asyncio
import math
import os
from collections.abc import Callable, Iterable

_PAGE = os.sysconf("SC_PAGE_SIZE")
MIB = 1024 * 1024
# Discover new members on every this many samples.
_DISCOVER_EVERY = 8


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


def rss_bytes(pid: int) -> int | None:
    """Resident set of one process, None when it is gone."""
    data = _read_small(f"/proc/{pid}/statm")
    if not data:
        return None
    try:
        return int(data.split()[1]) * _PAGE
    except (IndexError, ValueError):
        return None


def parent_and_group(pid: int) -> tuple[int, int] | None:
    """``(ppid, pgid)`` of a live process; None when it is gone or a zombie."""
    data = _read_small(f"/proc/{pid}/stat")
    if not data:
        return None
    # The command name may contain spaces and parentheses: fields start after the last ')'.
    fields = data[data.rfind(b")") + 2 :].split()
    try:
        if fields[0] == b"Z":
            return None
        return int(fields[1]), int(fields[2])
    except (IndexError, ValueError):
        return None


def has_marker(pid: int, marker: bytes) -> bool:
    """Whether ``marker`` (``NAME=value``) is one of the process's environment variables."""
    if not marker:
        return False
    try:
        with open(f"/proc/{pid}/environ", "rb") as f:
            environ = f.read(1 << 20)
    except OSError:
        return False
    return marker in environ.split(b"\0")


def _zombie_child_of(pid: int, parent: int) -> bool:
    data = _read_small(f"/proc/{pid}/stat")
    if not data:
        return False
    fields = data[data.rfind(b")") + 2 :].split()
    return len(fields) > 1 and fields[0] == b"Z" and fields[1] == str(parent).encode()


def _all_pids() -> set[int]:
    try:
        return {int(name) for name in os.listdir("/proc") if name.isdigit()}
    except OSError:
        return set()


class ProcessTree:
    """The processes of one process group (led by ``leader``) and their peak resident set."""

    def __init__(self, leader: int, on_over_limit: Callable[[], None], marker: bytes = b"") -> None:
        self.leader = leader
        # ``NAME=value`` in the environment of every process of this tree (see module doc).
        self.marker = marker
        self.members = {leader}
        self.peak_rss = 0
        self.on_over_limit = on_over_limit

    @property
    def peak_mb(self) -> int:
        return math.ceil(self.peak_rss / MIB) if self.peak_rss else 0

    def sample(self) -> int:
        """Sum the members' resident sets now (forgetting members that exited)."""
        total = 0
        gone = []
        for pid in self.members:
            rss = rss_bytes(pid)
            if rss is None:
                gone.append(pid)
            else:
                total += rss
        for pid in gone:
            self.members.discard(pid)
        if total > self.peak_rss:
            self.peak_rss = total
        return total

    def owns_orphan(self, pid: int, parent: int) -> bool:
        """Whether ``pid``, whose parent is ``parent``, is an orphan of this tree re-parented
        to the emulator (or to init, without a subreaper)."""
        return parent in (os.getpid(), 1) and pid != self.leader and has_marker(pid, self.marker)

    def collect(self) -> set[int]:
        """Every live process of the tree now, from a full ``/proc`` scan (before a kill): the
        group, everything descending from a member, and the orphans bearing its marker."""
        procs: dict[int, tuple[int, int]] = {}
        for pid in _all_pids():
            found = parent_and_group(pid)
            if found is not None:
                procs[pid] = found
        children: dict[int, list[int]] = {}
        for pid, (parent, _) in procs.items():
            children.setdefault(parent, []).append(pid)
        roots = [
            pid
            for pid, (parent, group) in procs.items()
            if pid == self.leader or group == self.leader or self.owns_orphan(pid, parent)
        ]
        members: set[int] = set()
        while roots:
            pid = roots.pop()
            if pid not in members:
                members.add(pid)
                roots.extend(children.get(pid, ()))
        # The leader may be a zombie by now; it stays a member until it is reaped. So do
        # members that exited as orphans of the emulator: they wait for it to reap them.
        members.add(self.leader)
        me = os.getpid()
        members.update(pid for pid in self.members - members if _zombie_child_of(pid, me))
        self.members = members
        return members


class MemoryMonitor:
    """Samples, on a timer, the trees its owner reports busy; enforces the memory limit.

    ``busy()`` returns the trees to sample now (initializing or running an invoke); ``live()``
    every tree whose process is still alive (new pids are matched against their groups). The
    timer runs only while something is busy, so an idle emulator does no work.
    """

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        *,
        interval: float,
        limit_bytes: int,
        busy: Callable[[], Iterable[ProcessTree]],
        live: Callable[[], Iterable[ProcessTree]],
    ) -> None:
        self.loop = loop
        self.interval = interval
        self.limit_bytes = limit_bytes
        self._busy = busy
        self._live = live
        self._handle: asyncio.TimerHandle | None = None
        # Trees to sample at the next tick even if idle by then (an invoke shorter than the
        # interval still gets a measurement).
        self._marked: set[ProcessTree] = set()
        self._known_pids: set[int] = set()
        self._ticks = 0
        self._new_process = False
        self.stopped = False

    def process_started(self) -> None:
        """A process started: look for members at the next tick, and start ticking."""
        self._new_process = True
        self.ensure_polling()

    def mark(self, tree: ProcessTree) -> None:
        """``tree`` starts work: sample it at the next tick whatever its state then."""
        self._marked.add(tree)
        if self._handle is None:
            self.ensure_polling()

    def forget(self, tree: ProcessTree) -> None:
        self._marked.discard(tree)

    def ensure_polling(self) -> None:
        if self._handle is None and not self.stopped:
            self._handle = self.loop.call_later(self.interval, self._tick)

    def stop(self) -> None:
        self.stopped = True
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None

    def _tick(self) -> None:
        self._handle = None
        live = list(self._live())
        marked = self._marked
        watched = set(self._busy())
        watched.update(tree for tree in live if tree in marked)
        marked.clear()
        if not watched:
            return
        self._ticks += 1
        if self._ticks % _DISCOVER_EVERY == 1 or self._new_process:
            self._new_process = False
            self._discover(live)
        for tree in watched:
            self.check(tree)
        self.ensure_polling()

    def check(self, tree: ProcessTree) -> None:
        """Sample ``tree`` now; over the limit, its ``on_over_limit`` runs."""
        if tree.sample() > self.limit_bytes:
            tree.on_over_limit()

    def _discover(self, live: list[ProcessTree]) -> None:
        pids = _all_pids()
        new = pids - self._known_pids
        self._known_pids = pids
        if not new:
            return
        groups = {tree.leader: tree for tree in live}
        owner = {pid: tree for tree in live for pid in tree.members}
        # Ascending pids: a parent is usually seen before its children.
        for pid in sorted(new):
            found = parent_and_group(pid)
            if found is None:
                continue
            parent, group = found
            tree = groups.get(group) or owner.get(parent)
            if tree is None:
                tree = next((t for t in live if t.owns_orphan(pid, parent)), None)
            if tree is not None:
                tree.members.add(pid)
                owner[pid] = tree
