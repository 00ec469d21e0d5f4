"""The container recipes, built with buildah and run for real.

Both recipes are built on a local Debian base (made with debootstrap, cached in out/containers):
container/Dockerfile as is, and container/Dockerfile.al2023 with PYTHON=python3, which the base
already has, so only its Amazon Linux package step is skipped. The first is built with every
optional part (WITH=emulator,otel,structlog), the second with none, as a function that needs only
the runtime would build it. Then each image is run two ways:

- locally, as `docker run -p 9000:8080 IMAGE` would: its entrypoint and CMD in a private network
  namespace, where the in-image emulator listens on 0.0.0.0:8080 (or, in the image without it,
  the entrypoint says how to get one); invokes come from inside that namespace, so nothing is
  exposed on the machine and no port can clash;
- as Lambda runs it: the same entrypoint with AWS_LAMBDA_RUNTIME_API pointing at our emulator in
  --no-spawn mode outside the container.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from packaging_support import (
    HOST_CA_BUNDLE,
    INVOKE_PATH,
    REPO,
    Buildah,
    Proc,
    ensure_tools,
    invoke,
    lambda_environment,
    start,
    start_emulator_no_spawn,
)

pytestmark = pytest.mark.timeout(900)


@dataclass(frozen=True)
class Recipe:
    dockerfile: str
    entrypoint: str
    python: str
    build_args: dict[str, str] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)
    venv: bool = False

    @property
    def parts(self) -> set[str]:
        return set(filter(None, self.build_args.get("WITH", "").split(",")))


RECIPES = {
    "python-base": Recipe(
        dockerfile="container/Dockerfile",
        entrypoint="/opt/lambda-runtime/bin/lambda-entrypoint",
        python="/opt/lambda-runtime/bin/python",
        build_args={"WITH": "emulator,otel,structlog"},
        venv=True,
    ),
    "provided-al2023": Recipe(
        dockerfile="container/Dockerfile.al2023",
        entrypoint="/var/runtime/lambda-entrypoint",
        python="/var/runtime/python/bin/python3",
        build_args={"PYTHON": "python3"},
        env={"PYTHONPATH": "/var/runtime/python"},
    ),
}


@dataclass(frozen=True)
class Image:
    name: str
    recipe: Recipe
    buildah: Buildah


@pytest.fixture(scope="module", params=sorted(RECIPES))
def image(request: pytest.FixtureRequest, buildah: Buildah, base_image: str) -> Iterator[Image]:
    recipe = RECIPES[request.param]
    name = f"localhost/lambda-runtime-test/hello-{request.param}:latest"
    args = ["bud", "--isolation", "chroot", "--layers=false",
            "--ignorefile", str(REPO / "container" / "Dockerfile.dockerignore"),
            "-f", str(REPO / recipe.dockerfile),
            "--build-arg", f"BASE_IMAGE={base_image}",
            "--build-arg", "FUNCTION_DIR=examples/hello"]
    for key, value in recipe.build_args.items():
        args += ["--build-arg", f"{key}={value}"]
    if HOST_CA_BUNDLE.exists():
        # pip inside the build reaches the package index only with this machine's CA bundle.
        args += ["-v", f"{HOST_CA_BUNDLE}:/etc/ssl/certs/ca-certificates.crt:ro"]
    buildah(*args, "-t", name, str(REPO), timeout=600)
    yield Image(name, recipe, buildah)
    buildah("rmi", "--force", name, check=False)


@pytest.fixture
def container(image: Image) -> Iterator[str]:
    name = image.buildah("from", "--quiet", image.name).stdout.strip()
    yield name
    image.buildah("rm", name, check=False)


def test_image_config_runs_the_handler_as_a_non_root_user(image: Image) -> None:
    config = image.buildah.image_config(image.name)
    assert config["Entrypoint"] == [image.recipe.entrypoint]
    assert config["Cmd"] == ["app.handler"]
    assert config["User"] == "10001:10001"
    assert "8080/tcp" in config["ExposedPorts"]
    assert config["WorkingDir"] == "/var/task"


CHECK_IMAGE = """
import importlib.util, json, os
import runtime.bootstrap
MODULES = ["runtime.emulator", "runtime.packaging", "runtime.cli", "httpx", "h11", "structlog",
           "opentelemetry.sdk", "orjson"]
def present(name):
    try:
        return importlib.util.find_spec(name) is not None
    except ImportError:  # the parent package is missing
        return False
print(json.dumps({
    "modules": sorted(m for m in MODULES if present(m)),
    "uid": os.getuid(),
    "app_pyc": os.path.exists(importlib.util.cache_from_source("/var/task/app.py")),
    "runtime_pyc": os.path.exists(importlib.util.cache_from_source(runtime.bootstrap.__file__)),
    "task_writable": os.access("/var/task", os.W_OK),
    "build_sources": os.path.exists("/build"),
    "pip": importlib.util.find_spec("pip") is not None,
}))
"""


def test_image_is_precompiled_and_free_of_build_leftovers(image: Image, container: str) -> None:
    env_args = [f"--env={k}={v}" for k, v in image.recipe.env.items()]
    proc = image.buildah("run", "--isolation", "chroot", *env_args, container, "--",
                         image.recipe.python, "-c", CHECK_IMAGE, timeout=120)
    seen = json.loads(proc.stdout.strip().splitlines()[-1])
    assert seen["uid"] == 10001
    assert seen["app_pyc"] is True
    assert seen["runtime_pyc"] is True
    assert seen["task_writable"] is False
    assert seen["build_sources"] is False
    if image.recipe.venv:
        assert seen["pip"] is False  # pip stayed in the build stage


# What each optional part adds to an image; the runtime core and orjson are always there.
PART_MODULES = {
    "emulator": {"runtime.emulator", "runtime.packaging", "runtime.cli", "httpx", "h11"},
    "otel": {"opentelemetry.sdk"},
    "structlog": {"structlog"},
}


def test_image_holds_the_runtime_and_only_the_parts_asked_for(
    image: Image, container: str
) -> None:
    env_args = [f"--env={k}={v}" for k, v in image.recipe.env.items()]
    proc = image.buildah("run", "--isolation", "chroot", *env_args, container, "--",
                         image.recipe.python, "-c", CHECK_IMAGE, timeout=120)
    seen = set(json.loads(proc.stdout.strip().splitlines()[-1])["modules"])
    expected = {"orjson"}.union(*(PART_MODULES[p] for p in image.recipe.parts))
    assert seen == expected


CLIENT = """
import json, sys, urllib.request
req = urllib.request.Request("http://127.0.0.1:8080" + sys.argv[1], data=sys.argv[2].encode())
with urllib.request.urlopen(req, timeout=30) as resp:
    print(json.dumps({"status": resp.status, "headers": dict(resp.headers),
                      "body": resp.read().decode()}))
