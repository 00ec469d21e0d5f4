"""Starting runtime processes and driving the Runtime API server process for them."""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import Any

from bench import rapi_server
from bench.rapi_server import BatchStats

REPO_ROOT = Path(__file__).resolve().parent.parent
TASK_ROOT = Path(__file__).resolve().parent / "task_root"
HANDLER = "handlers.echo"
# A handler whose module imports boto3, as most Lambda functions do: it shows what init costs
# with typical user code, where the runtime's own imports overlap with the user's.
BOTO3_HANDLER = "handlers_boto3.echo"


class BenchError(Exception):
    """Something broke (a runtime failed to start, answered wrongly, or died): not a slow result."""


@dataclass(frozen=True)
class RuntimeSpec:
    label: str
    module: str  # started as `python -m MODULE HANDLER`


def runtime_env(port: int) -> dict[str, str]:
    """The same environment for every runtime: what Lambda sets, and nothing from the caller's
    shell that could change how Python starts (PYTHONDONTWRITEBYTECODE, PYTHONPATH, ...)."""
    env = {k: os.environ[k] for k in ("PATH", "HOME", "TMPDIR") if k in os.environ}
    env.update(
        {
            "AWS_LAMBDA_RUNTIME_API": f"127.0.0.1:{port}",
            "_HANDLER": HANDLER,
            "LAMBDA_TASK_ROOT": str(TASK_ROOT),
            # The runtime under test is run from the source tree, installed or not.
            "PYTHONPATH": str(REPO_ROOT),
            "AWS_LAMBDA_FUNCTION_NAME": "bench",
            "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "1024",
            "AWS_LAMBDA_LOG_GROUP_NAME": "/aws/lambda/bench",
            "AWS_LAMBDA_LOG_STREAM_NAME": "2024/01/01/[$LATEST]00000000000000000000000000000000",
            "AWS_LAMBDA_INITIALIZATION_TYPE": "on-demand",
            "AWS_REGION": "us-east-1",
            "AWS_DEFAULT_REGION": "us-east-1",
            "LANG": "C.UTF-8",
            "TZ": ":UTC",
        }
    )
    return env


class Server:
    """The Runtime API server process (see bench.rapi_server) and its control pipe."""

    def __init__(self, cpu: int | None = None) -> None:
        ctx = multiprocessing.get_context("spawn")
        self._conn, child = ctx.Pipe()
        self._proc = ctx.Process(target=rapi_server.serve, args=(child, cpu), daemon=True)
        self._proc.start()
        child.close()
        msg = self._recv(30.0)
        if msg[0] != "ready":
            raise BenchError(f"Runtime API server did not start: {msg!r}")
        self.port: int = msg[1]
        self._reset_token = 0

    @property
    def conn(self) -> Connection:
        return self._conn

    def _recv(self, timeout: float) -> Any:
        if not self._conn.poll(timeout):
            raise BenchError(f"Runtime API server did not answer within {timeout:.0f} s")
        return self._conn.recv()

    def load(self, name: str, body: bytes) -> None:
        self._conn.send(("load", name, body))

    def reset(self) -> None:
        """Forget the previous runtime and any message about it still in the pipe."""
        self._reset_token += 1
        self._conn.send(("reset", self._reset_token))
        while True:
            msg = self._recv(30.0)
            if msg[0] == "reset_done" and msg[1] == self._reset_token:
                return

    def start_batch(self, name: str, n: int) -> None:
        self._conn.send(("batch", name, n))

    def stop(self) -> None:
        with contextlib.suppress(OSError):
            self._conn.send(("stop",))
        self._proc.join(5)
        if self._proc.is_alive():
            self._proc.kill()
            self._proc.join()
        self._conn.close()


