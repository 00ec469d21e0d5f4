"""Config.from_environ: where the handler comes from, defaults, and bad Runtime API addresses."""

from __future__ import annotations

from pathlib import Path

import pytest

from runtime.config import Config, ConfigError, TracingConfig, redact_url

API = {"AWS_LAMBDA_RUNTIME_API": "127.0.0.1:9001"}


def test_handler_from_argv_wins_over_handler_env() -> None:
    config = Config.from_environ(["app.from_argv"], {**API, "_HANDLER": "app.from_env"})
    assert config.handler == "app.from_argv"


def test_handler_from_env_when_argv_is_empty() -> None:
    config = Config.from_environ([], {**API, "_HANDLER": "app.from_env"})
    assert config.handler == "app.from_env"


def test_no_handler_anywhere_is_left_empty_for_the_loader_to_report() -> None:
    # The handler loader turns "" into Runtime.MalformedHandlerName, reported to /init/error;
    # failing here instead would leave Lambda without an init error.
    assert Config.from_environ([], API).handler == ""


def test_defaults_when_lambda_sets_nothing_else(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    config = Config.from_environ([], API)
    assert (config.runtime_api_host, config.runtime_api_port) == ("127.0.0.1", 9001)
    assert Path(config.task_root) == tmp_path
    assert config.layer_root == "/opt"
    assert config.function_version == "$LATEST"
    assert config.memory_limit_in_mb == 128
    assert config.log_format == "Text"
    assert config.log_level == ""
    assert config.initialization_type == "on-demand"
    assert config.function_name == ""


def test_every_lambda_variable_is_read() -> None:
    env = {
        **API,
        "_HANDLER": "pkg.mod.fn",
        "LAMBDA_TASK_ROOT": "/var/task",
        "LAMBDA_RUNTIME_LAYER_ROOT": "/tmp/layers",
        "AWS_LAMBDA_FUNCTION_NAME": "orders",
        "AWS_LAMBDA_FUNCTION_VERSION": "7",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "1769",
        "AWS_LAMBDA_LOG_GROUP_NAME": "/aws/lambda/orders",
        "AWS_LAMBDA_LOG_STREAM_NAME": "2026/01/01/[7]abc",
        "AWS_LAMBDA_LOG_FORMAT": "JSON",
        "AWS_LAMBDA_LOG_LEVEL": "DEBUG",
        "AWS_LAMBDA_INITIALIZATION_TYPE": "snap-start",
    }
    config = Config.from_environ([], env)
    assert config == Config(
        handler="pkg.mod.fn",
        runtime_api_host="127.0.0.1",
        runtime_api_port=9001,
        task_root="/var/task",
        layer_root="/tmp/layers",
        function_name="orders",
        function_version="7",
        memory_limit_in_mb=1769,
        log_group_name="/aws/lambda/orders",
        log_stream_name="2026/01/01/[7]abc",
        log_format="JSON",
        log_level="DEBUG",
        initialization_type="snap-start",
    )


def test_reads_the_process_environment_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_LAMBDA_RUNTIME_API", "localhost:8080")
    monkeypatch.setenv("_HANDLER", "lambda_function.lambda_handler")
    config = Config.from_environ()
    assert (config.runtime_api_host, config.runtime_api_port) == ("localhost", 8080)
    assert config.handler == "lambda_function.lambda_handler"


def test_config_is_immutable() -> None:
    config = Config.from_environ([], API)
    with pytest.raises(AttributeError, match="immutable"):
        config.handler = "other.fn"  # type: ignore[misc]
    assert config.handler == ""


@pytest.mark.parametrize(
    ("address", "host", "port"),
    [
        ("127.0.0.1:9001", "127.0.0.1", 9001),
        ("localhost:1", "localhost", 1),
        ("runtime.internal:65535", "runtime.internal", 65535),
        ("[::1]:9001", "::1", 9001),
        ("[fe80::1]:80", "fe80::1", 80),
    ],
)
def test_runtime_api_address_forms(address: str, host: str, port: int) -> None:
    config = Config.from_environ([], {"AWS_LAMBDA_RUNTIME_API": address})
    assert (config.runtime_api_host, config.runtime_api_port) == (host, port)


def test_missing_runtime_api_says_what_is_missing() -> None:
    with pytest.raises(ConfigError) as info:
        Config.from_environ(["app.handler"], {})
    assert "AWS_LAMBDA_RUNTIME_API" in str(info.value)


@pytest.mark.parametrize(
    "address",
    [
        "localhost",
        "localhost:",
        ":9001",
        "localhost:http",
        "localhost:0",
        "localhost:65536",
        "localhost:-1",
        "localhost:9001/",
        "localhost:9001/2018-06-01",
        "localhost:99999999999999999999",
        "[::1]",
        " ",
    ],
)
def test_bad_runtime_api_is_a_config_error_naming_the_variable_and_value(address: str) -> None:
    with pytest.raises(ConfigError) as info:
        Config.from_environ(["app.handler"], {"AWS_LAMBDA_RUNTIME_API": address})
    message = str(info.value)
    assert "AWS_LAMBDA_RUNTIME_API" in message
    assert repr(address) in message


@pytest.mark.parametrize("address", ["http://127.0.0.1:9001", "https://localhost:9001"])
def test_runtime_api_given_as_url_is_a_config_error(address: str) -> None:
    with pytest.raises(ConfigError) as info:
        Config.from_environ(["app.handler"], {"AWS_LAMBDA_RUNTIME_API": address})
    assert "AWS_LAMBDA_RUNTIME_API" in str(info.value)


# --- OpenTelemetry settings and URLs shown ------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("http://collector:4318/v1/traces", "http://collector:4318/v1/traces"),
        ("https://user:pw-secret@collector/v1/traces", "https://***@collector/v1/traces"),
        (
            "ftp://user:password@host/x?api_key=k-secret&region=eu",
            "ftp://***@host/x?api_key=***&region=***",
        ),
        ("http://host/x?token-secret#frag-secret", "http://host/x?***#***"),
        ("user:pw-secret@host:4318/v1", "***@host:4318/v1"),
        ("http://[::1/x?k=secret", "<a URL that cannot be parsed>"),
    ],
)
def test_redact_url_hides_credentials_and_query_values(url: str, shown: str) -> None:
    assert redact_url(url) == shown


