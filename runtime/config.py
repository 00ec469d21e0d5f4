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
DEFAULT_OTLP_ENDPOINT = "http://localhost:4318"
OTLP_TRACES_PATH = "/v1/traces"
DEFAULT_OTLP_TIMEOUT_MS = 2000
DEFAULT_SPAN_QUEUE = 2048
# OTEL_TRACES_SAMPLER values (the OpenTelemetry SDK's built-in samplers); the default follows
# the caller's sampling decision, and samples roots.
TRACE_SAMPLERS = (
    "always_on",
    "always_off",
    "traceidratio",
    "parentbased_always_on",
    "parentbased_always_off",
    "parentbased_traceidratio",
)
DEFAULT_TRACE_SAMPLER = "parentbased_always_on"
# AWS_LAMBDA_INITIALIZATION_TYPE of a SnapStart function: init, snapshot, restore, then invokes.
SNAP_START = "snap-start"


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


class TracingConfig(_Frozen):
    """The OpenTelemetry settings (the standard ``OTEL_*`` variables), read once, here only.

    - ``exporters``: trace exporters to build; empty means tracing is off and OpenTelemetry is
      never imported.
    - ``protocol``: ``http/protobuf`` (the built-in exporter) or ``grpc``.
    - ``endpoint``: where spans go: for http/protobuf the full URL of the traces signal
      (``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` as given, else ``OTEL_EXPORTER_OTLP_ENDPOINT``
      with ``/v1/traces`` appended to its path); for grpc the address as given ("" = default).
    - ``headers``: extra request headers (``*_HEADERS``), as ``(name, value)`` pairs.
    - ``compression``: ``gzip`` or "".
    - ``certificate``: a CA bundle for https endpoints, or "".
    - ``timeout_ms``: the export time budget after each invoke.
    - ``max_queue``: spans kept while the collector is unreachable.
    - ``service_name`` and ``resource_attributes``: what the user says about the resource.
    - ``sampler`` and ``sampler_arg``: ``OTEL_TRACES_SAMPLER`` (one of :data:`TRACE_SAMPLERS`)
      and the ratio of the ``*traceidratio`` samplers (``OTEL_TRACES_SAMPLER_ARG``).
    """

    __slots__ = (
        "certificate",
        "compression",
        "endpoint",
        "exporters",
        "headers",
        "max_queue",
        "protocol",
        "resource_attributes",
        "sampler",
        "sampler_arg",
        "service_name",
        "timeout_ms",
    )

    exporters: tuple[str, ...]
    protocol: str
    endpoint: str
    headers: tuple[tuple[str, str], ...]
    compression: str
    certificate: str
    timeout_ms: int
    max_queue: int
    service_name: str
    resource_attributes: tuple[tuple[str, str], ...]
    sampler: str
    sampler_arg: float

    def __init__(
        self,
        *,
        exporters: tuple[str, ...] = (),
        protocol: str = "http/protobuf",
        endpoint: str = DEFAULT_OTLP_ENDPOINT + OTLP_TRACES_PATH,
        headers: tuple[tuple[str, str], ...] = (),
        compression: str = "",
        certificate: str = "",
        timeout_ms: int = DEFAULT_OTLP_TIMEOUT_MS,
        max_queue: int = DEFAULT_SPAN_QUEUE,
        service_name: str = "",
        resource_attributes: tuple[tuple[str, str], ...] = (),
        sampler: str = DEFAULT_TRACE_SAMPLER,
        sampler_arg: float = 1.0,
    ) -> None:
        set_ = object.__setattr__
        set_(self, "exporters", exporters)
        set_(self, "protocol", protocol)
        set_(self, "endpoint", endpoint)
        set_(self, "headers", headers)
        set_(self, "compression", compression)
        set_(self, "certificate", certificate)
        set_(self, "timeout_ms", timeout_ms)
        set_(self, "max_queue", max_queue)
        set_(self, "service_name", service_name)
        set_(self, "resource_attributes", resource_attributes)
        set_(self, "sampler", sampler)
        set_(self, "sampler_arg", sampler_arg)

    @classmethod
    def from_environ(cls, env: Mapping[str, str]) -> TracingConfig:
        exporters = _trace_exporters(env)
        if not exporters:
            return TRACING_OFF
        _require(
            "opentelemetry.sdk",
            "tracing (OTEL_* variables) needs opentelemetry-sdk, which is not installed: build "
            "the layer with `lambda-runtime package --with otel` or `pip install "
            "lambda-runtime[otel]`, or unset the OTEL_* variables",
        )
        timeout_ms = _positive(
            env, "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT", "OTEL_EXPORTER_OTLP_TIMEOUT",
            default=DEFAULT_OTLP_TIMEOUT_MS,
        )  # fmt: skip
        max_queue = _positive(env, "OTEL_BSP_MAX_QUEUE_SIZE", default=DEFAULT_SPAN_QUEUE)
        service_name = env.get("OTEL_SERVICE_NAME", "").strip()
        attributes = tuple(parse_key_values(env.get("OTEL_RESOURCE_ATTRIBUTES", "")).items())
        sampler, sampler_arg = _sampler(env)
        if "otlp" not in exporters:
            return cls(
                exporters=exporters,
                timeout_ms=timeout_ms,
                max_queue=max_queue,
                service_name=service_name,
                resource_attributes=attributes,
                sampler=sampler,
                sampler_arg=sampler_arg,
            )
        protocol = (
            _env_first(env, "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL")
            or "http/protobuf"
        )
        if protocol not in ("http/protobuf", "grpc"):
            raise ConfigError(
                f"OTLP protocol {protocol!r} (OTEL_EXPORTER_OTLP_TRACES_PROTOCOL or "
                "OTEL_EXPORTER_OTLP_PROTOCOL) is not supported; use http/protobuf or grpc"
            )
        if protocol == "grpc":
            _require(
                "opentelemetry.exporter.otlp.proto.grpc",
                "OTLP over grpc needs the opentelemetry-exporter-otlp-proto-grpc package; "
                "install it, or use OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf",
            )
        compression = ""
        for name in ("OTEL_EXPORTER_OTLP_TRACES_COMPRESSION", "OTEL_EXPORTER_OTLP_COMPRESSION"):
            value = env.get(name, "").strip().lower()
            if value not in ("", "none", "gzip"):
                raise ConfigError(f"{name}={value!r} is not supported; use gzip or none")
            compression = compression or value
        headers = _env_first(env, "OTEL_EXPORTER_OTLP_TRACES_HEADERS", "OTEL_EXPORTER_OTLP_HEADERS")
        return cls(
            protocol=protocol,
            endpoint=_otlp_endpoint(env, protocol),
            headers=tuple(parse_key_values(headers).items()),
            compression="gzip" if compression == "gzip" else "",
            certificate=_env_first(
                env, "OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE", "OTEL_EXPORTER_OTLP_CERTIFICATE"
            ),
            exporters=exporters,
            timeout_ms=timeout_ms,
            max_queue=max_queue,
            service_name=service_name,
            resource_attributes=attributes,
            sampler=sampler,
            sampler_arg=sampler_arg,
        )