class Runtime:
    """One runtime process talking to `server`."""

    def __init__(
        self,
        spec: RuntimeSpec,
        server: Server,
        log_path: Path,
        *,
        handler: str = HANDLER,
        task_root: Path = TASK_ROOT,
        extra_env: dict[str, str] | None = None,
    ) -> None:
        self.spec = spec
        self.server = server
        self.log_path = log_path
        self.handler = handler
        self.task_root = task_root
        self.extra_env = extra_env or {}
        self.start_ns = 0
        self._proc: subprocess.Popen[bytes] | None = None
        self._pidfd: int | None = None

    @property
    def pid(self) -> int:
        assert self._proc is not None
        return self._proc.pid

    def start(self, handler: str | None = None) -> None:
        """Spawn the process (with this runtime's handler unless another is named);
        `start_ns` is taken just before the spawn."""
        handler = handler or self.handler
        env = runtime_env(self.server.port)
        env.update(_HANDLER=handler, LAMBDA_TASK_ROOT=str(self.task_root))
        env.update(self.extra_env)
        cmd = [sys.executable, "-m", self.spec.module, handler]
        with open(self.log_path, "ab") as log:
            self.start_ns = time.monotonic_ns()
            self._proc = subprocess.Popen(
                cmd, cwd=self.task_root, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=log
            )
        try:
            self._pidfd = os.pidfd_open(self._proc.pid)
        except (AttributeError, OSError):
            self._pidfd = None

    def wait_idle(self, timeout: float) -> tuple[int, BatchStats]:
        """Until the runtime's /next finds nothing to serve; returns (arrival_ns, stats)."""
        assert self._proc is not None
        deadline = time.monotonic() + timeout
        conn = self.server.conn
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise BenchError(
                    f"{self.spec.label}: no /next within {timeout:.0f} s{self._log_tail()}"
                )
            waitables: list[Any] = [conn]
            if self._pidfd is not None:
                waitables.append(self._pidfd)
            ready = wait(waitables, min(left, 0.05 if self._pidfd is None else left))
            if conn in ready:
                msg = conn.recv()
                if msg[0] == "idle":
                    return msg[1], msg[2]
                if msg[0] == "fatal":
                    raise BenchError(f"{self.spec.label}: {msg[1]}{self._log_tail()}")
                continue
            rc = self._proc.poll()
            if rc is not None and not conn.poll():
                raise BenchError(
                    f"{self.spec.label} exited with status {rc} before its /next{self._log_tail()}"
                )

    def _log_tail(self) -> str:
        try:
            data = self.log_path.read_bytes()[-3000:].decode(errors="replace")
        except OSError:
            return ""
        return f"\n--- last lines of {self.log_path} ---\n{data}" if data.strip() else ""

    def kill(self) -> None:
        """Immediate stop, for cold-start measurements."""
        if self._proc is not None and self._proc.poll() is None:
            self._proc.kill()
        self._reap()

    def stop(self, grace: float = 2.0) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.send_signal(signal.SIGTERM)
            try:
                self._proc.wait(grace)
            except subprocess.TimeoutExpired:
                self._proc.kill()
        self._reap()

    def _reap(self) -> None:
        if self._proc is not None:
            self._proc.wait()
        if self._pidfd is not None:
            os.close(self._pidfd)
            self._pidfd = None


def pick_cpu() -> int | None:
    """The CPU that servers, runtimes and the harness are pinned to, or None if unsupported.

    Left to itself the scheduler may keep one runtime on its server's core and the other
    across cores; cross-core wake-ups cost more (in a VM each is an IPI, a VM exit), which
    showed up as a 10-15% difference between two identical runtimes. One shared CPU gives
    both the same layout; the last one is picked because CPU 0 tends to take more interrupts.
    """
    try:
        return max(os.sched_getaffinity(0))
    except (AttributeError, OSError, ValueError):
        return None


def env_for_display(env: Mapping[str, str]) -> dict[str, str]:
    return {k: v for k, v in sorted(env.items()) if k not in ("PATH", "HOME", "TMPDIR")}