OTLP = {**API, "OTEL_TRACES_EXPORTER": "otlp"}


def tracing(**env: str) -> TracingConfig:
    return Config.from_environ([], {**OTLP, **env}).observability.tracing


def test_otel_settings_are_read_into_the_config() -> None:
    settings = tracing(
        OTEL_EXPORTER_OTLP_ENDPOINT="https://collector:4318/",
        OTEL_EXPORTER_OTLP_HEADERS="x-api-key=a%20b,tenant=t1",
        OTEL_EXPORTER_OTLP_TRACES_COMPRESSION="gzip",
        OTEL_EXPORTER_OTLP_TRACES_TIMEOUT="500",
        OTEL_EXPORTER_OTLP_TIMEOUT="9000",
        OTEL_BSP_MAX_QUEUE_SIZE="10",
        OTEL_SERVICE_NAME="orders",
        OTEL_RESOURCE_ATTRIBUTES="team=payments,tier=gold",
    )
    assert settings.exporters == ("otlp",)
    assert settings.endpoint == "https://collector:4318/v1/traces"
    assert settings.headers == (("x-api-key", "a b"), ("tenant", "t1"))
    assert (settings.compression, settings.timeout_ms, settings.max_queue) == ("gzip", 500, 10)
    assert settings.service_name == "orders"
    assert settings.resource_attributes == (("team", "payments"), ("tier", "gold"))
    assert tracing().endpoint == "http://localhost:4318/v1/traces"


def test_a_query_string_stays_at_the_end_of_the_traces_url() -> None:
    settings = tracing(OTEL_EXPORTER_OTLP_ENDPOINT="http://collector:4318/otlp?api_key=k")
    assert settings.endpoint == "http://collector:4318/otlp/v1/traces?api_key=k"
    # The signal's own variable is used as given.
    given = "http://collector:4318/custom?api_key=k"
    assert tracing(OTEL_EXPORTER_OTLP_TRACES_ENDPOINT=given).endpoint == given


@pytest.mark.parametrize(
    "name", ["OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"]
)
def test_an_invalid_endpoint_is_reported_without_its_credentials(name: str) -> None:
    with pytest.raises(ConfigError) as caught:
        tracing(**{name: "ftp://user:password@host/x?api_key=k-secret"})
    message = str(caught.value)
    assert f"{name}='ftp://***@host/x?api_key=***' must be an http:// or https:// URL" in message
    assert "password" not in message and "k-secret" not in message


def test_tracing_is_off_without_otel_variables() -> None:
    config = Config.from_environ([], API)
    assert config.observability.tracing.exporters == ()
    assert not config.observability.enabled
