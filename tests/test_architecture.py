"""The import graph of the shipped runtime, read from the source with ``ast``.

Rules (issue 9): no import cycle among the runtime's modules, counting imports inside functions
too (a cycle held together by function-level imports breaks as soon as one of them moves to
module level); the runtime core never imports the developer tooling or the heavy optional
libraries at module level, and never imports the observability package at all (only the
lifecycle wires it in); the observability package's state module imports nothing else of the
runtime; the package never imports the lifecycle.

Imports under ``if TYPE_CHECKING:`` are left out: they never run. Importing ``a.b`` also runs
``a/__init__.py``; that implicit edge is left out too: the observability package's
``__init__`` is checked to import none of its submodules at module level instead, so it cannot
close a cycle (``runtime/__init__`` imports only its public API modules, whose edges are in the
graph like any other).
"""

from __future__ import annotations

import ast
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent / "runtime"

TOOLING = ("runtime.emulator", "runtime.packaging", "runtime.package", "runtime.archive")
TOOLING_MODULES = ("runtime.cli", "runtime.__main__")
OBSERVABILITY = "runtime.observability"
WIRING = "runtime.bootstrap"  # the one core module that may import the observability package
# Never imported at module level by the core: tooling, or too heavy for every cold start.
FORBIDDEN_IN_CORE = (
    "runtime.emulator",
    "runtime.packaging",
    "runtime.package",
    "runtime.archive",
    "runtime.cli",
    "httpx",
    "h11",
    "structlog",
    "opentelemetry",
)


class Import:
    __slots__ = ("line", "module_level", "target")

    def __init__(self, target: str, line: int, module_level: bool) -> None:
        self.target = target
        self.line = line
        self.module_level = module_level

    def __repr__(self) -> str:
        where = "module level" if self.module_level else "in a function"
        return f"{self.target} (line {self.line}, {where})"


def modules_under(root: Path, package: str = "runtime") -> dict[str, Path]:
    found: dict[str, Path] = {}
    for path in sorted(root.rglob("*.py")):
        parts = list(path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join([package, *parts])] = path
    return found


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


FUNCTIONS = (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)


def _walk(node: ast.AST, in_function: bool) -> Iterator[tuple[ast.AST, bool]]:
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.If) and _is_type_checking(child.test):
            for other in child.orelse:  # the else branch runs
                yield other, in_function
                yield from _walk(other, in_function)
            continue
        inner = in_function or isinstance(child, FUNCTIONS)
        yield child, inner
        yield from _walk(child, inner)


def imports_of(name: str, path: Path, known: dict[str, Path]) -> list[Import]:
    """Every import *path* runs (module or function level), resolved to modules where known."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    is_package = path.name == "__init__.py"
    package = name if is_package else name.rpartition(".")[0]
    found: list[Import] = []
    for node, in_function in _walk(tree, False):
        if isinstance(node, ast.Import):
            for alias in node.names:
                found.append(Import(_known_prefix(alias.name, known), node.lineno, not in_function))
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, *([base] if base else [])])
            for alias in node.names:
                candidate = f"{base}.{alias.name}"
                target = candidate if candidate in known else _known_prefix(base, known)
                found.append(Import(target, node.lineno, not in_function))
    return found


def _known_prefix(dotted: str, known: dict[str, Path]) -> str:
    parts = dotted.split(".")
    for end in range(len(parts), 0, -1):
        prefix = ".".join(parts[:end])
        if prefix in known:
            return prefix
    return dotted


def _under(name: str, *prefixes: str) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def is_core(name: str) -> bool:
    return not _under(name, *TOOLING, *TOOLING_MODULES, OBSERVABILITY)


def graph(root: Path, package: str = "runtime") -> dict[str, list[Import]]:
    known = modules_under(root, package)
    return {name: imports_of(name, path, known) for name, path in known.items()}


def find_cycle(edges: dict[str, list[str]]) -> list[str] | None:
    """One cycle of the graph as a path that starts and ends at the same module, or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in edges.get(node, ()):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt) :], nxt]
            if nxt not in state:
                cycle = visit(nxt)
                if cycle is not None:
                    return cycle
        path.pop()
        state[node] = 2
        return None

    for start in sorted(edges):
        if start not in state:
            cycle = visit(start)
            if cycle is not None:
                return cycle
    return None


def runtime_edges(
    imports: dict[str, list[Import]], keep: Callable[[str], bool] = lambda name: True
) -> dict[str, list[str]]:
    return {
        name: sorted({i.target for i in found if i.target in imports and i.target != name})
        for name, found in imports.items()
        if keep(name)
    }


