"""examples/template.yaml: valid for CloudFormation (cfn-lint) and wired to what we build."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from packaging_support import REPO

from runtime.packaging.package import FUNCTION_ZIP, LAYER_ZIP

TEMPLATE = REPO / "examples" / "template.yaml"


def load_template() -> Any:
    try:
        from cfnlint.decode import cfn_yaml
    except ModuleNotFoundError:
        pytest.fail("cfn-lint is not installed; it belongs to the dev extra: "
                    "pip install -e '.[dev]'")
    return cfn_yaml.load(str(TEMPLATE))


def test_template_passes_cfn_lint() -> None:
    load_template()  # a clear failure when cfn-lint is missing
    # The console script beside this interpreter: cfnlint has no `python -m` entry point.
    script = Path(sys.executable).with_name("cfn-lint")
    command = str(script) if script.exists() else shutil.which("cfn-lint")
    assert command is not None, "cfn-lint is installed as a module but its command is missing"
    proc = subprocess.run([command, str(TEMPLATE)],
                          capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_zip_route_uses_what_package_builds() -> None:
    resources = load_template()["Resources"]
    layer = resources["RuntimeLayer"]["Properties"]
    function = resources["HelloZipFunction"]["Properties"]
    layer_zip = (TEMPLATE.parent / layer["ContentUri"]).resolve()
    function_zip = (TEMPLATE.parent / function["CodeUri"]).resolve()
    # Both come from one `lambda-runtime package examples/hello --output out/package` run.
    assert layer_zip.name == LAYER_ZIP
    assert function_zip.name == FUNCTION_ZIP
    assert layer_zip.parent == function_zip.parent == REPO / "out" / "package"
    assert function["Runtime"] == "provided.al2023"
    assert "provided.al2023" in layer["CompatibleRuntimes"]
    assert (REPO / "examples" / "hello" / "app.py").exists()
    assert function["Handler"] == "app.handler"
    # The runtime layer comes last so that its bootstrap and runtime win over other layers.
    assert function["Layers"][-1] == {"Ref": "RuntimeLayer"}


def test_image_route_matches_the_dockerfile() -> None:
    resources = load_template()["Resources"]
    image = resources["HelloImageFunction"]["Properties"]
    assert image["PackageType"] == "Image"
    dockerfile = (REPO / "container" / "Dockerfile").read_text()
    cmd = re.findall(r'^CMD \["([^"]+)"\]$', dockerfile, flags=re.M)
    assert cmd == image["ImageConfig"]["Command"]


def test_functions_are_traced_and_log_groups_exist() -> None:
    template = load_template()
    assert template["Globals"]["Function"]["Tracing"] == "Active"
    groups = {
        name: res for name, res in template["Resources"].items()
        if res["Type"] == "AWS::Logs::LogGroup"
    }
    assert set(groups) == {"HelloZipFunctionLogs", "HelloImageFunctionLogs"}
