"""The provided.al2 / provided.al2023 route, run the way Lambda runs it.

`lambda-runtime package` builds runtime-layer.zip and function.zip; they are unzipped (with the
system's unzip, as Lambda would, not with our own code) and bind-mounted read-only at the real
/opt and /var/task inside a private mount namespace; then Lambda's bootstrap choice is made
(/var/task/bootstrap if the function has one, else /opt/bootstrap) and it is executed with
Lambda's environment, in /var/task, as an unprivileged user, against our emulator in --no-spawn
mode. An "interpreter layer" (a python3 at /opt/bin/python3) stands in for the Python that
provided.* images lack.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from packaging_support import (
    REPO,
    Proc,
    cannot_run_here,
    ensure_tools,
    invoke,
    lambda_environment,
    package,
    run,
    start,
    start_emulator_no_spawn,
)

pytestmark = pytest.mark.timeout(300)

# Lambda's function user is an unprivileged sandbox user; any such uid will do here.
SANDBOX_UID = 993
SANDBOX_GID = 990

PROBE = '''\
import importlib.util
import os
import sys


def handler(event, context):
    import orjson
    import runtime

    return {
        "executable": sys.executable,
        "version": "%d.%d" % sys.version_info[:2],
        "cwd": os.getcwd(),
        "uid": os.getuid(),
        "orjson": orjson.__file__,
        "runtime": runtime.__file__,
        "sys_path_head": sys.path[:1],
        "task_root_writable": os.access("/var/task", os.W_OK),
        "opt_writable": os.access("/opt", os.W_OK),
        "probe_pyc": os.path.exists(importlib.util.cache_from_source(__file__)),
        "handler_env": os.environ.get("_HANDLER"),
    }
'''

# Lambda's choice of entry point, then the runtime with Lambda's environment in /var/task.
# $1 = layers folder (/opt), $2 = function folder (/var/task), $3.. = how to become the sandbox
# user. The function folder is opened before /var is hidden, in case it lives under /var.
NAMESPACE_SCRIPT = r'''
set -eu
opt=$1; task=$2; shift 2
exec 3<"$task"
mount --bind "$opt" /opt
mount -o remount,bind,ro /opt
mount -t tmpfs -o mode=0755 tmpfs /var
mkdir /var/task /var/runtime /var/tmp
mount --bind /proc/self/fd/3 /var/task
mount -o remount,bind,ro /var/task
exec 3<&-
cd /var/task
if [ -x /var/task/bootstrap ]; then boot=/var/task/bootstrap; else boot=/opt/bootstrap; fi
exec "$@" "$boot"
'''


@dataclass(frozen=True)
class Interpreter:
    """The python3 the interpreter layer points to, and whether a non-root user can run it."""

    path: str
    version: str
    world_usable: bool


def pick_interpreter() -> Interpreter:
    # The distribution's python3 is readable by everyone, so the runtime can run as an
    # unprivileged user like on Lambda; this checkout's interpreter may sit under /root.
    system = Path("/usr/bin/python3")
    if system.exists():
        proc = subprocess.run(
            [str(system), "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
            capture_output=True, text=True, check=False,
        )
        version = proc.stdout.strip()
        if proc.returncode == 0 and version in ("3.10", "3.11", "3.12", "3.13", "3.14"):
            return Interpreter(str(system), version, True)
    here = os.path.realpath(sys.executable)
    return Interpreter(here, f"{sys.version_info.major}.{sys.version_info.minor}", False)


@dataclass(frozen=True)
class Built:
    layer_zip: Path
    function_zip: Path
    interpreter: Interpreter


@pytest.fixture(scope="module")
def namespaces_work() -> None:
    ensure_tools("unshare", "unzip")
    if os.geteuid() != 0:
        cannot_run_here("mount namespaces with bind mounts at /opt and /var/task need root here")
    probe = subprocess.run(["unshare", "--mount", "--propagation", "private", "true"],
                           capture_output=True, text=True, check=False)
    if probe.returncode != 0:
        cannot_run_here(f"unshare --mount cannot work in this environment: {probe.stderr.strip()}")


@pytest.fixture(scope="module")
def built(namespaces_work: None, tmp_path_factory: pytest.TempPathFactory) -> Built:
    interpreter = pick_interpreter()
    fn = tmp_path_factory.mktemp("function")
    shutil.copytree(REPO / "examples" / "hello", fn, dirs_exist_ok=True,
                    ignore=shutil.ignore_patterns("__pycache__"))
    (fn / "probe.py").write_text(PROBE)
    out = tmp_path_factory.mktemp("package")
    package(fn, out, "--python", interpreter.version)
    return Built(out / "runtime-layer.zip", out / "function.zip", interpreter)


def unzip(archive: Path, dest: Path) -> None:
    dest.mkdir(parents=True, exist_ok=True)
    run(["unzip", "-q", "-o", str(archive), "-d", str(dest)])


def interpreter_layer(dest: Path, interpreter: Interpreter) -> None:
    """A stand-in for a Python interpreter layer: python3 at the fixed path /opt/bin/python3."""
    (dest / "bin").mkdir(parents=True, exist_ok=True)
    (dest / "bin" / "python3").symlink_to(interpreter.path)


@pytest.fixture
def lambda_run(built: Built, tmp_path: Path) -> Iterator[LambdaRun]:
    runner = LambdaRun(built, tmp_path)
    yield runner
    runner.close()


class LambdaRun:
    """Lays out /opt and /var/task for one test and runs bootstrap there."""

    def __init__(self, built: Built, tmp: Path) -> None:
        self.built = built
        self.tmp = tmp
        self.opt = tmp / "opt"
        self.task = tmp / "task"
        self.processes: list[Proc] = []
        for folder in (self.opt, self.task):
            folder.mkdir()
            folder.chmod(0o755)

    def close(self) -> None:
        for proc in reversed(self.processes):
            proc.stop()

    def start(self, handler: str) -> tuple[int, Proc]:
        invoke_port, api_port = start_emulator_no_spawn(handler, self.tmp, self.processes)
        become: list[str] = []
        if self.built.interpreter.world_usable:
            become = ["setpriv", f"--reuid={SANDBOX_UID}", f"--regid={SANDBOX_GID}",
                      "--clear-groups", "--"]
        proc = start(
            ["unshare", "--mount", "--propagation", "private", "--", "sh", "-c",
             NAMESPACE_SCRIPT, "lambda", str(self.opt), str(self.task), *become],
            self.tmp / f"runtime-{handler}.log",
            env=lambda_environment(api_port, handler),
        )
        self.processes.append(proc)
        return invoke_port, proc


def test_layer_and_function_run_from_opt_bootstrap(lambda_run: LambdaRun) -> None:
    built = lambda_run.built
    unzip(built.layer_zip, lambda_run.opt)
    interpreter_layer(lambda_run.opt, built.interpreter)
    unzip(built.function_zip, lambda_run.task)
    assert not (lambda_run.task / "bootstrap").exists()

    port, proc = lambda_run.start("app.handler")
    for name in ("layer", "warm"):
        resp = invoke(port, {"name": name})
        assert resp.status == 200, (resp.body, proc.output())
        body = resp.json()
        assert body["message"] == f"Hello, {name}!", proc.output()
        assert body["function_name"] == "hello"
        assert "X-Amz-Function-Error" not in resp.headers
    assert proc.popen.poll() is None, proc.output()  # the same runtime served both invokes
    assert "greeting warm" in proc.output()


def test_runtime_uses_the_layer_and_lambda_layout(lambda_run: LambdaRun) -> None:
    built = lambda_run.built
    unzip(built.layer_zip, lambda_run.opt)
    interpreter_layer(lambda_run.opt, built.interpreter)
    unzip(built.function_zip, lambda_run.task)

    port, proc = lambda_run.start("probe.handler")
    resp = invoke(port, {})
    assert resp.status == 200, (resp.body, proc.output())
    seen = resp.json()
    assert seen["executable"] == "/opt/bin/python3"  # the interpreter layer, not PATH's python3
    assert seen["version"] == built.interpreter.version
    assert seen["cwd"] == "/var/task"
    assert seen["orjson"].startswith("/opt/python/orjson/")
    assert seen["runtime"] == "/opt/python/runtime/__init__.py"
    assert seen["sys_path_head"] == ["/var/task"]
    assert seen["task_root_writable"] is False
    assert seen["opt_writable"] is False
    assert seen["probe_pyc"] is True  # precompiled: nothing to compile on a read-only /var/task
    assert seen["handler_env"] == "probe.handler"
    if built.interpreter.world_usable:
        assert seen["uid"] == SANDBOX_UID


def test_runtime_bundled_in_the_function_runs_from_var_task_bootstrap(
    lambda_run: LambdaRun,
) -> None:
    # No runtime layer: the layer's content unzipped into the function, as a user bundling
    # everything into one zip gets it. Only the interpreter layer is in /opt.
    built = lambda_run.built
    unzip(built.layer_zip, lambda_run.task)
    unzip(built.function_zip, lambda_run.task)
    interpreter_layer(lambda_run.opt, built.interpreter)

    port, proc = lambda_run.start("probe.handler")
    resp = invoke(port, {})
    assert resp.status == 200, (resp.body, proc.output())
    seen = resp.json()
    assert seen["runtime"] == "/var/task/python/runtime/__init__.py"
    assert seen["orjson"].startswith("/var/task/python/orjson/")
    assert seen["executable"] == "/opt/bin/python3"


def test_function_error_from_the_packaged_runtime(lambda_run: LambdaRun) -> None:
    built = lambda_run.built
    unzip(built.layer_zip, lambda_run.opt)
    interpreter_layer(lambda_run.opt, built.interpreter)
    unzip(built.function_zip, lambda_run.task)

    port, proc = lambda_run.start("app.nonexistent")
    resp = invoke(port, {})
    assert resp.status == 200, proc.output()
    assert resp.headers.get("X-Amz-Function-Error") == "Unhandled"
    assert resp.json()["errorType"] == "Runtime.HandlerNotFound", proc.output()
