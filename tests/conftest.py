"""Shared fixtures: a scripted Runtime API server on a real socket, and a runtime process."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from http.server import ThreadingHTTPServer
from pathlib import Path

import pytest
from runtime_support import (
    HANDLERS,
    RuntimeAPIStub,
    RuntimeProcess,
    make_handler,
    runtime_env,
)

from runtime.context import LambdaContext, current_context


class _RuntimeAPIServer(ThreadingHTTPServer):
    # Many slots (AWS_LAMBDA_MAX_CONCURRENCY) connect at once, as the Runtime API allows;
    # socketserver's backlog of 5 would drop SYNs, which the kernel retries a second later.
    request_queue_size = 128


@pytest.fixture
def runtime_api() -> Iterator[RuntimeAPIStub]:
    stub = RuntimeAPIStub()
    server = _RuntimeAPIServer(("127.0.0.1", 0), make_handler(stub))
    server.daemon_threads = True
    stub.server = server
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield stub
    server._stopping = True  # type: ignore[attr-defined]
    server.shutdown()
    server.server_close()


@pytest.fixture
def start_runtime(runtime_api: RuntimeAPIStub) -> Iterator[object]:
    """Start ``python -m runtime HANDLER`` (or *command* HANDLER) with cwd = task root against
    the stub."""
    started: list[RuntimeProcess] = []

    def start(
        handler: str,
        task_root: Path = HANDLERS,
        argv: bool = True,
        command: Sequence[str] = (sys.executable, "-m", "runtime"),
        **env: str,
    ) -> RuntimeProcess:
        full_env = runtime_env(runtime_api, task_root, **env)
        if not argv:
            full_env["_HANDLER"] = handler
        proc = subprocess.Popen(
            [*command, *([handler] if argv else [])],
            cwd=task_root,
            env=full_env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        rp = RuntimeProcess(proc)
        started.append(rp)
        return rp

    yield start
    for rp in started:
        rp.stop()


@pytest.fixture
def enter_invoke() -> Iterator[Callable[..., LambdaContext]]:
    """Make a LambdaContext (fields overridable) the current invoke's, as the runtime does
    during an invoke; the context variable is reset after the test."""
    tokens: list[object] = []

    def enter(**overrides: object) -> LambdaContext:
        fields: dict[str, object] = {
            "aws_request_id": str(uuid.uuid4()),
            "deadline_ms": int(time.time() * 1000) + 30_000,
            "invoked_function_arn": "arn:aws:lambda:us-east-1:123456789012:function:f",
            "function_name": "f",
            "function_version": "$LATEST",
            "memory_limit_in_mb": "128",
            "log_group_name": "/aws/lambda/f",
            "log_stream_name": "stream",
        }
        fields.update(overrides)
        ctx = LambdaContext(**fields)  # type: ignore[arg-type]
        tokens.append(current_context.set(ctx))
        return ctx

    yield enter
    for token in reversed(tokens):
        current_context.reset(token)  # type: ignore[arg-type]


# Markers by where a test lives, so a maintainer can pick a layer (`make test-fast` runs the
# unmarked unit tests). A test that spawns processes or waits on real time in a unit-test
# file says so itself with @pytest.mark.slow.
_MARK_BY_FOLDER = {
    "e2e": "e2e",
    "soak": "slow",
    "emulator": "emulator",
    "packaging": "packaging",
    "bench": "slow",
}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    root = Path(__file__).resolve().parent
    examples = root.parent / "examples"
    for item in items:
        path = Path(str(item.path)).resolve()
        if path.is_relative_to(examples):
            item.add_marker("emulator")  # every example runs through the emulator
            continue
        if not path.is_relative_to(root):
            continue
        parts = path.relative_to(root).parts
        marker = _MARK_BY_FOLDER.get(parts[0]) if len(parts) > 1 else None
        if marker is not None:
            item.add_marker(marker)
