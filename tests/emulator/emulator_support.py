"""Constants and helpers shared by the emulator tests (imported by conftest and tests)."""

from __future__ import annotations

import contextlib
import io
import os
import re
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
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


@contextlib.contextmanager
def serve_process(*args: str, until: str, timeout: float = 20.0) -> Iterator[str]:
    """``lambda-runtime serve ARGS`` as a real process (its runtimes marked for the leak check):
    yields what it wrote to stderr up to the first line holding ``until``; then stops it with
    SIGTERM, and it must exit 0."""
    repo = HERE.parent.parent
    proc = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys; from runtime.cli import main; sys.exit(main())",
            "serve",
            *args,
            "--env",
            f"{MARK_VAR}={MARK}",
        ],
        cwd=repo,
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
        env={**os.environ, "PYTHONPATH": str(repo)},
    )
    try:
        assert proc.stderr is not None
        banner = ""
        deadline = time.monotonic() + timeout
        while until not in banner and time.monotonic() < deadline:
            line = proc.stderr.readline()
            if not line:
                break
            banner += line
        yield banner
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, err


def serve_child(
    handler: str,
    *args: str,
    env: dict[str, str] | None = None,
    preexec_fn: Callable[[], None] | None = None,
) -> tuple[subprocess.Popen[bytes], str]:
    """``lambda-runtime serve HANDLER`` over tests/emulator/handlers in a child process (any
    free port, its runtimes marked), stderr a pipe; with the Invoke API's base URL once the
    banner is out."""
    proc = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys; from runtime.cli import main; sys.exit(main())",
            "serve",
            handler,
            "--task-root",
            str(HANDLERS),
            "--env",
            f"{MARK_VAR}={MARK}",
            "--port",
            "0",
            *args,
        ],
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        preexec_fn=preexec_fn,
        env={**os.environ, "PYTHONPATH": str(REPO), **(env or {})},
    )
    assert proc.stderr is not None
    banner = b""
    while b"Invoke API:" not in banner:
        line = proc.stderr.readline()
        if not line:
            proc.kill()
            proc.wait()
            raise AssertionError(f"the emulator did not start: {banner.decode(errors='replace')}")
        banner += line
    match = re.search(rb"Invoke API: (http://[0-9.]+:\d+)/", banner)
    assert match is not None, banner
    return proc, match.group(1).decode()
