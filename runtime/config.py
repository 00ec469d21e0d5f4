"""Everything the runtime reads from its environment, read once at init into one typed object."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

DEFAULT_LAYER_ROOT = "/opt"
DEFAULT_METRICS_NAMESPACE = "lambda-runtime"
DEFAULT_LOG_BUFFER_SIZE = 1000
# Exporters the runtime knows how to build without an entry-point scan (which costs a full
# walk of the installed distributions at cold start).
TRACE_EXPORTERS = ("otlp", "console")


class ConfigError(Exception):
    """The environment cannot describe a runnable function (e.g. no Runtime API address)."""


class _Frozen:
    """Equality, hashing, repr and immutability for the slotted configuration classes.

    Plain classes rather than dataclasses: generating a dataclass costs cold start (~1.5 ms for
    Config), and init runs on every cold start.
    """

    __slots__: tuple[str, ...] = ()

    def _fields(self) -> tuple[object, ...]:
        return tuple(getattr(self, name) for name in self.__slots__)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"{type(self).__name__} is immutable (tried to set {name})")

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        return self._fields() == other._fields()  # type: ignore[attr-defined]

    def __hash__(self) -> int:
        return hash(self._fields())

    def __repr__(self) -> str:
        fields = ", ".join(f"{name}={getattr(self, name)!r}" for name in self.__slots__)
        return f"{type(self).__name__}({fields})"


class ObservabilityConfig(_Frozen):
    """What the observability variables switch on (issue 4); the defaults mean "all off".

    - ``trace_exporters``: trace exporters named by the standard OTEL_* variables; empty means
      tracing is off and OpenTelemetry is never imported.
    - ``metrics``: ``"emf"`` for one CloudWatch Embedded Metric Format line per invoke, or "".
    - ``metrics_namespace``: the CloudWatch namespace of those metrics.
    - ``log_buffer``: ``"debug"`` or ``"trace"``: records below the log level, down to that
      level, are kept per invoke and written only when the invoke fails; "" is off.
    - ``log_buffer_size``: how many records an invoke keeps at most (the oldest go first).
    - ``region``: ``AWS_REGION``, for the trace resource.
    """

    __slots__ = (
        "log_buffer",
        "log_buffer_size",
        "metrics",
        "metrics_namespace",
        "region",
        "trace_exporters",
    )

    trace_exporters: tuple[str, ...]
    metrics: str
    metrics_namespace: str
    log_buffer: str
    log_buffer_size: int
    region: str

    def __init__(
        self,
        *,
        trace_exporters: tuple[str, ...] = (),
        metrics: str = "",
        metrics_namespace: str = DEFAULT_METRICS_NAMESPACE,
        log_buffer: str = "",
        log_buffer_size: int = DEFAULT_LOG_BUFFER_SIZE,
        region: str = "",
    ) -> None:
        set_ = object.__setattr__
        set_(self, "trace_exporters", trace_exporters)
        set_(self, "metrics", metrics)
        set_(self, "metrics_namespace", metrics_namespace)
        set_(self, "log_buffer", log_buffer)
        set_(self, "log_buffer_size", log_buffer_size)
        set_(self, "region", region)

    @classmethod
    def from_environ(cls, env: Mapping[str, str]) -> ObservabilityConfig:
        return cls(
            trace_exporters=_trace_exporters(env),
            metrics=_metrics_mode(env),
            metrics_namespace=_metrics_namespace(env),
            log_buffer=_log_buffer(env),
            log_buffer_size=_log_buffer_size(env),
            region=env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION", ""),
        )

    @property
    def enabled(self) -> bool:
        """Whether anything beyond the default Text/JSON logs is switched on."""
        return bool(self.trace_exporters or self.metrics or self.log_buffer)



OBSERVABILITY_OFF = ObservabilityConfig()


class Config(_Frozen):
    """The runtime's configuration (see the README's Configuration section)."""

    __slots__ = (
        "function_name",
        "function_version",
        "handler",
        "initialization_type",
        "layer_root",
        "log_format",
        "log_group_name",
        "log_level",
        "log_stream_name",
        "memory_limit_in_mb",
        "observability",
        "runtime_api_host",
        "runtime_api_port",
        "task_root",
    )

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
    observability: ObservabilityConfig

    def __init__(
        self,
        *,
        handler: str,
        runtime_api_host: str,
        runtime_api_port: int,
        task_root: str,
        layer_root: str,
        function_name: str,
        function_version: str,
        memory_limit_in_mb: int,
        log_group_name: str,
        log_stream_name: str,
        log_format: str,
        log_level: str,
        initialization_type: str,
        observability: ObservabilityConfig = OBSERVABILITY_OFF,
    ) -> None:
        set_ = object.__setattr__
        set_(self, "handler", handler)
        set_(self, "runtime_api_host", runtime_api_host)
        set_(self, "runtime_api_port", runtime_api_port)
        set_(self, "task_root", task_root)
        set_(self, "layer_root", layer_root)
        set_(self, "function_name", function_name)
        set_(self, "function_version", function_version)
        set_(self, "memory_limit_in_mb", memory_limit_in_mb)
        set_(self, "log_group_name", log_group_name)
        set_(self, "log_stream_name", log_stream_name)
        set_(self, "log_format", log_format)
        set_(self, "log_level", log_level)
        set_(self, "initialization_type", initialization_type)
        set_(self, "observability", observability)

    @classmethod
    def from_environ(
        cls, argv: Sequence[str] = (), environ: Mapping[str, str] | None = None
    ) -> Config:
        env = os.environ if environ is None else environ
        handler = argv[0] if argv else env.get("_HANDLER", "")
        host, port = runtime_api_address(env)
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
            observability=ObservabilityConfig.from_environ(env),
        )


def runtime_api_address(env: Mapping[str, str]) -> tuple[str, int]:
    """The Runtime API's host and port from ``AWS_LAMBDA_RUNTIME_API``; ConfigError if unusable."""
    api = env.get("AWS_LAMBDA_RUNTIME_API", "")
    if not api:
        raise ConfigError(
            "AWS_LAMBDA_RUNTIME_API is not set: the runtime needs the Runtime API address "
            "(host:port). Run it inside Lambda, or locally with `lambda-runtime serve HANDLER`."
        )
    return _split_host_port(api)


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


