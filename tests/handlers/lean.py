"""A handler module that imports nothing beyond sys, as a minimal function would: it shows what
the runtime itself has loaded by the time the first invoke runs."""

from __future__ import annotations

import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

# Modules a cold start leaves out (runtime.deferred and runtime.logs say why). `typing` is not
# imported here at run time: annotations stay strings under the __future__ import.
LEFT_OUT = ("inspect", "ast", "dis", "tokenize", "logging", "threading", "traceback", "typing")


def loaded(event: Any, context: Any) -> Any:
    """The LEFT_OUT modules whose code has run in this process."""
    return [
        name
        for name in LEFT_OUT
        if name in sys.modules and type(sys.modules[name]).__name__ == "module"
    ]


def log_late(event: Any, context: Any) -> Any:
    """Import logging only now, in the invoke, and log through it."""
    import logging

    logging.getLogger("late").warning("imported during the invoke")
    return [type(h).__name__ for h in logging.getLogger().handlers]


def inspect_late(event: Any, context: Any) -> Any:
    """Define a dataclass and read a signature: what needs the real `inspect`."""
    import dataclasses
    import inspect

    @dataclasses.dataclass
    class Point:
        x: int
        y: int = 0

    return {"doc": Point.__doc__, "signature": str(inspect.signature(loaded))}


def trace_env(event: Any, context: Any) -> Any:
    """_X_AMZN_TRACE_ID as Python code sees it and, when asked, as a subprocess inherits it."""
    import os

    seen = [os.environ.get("_X_AMZN_TRACE_ID")]
    if event.get("subprocess"):
        import subprocess

        script = 'printf %s "${_X_AMZN_TRACE_ID-UNSET}"'
        seen.append(subprocess.run(["sh", "-c", script], capture_output=True, text=True).stdout)
    return seen
