"""The inner-loop options wired into the emulator: ``--watch``, ``--debug-port``,
``--strict-imports``, ``--isolated`` and ``--package`` (see :mod:`.watch`, :mod:`.debug`,
:mod:`.isolation`).

:class:`DevLoop` is what :class:`~runtime.emulator.app.EmulatorCore` asks when it makes a
function's scheduler: the settings its environments run with, their extra variables, and it owns
what those need (the staged runtime core, unpacked packages, the file watcher, layer folders
rebuilt after a change) until the emulator stops.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from . import debug, isolation
from .layers import LayerRoot
from .watch import Watched, Watcher, describe, drop_bytecode, sort_changes

if TYPE_CHECKING:
    from .config import EmulatorConfig
    from .functions import Function, FunctionRegistry
    from .lifecycle import Lifecycle


class DevLoop:
    def __init__(
        self,
        functions: FunctionRegistry,
        make_env: Callable[[EmulatorConfig, Path], dict[str, str]],
        say: Callable[[str], None],
    ) -> None:
        self.functions = functions
        # The runtime environment the emulator builds for a config and a layer folder.
        self._make_env = make_env
        self._say = say
        self._stage: isolation.CoreStage | None = None
        self._unpacked: list[isolation.Unpacked] = []
        # What each function's environments run with (made with its scheduler).
        self._configs: dict[str, EmulatorConfig] = {}
        # Layer folders replaced after a change, still used by environments finishing.
        self._old_layers: list[LayerRoot] = []
        self._watcher: Watcher | None = None

    def run_config(self, fn: Function) -> EmulatorConfig:
        """``fn``'s settings as its environments run: unpacked (--package), debugging."""
        config = fn.config
        if config.package is not None:
            unpacked = isolation.Unpacked(config)
            self._unpacked.append(unpacked)
            config = unpacked.config
        config = debug.debugging_config(config)
        self._configs[fn.name] = config
        return config

    def runtime_env(self, fn: Function, config: EmulatorConfig, layer_root: Path) -> dict[str, str]:
        """The runtime's environment: the emulator's, plus the wrapper's settings."""
        packaged = (layer_root / "python" / "runtime").is_dir()
        if config.isolated and not packaged and self._stage is None:
            self._stage = isolation.CoreStage()
        env = self._make_env(config, layer_root)
        env.update(isolation.runtime_env(config, layer_root, self._stage))
        env.update(debug.runtime_env(config, self.functions.functions.index(fn)))
        return env

    def lifecycle_made(self, lifecycle: Lifecycle, config: EmulatorConfig) -> None:
        if config.debug_port is not None:
            lifecycle.platform.report_note = debug.REPORT_NOTE

    # -- --watch

    def start_watching(self, loop: asyncio.AbstractEventLoop) -> None:
        paths: set[Path] = set()
        for fn in self.functions:
            paths.add(fn.config.task_root)
            paths.update(fn.config.layers)
        self._watcher = Watcher(paths, loop, self._changed)

    def _changed(self, paths: set[str]) -> None:
        if self.functions.closing:
            return
        watched = [Watched(fn.name, fn.config.task_root, fn.config.layers) for fn in self.functions]
        drop_bytecode(paths)
        for change in sort_changes(watched, paths):
            fn = self.functions.get(change.name)
            if fn is None:
                continue
            if fn.scheduler is not None and (change.code or change.layers):
                if change.layers:
                    self._refresh_layers(fn)
                fn.scheduler.reload()
            for line in describe(change):
                self._say(line)

    def _refresh_layers(self, fn: Function) -> None:
        """Layers merged into a folder of ours (zips, several layers) are merged again; a single
        folder layer is used in place, so new environments see the change anyway."""
        config = self._configs.get(fn.name)
        if config is None or fn.layers is None or fn.scheduler is None:
            return
        if len(config.layers) == 1 and config.layers[0].is_dir():
            return
        self._old_layers.append(fn.layers)
        fn.layers = LayerRoot(config.layers)
        fn.scheduler.lifecycle.base_env = self.runtime_env(fn, config, fn.layers.path)

    def close(self) -> None:
        if self._watcher is not None:
            self._watcher.close()
            self._watcher = None
        for layers in self._old_layers:
            layers.cleanup()
        self._old_layers.clear()
        for unpacked in self._unpacked:
            unpacked.cleanup()
        self._unpacked.clear()
        if self._stage is not None:
            self._stage.cleanup()
            self._stage = None


def devloop_lines(config: EmulatorConfig, names: list[str] | None = None) -> list[str]:
    """What ``serve`` says at start about the inner-loop options in use."""
    lines = []
    if config.watch:
        lines.append(
            "Watching the code and layers (--watch): a saved Python file reloads its function"
        )
    lines += debug.status_lines(config, names or [config.function_name])
    if config.package is not None:
        lines.append(f"Imports: the zips in {config.package}, unpacked as on Lambda, isolated")
    elif config.isolated:
        lines.append("Imports: isolated (task root, layers and the runtime core only)")
    elif config.strict_imports:
        lines.append("Imports: strict (a module from your virtual environment fails to import)")
    return lines
