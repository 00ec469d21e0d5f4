"""Standard modules that a cold start would import but rarely uses, executed on first use.

``import orjson`` imports ``dataclasses``, whose only use of ``inspect`` is inside the class
decorator; ``inspect`` in turn imports ``ast``, ``dis``, ``tokenize`` and ``linecache``. That
chain is about a quarter of the runtime's import time on a cold start (``python -X
importtime``), and a handler that never defines a dataclass or inspects a signature never needs
it. So ``python -m runtime`` puts ``inspect`` in ``sys.modules`` *deferred*: a module object
with its spec, file and loader set but its code not yet run. The first access to any other
attribute (``inspect.signature``, ``from inspect import x``, ``dir(inspect)``) runs the real
module's code into that same object, which from then on is an ordinary module: code that
imported it earlier and code that imports it later hold the same, complete object.

Only the runtime process does this (``python -m runtime`` and ``lambda-runtime HANDLER``, through
:func:`defer_for_cold_start`); importing :mod:`runtime` as a library changes nothing.
"""

from __future__ import annotations

import _thread
import sys
from types import ModuleType

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable
    from typing import Any

# One lock for every deferred module: the first use runs the module's code once, and other
# threads that use it meanwhile wait for it to finish instead of seeing it half-built.
_lock = _thread.RLock()
# name -> thread running that module's code; that thread must see it as partially initialised
# (as a normal import would show it), not re-enter the load.
_running: dict[str, int] = {}


class _Deferred(ModuleType):
    def __getattr__(self, name: str) -> Any:
        _execute(self, name)
        return getattr(self, name)

    def __dir__(self) -> Iterable[str]:
        _execute(self, "__dir__")
        return dir(self)


def _execute(module: ModuleType, wanted: str) -> None:
    spec = module.__spec__
    assert spec is not None and spec.loader is not None
    if _running.get(spec.name) == _thread.get_ident():
        # The module's own code (or something it imports) looks up a name it has not yet
        # defined: answer as the import system answers for a partially initialised module.
        raise AttributeError(
            f"partially initialized module {spec.name!r} has no attribute {wanted!r}"
        )
    with _lock:
        if type(module) is not _Deferred:
            return  # another thread ran it while this one waited
        _running[spec.name] = _thread.get_ident()
        try:
            spec.loader.exec_module(module)
        finally:
            del _running[spec.name]
        module.__class__ = ModuleType  # type: ignore[assignment]


def defer(name: str) -> bool:
    """Register the top-level module *name* as deferred; False when it is already imported
    or cannot be found (then the normal import applies, and reports any error itself)."""
    if name in sys.modules:
        return False
    for finder in sys.meta_path:
        find_spec = getattr(finder, "find_spec", None)
        spec = find_spec(name, None) if find_spec is not None else None
        if spec is not None:
            break
    else:
        return False
    if spec.loader is None or not hasattr(spec.loader, "exec_module") or spec.origin is None:
        return False  # namespace packages and exotic loaders: not worth the risk
    module = _Deferred(name)
    module.__spec__ = spec
    module.__loader__ = spec.loader
    module.__package__ = spec.parent
    module.__file__ = spec.origin
    if spec.cached is not None:
        module.__cached__ = spec.cached  # type: ignore[attr-defined]
    if spec.submodule_search_locations is not None:
        module.__path__ = list(spec.submodule_search_locations)
    sys.modules[name] = module
    return True


def defer_for_cold_start() -> None:
    """What the runtime process defers, before its first import of orjson."""
    # orjson -> dataclasses -> inspect (ast, dis, tokenize): needed only by code that defines
    # a dataclass or reads a signature.
    defer("inspect")
