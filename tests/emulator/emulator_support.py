"""Constants and helpers shared by the emulator tests (imported by conftest and tests)."""

from __future__ import annotations

import io
import os
import sys
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
HANDLERS = HERE / "handlers"
LAYER_SRC = HERE / "layer_src"
MARK_VAR = "LAMBDA_EMULATOR_TEST_MARK"
MARK = uuid.uuid4().hex

RUNTIMES = {
    "ours": None,
    "awslambdaric": [sys.executable, "-m", "awslambdaric"],
}


def marked_processes(variable: str = f"{MARK_VAR}={MARK}") -> list[int]:
    """Pids of live processes whose environment holds ``variable`` (by default: the runtimes,
    and their children, started by these tests' emulators)."""
    needle = variable.encode()
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/environ", "rb") as f:
                environ = f.read()
            with open(f"/proc/{name}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue
        state = stat[stat.rfind(b")") + 2 :].split()[0]
        if needle in environ.split(b"\0") and state != b"Z":
            found.append(int(name))
    return found


def open_fds() -> dict[str, int]:
    """Counts of this process's sockets, pipes and pidfds."""
    counts = {"socket": 0, "pipe": 0, "pidfd": 0}
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        for kind in counts:
            if kind in target:
                counts[kind] += 1
    return counts


def describe_sockets() -> list[str]:
    """Local and peer addresses of this process's TCP sockets (for leak messages)."""
    import socket

    found = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            if "socket" not in os.readlink(f"/proc/self/fd/{fd}"):
                continue
            sock = socket.socket(fileno=os.dup(int(fd)))
        except OSError:
            continue
        try:
            try:
                peer = sock.getpeername()
            except OSError:
                peer = None
            found.append(f"fd {fd}: {sock.getsockname()} -> {peer}")
        except OSError:
            pass
        finally:
            sock.close()
    return found


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
    """Poll ``condition`` until it holds: for states only observable by asking (the emulator's
    counters), never as a stand-in for a fixed sleep."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout} s")
        time.sleep(0.01)


class OutputWatch(io.RawIOBase):
    """An ``echo=`` stream for an Emulator that lets a test wait for a line of output."""

    def __init__(self) -> None:
        super().__init__()
        self._data = bytearray()
        self._changed = threading.Condition()

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        with self._changed:
            self._data += bytes(data)
            self._changed.notify_all()
        return len(data)

    def getvalue(self) -> bytes:
        with self._changed:
            return bytes(self._data)

    def wait_for(self, needle: bytes, timeout: float = 10.0) -> None:
        with self._changed:
            if not self._changed.wait_for(lambda: needle in self._data, timeout):
                raise AssertionError(f"{needle!r} not in the output within {timeout} s")
