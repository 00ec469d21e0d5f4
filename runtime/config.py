"""Everything the runtime reads from its environment, read once at init into one typed object."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

DEFAULT_LAYER_ROOT = "/opt"


class ConfigError(Exception):
    """The environment cannot describe a runnable function (e.g. no Runtime API address)."""


@dataclass(frozen=True, slots=True)
class Config:
    handler: str
    runtime_api_host: str
    runtime_api_port: int
    task_root: str
    layer_root: str
    function_name: str
    function_version: str
    memory_limit_in_mb: int
    log_group_name: str
    log_stream_name: str
    log_format: str
    log_level: str
    initialization_type: str

    @classmethod
    def from_environ(
        cls, argv: Sequence[str] = (), environ: Mapping[str, str] | None = None
    ) -> Config:
        env = os.environ if environ is None else environ
        handler = argv[0] if argv else env.get("_HANDLER", "")
        api = env.get("AWS_LAMBDA_RUNTIME_API", "")
        if not api:
            raise ConfigError(
                "AWS_LAMBDA_RUNTIME_API is not set: the runtime needs the Runtime API address "
                "(host:port). Run it inside Lambda, or locally with `lambda-runtime serve HANDLER`."
            )
        host, port = _split_host_port(api)
        try:
            memory = int(env.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128"))
        except ValueError:
            memory = 128
        return cls(
            handler=handler,
            runtime_api_host=host,
            runtime_api_port=port,
            task_root=env.get("LAMBDA_TASK_ROOT") or os.getcwd(),
            layer_root=env.get("LAMBDA_RUNTIME_LAYER_ROOT") or DEFAULT_LAYER_ROOT,
            function_name=env.get("AWS_LAMBDA_FUNCTION_NAME", ""),
            function_version=env.get("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST"),
            memory_limit_in_mb=memory,
            log_group_name=env.get("AWS_LAMBDA_LOG_GROUP_NAME", ""),
            log_stream_name=env.get("AWS_LAMBDA_LOG_STREAM_NAME", ""),
            log_format=env.get("AWS_LAMBDA_LOG_FORMAT", "Text"),
            log_level=env.get("AWS_LAMBDA_LOG_LEVEL", ""),
            initialization_type=env.get("AWS_LAMBDA_INITIALIZATION_TYPE", "on-demand"),
        )


def _split_host_port(address: str) -> tuple[str, int]:
    host, sep, port = address.rpartition(":")
    if (
        not sep
        or not host
        or any(c in host for c in "/ \t@")
        or not (port.isascii() and port.isdigit())
        or not 0 < int(port) < 65536
    ):
        raise ConfigError(
            f"AWS_LAMBDA_RUNTIME_API must be HOST:PORT, got {address!r}"
        )
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return host, int(port)
