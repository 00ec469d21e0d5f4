"""A runtime's operating-system process: spawned in its own session, killed as a group, reaped.

Each runtime starts in a new session (so its own process group); every kill (timeout, crash
clean-up, out of memory, idle shutdown) signals the whole group, so children the function
started die with it. The exit is noticed through a pidfd registered with the event loop (or by
polling on kernels without pidfds), and the group is killed before the leader is reaped so the
group id cannot be reused in between.

Processes that leave the group (a new session) are signalled one by one: the caller passes
them as ``descendants`` (found by :meth:`runtime.emulator.memory.ProcessTree.collect`); the
emulator is a child subreaper (:func:`become_subreaper`), so such orphans become its children
and are reaped here once killed.

This module knows nothing of invokes or environments: it only runs and stops processes.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path

_POLL_EXIT = 0.05
_PR_SET_CHILD_SUBREAPER = 36
# How long killing waits for killed orphans to exit before reaping them.
_ORPHAN_REAP_WAIT = 1.0
Descendants = Callable[[], Iterable[int]]


def become_subreaper() -> bool:
    """Make this process the child subreaper of everything it starts (Linux): a process that
    leaves its runtime's group and outlives its parent is re-parented here, not to init, so it
    can still be found, counted and killed. False where that is not possible."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        return int(libc.prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)) == 0
    except (OSError, AttributeError):
        return False


def kill_each(pids: Iterable[int], sig: int) -> None:
    for pid in pids:
        if pid > 1 and pid != os.getpid():
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, sig)


def reap_orphans(pids: Iterable[int]) -> None:
    """Collect the exit status of the killed ``pids`` that became this process's children
    (bounded wait; pids that are not ours are skipped)."""
    waiting = set(pids)
    deadline = time.monotonic() + _ORPHAN_REAP_WAIT
    while waiting:
        for pid in list(waiting):
            try:
                done, _ = os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                done = pid
            if done:
                waiting.discard(pid)
        if not waiting or time.monotonic() > deadline:
            return
        time.sleep(0.002)


def killpg(pgid: int, sig: int) -> None:
    """Signal a whole process group; a group that is gone already is not an error."""
    if pgid <= 1:
        return
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


class RuntimeProcess:
    """One spawned runtime: its pid (also its process group id), its output pipe and its exit."""

    def __init__(self, popen: subprocess.Popen[bytes], out_fd: int) -> None:
        self.popen = popen
        self.pid = popen.pid
        # Read end of the pipe that is the runtime's stdout and stderr (non-blocking); whoever
        # reads it owns it and closes it.
        self.out_fd = out_fd
        self.pidfd = -1
        self.returncode: int | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        # Every process of the runtime's tree, new sessions included (set by the owner).
        self.descendants: Descendants | None = None

    @classmethod
    def spawn(cls, argv: Sequence[str], *, cwd: Path, env: Mapping[str, str]) -> RuntimeProcess:
        """Start ``argv`` in a new session, stdout and stderr into one pipe; OSError when the
        command cannot be started (no file descriptor is left open then)."""
        read_fd, write_fd = os.pipe()
        try:
            popen = subprocess.Popen(
                list(argv),
                cwd=cwd,
                env=dict(env),
                stdin=subprocess.DEVNULL,
                stdout=write_fd,
                stderr=write_fd,
                start_new_session=True,
            )
        except OSError:
            os.close(read_fd)
            os.close(write_fd)
            raise
        os.close(write_fd)
        os.set_blocking(read_fd, False)
        return cls(popen, read_fd)

    @property
    def running(self) -> bool:
        """Not reaped yet (it may be a zombie, or dying)."""
        return self.returncode is None

    def watch_exit(self, loop: asyncio.AbstractEventLoop, on_exit: Callable[[], None]) -> None:
        """Call ``on_exit`` once the process has exited (then :meth:`reap` it)."""
        self._loop = loop
        try:
            self.pidfd = os.pidfd_open(self.pid)
        except OSError:
            self.pidfd = -1
        if self.pidfd >= 0:
            loop.add_reader(self.pidfd, on_exit)
        else:
            # No pidfd (old kernel): poll for the exit instead.
            loop.call_later(_POLL_EXIT, self._poll_exit, on_exit)

    def _poll_exit(self, on_exit: Callable[[], None]) -> None:
        assert self._loop is not None
        if self.returncode is None and self.popen.poll() is None:
            self._loop.call_later(_POLL_EXIT, self._poll_exit, on_exit)
        else:
            on_exit()

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """Signal the process group, unless the process is reaped already (its group id may
        belong to someone else by now)."""
        if self.returncode is None:
            killpg(self.pid, sig)
            if self.descendants is not None:
                # Only those the group signal missed: a process sees one SIGTERM, not two (a
                # second one would land in its handler while it is still shutting down).
                kill_each(self._outside_group(self.descendants()), sig)

    def _outside_group(self, pids: Iterable[int]) -> list[int]:
        outside = []
        for pid in pids:
            try:
                if os.getpgid(pid) != self.pid:
                    outside.append(pid)
            except ProcessLookupError:
                pass
        return outside

    def _kill_all(self) -> set[int]:
        """SIGKILL the group and every descendant; the descendants, to be reaped."""
        # Kill the group while the leader (a zombie) still holds the group id.
        killpg(self.pid, signal.SIGKILL)
        others: set[int] = set()
        if self.descendants is not None:
            others = set(self.descendants()) - {self.pid}
            kill_each(others, signal.SIGKILL)
        return others

    def reap(self) -> int:
        """The leader exited: kill what it left behind, collect its exit status."""
        self._unwatch()
        others = self._kill_all()
        try:
            returncode = self.popen.wait(timeout=1)
        except subprocess.TimeoutExpired:
            killpg(self.pid, signal.SIGKILL)
            returncode = self.popen.wait()
        self.returncode = returncode
        reap_orphans(others)
        return returncode

    def abandon(self) -> None:
        """Last resort when stopping: kill the group, wait briefly, release the pidfd."""
        others = self._kill_all()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.popen.wait(timeout=2)
        reap_orphans(others)
        self._unwatch()

    def _unwatch(self) -> None:
        if self.pidfd >= 0:
            if self._loop is not None:
                self._loop.remove_reader(self.pidfd)
            os.close(self.pidfd)
            self.pidfd = -1
