"""pytest plugin (registered through the ``pytest11`` entry point): the ``lambda_emulator`` fixture.

``lambda_emulator`` is a factory: call it with the same arguments as
:class:`runtime.emulator.Emulator`; it returns a started emulator, and every emulator it started
is stopped (environments shut down, processes reaped) when the test ends::

    def test_hello(lambda_emulator):
        fn = lambda_emulator("app.handler", task_root="examples/hello", timeout=2)
        result = fn.invoke({"name": "World"})
        assert result.ok and result.payload["message"] == "Hello, World!"

Function output and platform lines go to stderr (``echo=True`` by default here), so pytest shows
them next to a failing test.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from .api import Emulator

EmulatorFactory = Callable[..., "Emulator"]


@pytest.fixture
def lambda_emulator() -> Iterator[EmulatorFactory]:
    """Factory fixture: ``lambda_emulator(handler, **options) -> Emulator`` (started)."""
    started: list[Emulator] = []

    # Imported here so that merely loading the plugin stays cheap for test runs that never use it.
    from .api import Emulator

    def factory(handler: str = "", **options: Any) -> Emulator:
        options.setdefault("echo", True)
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
