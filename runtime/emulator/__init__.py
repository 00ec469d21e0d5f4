"""The local Lambda emulator: Invoke API + Runtime API, real environments, a pytest fixture.

Public API: :class:`Emulator` (context manager), :class:`InvokeResult`, :class:`Report`,
:class:`FunctionError`, :class:`ConfigError`. The command line is ``lambda-runtime serve`` and
``lambda-runtime invoke`` (:mod:`runtime.emulator.cli`); the pytest fixture is
``lambda_emulator`` (:mod:`runtime.emulator.pytest_plugin`).

Names are imported on first use, so loading the pytest plugin (which every pytest run of a
project with lambda-runtime installed does) costs nothing until a test asks for the emulator.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .api import Emulator, FunctionClient, FunctionError, InvokeResult
    from .config import ConfigError
    from .reports import Report

__all__ = [
    "ConfigError",
    "Emulator",
    "FunctionClient",
    "FunctionError",
    "InvokeResult",
    "Report",
]

_WHERE = {
    "Emulator": "api",
    "FunctionClient": "api",
    "FunctionError": "api",
    "InvokeResult": "api",
    "ConfigError": "config",
    "Report": "reports",
}


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from importlib import import_module

    value = getattr(import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value