def violations(imports: dict[str, list[Import]]) -> list[str]:
    """Every broken rule except cycles, one line each."""
    out: list[str] = []
    for name, found in imports.items():
        for imp in found:
            if is_core(name) and imp.module_level and _under(imp.target, *FORBIDDEN_IN_CORE):
                out.append(f"{name} imports {imp!r}: not allowed at module level in the core")
            if is_core(name) and name != WIRING and _under(imp.target, OBSERVABILITY):
                out.append(f"{name} imports {imp!r}: only {WIRING} wires observability in")
            if _under(name, OBSERVABILITY) and _under(imp.target, WIRING, *TOOLING, "runtime.cli"):
                out.append(f"{name} imports {imp!r}: observability must not depend on it")
            if name == f"{OBSERVABILITY}.state" and _under(imp.target, "runtime"):
                out.append(f"{name} imports {imp!r}: state imports nothing of the runtime")
            if (
                name in PACKAGES
                and imp.module_level
                and _under(imp.target, name)
                and imp.target != name
            ):
                out.append(f"{name} imports its submodule {imp!r} at module level")
    return out


# Packages whose __init__ must not import their own submodules at module level (see the top).
PACKAGES = (OBSERVABILITY,)


# --- the runtime as it is ----------------------------------------------------------------------


def test_the_runtime_has_no_import_cycle() -> None:
    cycle = find_cycle(runtime_edges(graph(ROOT)))
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_the_core_and_the_observability_package_keep_their_dependency_rules() -> None:
    assert violations(graph(ROOT)) == []


def test_the_graph_sees_the_modules_and_both_kinds_of_import() -> None:
    # Guards the checker itself: an empty or module-level-only graph would pass every rule.
    imports = graph(ROOT)
    assert {"runtime.bootstrap", "runtime.logs", f"{OBSERVABILITY}.state"} <= set(imports)
    bootstrap = {(i.target, i.module_level) for i in imports["runtime.bootstrap"]}
    assert ("runtime.logs", True) in bootstrap
    assert (OBSERVABILITY, False) in bootstrap
    assert (f"{OBSERVABILITY}.structlog_bridge", False) in bootstrap


# --- the checker finds what it must (a tiny package written for the test) -----------------------


def write_package(root: Path, files: dict[str, str]) -> Path:
    for relative, text in files.items():
        path = root / "runtime" / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return root / "runtime"


def test_a_cycle_through_a_function_level_import_is_found(tmp_path: Path) -> None:
    root = write_package(
        tmp_path,
        {
            "__init__.py": "",
            "logs.py": "def f():\n    from runtime.observability import jsonlog\n",
            "observability/__init__.py": "",
            "observability/jsonlog.py": "from runtime.logs import f\n",
        },
    )
    cycle = find_cycle(runtime_edges(graph(root)))
    assert cycle == [
        "runtime.logs",
        "runtime.observability.jsonlog",
        "runtime.logs",
    ]


def test_imports_under_type_checking_are_not_edges(tmp_path: Path) -> None:
    root = write_package(
        tmp_path,
        {
            "__init__.py": "",
            "a.py": "from runtime import b\n",
            "b.py": "TYPE_CHECKING = False\nif TYPE_CHECKING:\n    from runtime import a\n",
        },
    )
    assert find_cycle(runtime_edges(graph(root))) is None


@pytest.mark.parametrize(
    ("files", "message"),
    [
        ({"api.py": "import httpx\n"}, "not allowed at module level in the core"),
        ({"api.py": "from runtime.emulator import server\n"}, "not allowed at module level"),
        ({"api.py": "from opentelemetry import trace\n"}, "not allowed at module level"),
        ({"logs.py": "def f():\n    import runtime.observability.jsonlog\n"}, "only runtime.boot"),
        ({"observability/state.py": "from runtime.context import x\n"}, "state imports nothing"),
        ({"observability/jsonlog.py": "def f():\n    from runtime import bootstrap\n"}, "must not"),
        ({"observability/__init__.py": "from runtime.observability import state\n"}, "submodule"),
    ],
)
def test_each_rule_is_enforced(tmp_path: Path, files: dict[str, str], message: str) -> None:
    base = {
        "__init__.py": "",
        "bootstrap.py": "",
        "emulator/__init__.py": "",
        "emulator/server.py": "",
        "observability/__init__.py": "",
        "observability/state.py": "",
        "observability/jsonlog.py": "",
    }
    root = write_package(tmp_path, {**base, **files})
    found = violations(graph(root))
    assert len(found) == 1 and message in found[0], found


def test_a_function_level_import_of_a_heavy_library_is_allowed_in_the_core(
    tmp_path: Path,
) -> None:
    root = write_package(tmp_path, {"__init__.py": "", "api.py": "def f():\n    import httpx\n"})
    assert violations(graph(root)) == []
