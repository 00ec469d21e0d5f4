"""Processes that leave the runtime's process group (a new session) still belong to its
environment: counted in Max Memory Used, limited by --memory, killed and reaped with it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from emulator_support import HANDLERS, MARK, MARK_VAR, marked_processes, wait_for
from test_emulator_lifecycle import _alive

from runtime.emulator.memory import ProcessTree
from runtime.emulator.process import RuntimeProcess

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


# Blocks a real-time signal (those queue: each one sent is counted, none merged), says it is
# ready, then counts what arrives until none has for half a second.
_COUNTER = """
import signal, sys
sig = signal.SIGRTMIN
signal.pthread_sigmask(signal.SIG_BLOCK, {sig})
open(sys.argv[1] + ".ready", "w").close()
got = 0
while signal.sigtimedwait({sig}, 0.5 if got else 20) is not None:
    got += 1
with open(sys.argv[1], "w") as f:
    f.write(str(got))
"""
_LEADER = _COUNTER.replace("got = 0", """import subprocess
children = [
    subprocess.Popen([sys.executable, "-c", sys.argv[2], sys.argv[1] + name, sys.argv[2]],
                     start_new_session=new)
    for name, new in ((".group", False), (".session", True))
]
got = 0""") + "\nfor child in children:\n    child.wait()\n"


def test_each_process_of_the_tree_is_signalled_once(tmp_path: Path) -> None:
    """Catches: the leader and its group signalled twice (by group and again one by one), which
    made a runtime's SIGTERM handler run inside itself and lose its shutdown hooks."""
    count = tmp_path / "count"
    process = RuntimeProcess.spawn(
        [sys.executable, "-c", _LEADER, str(count), _COUNTER],
        cwd=tmp_path,
        env={**os.environ, MARK_VAR: MARK},
    )
    try:
        files = [count, Path(f"{count}.group"), Path(f"{count}.session")]
        wait_for(
            lambda: all(Path(f"{f}.ready").exists() for f in files), "the counters to start"
        )
        process.descendants = ProcessTree(process.pid, lambda: None).collect
        process.kill(signal.SIGRTMIN)
        wait_for(lambda: all(f.exists() for f in files), "the counts")
        assert {f.name: f.read_text() for f in files} == {f.name: "1" for f in files}
        assert process.popen.wait(timeout=10) == 0
    finally:
        process.abandon()
        os.close(process.out_fd)
