"""Helpers for the packaging tests: tools, the Debian base image, processes, ports, HTTP.

These tests run the real thing: buildah builds the container recipes (vfs storage, chroot
isolation: no Docker engine here), debootstrap makes the base image (base images cannot be
pulled), and `unshare --mount` puts the built zips at the real /opt and /var/task. Everything
cacheable lives under out/ (gitignored): pip downloads in out/cache/pip, the buildah storage with
the base image in out/containers.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import pytest

REPO = Path(__file__).resolve().parents[2]
OUT = REPO / "out"
PIP_CACHE = OUT / "cache" / "pip"
CONTAINERS = OUT / "containers"
SETUP_TOOLS = Path(__file__).with_name("setup_tools.sh")

BASE_IMAGE = "localhost/lambda-runtime-test/debian-python:bookworm"
DEBIAN_SUITE = "bookworm"
DEBIAN_MIRROR = os.environ.get("LAMBDA_RUNTIME_TEST_DEBIAN_MIRROR", "http://deb.debian.org/debian")
# What the recipes need from a base: python3 with venv (container/Dockerfile) and pip
# (container/Dockerfile.al2023), and CA certificates for pip inside the build.
DEBIAN_PACKAGES = "python3,python3-venv,python3-pip,ca-certificates"
HOST_CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")

INVOKE_PATH = "/2015-03-31/functions/function/invocations"


# ---------------------------------------------------------------------------------------------
# Tools
# ---------------------------------------------------------------------------------------------


def cannot_run_here(reason: str) -> NoReturn:
    """Skip a test this machine cannot run; with CI=true, fail it instead: in CI a missing tool
    or an unreachable Debian mirror must turn the run red, not into green skips. (Locally the
    reason is printed in pytest's summary: `-ra` is in addopts.)"""
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"CI=true, so this fails instead of being skipped: {reason}", pytrace=False)
    pytest.skip(reason)


def ensure_tools(*names: str) -> None:
    """Install missing tools with setup_tools.sh; fail (not skip) when that does not help."""
    missing = [n for n in names if shutil.which(n) is None]
    if not missing:
        return
    proc = subprocess.run(["sh", str(SETUP_TOOLS)], capture_output=True, text=True, check=False)
    still = [n for n in names if shutil.which(n) is None]
    if still:
        pytest.fail(
            f"{', '.join(still)} not installed and {SETUP_TOOLS.name} could not install them "
            f"(exit {proc.returncode}): {proc.stderr.strip()[-800:]}"
        )


def run(cmd: Sequence[str], *, timeout: float = 300, check: bool = True,
        **kwargs: Any) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(list(cmd), capture_output=True, text=True, timeout=timeout,
                          check=False, **kwargs)
    if check and proc.returncode != 0:
        raise AssertionError(
            f"command failed (exit {proc.returncode}): {' '.join(cmd)}\n"
            f"--- stdout ---\n{proc.stdout[-4000:]}\n--- stderr ---\n{proc.stderr[-4000:]}"
        )
    return proc


@dataclass(frozen=True)
class Buildah:
    """buildah with this suite's own storage (vfs, so no overlay or fuse needed)."""

    root: Path
    runroot: Path

    @property
    def base(self) -> list[str]:
        return ["buildah", "--root", str(self.root), "--runroot", str(self.runroot),
                "--storage-driver", "vfs"]

    def __call__(self, *args: str, timeout: float = 600,
                 check: bool = True) -> subprocess.CompletedProcess[str]:
        return run([*self.base, *args], timeout=timeout, check=check)

    def has_image(self, name: str) -> bool:
        return self("inspect", "--type", "image", name, check=False).returncode == 0

    def image_config(self, name: str) -> dict[str, Any]:
        data = json.loads(self("inspect", "--type", "image", name).stdout)
        config: dict[str, Any] = data["OCIv1"]["config"]
        return config


