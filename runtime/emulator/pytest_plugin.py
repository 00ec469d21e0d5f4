"""pytest plugin (registered through the ``pytest11`` entry point): the ``lambda_emulator`` fixture.

``lambda_emulator`` is a factory: call it with the same arguments as
:class:`runtime.emulator.Emulator`; it returns a started emulator, and every emulator it started
is stopped (environments shut down, processes reaped) when the test ends::

    def test_hello(lambda_emulator):
        fn = lambda_emulator("app.handler", task_root="examples/hello", timeout=2)
        result = fn.invoke({"name": "World"})
        assert result.ok and result.payload["message"] == "Hello, World!"

A whole SAM or CloudFormation template works the same way; pick a function by its logical id,
its FunctionName or its ARN::

    def test_users(lambda_emulator):
        app = lambda_emulator(template="template.yaml", parameter_overrides={"Stage": "test"})
        result = app.function("UsersFunction").invoke({"pathParameters": {"id": "42"}})
        assert result.ok

Function output and platform lines are kept per test and shown in the report of a failing test,
as a section of its own ("lambda emulator log"). They are not echoed to stderr: the emulator
writes from its own thread, a moment after the response, and pytest's capture may already be
suspended by then. Pass ``echo=...`` to send them somewhere else instead.
"""

from __future__ import annotations

import io
import time
from collections.abc import Callable, Generator, Iterator
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from .api import Emulator

EmulatorFactory = Callable[..., "Emulator"]

# The logs of the emulators a test started, kept for its report.
_LOGS = pytest.StashKey[list[io.BytesIO]]()
# The emulator batches its output for up to 10 ms; this covers that and an invoke's end.
_SETTLE_S = 0.2


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, Any, None]:
    outcome = yield
    report = outcome.get_result()
    logs = item.stash.get(_LOGS, None)
    if not logs or report.passed or call.when == "setup":
        return
    time.sleep(_SETTLE_S)
    text = "".join(log.getvalue().decode("utf-8", "replace") for log in logs)
    if text:
        report.sections.append((f"lambda emulator log {call.when}", text))


@pytest.fixture
def lambda_emulator(request: pytest.FixtureRequest) -> Iterator[EmulatorFactory]:
    """Factory fixture: ``lambda_emulator(handler, **options) -> Emulator`` (started)."""
    started: list[Emulator] = []

    # Imported here so that merely loading the plugin stays cheap for test runs that never use it.
    from .api import Emulator

    logs = request.node.stash.setdefault(_LOGS, [])

    def factory(handler: str = "", **options: Any) -> Emulator:
        if "echo" not in options:
            log = io.BytesIO()
            logs.append(log)
            options["echo"] = log
        emulator = Emulator(handler, **options)
        emulator.start()
        started.append(emulator)
        return emulator

    yield factory
    errors: list[BaseException] = []
    for emulator in reversed(started):
        try:
            emulator.stop()
        except Exception as exc:  # stop every emulator even when one fails to
            errors.append(exc)
    if errors:
        raise errors[0]