"""


def invoke_in_namespace(pid: int, event: Any) -> dict[str, Any] | None:
    """POST to port 8080 inside the network namespace of `pid`; None while nothing answers."""
    proc = subprocess.run(
        ["nsenter", f"--target={pid}", "--net", "--", sys.executable, "-c", CLIENT,
         INVOKE_PATH, json.dumps(event)],
        capture_output=True, text=True, timeout=60, check=False,
    )
    if proc.returncode != 0:
        return None
    result: dict[str, Any] = json.loads(proc.stdout)
    return result


def test_local_run_serves_invokes_through_the_in_image_emulator(
    image: Image, container: str, processes: list[Proc], tmp_path: Path
) -> None:
    ensure_tools("unshare", "nsenter", "ip")
    config = image.buildah.image_config(image.name)
    # What `docker run IMAGE app.handler --timeout 7` runs: options after the handler reach
    # the emulator.
    command = [*config["Entrypoint"], *config["Cmd"], "--timeout", "7"]
    if "emulator" not in image.recipe.parts:
        env_args = [f"--env={k}={v}" for k, v in image.recipe.env.items()]
        proc_run = image.buildah("run", "--isolation", "chroot", *env_args, container, "--",
                                 *command, check=False, timeout=120)
        assert proc_run.returncode == 2
        lines = [ln for ln in proc_run.stderr.splitlines() if "lambda-entrypoint" in ln]
        assert len(lines) == 1, proc_run.stderr
        assert "this image has no local emulator" in lines[0]
        assert "--build-arg WITH=emulator" in lines[0]
        return
    proc = start(
        ["unshare", "--net", "--", "sh", "-c", 'ip link set lo up && exec "$@"', "sh",
         *image.buildah.base, "run", "--isolation", "chroot", container, "--", *command],
        tmp_path / "container.log",
    )
    processes.append(proc)

    deadline = time.monotonic() + 90
    first = None
    while first is None and time.monotonic() < deadline:
        assert proc.popen.poll() is None, f"container exited:\n{proc.output()}"
        first = invoke_in_namespace(proc.popen.pid, {"name": "container"})
        if first is None:
            time.sleep(0.5)
    assert first is not None, f"no answer on port 8080 in the container:\n{proc.output()}"
    assert first["status"] == 200, first
    body = json.loads(first["body"])
    assert body["message"] == "Hello, container!"
    assert "X-Amz-Function-Error" not in first["headers"]
    assert 3000 < body["remaining_time_in_millis"] <= 7000  # not the default 3 s timeout

    second = invoke_in_namespace(proc.popen.pid, {"name": "again"})
    assert second is not None and second["status"] == 200, proc.output()
    second_body = json.loads(second["body"])
    assert second_body["message"] == "Hello, again!"
    assert second_body["request_id"] != body["request_id"]

    # The invoke ends at the runtime's next /next and the log is written in small batches:
    # the REPORT line comes a moment after the response.
    report = f"REPORT RequestId: {second_body['request_id']}"
    deadline = time.monotonic() + 5
    while report not in proc.output() and time.monotonic() < deadline:
        time.sleep(0.05)
    log = proc.output()
    assert f"START RequestId: {body['request_id']}" in log
    assert report in log
    assert "greeting container" in log


def test_on_lambda_the_entrypoint_runs_the_runtime_against_the_runtime_api(
    image: Image, container: str, processes: list[Proc], tmp_path: Path
) -> None:
    invoke_port, api_port = start_emulator_no_spawn("app.handler", tmp_path, processes)
    env = lambda_environment(api_port, "app.handler")
    for key in ("PATH", "LD_LIBRARY_PATH", "LAMBDA_RUNTIME_DIR"):
        env.pop(key)  # an image keeps its own; Lambda only adds the rest
    env_args = [f"--env={k}={v}" for k, v in env.items()]
    config = image.buildah.image_config(image.name)
    proc = start(
        [*image.buildah.base, "run", "--isolation", "chroot", *env_args, container, "--",
         *config["Entrypoint"], *config["Cmd"]],
        tmp_path / "container.log",
    )
    processes.append(proc)

    resp = invoke(invoke_port, {"name": "lambda"}, timeout=90)
    assert resp.status == 200, (resp.body, proc.output())
    body = resp.json()
    assert body["message"] == "Hello, lambda!"
    assert body["function_name"] == "hello"
    assert proc.popen.poll() is None, proc.output()  # still waiting for the next event