@contextlib.contextmanager
def lock(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def make_base_image(tool: Buildah) -> None:
    """Debian minbase with Python, committed as BASE_IMAGE (about a minute, once)."""
    ensure_tools("debootstrap")
    work = Path(tempfile.mkdtemp(prefix="debootstrap-", dir=OUT / "cache"))
    rootfs = work / "rootfs"
    try:
        proc = run(["debootstrap", "--variant=minbase", f"--include={DEBIAN_PACKAGES}",
                    DEBIAN_SUITE, str(rootfs), DEBIAN_MIRROR], timeout=900, check=False)
        if proc.returncode != 0:
            log = rootfs / "debootstrap" / "debootstrap.log"
            detail = log.read_text(errors="replace")[-1500:] if log.exists() else proc.stderr
            cannot_run_here(f"debootstrap cannot build a Debian base here "
                            f"(exit {proc.returncode}): {detail.strip()[-1500:]}")
        # Package caches and docs are a third of the size and nothing needs them.
        for junk in ["var/cache/apt/archives", "var/lib/apt/lists", "usr/share/doc",
                     "usr/share/man", "usr/share/locale"]:
            shutil.rmtree(rootfs / junk, ignore_errors=True)
        tarball = work / "rootfs.tar"
        run(["tar", "--numeric-owner", "-C", str(rootfs), "-cf", str(tarball), "."], timeout=300)
        container = tool("from", "scratch").stdout.strip()
        try:
            tool("add", container, str(tarball), "/")
            tool("config", "--cmd", "/bin/sh", "--env",
                 "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", container)
            tool("commit", "--quiet", container, BASE_IMAGE)
        finally:
            tool("rm", container, check=False)
    finally:
        shutil.rmtree(work, ignore_errors=True)


# ---------------------------------------------------------------------------------------------
# Processes and HTTP
# ---------------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class Proc:
    """A background process in its own process group, with its output in a file."""

    popen: subprocess.Popen[bytes]
    log: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self, grace: float = 5.0) -> None:
        if self.popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.popen.pid, signal.SIGTERM)
            try:
                self.popen.wait(grace)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.popen.pid, signal.SIGKILL)
                self.popen.wait(grace)
        # Children that outlived the leader (a runtime under buildah run) go too.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.popen.pid, signal.SIGKILL)


def start(cmd: Sequence[str], log: Path, **kwargs: Any) -> Proc:
    fh = log.open("wb")
    try:
        popen = subprocess.Popen(list(cmd), stdout=fh, stderr=subprocess.STDOUT,
                                 stdin=subprocess.DEVNULL, start_new_session=True, **kwargs)
    finally:
        fh.close()
    return Proc(popen, log)


@dataclass(frozen=True)
class Response:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def invoke(port: int, event: Any, *, timeout: float = 30) -> Response:
    req = urllib.request.Request(f"http://127.0.0.1:{port}{INVOKE_PATH}",
                                 data=json.dumps(event).encode(), method="POST")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return Response(resp.status, dict(resp.headers), resp.read())
    except urllib.error.HTTPError as err:
        return Response(err.code, dict(err.headers), err.read())


def wait_for_port(port: int, proc: Proc, *, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.popen.poll() is not None:
            raise AssertionError(f"process exited ({proc.popen.returncode}):\n{proc.output()}")
        with socket.socket() as s:
            s.settimeout(0.5)
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise AssertionError(f"nothing listens on port {port} after {timeout} s:\n{proc.output()}")


def start_emulator_no_spawn(handler: str, tmp: Path, processes: list[Proc],
                            *extra: str) -> tuple[int, int]:
    """Our emulator serving only the Runtime API; returns (invoke port, runtime API port)."""
    invoke_port, api_port = free_port(), free_port()
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    proc = start([sys.executable, "-m", "runtime.cli", "serve", handler, "--no-spawn",
                  "--runtime-api", f"127.0.0.1:{api_port}", "--port", str(invoke_port), *extra],
                 tmp / f"emulator-{invoke_port}.log", env=env, cwd=tmp)
    processes.append(proc)
    wait_for_port(invoke_port, proc)
    wait_for_port(api_port, proc)
    return invoke_port, api_port


def lambda_environment(api_port: int, handler: str, **overrides: str) -> dict[str, str]:
    """The environment Lambda gives a provided.* runtime (facts file, section 4)."""
    env = {
        "_HANDLER": handler,
        "AWS_LAMBDA_RUNTIME_API": f"127.0.0.1:{api_port}",
        "LAMBDA_TASK_ROOT": "/var/task",
        "LAMBDA_RUNTIME_DIR": "/var/runtime",
        "AWS_REGION": "us-east-1",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_EXECUTION_ENV": "AWS_Lambda_provided.al2023",
        "AWS_LAMBDA_FUNCTION_NAME": "hello",
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "128",
        "AWS_LAMBDA_LOG_GROUP_NAME": "/aws/lambda/hello",
        "AWS_LAMBDA_LOG_STREAM_NAME": "2026/01/01/[$LATEST]0123456789abcdef0123456789abcdef",
        "AWS_LAMBDA_INITIALIZATION_TYPE": "on-demand",
        "AWS_ACCESS_KEY_ID": "ASIATESTTESTTESTTEST",
        "AWS_SECRET_ACCESS_KEY": "test/secret/not/real",
        "AWS_SESSION_TOKEN": "test-session-token",
        "TZ": ":UTC",
        "LANG": "en_US.UTF-8",
        "PATH": "/usr/local/bin:/usr/bin/:/bin:/opt/bin",
        "LD_LIBRARY_PATH": "/lib64:/usr/lib64:/var/runtime:/var/runtime/lib:/var/task:"
                           "/var/task/lib:/opt/lib",
    }
    env.update(overrides)
    return env


def package(function_dir: Path, output: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """`lambda-runtime package` from this checkout, with the shared pip cache."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    return run([sys.executable, "-m", "runtime.cli", "package", str(function_dir),
                "--output", str(output), "--cache-dir", str(PIP_CACHE), *args],
               timeout=300, env=env, cwd=REPO)
