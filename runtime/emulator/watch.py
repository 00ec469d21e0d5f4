"""``--watch``: a change to a function's code or layers makes its next invoke use a fresh
environment.

The folders are watched with ``watchfiles`` (inotify and friends, through its Rust backend, in
one thread of ours): changes are grouped until the files are quiet for ``_STEP_MS`` (an editor's
save is several events), then handed to the emulator's loop. There, every environment of each
function concerned is marked stale: a free one is stopped at once, a busy one finishes its
invoke on the old code and is stopped as soon as it is idle (see ``Scheduler.reload``); the next
invoke starts a new environment, which imports the new code. One line says what reloaded.

Python files count (and layer zips given as files); ``requirements.txt`` is not code the
emulator can reload (its packages come from your virtual environment), so a change to it is
only noted.
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .config import ConfigError

if TYPE_CHECKING:
    from watchfiles._rust_notify import RustNotify

# Changes are grouped until nothing changed for this long (an editor writes a file in several
# steps: truncate, write, rename, chmod), and for at most _DEBOUNCE_MS.
_STEP_MS = 50
_DEBOUNCE_MS = 1600
# How often the watching thread looks at its stop flag while nothing changes.
_TIMEOUT_MS = 500
REQUIREMENTS = "requirements.txt"


@dataclass
class Watched:
    """What one function's reload depends on."""

    name: str
    code: Path
    layers: Sequence[Path]


@dataclass
class Reload:
    """The changes that concern one function, relative to its folders."""

    name: str
    code: list[str]
    layers: list[str]
    requirements: list[str]


def _relevant(path: str) -> bool:
    from runtime.packaging.core import EXCLUDED_DIRS

    parts = Path(path).parts
    if any(part in EXCLUDED_DIRS for part in parts[:-1]):
        return False
    name = parts[-1] if parts else ""
    return name.endswith(".py") or name == REQUIREMENTS or name.lower().endswith(".zip")


def sort_changes(watched: Iterable[Watched], paths: Iterable[str]) -> list[Reload]:
    """Which function each changed path belongs to (a shared layer concerns several)."""
    relevant = sorted({p for p in paths if _relevant(p)})
    result = []
    for fn in watched:
        reload = Reload(fn.name, [], [], [])
        for path in relevant:
            changed = Path(path)
            if changed.is_relative_to(fn.code):
                shown = str(changed.relative_to(fn.code))
                if changed.name == REQUIREMENTS:
                    reload.requirements.append(shown)
                elif changed.suffix == ".py":
                    reload.code.append(shown)
                continue
            for layer in fn.layers:
                if changed == layer or (changed.is_relative_to(layer) and changed.suffix == ".py"):
                    reload.layers.append(f"{layer.name}/{changed.relative_to(layer)}".rstrip("/."))
        if reload.code or reload.layers or reload.requirements:
            result.append(reload)
    return result


def describe(reload: Reload) -> list[str]:
    """The line(s) a reload prints."""
    lines = []
    changed = reload.code + [f"layer {name}" for name in reload.layers]
    if changed:
        more = f" and {len(changed) - 5} more" if len(changed) > 5 else ""
        shown = ", ".join(changed[:5]) + more
        lines.append(
            f"lambda-runtime emulator: reloaded {reload.name} ({shown} changed): the next invoke "
            "starts a fresh environment; invokes in flight finish on the old code"
        )
    for name in reload.requirements:
        lines.append(
            f"lambda-runtime emulator: {reload.name}: {name} changed: not reloaded (its packages "
            "come from your virtual environment: install them there; `lambda-runtime package` "
            "reads it)"
        )
    return lines


def drop_bytecode(paths: Iterable[str]) -> None:
    """Remove the cached bytecode of changed Python files: Python trusts a ``.pyc`` whose
    source has the same size and modification second, so a quick edit that keeps the size
    (``v1`` -> ``v2``) would otherwise reload the old code."""
    for path in paths:
        source = Path(path)
        if source.suffix != ".py":
            continue
        for cached in (source.parent / "__pycache__").glob(f"{source.stem}.*.pyc"):
            cached.unlink(missing_ok=True)


def split_roots(paths: Iterable[Path]) -> tuple[list[str], list[str]]:
    """(folders watched on their own, folders watched with everything below): a task root is
    often a project folder holding a virtual environment or ``node_modules``, thousands of
    folders nobody edits (and inotify watches are limited), so those subfolders are left out."""
    from runtime.packaging.core import EXCLUDED_DIRS

    flat: set[str] = set()
    deep: set[str] = set()
    for path in paths:
        # A zip layer is replaced, not written to: its folder is watched.
        folder = path if path.is_dir() else path.parent
        flat.add(str(folder))
        for child in folder.iterdir():
            hidden = child.name.startswith(".")
            if child.is_dir() and child.name not in EXCLUDED_DIRS and not hidden:
                deep.add(str(child))
    return sorted(flat), sorted(deep)


class Watcher:
    """Watches folders in threads; calls ``on_changes`` on ``loop`` with each group of paths."""

    def __init__(
        self,
        paths: Iterable[Path],
        loop: asyncio.AbstractEventLoop,
        on_changes: Callable[[set[str]], None],
    ) -> None:
        try:
            from watchfiles._rust_notify import RustNotify
        except ImportError:
            raise ConfigError(
                "--watch needs watchfiles: pip install 'lambda-runtime[emulator]'"
            ) from None
        flat, deep = split_roots(paths)
        self._notifiers: list[RustNotify] = []
        try:
            # Created here, not in the threads: changes made right after start are not missed.
            for roots, recursive in ((flat, False), (deep, True)):
                if roots:
                    self._notifiers.append(RustNotify(roots, False, False, 300, recursive, False))
        except OSError as exc:
            self._close_notifiers()
            raise ConfigError(f"--watch: cannot watch {', '.join(flat)}: {exc}") from None
        self._loop = loop
        self._on_changes = on_changes
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._run, args=(notify,), name="lambda-emulator-watch",
                             daemon=True)
            for notify in self._notifiers
        ]
        for thread in self._threads:
            thread.start()

    def _run(self, notify: Any) -> None:
        while not self._stop.is_set():
            raw = notify.watch(_DEBOUNCE_MS, _STEP_MS, _TIMEOUT_MS, self._stop)
            if isinstance(raw, set):
                paths = {os.path.realpath(path) for _, path in raw}
                try:
                    self._loop.call_soon_threadsafe(self._on_changes, paths)
                except RuntimeError:
                    return  # the loop is closed: the emulator stopped
            elif raw == "stop":
                return

    def _close_notifiers(self) -> None:
        for notify in self._notifiers:
            notify.close()
        self._notifiers.clear()

    def close(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=5)
        self._close_notifiers()
