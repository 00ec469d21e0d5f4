"""pip-level extras: `pip install lambda-runtime` has the runtime and the packaging command only.

A plain install is simulated by an import hook that hides the libraries of the extras, the way
they are missing from an environment that never installed them.
"""

from __future__ import annotations

import importlib.metadata
import os
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from packaging_support import PIP_CACHE, REPO

import runtime

HIDE = """
import sys

class Hide:
    def __init__(self, names):
        self.names = names

    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in self.names:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None

sys.meta_path.insert(0, Hide(set(sys.argv[1].split(","))))
del sys.argv[1]
from runtime.cli import main
sys.exit(main(sys.argv[1:]))
"""


def cli(hidden: str, *args: str, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    return subprocess.run([sys.executable, "-c", HIDE, hidden, *args], capture_output=True,
                          text=True, timeout=240, env=env, cwd=cwd, check=False)


@pytest.mark.parametrize("command", ["serve", "invoke"])
def test_emulator_without_its_extra_names_the_extra_in_one_line(command: str) -> None:
    proc = cli("httpx,h11", command, "app.handler", "--task-root", "examples/hello")
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert proc.stderr == (
        f"lambda-runtime {command}: the emulator needs h11 and httpx, which are not installed: "
        "pip install 'lambda-runtime[emulator]'\n"
    )


def test_emulator_missing_only_one_library_names_that_one() -> None:
    proc = cli("httpx", "serve", "app.handler")
    assert proc.returncode == 2
    assert "the emulator needs httpx" in proc.stderr
    assert "lambda-runtime[emulator]" in proc.stderr


def test_package_works_without_any_extra(tmp_path: Path) -> None:
    proc = cli("httpx,h11,structlog,opentelemetry", "package", "examples/hello", "--output",
               str(tmp_path / "out"), "--no-compile", "--cache-dir", str(PIP_CACHE))
    assert proc.returncode == 0, proc.stderr
    with zipfile.ZipFile(tmp_path / "out" / "runtime-layer.zip") as zf:
        assert "python/runtime/bootstrap.py" in zf.namelist()


def test_the_runtime_itself_needs_no_extra() -> None:
    # --version goes through the same dispatcher a function's runtime does.
    proc = cli("httpx,h11,structlog,opentelemetry", "--version")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == f"lambda-runtime {runtime.__version__}\n"


def requirements() -> dict[str | None, set[str]]:
    """Requirement names by extra (None: always installed), from the installed metadata."""
    found: dict[str | None, set[str]] = {}
    for req in importlib.metadata.requires("lambda-runtime") or []:
        spec, _, marker = req.partition(";")
        extra = re.search(r"""extra\s*==\s*["']([^"']+)""", marker)
        name = re.split(r"[\s<>=!~\[;]", spec.strip(), maxsplit=1)[0].lower()
        found.setdefault(extra.group(1) if extra else None, set()).add(name)
    return found


def test_distribution_needs_only_orjson_and_offers_the_extras() -> None:
    declared = requirements()
    assert declared[None] == {"orjson"}
    assert {"httpx", "h11"} <= declared["emulator"]
    assert "opentelemetry-sdk" in declared["otel"]
    assert "structlog" in declared["structlog"]
    assert {"httpx", "h11", "opentelemetry-sdk", "structlog"} <= declared["all"]
    assert {"httpx", "h11", "opentelemetry-sdk", "structlog", "pytest"} <= declared["dev"]


def test_version_is_defined_once() -> None:
    assert importlib.metadata.version("lambda-runtime") == runtime.__version__
    pyproject = (REPO / "pyproject.toml").read_text()
    assert re.search(r"^version\s*=", pyproject, flags=re.M) is None
    assert 'dynamic = ["version"]' in pyproject
