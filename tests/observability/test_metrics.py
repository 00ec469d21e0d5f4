"""CloudWatch EMF lines, driven through the real lifecycle (Invoker) and checked against the
format's rules (https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/
CloudWatch_Embedded_Metric_Format_Specification.html)."""

from __future__ import annotations

import io
import json
import logging
import math
import time
import uuid
from typing import Any, cast

import pytest
from obs_support import validate_emf

from runtime import add_metric, add_property
from runtime.api import Invocation
from runtime.bootstrap import Invoker
from runtime.config import Config, ConfigError
from runtime.layers import InitInfo
from runtime.logs import StreamOutput, Writer
from runtime.observability.jsonlog import ObservedRuntimeLog
from runtime.observability.layer import Observability
from runtime.observability.metrics import MAX_CUSTOM_METRICS, EmfWriter


def make_config(**env: str) -> Config:
    return Config.from_environ(
        ["app.handler"],
        {
            "AWS_LAMBDA_RUNTIME_API": "127.0.0.1:9001",
            "AWS_LAMBDA_FUNCTION_NAME": "orders",
            "LAMBDA_RUNTIME_METRICS": "emf",
            **env,
        },
    )


class Timeline(io.StringIO):
    """stdout for the test: notes when the metric line was written relative to the post."""

    def __init__(self, events: list[str]) -> None:
        super().__init__()
        self.events = events

    def write(self, text: str) -> int:
        self.events.append("line")
        return super().write(text)


class RecordingClient:
    def __init__(self, events: list[str]) -> None:
        self.events = events
        self.kinds: list[str] = []

    def post_response(
        self, invocation: Invocation, body: Any, content_type: str, *, then_next: bool = False
    ) -> None:
        # With after-invoke work (these layers), /next must wait for it: never sent with the post.
        assert not then_next, "GET /next pipelined although work runs after the post"
        self.kinds.append("response")
        self.events.append("posted")

    def post_error(self, invocation: Invocation, error_type: str, body: bytes, cause: Any) -> None:
        self.kinds.append("error")
        self.events.append("posted")


class Harness:
    def __init__(
        self, handler: Any, monkeypatch: pytest.MonkeyPatch, cold_start: bool = True, **env: str
    ) -> None:
        self.events: list[str] = []
        self.stdout = Timeline(self.events)
        monkeypatch.setattr("sys.stdout", self.stdout)
        config = make_config(**env)
        now = time.time_ns()
        info = InitInfo(started_ns=now - 150_000_000, handler_loaded_ns=now, handler_import_ns=1)
        layer = Observability(emf=EmfWriter(config, info), cold_start=cold_start)
        self.client = RecordingClient(self.events)
        self.invoker = Invoker(
            config,
            cast(Any, self.client),  # records posts instead of sending them
            handler,
            # What install() gives the lifecycle when metrics are on.
            ObservedRuntimeLog(Writer(StreamOutput(io.StringIO())), json=False),
            [layer],
        )

    def invoke(self, event: Any = None) -> dict[str, Any]:
        written = len(self.stdout.getvalue())
        request_id = str(uuid.uuid4())
        headers = {
            "lambda-runtime-aws-request-id": request_id,
            "lambda-runtime-deadline-ms": str(int(time.time() * 1000) + 30_000),
            "lambda-runtime-invoked-function-arn": "arn:aws:lambda:us-east-1:1:function:orders",
        }
        self.invoker.handle(Invocation(headers, json.dumps(event or {}).encode()))
        lines = self.stdout.getvalue()[written:].splitlines(keepends=True)
        assert len(lines) == 1, lines
        doc = validate_emf(lines[0])
        assert doc["requestId"] == request_id
        return doc


def ok(event: Any, context: Any) -> str:
    return "ok"


def test_one_line_per_invoke_with_the_built_in_metrics(monkeypatch: pytest.MonkeyPatch) -> None:
    def slow(event: Any, context: Any) -> str:
        time.sleep(0.02)
        return "ok"

    h = Harness(slow, monkeypatch)
    before_ms = int(time.time() * 1000)
    cold = h.invoke()
    directive = cold["_aws"]["CloudWatchMetrics"][0]
    assert directive["Namespace"] == "lambda-runtime"
    assert directive["Dimensions"] == [["FunctionName"]]
    assert [m["Name"] for m in directive["Metrics"]] == [
        "Duration",
        "ColdStart",
        "InitDuration",
        "Errors",
    ]
    assert cold["FunctionName"] == "orders"
    assert 20 <= cold["Duration"] < 2000
    assert (cold["ColdStart"], cold["Errors"]) == (1, 0)
    assert cold["InitDuration"] == pytest.approx(150, abs=0.01)
    assert before_ms <= cold["_aws"]["Timestamp"] <= int(time.time() * 1000)
    warm = h.invoke()
    assert [m["Name"] for m in warm["_aws"]["CloudWatchMetrics"][0]["Metrics"]] == [
        "Duration",
        "ColdStart",
        "Errors",
    ]
    assert warm["ColdStart"] == 0 and "InitDuration" not in warm


def test_the_line_is_written_after_the_response_is_posted(monkeypatch: pytest.MonkeyPatch) -> None:
    h = Harness(ok, monkeypatch)
    h.invoke()
    h.invoke()
    assert h.events == ["posted", "line", "posted", "line"]


