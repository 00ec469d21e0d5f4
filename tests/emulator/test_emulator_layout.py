"""The emulator's modules depend on each other one way (see the architecture docs): process
supervision, memory sampling and log pumping know nothing of environments; the state machine
(lifecycle) knows nothing of scheduling; the HTTP faces sit on top."""

from __future__ import annotations

import ast
from pathlib import Path

import runtime.emulator

PACKAGE = Path(runtime.emulator.__file__).parent
# Lower layers first; a module may import (at run time) only from layers below its own.
LAYERS = [
    {"process", "memory", "logpump"},
    {"environment"},
    {"lifecycle"},
    {"scheduler"},
    {"runtime_api", "invoke_api"},
    {"app"},
    {"api", "cli"},
]
LEAVES = LAYERS[0]


def _imports(module: str, *, with_type_only: bool) -> set[str]:
    """Sibling modules ``module`` imports (``from .x import`` / ``from runtime.emulator.x``)."""
    tree = ast.parse((PACKAGE / f"{module}.py").read_text())
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if (
                isinstance(child, ast.If)
                and not with_type_only
                and isinstance(child.test, ast.Name)
                and child.test.id == "TYPE_CHECKING"
            ):
                continue
            if isinstance(child, ast.ImportFrom):
                if child.level == 1 and child.module:
                    found.add(child.module.split(".")[0])
                elif child.level == 1:
                    found.update(alias.name for alias in child.names)
                elif child.module and child.module.startswith("runtime.emulator."):
                    found.add(child.module.split(".")[2])
            visit(child)

    visit(tree)
    return found


def test_supervision_memory_and_log_pumping_import_nothing_of_the_emulator():
    for module in LEAVES:
        assert _imports(module, with_type_only=True) == set(), module


def test_each_layer_imports_only_from_the_layers_below():
    rank = {module: index for index, layer in enumerate(LAYERS) for module in layer}
    for module, level in rank.items():
        for imported in _imports(module, with_type_only=False):
            if imported in rank:
                assert rank[imported] < level, f"{module} imports {imported}"

