"""Fixtures for the emulator tests: both runtimes, and a leak check around every test.

Every emulator a test starts marks its runtime processes with an environment variable; after
the test (and after its emulators stopped) no process may still carry the mark, and the test
process may not hold more sockets, pipes or pidfds than before.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from emulator_support import (
    HANDLERS,
    MARK,
    MARK_VAR,
    RUNTIMES,
    describe_sockets,
    marked_processes,
    open_fds,
)

from runtime.emulator import Emulator
from runtime.emulator.app import new_event_loop

# The plugin is registered through an entry point once the project is installed; importing the
# fixture here makes these tests work from a plain checkout too (a conftest fixture of the same
# name simply takes precedence).
from runtime.emulator.pytest_plugin import lambda_emulator  # noqa: F401

# uvloop (used when installed) opens a few process-wide pipes with its first loop: open them
# now, so the per-test leak check below compares like with like.
new_event_loop().close()


@pytest.fixture(autouse=True)
def no_leaks() -> Iterator[None]:
    before = open_fds()
    yield
    deadline = time.monotonic() + 5
    while True:
        leftover = marked_processes()
        after = open_fds()
        leaked = {k: after[k] - before[k] for k in after if after[k] > before[k]}
        if (not leftover and not leaked) or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert not leftover, f"runtime processes left running: {leftover}"
    assert not leaked, f"file descriptors leaked: {leaked} {describe_sockets()}"


@pytest.fixture(params=list(RUNTIMES))
def runtime_name(request: pytest.FixtureRequest) -> str:
    return str(request.param)


Factory = Callable[..., Emulator]


@pytest.fixture
def make(lambda_emulator: Factory) -> Factory:  # noqa: F811
    """``make(handler, runtime="ours", **options)``: an emulator over tests/emulator/handlers."""

    def factory(handler: str, runtime: str = "ours", **options: Any) -> Emulator:
        options.setdefault("task_root", HANDLERS)
        options.setdefault("timeout", 2)
        options.setdefault("echo", False)
        env = dict(options.pop("env", {}) or {})
        env[MARK_VAR] = MARK
        options["env"] = env
        if "runtime_cmd" not in options:
            options["runtime_cmd"] = RUNTIMES[runtime]
        return lambda_emulator(handler, **options)

    return factory


@pytest.fixture
def emulator(make: Factory, runtime_name: str) -> Callable[..., Emulator]:
    """Like ``make`` but for the runtime of the current parametrisation (ours, awslambdaric)."""

    def factory(handler: str, **options: Any) -> Emulator:
        return make(handler, runtime=runtime_name, **options)

    return factory


@pytest.fixture
def lambda_client():
    """``lambda_client(url)``: a boto3 Lambda client for an emulator, closed after the test."""
    # (boto3 takes a while to import: only the tests that use it pay.)
    import boto3
    import botocore.config

    clients = []

    def make_client(url: str):
        client = boto3.client(
            "lambda",
            endpoint_url=url,
            region_name="us-east-1",
            aws_access_key_id="test",
            aws_secret_access_key="test",
            config=botocore.config.Config(
                retries={"max_attempts": 1, "mode": "standard"}, read_timeout=30
            ),
        )
        clients.append(client)
        return client

    yield make_client
    for client in clients:
        client.close()
    # A botocore response keeps its connection checked out of the pool (so client.close() does
    # not reach it) until the response is garbage collected; collect now so the leak check
    # sees only what the emulator left behind.
    gc.collect()