TRACING_OFF = TracingConfig()


class ObservabilityConfig(_Frozen):
    """What the observability variables switch on (issue 4); the defaults mean "all off".

    - ``tracing``: the OpenTelemetry settings (:class:`TracingConfig`).
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
        "tracing",
    )

    tracing: TracingConfig
    metrics: str
    metrics_namespace: str
    log_buffer: str
    log_buffer_size: int
    region: str

    def __init__(
        self,
        *,
        tracing: TracingConfig = TRACING_OFF,
        metrics: str = "",
        metrics_namespace: str = DEFAULT_METRICS_NAMESPACE,
        log_buffer: str = "",
        log_buffer_size: int = DEFAULT_LOG_BUFFER_SIZE,
        region: str = "",
    ) -> None:
        set_ = object.__setattr__
        set_(self, "tracing", tracing)
        set_(self, "metrics", metrics)
        set_(self, "metrics_namespace", metrics_namespace)
        set_(self, "log_buffer", log_buffer)
        set_(self, "log_buffer_size", log_buffer_size)
        set_(self, "region", region)

    @classmethod
    def from_environ(cls, env: Mapping[str, str]) -> ObservabilityConfig:
        return cls(
            tracing=TracingConfig.from_environ(env),
            metrics=_metrics_mode(env),
            metrics_namespace=_metrics_namespace(env),
            log_buffer=_log_buffer(env),
            log_buffer_size=_log_buffer_size(env),
            region=env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION", ""),
        )

    @property
    def trace_exporters(self) -> tuple[str, ...]:
        """The trace exporters to build; empty when tracing is off."""
        return self.tracing.exporters

    @property
    def enabled(self) -> bool:
        """Whether anything beyond the default Text/JSON logs is switched on."""
        return bool(self.tracing.exporters or self.metrics or self.log_buffer)


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
        "max_concurrency",
        "memory_limit_in_mb",
        "observability",
        "processes",
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
    # AWS_LAMBDA_MAX_CONCURRENCY (0: absent, one invoke at a time) and
    # LAMBDA_RUNTIME_PROCESSES (0: absent, one process serves every slot).
    max_concurrency: int
    processes: int

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
        max_concurrency: int = 0,
        processes: int = 0,
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
        set_(self, "max_concurrency", max_concurrency)
        set_(self, "processes", processes)

    @property
    def snap_start(self) -> bool:
        """Init is followed by a snapshot and restores from it (SnapStart): the runtime runs
        the snapshot hooks and waits on ``/restore/next`` before its first ``/next``."""
        return self.initialization_type == SNAP_START

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
        max_concurrency, processes = concurrency_settings(env)
        # Lambda Managed Instances write JSON logs; an explicit choice still wins.
        default_format = "JSON" if max_concurrency else "Text"
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
            log_format=env.get("AWS_LAMBDA_LOG_FORMAT") or default_format,
            log_level=env.get("AWS_LAMBDA_LOG_LEVEL", ""),
            initialization_type=env.get("AWS_LAMBDA_INITIALIZATION_TYPE", "on-demand"),
            observability=ObservabilityConfig.from_environ(env),
            max_concurrency=max_concurrency,
            processes=processes,
        )


# Lambda's own ceiling for invokes in flight in one environment is far below this; a larger
# value is a typo, and each slot costs a thread and a connection.
MAX_CONCURRENCY_LIMIT = 1024


def concurrency_settings(env: Mapping[str, str]) -> tuple[int, int]:
    """``(max_concurrency, processes)``; ``(0, 0)`` when the runtime serves one invoke at a time.

    ``AWS_LAMBDA_MAX_CONCURRENCY=N`` (Lambda Managed Instances) lets N invokes run at once;
    ``LAMBDA_RUNTIME_PROCESSES=P`` (ours, opt-in) spreads them over P forked workers.
    """
    raw = env.get("AWS_LAMBDA_MAX_CONCURRENCY", "").strip()
    raw_processes = env.get("LAMBDA_RUNTIME_PROCESSES", "").strip()
    if not raw:
        if raw_processes:
            raise ConfigError(
                f"LAMBDA_RUNTIME_PROCESSES={raw_processes!r} needs AWS_LAMBDA_MAX_CONCURRENCY: "
                "worker processes only serve several invokes at once"
            )
        return 0, 0
    if not (raw.isascii() and raw.isdigit()) or not 1 <= int(raw) <= MAX_CONCURRENCY_LIMIT:
        raise ConfigError(
            f"AWS_LAMBDA_MAX_CONCURRENCY={raw!r} must be a whole number from 1 to "
            f"{MAX_CONCURRENCY_LIMIT} (invokes in flight at once)"
        )
    slots = int(raw)
    if not raw_processes:
        return slots, 0
    if not (raw_processes.isascii() and raw_processes.isdigit()) or not (
        1 <= int(raw_processes) <= slots
    ):
        raise ConfigError(
            f"LAMBDA_RUNTIME_PROCESSES={raw_processes!r} must be a whole number from 1 to "
            f"AWS_LAMBDA_MAX_CONCURRENCY ({slots}): each worker serves at least one slot"
        )
    return slots, int(raw_processes)


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
    return exporters


def _sampler(env: Mapping[str, str]) -> tuple[str, float]:
    name = env.get("OTEL_TRACES_SAMPLER", "").strip().lower() or DEFAULT_TRACE_SAMPLER
    if name not in TRACE_SAMPLERS:
        raise ConfigError(
            f"OTEL_TRACES_SAMPLER={name!r} is not supported; use one of {', '.join(TRACE_SAMPLERS)}"
        )
    raw = env.get("OTEL_TRACES_SAMPLER_ARG", "").strip()
    if not raw or not name.endswith("traceidratio"):
        return name, 1.0
    try:
        ratio = float(raw)
    except ValueError:
        ratio = -1.0
    if not 0.0 <= ratio <= 1.0:
        raise ConfigError(f"OTEL_TRACES_SAMPLER_ARG={raw!r} must be a ratio from 0 to 1")
    return name, ratio


def _env_first(env: Mapping[str, str], *names: str) -> str:
    """The first of *names* that is set to something other than blanks (signal-specific
    variables come first, as the OpenTelemetry specification orders them)."""
    for name in names:
        value = env.get(name, "").strip()
        if value:
            return value
    return ""


def _positive(env: Mapping[str, str], *names: str, default: int) -> int:
    for name in names:
        value = env.get(name, "").strip()
        if value:
            if not value.isdigit() or int(value) <= 0:
                raise ConfigError(f"{name}={value!r} must be a positive whole number")
            return int(value)
    return default


def _require(module: str, message: str) -> None:
    """ConfigError(message) unless *module* can be imported; nothing is imported but its
    parent packages."""
    import importlib.util

    try:
        found = importlib.util.find_spec(module)
    except ImportError:  # a parent package is missing
        found = None
    if found is None:
        raise ConfigError(message)


def parse_key_values(raw: str) -> dict[str, str]:
    """``k1=v1,k2=v2`` with percent-encoded values (OTEL_RESOURCE_ATTRIBUTES, *_HEADERS)."""
    from urllib.parse import unquote

    out: dict[str, str] = {}
    for item in raw.split(","):
        key, sep, value = item.partition("=")
        if sep and key.strip():
            out[unquote(key.strip())] = unquote(value.strip())
    return out


def _otlp_endpoint(env: Mapping[str, str], protocol: str) -> str:
    traces = env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "").strip()
    base = env.get("OTEL_EXPORTER_OTLP_ENDPOINT", "").strip()
    for name, url in (
        ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", traces),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", base),
    ):
        if url and not _is_http_url(url):
            raise ConfigError(f"{name}={redact_url(url)!r} must be an http:// or https:// URL")
    if protocol == "grpc":
        return traces or base
    if traces:
        return traces  # the signal's own variable is used as given (OTel specification)
    return with_path_suffix(base or DEFAULT_OTLP_ENDPOINT, OTLP_TRACES_PATH)


def _is_http_url(url: str) -> bool:
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(url)
        return parts.scheme in ("http", "https") and bool(parts.hostname) and (
            parts.port is None or parts.port > 0
        )
    except ValueError:  # e.g. a port that is not a number, an unclosed [IPv6 bracket
        return False


def with_path_suffix(url: str, suffix: str) -> str:
    """*url* with *suffix* appended to its path; a query string stays at the end."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=parts.path.rstrip("/") + suffix))


def redact_url(url: str) -> str:
    """*url* as it may be shown in a log line or an error: user:password, query values and
    the fragment replaced by ``***``; scheme, host, port, path and query keys stay."""
    from urllib.parse import urlsplit, urlunsplit

    try:
        parts = urlsplit(url.strip())
    except ValueError:
        return "<a URL that cannot be parsed>"
    netloc = parts.netloc
    if not netloc and "@" in url.partition("/")[0]:
        # No "//": a "user:password@host" that urlsplit took for a scheme and a path.
        return redact_url("//" + url.strip())[2:]
    if "@" in netloc:
        netloc = "***@" + netloc.rpartition("@")[2]
    query = "&".join(
        f"{pair.partition('=')[0]}=***" if "=" in pair else "***"
        for pair in parts.query.split("&")
        if pair
    )
    fragment = "***" if parts.fragment else ""
    return urlunsplit((parts.scheme, netloc, parts.path, query, fragment))


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
