"""Graceful shutdown hooks, run on SIGTERM within a bounded time."""

from __future__ import annotations

from collections.abc import Callable

# typing costs milliseconds of cold start; it is only needed by the type checker.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import TypeVar

    Hook = TypeVar("Hook", bound=Callable[[], object])

# Hooks are registered by user code at import time, before any runtime object exists to hold
# them, so this one list is module state; it is only read after init.
_hooks: list[Callable[[], object]] = []


def on_shutdown(hook: Hook) -> Hook:
    """Run ``hook()`` when Lambda shuts the environment down (usable as a decorator).

    Registering any hook makes the runtime register an internal extension at init, which is
    what makes Lambda send SIGTERM (and wait briefly) instead of SIGKILL.
    """
    if not callable(hook):
        raise TypeError(f"on_shutdown() needs a callable, got {type(hook).__name__}")
    _hooks.append(hook)
    return hook


def registered() -> list[Callable[[], object]]:
    return list(_hooks)


def run_hooks(budget_seconds: float, report: Callable[[str], None]) -> None:
    """Run the hooks in order in a helper thread; give up when the budget is spent."""

    def run_all() -> None:
        for hook in registered():
            try:
                hook()
            except BaseException as exc:  # sys.exit() in one hook must not skip the others
                report(f"shutdown hook {getattr(hook, '__qualname__', hook)!r} failed: "
                       f"{type(exc).__name__}: {exc}")

    import threading  # only at shutdown: threading is not part of a cold start otherwise

    worker = threading.Thread(target=run_all, name="lambda-shutdown", daemon=True)
    worker.start()
    worker.join(budget_seconds)
    if worker.is_alive():
        report(f"shutdown hooks still running after {budget_seconds:.1f}s; exiting anyway")
