"""What of the `runtime` package ships: the runtime core, without the developer tooling.

`lambda-runtime package` copies it into the runtime layer; the container recipes run this module
(`python -m runtime.packaging.core DEST`) to put the same files into an image. Standard library
only, so that it runs on any Python the images are built with.
"""

from __future__ import annotations

import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

from runtime.packaging.archive import iter_tree

__all__ = [
    "EXCLUDED_DIRS", "EXCLUDED_SUFFIXES", "RUNTIME_DIR", "TOOLING", "copy_core", "core_files",
]

RUNTIME_DIR = Path(__file__).resolve().parent.parent
# Top-level parts of the `runtime` package that are developer tooling, never shipped: they would
# double the layer and they import httpx and h11, which nothing on Lambda needs. `_data` holds the
# bootstrap script, which a layer carries at its root instead.
TOOLING = frozenset({"emulator", "packaging", "cli.py", "_data"})

# Never deployed: caches, virtual environments, VCS metadata and build output of common tools.
EXCLUDED_DIRS = frozenset(
    {
        "__pycache__", ".git", ".hg", ".svn", ".venv", "venv", ".tox", ".nox", ".mypy_cache",
        ".pytest_cache", ".ruff_cache", ".hypothesis", ".aws-sam", "node_modules", ".idea",
        ".vscode",
    }
)
EXCLUDED_SUFFIXES = (".pyc", ".pyo", ".DS_Store")


def core_files() -> Iterator[tuple[str, Path]]:
    """(name under `runtime/`, path) of each file of the runtime core: the package minus TOOLING."""
    listing = iter_tree(RUNTIME_DIR, exclude_dirs=EXCLUDED_DIRS, exclude_suffixes=EXCLUDED_SUFFIXES)
    for name, path in listing:
        if name.split("/", 1)[0] not in TOOLING:
            yield name, path


def copy_core(dst: Path) -> None:
    """Copy the runtime core into the folder `dst` (which becomes the `runtime` package)."""
    for name, path in core_files():
        out = dst / name
        out.parent.mkdir(parents=True, exist_ok=True)
        # Content, never a link: a link into a checkout would dangle once unzipped on Lambda.
        shutil.copyfile(path.resolve(), out)


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python -m runtime.packaging.core SITE_DIR  (creates SITE_DIR/runtime)")
    copy_core(Path(sys.argv[1]) / "runtime")
