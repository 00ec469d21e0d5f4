"""The emulator's settings, validated once, shared by the CLI and the Python API."""

from __future__ import annotations

import ipaddress
import os
import re
import shlex
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

DEFAULT_ACCOUNT = "123456789012"

# Set by the emulator from its own options; an --env for them is a mistake worth reporting.
_EMULATOR_OWNED = {
    "_HANDLER": "the HANDLER argument",
    "AWS_LAMBDA_RUNTIME_API": "--runtime-api (with --no-spawn)",
    "LAMBDA_TASK_ROOT": "--task-root",
    "AWS_LAMBDA_FUNCTION_NAME": "--function-name",
    "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "--memory",
    "LAMBDA_RUNTIME_LAYER_ROOT": "--layer",
}
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_FUNCTION_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_REGION = re.compile(r"^[a-z]{2}(-[a-z]+)+-\d+$")


class ConfigError(ValueError):
    """A setting is invalid; the message names the option and what is wrong."""


@dataclass
class EmulatorConfig:
    handler: str
    task_root: Path = field(default_factory=Path.cwd)
    layers: Sequence[Path] = ()
    timeout: float = 3.0
    memory: int = 128
    concurrency: int = 10
    env: Mapping[str, str] = field(default_factory=dict)
    host: str = "127.0.0.1"
    port: int = 9000
    function_name: str = "function"
    region: str = "us-east-1"
    # None: our runtime (`python -m runtime HANDLER`); else the command to run instead.
    runtime_cmd: Sequence[str] | None = None
    no_spawn: bool = False
    # HOST:PORT of the Runtime API with no_spawn (port 0: any free port).
    runtime_api: str | None = None
    init_timeout: float = 10.0
    idle_timeout: float = 300.0
    shutdown_grace: float = 0.5
    memory_poll_interval: float = 0.01
    event_retries: int = 2
    event_retry_delays: tuple[float, float] = (1.0, 2.0)
    log_format: str | None = None
    # Receive the runtimes' spans (OTLP/HTTP) and print them as a tree per invoke.
    otel_console: bool = False

    def __post_init__(self) -> None:
        self.task_root = Path(self.task_root).resolve()
        if not self.task_root.is_dir():
            raise ConfigError(f"--task-root: {self.task_root} is not a folder")
        self.layers = [Path(p).resolve() for p in self.layers]
        for layer in self.layers:
            if not layer.exists():
                raise ConfigError(f"--layer: {layer} does not exist")
            if layer.is_file() and layer.suffix.lower() != ".zip":
                raise ConfigError(f"--layer: {layer} is neither a folder nor a .zip file")
        if not self.no_spawn and not self.handler:
            raise ConfigError("HANDLER is required (for example app.handler)")
        if not 0 < self.timeout <= 900:
            raise ConfigError(f"--timeout: {self.timeout} is not between 0 and 900 seconds")
        if not 128 <= self.memory <= 10240:
            raise ConfigError(f"--memory: {self.memory} MB is not between 128 and 10240")
        if self.concurrency < 1:
            raise ConfigError(f"--concurrency: {self.concurrency} must be at least 1")
        if not _FUNCTION_NAME.match(self.function_name):
            raise ConfigError(
                f"--function-name: {self.function_name!r} must be 1-64 letters, digits, - or _"
            )
        if not _REGION.match(self.region):
            raise ConfigError(f"--region: {self.region!r} is not a region name like us-east-1")
        if not 0 <= self.port <= 65535:
            raise ConfigError(f"--port: {self.port} is not a TCP port")
        for key in self.env:
            if not _ENV_NAME.match(key):
                raise ConfigError(f"--env: {key!r} is not a valid environment variable name")
            if key in _EMULATOR_OWNED:
                raise ConfigError(
                    f"--env: {key} is set by the emulator; use {_EMULATOR_OWNED[key]}"
                )
        if self.no_spawn:
            if self.runtime_cmd is not None:
                raise ConfigError("--runtime-cmd and --no-spawn exclude each other")
            self.runtime_api_address()
        if self.init_timeout <= 0:
            raise ConfigError("init timeout must be positive")
        if self.idle_timeout <= 0:
            raise ConfigError("--idle-timeout must be positive")
        if self.shutdown_grace < 0:
            raise ConfigError("--shutdown-grace must not be negative")
        if not 0 <= self.event_retries <= 2:
            raise ConfigError("--event-retries must be 0, 1 or 2 (as on Lambda)")
        fmt = self.log_format or self.env.get("AWS_LAMBDA_LOG_FORMAT") or "Text"
        if fmt not in ("Text", "JSON"):
            raise ConfigError(f"log format {fmt!r} must be Text or JSON")
        self.log_format = fmt

    @property
    def function_arn(self) -> str:
        return f"arn:aws:lambda:{self.region}:{DEFAULT_ACCOUNT}:function:{self.function_name}"

    def runtime_api_address(self) -> tuple[str, int]:
        text = self.runtime_api or "127.0.0.1:9001"
        host, sep, port = text.rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
            raise ConfigError(f"--runtime-api: {text!r} is not HOST:PORT")
        host = host.strip("[]")
        try:
            loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
        except ValueError:
            loopback = False
        if not loopback:
            # The Runtime API hands out every event and takes any answer: keep it on this host.
            raise ConfigError(f"--runtime-api: {host} is not a loopback address (127.0.0.1, ::1)")
        return host, int(port)

    def command(self) -> list[str]:
        """The runtime's argv: HANDLER is appended (like a container image's CMD after its
        ENTRYPOINT) unless the command places it itself with ``{handler}``."""
        if self.runtime_cmd is None:
            return [sys.executable, "-m", "runtime", self.handler]
        cmd = list(self.runtime_cmd)
        if any("{handler}" in part for part in cmd):
            return [part.replace("{handler}", self.handler) for part in cmd]
        return [*cmd, self.handler] if self.handler else cmd


def parse_env_assignment(text: str, *, inherit: Mapping[str, str] | None = None) -> tuple[str, str]:
    """``KEY=VALUE``; a bare ``KEY`` takes the value from the emulator's own environment."""
    key, sep, value = text.partition("=")
    key = key.strip()
    if not _ENV_NAME.match(key):
        raise ConfigError(f"--env: {text!r} is not KEY=VALUE")
    if not sep:
        source = os.environ if inherit is None else inherit
        if key not in source:
            raise ConfigError(f"--env: {key} has no value and is not set in this environment")
        return key, source[key]
    return key, value


def parse_env_file(path: Path) -> dict[str, str]:
    """A dotenv-style file: ``KEY=VALUE`` lines, ``#`` comments, optional quotes, ``export``."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"--env-file: cannot read {path}: {exc.strerror}") from None
    result: dict[str, str] = {}
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("export "):
            line = line[7:].lstrip()
        key, sep, value = line.partition("=")
        key = key.strip()
        if not sep or not _ENV_NAME.match(key):
            raise ConfigError(f"--env-file: {path}:{number}: expected KEY=VALUE, got {raw!r}")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            value = value[1:-1]
        result[key] = value
    return result


def split_command(text: str) -> list[str]:
    try:
        parts = shlex.split(text)
    except ValueError as exc:
        raise ConfigError(f"--runtime-cmd: {exc}") from None
    if not parts:
        raise ConfigError("--runtime-cmd is empty")
    return parts
