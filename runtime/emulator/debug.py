"""``--debug-port PORT``: environments start under debugpy, listening on loopback.

The emulator's wrapper module (see :mod:`.isolation`) calls ``debugpy.listen(("127.0.0.1",
PORT))`` in the runtime process before the runtime starts, and with ``--debug-wait`` waits for
the debugger to attach (so breakpoints in module-level code and init are hit too). While
debugging, a paused handler must not be killed: the function timeout (and the init limit) are
suspended, every REPORT line says so, and only one environment runs at a time (one port).
"""

from __future__ import annotations

import dataclasses
import importlib.util
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .config import EmulatorConfig

# Stands in for "no timeout" (a day): the deadline the function sees stays a real number.
SUSPENDED_TIMEOUT = 86400.0
REPORT_NOTE = "Timeout: suspended (debugger)"
_SETTING = "_LAMBDA_EMULATOR_DEBUG"


def debugging_config(config: EmulatorConfig) -> EmulatorConfig:
    """The settings environments run with while debugging: one at a time, no time limits."""
    if config.debug_port is None:
        return config
    copy = dataclasses.replace(config, concurrency=1)
    # Past the option checks (a day is over the 900 s a user may set): emulator-made values.
    copy.timeout = SUSPENDED_TIMEOUT
    copy.init_timeout = SUSPENDED_TIMEOUT
    return copy


def invoke_wait(config: EmulatorConfig) -> float:
    """How long a caller may wait for an invoke: its timeout and init, or, while debugging, as
    long as the debugger holds it."""
    if config.debug_port is not None:
        return SUSPENDED_TIMEOUT
    return config.timeout + config.init_timeout * 2


def status_lines(config: EmulatorConfig, names: list[str]) -> list[str]:
    """What ``serve`` says at start about debugging (one port per function of a template)."""
    if config.debug_port is None:
        return []
    wait = ", each environment waits for the attach" if config.debug_wait else ""
    port = config.debug_port
    ports = ", ".join(f"{name} on 127.0.0.1:{port + i}" for i, name in enumerate(names))
    return [
        f"Debugger: each environment runs debugpy, {ports} (from its first invoke){wait}; "
        "attach your IDE there; the function timeout is suspended, concurrency is 1"
    ]


def runtime_env(config: EmulatorConfig, index: int = 0) -> dict[str, str]:
    """The wrapper's debug settings; ``index`` shifts the port for the functions of a template
    after the first (each function has its own environments, each needs its own port)."""
    if config.debug_port is None:
        return {}
    spec = importlib.util.find_spec("debugpy")
    assert spec is not None and spec.origin is not None
    address = f"127.0.0.1:{config.debug_port + index}" + (":wait" if config.debug_wait else "")
    return {
        _SETTING: address,
        # Where debugpy is, for an --isolated interpreter that has no site-packages.
        f"{_SETTING}PY": str(Path(spec.origin).parent.parent),
    }
