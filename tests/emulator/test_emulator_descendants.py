"""Processes that leave the runtime's process group (a new session) still belong to its
environment: counted in Max Memory Used, limited by --memory, killed and reaped with it."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from emulator_support import HANDLERS, MARK, MARK_VAR, marked_processes
from test_emulator_lifecycle import _alive

REPO = Path(__file__).resolve().parents[2]


def test_new_session_child_is_counted_and_limited(make):
    fn = make("faults.escape", memory=512, timeout=10)
    small = fn.invoke({"mb": 0})
    assert small.ok, small.raw
    big = fn.invoke({"mb": 250, "hold": 0.5})
    assert big.ok, big.raw
    assert big.report is not None and big.report.max_memory_used_mb >= 250
    over = make("faults.escape", memory=128, timeout=10).invoke({"mb": 300, "hold": 3})
    assert over.error["errorType"] == "Runtime.OutOfMemory", over.raw
    assert over.report is not None and over.report.error_type == "Runtime.OutOfMemory"


def test_new_session_child_is_killed_with_the_environment(make):
    fn = make("faults.escape", timeout=10)
    child = fn.invoke({}).payload["child"]
    assert _alive(child)
    fn.stop()
    # (The autouse leak check also looks for every marked process after the test.)
    assert not _alive(child)


def test_nothing_survives_the_emulator_process():
    """The CLI ``invoke`` exits; the new-session child its handler started is gone too."""
    out = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from runtime.cli import main; sys.exit(main())",
            "invoke",
            "faults.escape",
            "--task-root",
            str(HANDLERS),
            "--env",
            f"{MARK_VAR}={MARK}",
            "--quiet",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert out.returncode == 0, out.stderr
    assert '"child"' in out.stdout
    assert marked_processes() == []


def test_orphans_are_reaped_not_left_as_zombies(make):
    fn = make("faults.daemonize", timeout=10)
    # The invoke lasts long enough for the grandchild to be seen (process discovery runs on the
    # memory sampler's ticks); it outlives the invoke, then exits as the emulator's orphan.
    grandchild = fn.invoke({"seconds": 0.5, "hold": 0.3}).payload["grandchild"]
    assert _alive(grandchild)
    for _ in range(200):
        if not _alive(grandchild):
            break
        time.sleep(0.01)
    fn.stop()
    # Not even a zombie is left.
    assert not os.path.exists(f"/proc/{grandchild}"), "left as a zombie"
