"""The built-in OTLP/HTTP exporter against a real receiver on 127.0.0.1: the request it sends
and what it shows of its endpoint."""

from __future__ import annotations

import logging
import socket
import sys
import time
from collections.abc import Iterator

import pytest
from obs_support import Collector

from runtime import __version__
from runtime.config import Config
from runtime.observability.otlp import OK, RETRY, OtlpHttpExporter


@pytest.fixture
def collector() -> Iterator[Collector]:
    c = Collector()
    yield c
    c.close()


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


def test_the_exporter_sends_to_the_configured_url_with_its_query_and_a_user_agent(
    collector: Collector,
) -> None:
    base = collector.url.removesuffix("/v1/traces")
    settings = Config.from_environ(
        [],
        {
            "AWS_LAMBDA_RUNTIME_API": "127.0.0.1:1",
            "OTEL_EXPORTER_OTLP_ENDPOINT": f"{base}/otlp?tenant=t-1",
            "OTEL_EXPORTER_OTLP_HEADERS": "x-api-key=secret",
        },
    ).observability.tracing
    exporter = OtlpHttpExporter.from_config(settings)
    assert exporter.send([], time.monotonic() + 5) == OK
    (headers, _), = collector.requests
    assert collector.paths == ["/otlp/v1/traces?tenant=t-1"]
    python = f"{sys.version_info[0]}.{sys.version_info[1]}"
    assert headers["User-Agent"] == f"lambda-runtime/{__version__} python/{python}"
    assert headers["x-api-key"] == "secret"


def test_export_warnings_never_show_credentials_or_query_values(
    caplog: pytest.LogCaptureFixture,
) -> None:
    port = closed_port()
    exporter = OtlpHttpExporter(f"http://user:pw-secret@127.0.0.1:{port}/v1/traces?api_key=k-s")
    assert exporter.endpoint == f"http://***@127.0.0.1:{port}/v1/traces?api_key=***"
    with caplog.at_level(logging.WARNING, logger="lambda_runtime.tracing"):
        assert exporter.send([], time.monotonic() + 2) == RETRY
    (record,) = caplog.records
    shown = record.getMessage()
    assert "http://***@127.0.0.1:" in shown and "?api_key=***" in shown
    assert "pw-secret" not in shown and "k-s" not in shown


def test_a_bad_endpoint_given_directly_is_refused_without_its_credentials() -> None:
    with pytest.raises(ValueError) as caught:
        OtlpHttpExporter("ftp://user:pw-secret@127.0.0.1/v1/traces?api_key=k-secret")
    assert "ftp://***@127.0.0.1/v1/traces?api_key=***" in str(caught.value)
    assert "secret" not in str(caught.value)