def _trace_exporters(env: Mapping[str, str]) -> tuple[str, ...]:
    """Tracing is on when the standard variables configure an exporter, off otherwise."""
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return ()
    named = env.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    if named:
        exporters = tuple(dict.fromkeys(n.strip() for n in named.split(",") if n.strip()))
        if "none" in exporters:
            return ()
    elif env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or env.get("OTEL_EXPORTER_OTLP_ENDPOINT"):
        exporters = ("otlp",)
    else:
        return ()
    for name in exporters:
        if name not in TRACE_EXPORTERS:
            raise ConfigError(
                f"OTEL_TRACES_EXPORTER={named!r}: exporter {name!r} is not supported by "
                f"lambda-runtime; use {' or '.join(TRACE_EXPORTERS)} (or none)"
            )
    if "otlp" in exporters:
        protocol = (
            env.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
            or env.get("OTEL_EXPORTER_OTLP_PROTOCOL")
            or "http/protobuf"
        ).strip()
        if protocol not in ("http/protobuf", "grpc"):
            raise ConfigError(
                f"OTLP protocol {protocol!r} (OTEL_EXPORTER_OTLP_TRACES_PROTOCOL or "
                "OTEL_EXPORTER_OTLP_PROTOCOL) is not supported; use http/protobuf or grpc"
            )
        _check_otlp(env, protocol)
    return exporters


def _check_otlp(env: Mapping[str, str], protocol: str) -> None:
    for name in ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT"):
        url = env.get(name, "").strip()
        if url and not url.startswith(("http://", "https://")):
            raise ConfigError(f"{name}={url!r} must be an http:// or https:// URL")
    for name in ("OTEL_EXPORTER_OTLP_TRACES_COMPRESSION", "OTEL_EXPORTER_OTLP_COMPRESSION"):
        value = env.get(name, "").strip().lower()
        if value not in ("", "none", "gzip"):
            raise ConfigError(f"{name}={value!r} is not supported; use gzip or none")
    for name in (
        "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT",
        "OTEL_EXPORTER_OTLP_TIMEOUT",
        "OTEL_BSP_MAX_QUEUE_SIZE",
    ):
        value = env.get(name, "").strip()
        if value and (not value.isdigit() or int(value) <= 0):
            raise ConfigError(f"{name}={value!r} must be a positive whole number")
    if protocol == "grpc":
        import importlib.util

        try:
            found = importlib.util.find_spec("opentelemetry.exporter.otlp.proto.grpc")
        except ImportError:
            found = None
        if found is None:
            raise ConfigError(
                "OTLP over grpc needs the opentelemetry-exporter-otlp-proto-grpc package; "
                "install it, or use OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf"
            )


def _metrics_mode(env: Mapping[str, str]) -> str:
    mode = env.get("LAMBDA_RUNTIME_METRICS", "").strip().lower()
    if mode in ("", "off", "none", "false", "0"):
        return ""
    if mode == "emf":
        return "emf"
    raise ConfigError(
        f"LAMBDA_RUNTIME_METRICS={mode!r} is not a metrics mode: use emf, or leave it unset"
    )


_NAMESPACE_CHARS = frozenset(
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-_/#: "
)


def _metrics_namespace(env: Mapping[str, str]) -> str:
    namespace = env.get("LAMBDA_RUNTIME_METRICS_NAMESPACE", "") or DEFAULT_METRICS_NAMESPACE
    # CloudWatch's rules for a namespace; a bad one would make every metric line be dropped.
    bad = sorted(set(namespace) - _NAMESPACE_CHARS)
    if len(namespace) > 255 or not namespace.strip() or bad or namespace.startswith("AWS/"):
        raise ConfigError(
            f"LAMBDA_RUNTIME_METRICS_NAMESPACE={namespace!r} is not a CloudWatch namespace: "
            "1-255 characters from A-Z a-z 0-9 . - _ / # : and space, not starting with AWS/"
            + (f" (bad characters: {''.join(bad)!r})" if bad else "")
        )
    return namespace


def _log_buffer(env: Mapping[str, str]) -> str:
    mode = env.get("LAMBDA_RUNTIME_LOG_BUFFER", "").strip().lower()
    if mode in ("", "off", "none", "false", "0"):
        return ""
    if mode in ("debug", "trace"):
        return mode
    raise ConfigError(
        f"LAMBDA_RUNTIME_LOG_BUFFER={mode!r}: use debug or trace (the lowest level to keep), "
        "or leave it unset"
    )


def _log_buffer_size(env: Mapping[str, str]) -> int:
    raw = env.get("LAMBDA_RUNTIME_LOG_BUFFER_SIZE", "").strip()
    if not raw:
        return DEFAULT_LOG_BUFFER_SIZE
    if not raw.isdigit() or not 1 <= int(raw) <= 1_000_000:
        raise ConfigError(
            f"LAMBDA_RUNTIME_LOG_BUFFER_SIZE={raw!r}: a number of records from 1 to 1000000"
        )
    return int(raw)
