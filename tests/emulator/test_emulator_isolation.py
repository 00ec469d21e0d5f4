"""What the function may import: warnings by default, --strict-imports, --isolated, --package."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from emulator_support import MARK, MARK_VAR

from runtime.emulator import ConfigError, Emulator
from runtime.packaging import package

REPO = Path(__file__).resolve().parents[2]
# Shared with the packaging tests: pip downloads once.
PIP_CACHE = REPO / "out" / "cache" / "pip"

APP = """\
import decimal
import importlib
import json

import orjson
import shared
import helper
import six
import httpx


def handler(event, context):
    importlib.import_module("six")
    return {"six": six.__file__, "helper": helper.NAME, "shared": shared.NAME}
"""
SYS_PATH_APP = """\
import sys


def handler(event, context):
    return {"path": sys.path, "site": "site" in sys.modules}
"""
WARNING = (
    "`six` came from your virtual environment; on Lambda it must be in the function package "
    "or a layer"
)


@pytest.fixture
def function(tmp_path: Path) -> dict[str, Any]:
    code, layer = tmp_path / "fn", tmp_path / "layer"
    code.mkdir()
    (layer / "python").mkdir(parents=True)
    (code / "app.py").write_text(APP)
    (code / "helper.py").write_text("NAME = 'helper'\n")
    (code / "paths.py").write_text(SYS_PATH_APP)
    (code / "requirements.txt").write_text("six\n")
    (layer / "python" / "shared.py").write_text("NAME = 'shared'\n")
    return {"task_root": code, "layers": [layer], "env": {MARK_VAR: MARK}}


def test_a_module_from_the_virtual_environment_is_named_once(
    lambda_emulator: Any, function: dict[str, Any]
) -> None:
    fn = lambda_emulator("app.handler", **function)
    first = fn.invoke({})
    assert first.ok, first.payload
    assert first.payload["helper"] == "helper" and first.payload["shared"] == "shared"
    warnings = [line for line in first.log.splitlines() if "came from" in line]
    # six and httpx: not the standard library, the task root, the layer or orjson (the
    # runtime's), and not what httpx imports in turn (h11, httpcore, ...: they come with it).
    assert len(warnings) == 2, first.log
    assert WARNING in warnings[0] and first.payload["six"] in warnings[0]
    assert warnings[1].startswith("lambda-runtime emulator: `httpx` came from your virtual")
    second = fn.invoke({})
    assert "came from" not in second.log


def test_strict_imports_fail_init_with_import_module_error(
    lambda_emulator: Any, function: dict[str, Any]
) -> None:
    fn = lambda_emulator("app.handler", strict_imports=True, **function)
    result = fn.invoke({})
    assert result.function_error == "Unhandled"
    assert result.payload["errorType"] == "Runtime.ImportModuleError"
    assert result.payload["errorMessage"].startswith(
        "Unable to import module 'app': No module named 'six': " + WARNING
    )


def test_isolated_runs_only_what_would_be_deployed(
    lambda_emulator: Any, function: dict[str, Any]
) -> None:
    fn = lambda_emulator("app.handler", isolated=True, **function)
    result = fn.invoke({})
    # six is in requirements.txt but not in the function folder: on Lambda it would be missing.
    assert result.payload == {
        "errorType": "Runtime.ImportModuleError",
        "errorMessage": "Unable to import module 'app': No module named 'six'",
        "requestId": "",
        "stackTrace": [],
    }

    paths = lambda_emulator("paths.handler", isolated=True, **function).invoke({}).payload
    assert paths["site"] is False
    layer = str(function["layers"][0])
    outside = [p for p in paths["path"] if not p.startswith(layer)]
    # No site-packages but the layer's, nothing of this checkout or its virtual environment
    # (the runtime core is a staged copy, as in the runtime layer).
    assert not [p for p in outside if "site-packages" in p or "dist-packages" in p], outside
    assert not [p for p in outside if p.startswith((str(REPO), sys.prefix))], outside
    assert paths["path"][0] == str(function["task_root"])
    assert str(function["layers"][0] / "python") in paths["path"]


def test_serve_package_runs_the_packaged_function(
    function: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    dist = tmp_path / "dist"
    # The layer folder's module goes into the function here: --package runs only the two zips.
    (function["task_root"] / "shared.py").write_text("NAME = 'packaged'\n")
    (function["task_root"] / "app.py").write_text(APP.replace("import httpx\n", ""))
    status = package.main(
        [str(function["task_root"]), "--output", str(dist), "--cache-dir", str(PIP_CACHE),
         "--no-compile"]
    )
    capsys.readouterr()
    assert status == 0
    proc = subprocess.run(
        [sys.executable, "-m", "runtime.cli", "invoke", "--package", str(dist), "app.handler",
         "--env", f"{MARK_VAR}={MARK}"],
        cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False,
    )
    assert proc.returncode == 0, proc.stderr
    payload = json.loads(proc.stdout)
    assert payload["shared"] == "packaged"
    # six came from function.zip, unpacked into a task root of the emulator's.
    assert "lambda-emulator-task-" in payload["six"]
    assert "came from" not in proc.stderr


def test_bad_package_and_isolation_options_are_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"--package: .* has no function.zip and no "
                       r"runtime-layer.zip \(build them with `lambda-runtime package"):
        Emulator("app.handler", task_root=tmp_path, package=tmp_path)
    with pytest.raises(ConfigError, match="--isolated applies to our runtime only"):
        Emulator("app.handler", task_root=tmp_path, isolated=True, runtime_cmd="python -m x")
