"""SnapStart: the hooks around the snapshot, and what the runtime refreshes after a restore.

With ``AWS_LAMBDA_INITIALIZATION_TYPE=snap-start`` Lambda takes a snapshot of the initialized
environment and starts later environments from it. User code prepares for that with hooks:
before-snapshot hooks run once, after init (last registered first); after-restore hooks run in
every environment restored from the snapshot, before its first invoke (first registered first).
This is the order awslambdaric uses.

Hooks registered with AWS's ``snapshot-restore-py`` package (``from snapshot_restore_py import
register_before_snapshot``) work unchanged: the runtime reads that package's registry. When the
package can be imported, :func:`register_before_snapshot` and :func:`register_after_restore`
register into it too, so hooks registered either way keep one order; without it they keep their
own list and the runtime does not need the package.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable

# typing costs milliseconds of cold start; it is only needed by the type checker.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from types import ModuleType
    from typing import Any, TypeVar

    F = TypeVar("F", bound=Callable[..., Any])
    Hook = tuple[Callable[..., Any], tuple[Any, ...], dict[str, Any]]

PACKAGE = "snapshot_restore_py"

# Registered by user code at import time, before any runtime object exists to hold them (like
# the shutdown hooks), and only when snapshot-restore-py cannot be imported.
_before_snapshot: list[Hook] = []
_after_restore: list[Hook] = []


def register_before_snapshot(func: F, *args: Any, **kwargs: Any) -> F:
    """Run ``func(*args, **kwargs)`` once before Lambda takes the snapshot (usable as a
    decorator). Hooks run last registered first; an exception fails the snapshot
    (``Runtime.BeforeSnapshotError``)."""
    _check(func, "register_before_snapshot")
    package = _package()
    if package is not None:
        package.register_before_snapshot(func, *args, **kwargs)
    else:
        _before_snapshot.append((func, args, kwargs))
    return func


def register_after_restore(func: F, *args: Any, **kwargs: Any) -> F:
    """Run ``func(*args, **kwargs)`` in each environment restored from the snapshot, before
    its first invoke (usable as a decorator). Hooks run first registered first; an exception
    fails the restore (``Runtime.AfterRestoreError``)."""
    _check(func, "register_after_restore")
    package = _package()
    if package is not None:
        package.register_after_restore(func, *args, **kwargs)
    else:
        _after_restore.append((func, args, kwargs))
    return func


def run_before_snapshot() -> None:
    """The before-snapshot hooks, last registered first; each is removed as it runs (a hook
    that registers another one gets it run next). The first exception propagates."""
    for registry in (*_package_registries(0), _before_snapshot):
        while registry:
            func, args, kwargs = registry.pop()
            func(*args, **kwargs)


def run_after_restore() -> None:
    """The after-restore hooks, first registered first. The first exception propagates."""
    for registry in (_after_restore, *_package_registries(1)):
        for func, args, kwargs in list(registry):
            func(*args, **kwargs)


def refresh_after_restore() -> None:
    """What the runtime itself must not carry over from the snapshot into every restored
    environment; runs before the after-restore hooks.

    * the ``random`` module's shared generator (and with it the OpenTelemetry trace and span
      ids, and ``uuid.uuid1()``'s clock sequence, which draw from it): reseeded from the OS;
    * ``_X_AMZN_TRACE_ID``: whatever init left there belongs to no invoke of this environment.

    ``os.urandom``, ``secrets``, ``random.SystemRandom`` and ``uuid.uuid4()`` read the kernel and
    are fresh anyway. Nothing else the runtime keeps depends on time or identity: request
    heads for the Runtime API hold only the host and the user agent, log timestamps are taken
    per record, deadlines come with each invoke.
    """
    random = sys.modules.get("random")
    if random is not None:  # never imported: no generator state to refresh
        random.seed()
    os.environ.pop("_X_AMZN_TRACE_ID", None)


def _check(func: object, name: str) -> None:
    if not callable(func):
        raise TypeError(f"{name}() needs a callable, got {type(func).__name__}")


def _package() -> ModuleType | None:
    """snapshot_restore_py when it can be imported (from the function's package, a layer or
    site-packages), else None."""
    module = sys.modules.get(PACKAGE)
    if module is None:
        try:
            module = __import__(PACKAGE)
        except ImportError:
            return None
    return module


def _package_registries(which: int) -> tuple[list[Hook], ...]:
    """The package's before-snapshot (0) or after-restore (1) list, when user code (or our
    own registration) imported it; the runtime does not import it just to find it empty."""
    module = sys.modules.get(PACKAGE)
    if module is None:
        return ()
    getter = module.get_before_snapshot if which == 0 else module.get_after_restore
    registry = getter()
    return (registry,) if isinstance(registry, list) else ()
