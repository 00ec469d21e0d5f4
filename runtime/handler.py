"""Handler names, sys.path and layers, importing user code, and the errors of each step."""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Callable

from runtime.errors import LambdaError

# typing costs milliseconds of cold start; it is only needed by the type checker.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    Handler = Callable[[Any, Any], Any]


# Modules whose names a handler module may not take: shadowing them would break the runtime
# or the interpreter itself.
_RUNTIME_OWN = frozenset({"runtime", "orjson"})


def setup_sys_path(task_root: str, layer_root: str) -> None:
    """Task root first, then the layer's Python folders, then whatever was there before."""
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    front = [
        task_root,
        os.path.join(layer_root, "python"),
        os.path.join(layer_root, "python", "lib", version, "site-packages"),
    ]
    sys.path[:] = list(dict.fromkeys(front + [p for p in sys.path if p]))


def parse_handler_name(name: str) -> tuple[str, str]:
    """``module.function``, ``package.module.function`` or ``path/to/module.function``."""
    module_path, dot, function = name.rpartition(".")
    problem = None
    if not name:
        problem = "no handler is set (pass MODULE.FUNCTION or set _HANDLER)"
    elif not dot or not module_path or not function:
        problem = "expected MODULE.FUNCTION, for example app.handler"
    elif ".." in name or module_path.startswith("/") or "\\" in name:
        problem = "a handler may not leave the task root ('..', '/' at the start or '\\')"
    elif not function.isidentifier():
        problem = f"{function!r} is not a valid Python function name"
    else:
        parts = module_path.replace("/", ".").split(".")
        bad = [p for p in parts if not p.isidentifier()]
        if bad:
            problem = f"{bad[0]!r} is not a valid Python module name"
    if problem:
        raise LambdaError("Runtime.MalformedHandlerName", f"Bad handler {name!r}: {problem}")
    return module_path.replace("/", "."), function


def load_handler(name: str) -> Handler:
    """Import the handler's module and return the callable; LambdaError for every failure."""
    module_name, function_name = parse_handler_name(name)
    top = module_name.partition(".")[0]
    if top in sys.builtin_module_names or top in _RUNTIME_OWN:
        raise LambdaError(
            "Runtime.BuiltInModuleConflict",
            f"Cannot use built-in module {top} as a handler module",
        )
    try:
        module = importlib.import_module(module_name)
    except SyntaxError as exc:
        where = os.path.basename(exc.filename or "") or module_name
        stack = [f'  File "{exc.filename}" Line {exc.lineno}\n    {(exc.text or "").strip()}\n']
        raise LambdaError(
            "Runtime.UserCodeSyntaxError",
            f"Syntax error in module '{module_name}': {exc.msg} ({where}, line {exc.lineno})",
            stack,
        ) from None
    except ModuleNotFoundError as exc:
        # Only the handler module itself (or its package) missing is an ImportModuleError of the
        # handler; a dependency it imports that is missing is reported the same way by Lambda.
        raise LambdaError(
            "Runtime.ImportModuleError", f"Unable to import module '{module_name}': {exc}"
        ) from None
    except ImportError as exc:
        raise LambdaError(
            "Runtime.ImportModuleError", f"Unable to import module '{module_name}': {exc}"
        ) from None
    # Any other exception while importing propagates as is: its class name is the error type.
    try:
        handler = getattr(module, function_name)
    except AttributeError:
        raise LambdaError(
            "Runtime.HandlerNotFound",
            f"Handler '{function_name}' missing on module '{module_name}'",
        ) from None
    if not callable(handler):
        raise LambdaError(
            "Runtime.HandlerNotFound",
            f"Handler '{function_name}' on module '{module_name}' is not callable "
            f"(it is a {type(handler).__name__})",
        )
    return handler  # type: ignore[no-any-return]