def test_errors_count_handler_exceptions_and_errors_after_the_handler(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    state = {"n": 0}

    def handler(event: Any, context: Any) -> Any:
        state["n"] += 1
        if event.get("raise"):
            raise ValueError("no")
        if event.get("unserialisable"):
            return object()
        return "ok"

    h = Harness(handler, monkeypatch)
    assert h.invoke({"raise": True})["Errors"] == 1
    assert h.invoke({"unserialisable": True})["Errors"] == 1
    assert h.invoke({})["Errors"] == 0
    assert h.client.kinds == ["error", "error", "response"]


def test_provisioned_concurrency_reports_no_cold_start(monkeypatch: pytest.MonkeyPatch) -> None:
    doc = Harness(ok, monkeypatch, cold_start=False).invoke()
    assert doc["ColdStart"] == 0 and "InitDuration" not in doc


def test_custom_metrics_and_properties_join_the_same_line(monkeypatch: pytest.MonkeyPatch) -> None:
    def handler(event: Any, context: Any) -> str:
        if not event.get("add"):
            return "ok"
        add_metric("OrdersPlaced", 1, "Count")
        add_metric("BasketValue", 42.5)
        add_metric("Latency", 3, "Milliseconds", resolution=1)
        add_metric("Latency", 4, "Milliseconds", resolution=1)
        add_property("orderId", "o-42")
        add_property("details", {"items": 3})
        return "ok"

    h = Harness(handler, monkeypatch, LAMBDA_RUNTIME_METRICS_NAMESPACE="Shop/Orders")
    doc = h.invoke({"add": True})
    directive = doc["_aws"]["CloudWatchMetrics"][0]
    assert directive["Namespace"] == "Shop/Orders"
    custom = {m["Name"]: m for m in directive["Metrics"][4:]}
    assert custom == {
        "OrdersPlaced": {"Name": "OrdersPlaced", "Unit": "Count"},
        "BasketValue": {"Name": "BasketValue", "Unit": "None"},
        "Latency": {"Name": "Latency", "Unit": "Milliseconds", "StorageResolution": 1},
    }
    assert (doc["OrdersPlaced"], doc["BasketValue"], doc["Latency"]) == (1, 42.5, [3, 4])
    assert (doc["orderId"], doc["details"]) == ("o-42", {"items": 3})
    # Custom metrics belong to the invoke that added them.
    assert "OrdersPlaced" not in h.invoke()


def test_as_many_custom_metrics_as_the_format_allows_and_the_rest_dropped(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def handler(event: Any, context: Any) -> str:
        for i in range(MAX_CUSTOM_METRICS):
            add_metric(f"M{i}", i, "Count")
        add_metric("OneTooMany", 1)  # over the limit: dropped, the invoke goes on
        for _ in range(100):
            add_metric("M0", 1, "Count")  # the 100th of these is one value too many
        return "ok"

    with caplog.at_level(logging.WARNING, logger="runtime.metrics"):
        doc = Harness(handler, monkeypatch).invoke()
    assert len(doc["_aws"]["CloudWatchMetrics"][0]["Metrics"]) == 100
    assert "OneTooMany" not in doc
    assert len(doc["M0"]) == 100
    assert any(
        "dropped 2 metric value(s)" in r.getMessage() and "M0, OneTooMany" in r.getMessage()
        for r in caplog.records
    )


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: add_metric("", 1), "non-blank"),
        (lambda: add_metric("x" * 256, 1), "1-255"),
        (lambda: add_metric("Duration", 1), "reserved"),
        (lambda: add_metric("FunctionName", 1), "reserved"),
        (lambda: add_metric("m", "1"), "must be a number"),  # type: ignore[arg-type]
        (lambda: add_metric("m", True), "must be a number"),
        (lambda: add_metric("m", float("nan")), "finite"),
        (lambda: add_metric("m", math.inf), "finite"),
        (lambda: add_metric("m", 1, "Millis"), "not a CloudWatch unit"),
        (lambda: add_metric("m", 1, resolution=5), "60 or 1"),
        (lambda: add_property("_aws", 1), "reserved"),
        (lambda: add_property(3, 1), "non-blank"),  # type: ignore[arg-type]
    ],
)
def test_bad_metrics_are_clear_errors_even_when_metrics_are_off(call: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        call()


def test_conflicting_uses_of_one_name_are_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    def handler(event: Any, context: Any) -> str:
        add_metric("Latency", 3, "Milliseconds")
        with pytest.raises(ValueError, match="unit 'Milliseconds'"):
            add_metric("Latency", 3, "Seconds")
        with pytest.raises(ValueError, match="already added as a metric"):
            add_property("Latency", 1)
        add_property("orderId", "o-1")
        with pytest.raises(ValueError, match="already added as a property"):
            add_metric("orderId", 1)
        return "ok"

    Harness(handler, monkeypatch).invoke()


def test_outside_an_invoke_or_with_metrics_off_adding_does_nothing(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    add_metric("AtImport", 1, "Count")
    add_property("phase", "init")
    assert capsys.readouterr().out == ""


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"LAMBDA_RUNTIME_METRICS": "statsd"}, "not a metrics mode"),
        ({"LAMBDA_RUNTIME_METRICS_NAMESPACE": "AWS/Lambda"}, "not a CloudWatch namespace"),
        ({"LAMBDA_RUNTIME_METRICS_NAMESPACE": "bad*chars"}, "bad characters: '\\*'"),
        ({"LAMBDA_RUNTIME_METRICS_NAMESPACE": "x" * 256}, "1-255"),
    ],
)
def test_bad_metrics_configuration_is_a_clear_error(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        make_config(**env)


@pytest.mark.parametrize("value", ["", "off", "none", "OFF"])
def test_metrics_are_off_unless_asked_for(value: str) -> None:
    assert make_config(LAMBDA_RUNTIME_METRICS=value).observability.metrics == ""
    assert make_config(LAMBDA_RUNTIME_METRICS="EMF").observability.metrics == "emf"


def test_a_function_without_a_name_still_gets_a_valid_dimension(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    doc = Harness(ok, monkeypatch, AWS_LAMBDA_FUNCTION_NAME="").invoke()
    assert doc["FunctionName"] == "unknown"
