"""The examples/emulator files run and do what they say."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from importlib.metadata import entry_points
from pathlib import Path

from emulator_support import marked_processes

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "emulator"


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO)}


def _no_runtime_left() -> None:
    # The examples' emulators run in another process: find their runtimes by task root.
    assert not marked_processes(f"LAMBDA_TASK_ROOT={EXAMPLE}")


def test_run_local_script():
    out = subprocess.run(
        [sys.executable, str(EXAMPLE / "run_local.py")],
        env=_env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    lines = dict(line.split(": ", 1) for line in out.splitlines())
    assert json.loads(lines["payload"])["message"] == "Hello, Python API!"
    assert lines["report"].startswith("REPORT RequestId: ")
    assert json.loads(lines["boto3"])["message"] == "Hello, boto3!"
    _no_runtime_left()


def test_fixture_example_passes():
    installed = any(ep.name == "lambda_runtime" for ep in entry_points(group="pytest11"))
    plugin = [] if installed else ["-p", "runtime.emulator.pytest_plugin"]
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            *plugin,
            "--rootdir",
            str(EXAMPLE),
            str(EXAMPLE / "test_app.py"),
        ],
        env=_env(),
        capture_output=True,
        text=True,
        timeout=120,
        cwd=EXAMPLE,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "2 passed" in proc.stdout
    _no_runtime_left()
