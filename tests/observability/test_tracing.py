"""Traces of invokes, driven through the real lifecycle (Invoker) with an in-memory exporter.

The OTLP/HTTP exporter is checked against a real HTTP server on 127.0.0.1 and its protobuf
decoded with opentelemetry-proto (the official message definitions).
"""

from __future__ import annotations

import io
import json
import logging
import socket
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any, cast

import pytest
from obs_support import Collector
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from runtime.api import Invocation
from runtime.bootstrap import Invoker
from runtime.config import Config, ConfigError
from runtime.layers import InitInfo
from runtime.logs import RuntimeLog
from runtime.observability.layer import Observability
from runtime.observability.otlp import OtlpHttpExporter, encode_spans
from runtime.observability.tracing import (
    PendingSpans,
    Tracing,
    XRayIdGenerator,
    lambda_resource,
    parent_of,
    sampler_for,
    trigger_of,
)

ARN = "arn:aws:lambda:eu-west-1:123456789012:function:orders:live"
XRAY_ROOT = "5759e988bd862e3fe1be46a994272793"
XRAY_PARENT = "53995c3f42cd8ad8"
XRAY = f"Root=1-5759e988-bd862e3fe1be46a994272793;Parent={XRAY_PARENT};Sampled=1"


def make_config(**env: str) -> Config:
    return Config.from_environ(
        ["app.handler"],
        {
            "AWS_LAMBDA_RUNTIME_API": "127.0.0.1:9001",
            "AWS_LAMBDA_FUNCTION_NAME": "orders",
            "AWS_LAMBDA_FUNCTION_VERSION": "7",
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "512",
            "AWS_LAMBDA_LOG_STREAM_NAME": "2026/11/27/[7]abc",
            "AWS_LAMBDA_LOG_GROUP_NAME": "/aws/lambda/orders",
            "AWS_REGION": "eu-west-1",
            "OTEL_TRACES_EXPORTER": "otlp",
            **env,
        },
    )


class RecordingClient:
    """Stands in for the Runtime API client; notes what was posted and when, in order."""

    def __init__(self, timeline: list[str]) -> None:
        self.timeline = timeline
        self.posts: list[tuple[str, bytes]] = []

    def post_response(
        self, invocation: Invocation, body: Any, content_type: str, *, then_next: bool = False
    ) -> None:
        # With after-invoke work (these layers), /next must wait for it: never sent with the post.
        assert not then_next, "GET /next pipelined although work runs after the post"
        self.posts.append(("response", bytes(body)))
        self.timeline.append("posted")

    def post_error(
        self, invocation: Invocation, error_type: str, body: bytes, xray_cause: bytes | None
    ) -> None:
        self.posts.append(("error", body))
        self.timeline.append("posted")


class Recorder(InMemorySpanExporter):
    """An in-memory exporter that also notes, on the shared timeline, when it exported."""

    def __init__(self, timeline: list[str]) -> None:
        super().__init__()
        self.timeline = timeline

    def export(self, spans: Any) -> Any:
        self.timeline.append(f"exported {len(spans)}")
        return super().export(spans)


class Harness:
    def __init__(
        self,
        handler: Callable[[Any, Any], Any],
        init_info: InitInfo | None = None,
        cold_start: bool = True,
    ) -> None:
        self.timeline: list[str] = []
        self.exporter = Recorder(self.timeline)
        self.provider = TracerProvider(
            resource=lambda_resource(make_config()),
            id_generator=XRayIdGenerator(),
            shutdown_on_exit=False,
        )
        self.pending = PendingSpans([self.exporter])
        self.provider.add_span_processor(self.pending)
        self.tracing = Tracing(
            self.provider,
            self.pending,
            function_name="orders",
            function_version="7",
            handler="app.handler",
            init_info=init_info,
        )
        self.client = RecordingClient(self.timeline)
        layer = Observability(tracing=self.tracing, cold_start=cold_start)
        self.invoker = Invoker(
            make_config(),
            cast(Any, self.client),  # records posts instead of sending them
            handler,
            RuntimeLog(io.StringIO()),
            [layer],
        )

    def invoke(self, event: Any, trace_id: str | None = XRAY, **headers: str) -> list[ReadableSpan]:
        before = len(self.exporter.get_finished_spans())
        raw = {
            "lambda-runtime-aws-request-id": str(uuid.uuid4()),
            "lambda-runtime-deadline-ms": str(int(time.time() * 1000) + 30_000),
            "lambda-runtime-invoked-function-arn": ARN,
            "content-type": "application/json",
            **headers,
        }
        if trace_id is not None:
            raw["lambda-runtime-trace-id"] = trace_id
        self.invoker.handle(Invocation(raw, json.dumps(event).encode()))
        return list(self.exporter.get_finished_spans())[before:]


def server_span(spans: list[ReadableSpan]) -> ReadableSpan:
    (found,) = [s for s in spans if s.kind == SpanKind.SERVER]
    return found


# --- the invoke span ----------------------------------------------------------------------------


def test_one_server_span_per_invoke_with_the_faas_attributes() -> None:
    h = Harness(lambda event, context: {"ok": True})
    span = server_span(h.invoke({"a": 1}, trace_id=XRAY))
    assert span.name == "orders"
    attrs = dict(span.attributes or {})
    assert attrs["faas.trigger"] == "other"
    assert attrs["faas.coldstart"] is True
    assert attrs["aws.lambda.invoked_arn"] == ARN
    assert attrs["cloud.account.id"] == "123456789012"
    # The alias is replaced by the version that runs.
    assert attrs["cloud.resource_id"] == "arn:aws:lambda:eu-west-1:123456789012:function:orders:7"
    assert len(str(attrs["faas.invocation_id"])) == 36
    resource = dict(span.resource.attributes)
    assert resource["cloud.provider"] == "aws"
    assert resource["cloud.platform"] == "aws_lambda"
    assert resource["cloud.region"] == "eu-west-1"
    assert resource["faas.name"] == "orders"
    assert resource["faas.version"] == "7"
    assert resource["faas.instance"] == "2026/11/27/[7]abc"
    assert resource["faas.max_memory"] == 512 * 1024 * 1024
    assert resource["service.name"] == "orders"


def test_cold_start_is_true_once_then_false() -> None:
    h = Harness(lambda event, context: None)
    flags = [server_span(h.invoke({})).attributes["faas.coldstart"] for _ in range(3)]  # type: ignore[index]
    assert flags == [True, False, False]


def test_provisioned_concurrency_has_no_cold_invoke() -> None:
    h = Harness(lambda event, context: None, cold_start=False)
    assert server_span(h.invoke({})).attributes["faas.coldstart"] is False  # type: ignore[index]


def test_parent_is_the_sampled_xray_header() -> None:
    h = Harness(lambda event, context: None)
    span = server_span(h.invoke({}, trace_id=XRAY))
    assert f"{span.context.trace_id:032x}" == XRAY_ROOT
    assert span.parent is not None
    assert f"{span.parent.span_id:016x}" == XRAY_PARENT
    assert span.parent.is_remote


def test_traceparent_in_http_headers_is_the_parent_without_a_sampled_xray_header() -> None:
    trace_hex, parent_hex = "0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331"
    event = {
        "version": "2.0",
        "routeKey": "GET /orders/{id}",
        "rawPath": "/orders/7",
        "headers": {"TraceParent": f"00-{trace_hex}-{parent_hex}-01", "user-agent": "curl/8"},
        "requestContext": {"http": {"method": "GET", "path": "/orders/7"}},
    }
    unsampled = XRAY.replace("Sampled=1", "Sampled=0")
    h = Harness(lambda event, context: {"statusCode": 200})
    span = server_span(h.invoke(event, trace_id=unsampled))
    assert f"{span.context.trace_id:032x}" == trace_hex
    assert span.parent is not None and f"{span.parent.span_id:016x}" == parent_hex
    # The unsampled X-Ray trace is not lost: it is linked.
    assert [f"{link.context.trace_id:032x}" for link in span.links] == [XRAY_ROOT]
    attrs = dict(span.attributes or {})
    assert attrs["faas.trigger"] == "http"
    assert attrs["http.request.method"] == "GET"
    assert attrs["url.path"] == "/orders/7"
    assert attrs["http.route"] == "/orders/{id}"
    assert attrs["user_agent.original"] == "curl/8"
    assert attrs["http.response.status_code"] == 200


def test_without_any_parent_the_span_is_a_root_with_an_xray_compatible_trace_id() -> None:
    h = Harness(lambda event, context: None)
    before = int(time.time())
    span = server_span(h.invoke({}, trace_id=None))
    assert span.parent is None
    # X-Ray requires the first 32 bits of a trace id to be the epoch second.
    assert before - 1 <= span.context.trace_id >> 96 <= int(time.time()) + 1


@pytest.mark.parametrize(
    "header",
    [
        "Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=1",  # no parent
        "Root=1-5759e988-bd862e3fe1be46a99427279;Parent=53995c3f42cd8ad8;Sampled=1",  # short
        "Root=2-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1",  # version
        "garbage",
    ],
)
def test_malformed_xray_headers_are_ignored(header: str) -> None:
    context, links = parent_of({}, header)
    from opentelemetry import trace

    assert not trace.get_current_span(context).get_span_context().is_valid
    assert links == []


@pytest.mark.parametrize(
    ("event", "trigger"),
    [
        ({"httpMethod": "POST", "path": "/x", "resource": "/x", "requestContext": {}}, "http"),
        ({"requestContext": {"http": {"method": "GET", "path": "/"}}, "rawPath": "/"}, "http"),
        ({"requestContext": {"elb": {}}, "httpMethod": "GET", "path": "/"}, "http"),
        ({"Records": [{"eventSource": "aws:sqs", "body": "{}"}]}, "pubsub"),
        ({"Records": [{"EventSource": "aws:sns", "Sns": {}}]}, "pubsub"),
        ({"Records": [{"eventSource": "aws:kinesis"}]}, "pubsub"),
        ({"Records": [{"eventSource": "aws:s3", "s3": {}}]}, "datasource"),
        ({"Records": [{"eventSource": "aws:dynamodb"}]}, "datasource"),
        ({"detail-type": "Scheduled Event", "source": "aws.events", "detail": {}}, "timer"),
        ({"detail-type": "Order Placed", "source": "shop", "detail": {}}, "pubsub"),
        ({"key": "value"}, "other"),
        ([1, 2], "other"),
        ("text", "other"),
    ],
)
def test_trigger_is_inferred_from_the_event_shape(event: Any, trigger: str) -> None:
    assert trigger_of(event)[0] == trigger


def test_exceptions_are_recorded_and_set_the_status() -> None:
    def handler(event: Any, context: Any) -> None:
        raise ValueError("bad order")

    h = Harness(handler)
    span = server_span(h.invoke({}))
    assert span.status.status_code is StatusCode.ERROR
    assert span.status.description == "ValueError: bad order"
    (event,) = [e for e in span.events if e.name == "exception"]
    assert event.attributes["exception.type"] == "ValueError"  # type: ignore[index]
    assert event.attributes["exception.message"] == "bad order"  # type: ignore[index]
    assert h.client.posts[0][0] == "error"


def test_a_5xx_http_result_sets_the_error_status() -> None:
    h = Harness(lambda event, context: {"statusCode": 503})
    span = server_span(h.invoke({"httpMethod": "GET", "path": "/", "requestContext": {}}))
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes["http.response.status_code"] == 503  # type: ignore[index]


def test_user_spans_nest_under_the_invoke_span() -> None:
    holder: dict[str, Any] = {}

    def handler(event: Any, context: Any) -> None:
        tracer = holder["provider"].get_tracer("user")
        with tracer.start_as_current_span("load-order"), tracer.start_as_current_span("query"):
            pass

    h = Harness(handler)
    holder["provider"] = h.provider
    spans = h.invoke({})
    by_name = {s.name: s for s in spans}
    invoke = by_name["orders"]
    assert by_name["load-order"].parent.span_id == invoke.context.span_id  # type: ignore[union-attr]
    assert by_name["query"].parent.span_id == by_name["load-order"].context.span_id  # type: ignore[union-attr]
    assert {s.context.trace_id for s in spans} == {invoke.context.trace_id}


def test_the_cold_invoke_carries_an_init_span_with_the_import_time() -> None:
    t0 = time.time_ns() - 50_000_000
    info = InitInfo(started_ns=t0, handler_loaded_ns=t0 + 40_000_000, handler_import_ns=30_000_000)
    h = Harness(lambda event, context: None, init_info=info)
    spans = {s.name: s for s in h.invoke({})}
    init, imported, invoke = spans["init"], spans["import app"], spans["orders"]
    assert (init.start_time, init.end_time) == (t0, t0 + 40_000_000)
    assert (imported.start_time, imported.end_time) == (t0 + 10_000_000, t0 + 40_000_000)
    assert init.parent.span_id == invoke.context.span_id  # type: ignore[union-attr]
    assert imported.parent.span_id == init.context.span_id  # type: ignore[union-attr]
    assert init.attributes["lambda_runtime.handler.import_ms"] == 30.0  # type: ignore[index]
    assert {s.name for s in h.invoke({})} == {"orders"}  # only once


def test_spans_are_exported_after_the_post_and_before_the_next_invoke() -> None:
    h = Harness(lambda event, context: None)
    h.invoke({})
    h.invoke({})
    assert h.timeline == ["posted", "exported 1", "posted", "exported 1"]


def test_unsampled_parents_produce_no_export() -> None:
    trace_hex, parent_hex = "0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331"
    event = {"headers": {"traceparent": f"00-{trace_hex}-{parent_hex}-00"}}
    h = Harness(lambda event, context: None)
    assert h.invoke(event, trace_id=None) == []
    assert h.timeline == ["posted"]


def test_tracing_config_comes_from_the_standard_variables() -> None:
    assert make_config().observability.trace_exporters == ("otlp",)
    base = {"AWS_LAMBDA_RUNTIME_API": "127.0.0.1:1"}
    assert Config.from_environ([], base).observability.trace_exporters == ()
    assert Config.from_environ(
        [], {**base, "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"}
    ).observability.trace_exporters == ("otlp",)
    assert Config.from_environ(
        [], {**base, "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://h/v1/traces"}
    ).observability.trace_exporters == ("otlp",)
    assert Config.from_environ(
        [], {**base, "OTEL_TRACES_EXPORTER": "console,otlp"}
    ).observability.trace_exporters == ("console", "otlp")
    for off in (
        {"OTEL_TRACES_EXPORTER": "none"},
        {"OTEL_SDK_DISABLED": "true", "OTEL_TRACES_EXPORTER": "otlp"},
    ):
        assert Config.from_environ([], {**base, **off}).observability.trace_exporters == ()


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"OTEL_TRACES_EXPORTER": "zipkin"}, "'zipkin' is not supported"),
        ({"OTEL_EXPORTER_OTLP_PROTOCOL": "http/json"}, "http/json"),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "127.0.0.1:4318"}, "http:// or https://"),
        ({"OTEL_EXPORTER_OTLP_COMPRESSION": "zstd"}, "gzip or none"),
        ({"OTEL_EXPORTER_OTLP_TIMEOUT": "-5"}, "positive whole number"),
    ],
)
def test_bad_tracing_configuration_is_a_clear_error(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        make_config(**env)


# --- OTLP/HTTP against a real server ------------------------------------------------------------


@pytest.fixture
def collector() -> Iterator[Collector]:
    c = Collector()
    yield c
    c.close()


def test_encoded_spans_decode_with_the_official_protos(collector: Collector) -> None:
    h = Harness(lambda event, context: {"statusCode": 201})
    sdk_spans = h.invoke(
        {
            "httpMethod": "POST",
            "path": "/orders",
            "requestContext": {},
            "headers": {"Host": "api.example.com"},
        }
    )
    sdk_spans += h.invoke({}, trace_id=None)
    exporter = OtlpHttpExporter(collector.url, headers={"x-api-key": "secret"}, gzip=True)
    assert exporter.send(sdk_spans, time.monotonic() + 5) == "ok"
    headers, message = collector.requests[0]
    assert headers["Content-Type"] == "application/x-protobuf"
    assert headers["x-api-key"] == "secret"
    (resource_spans,) = message.resource_spans
    resource = {kv.key: kv.value for kv in resource_spans.resource.attributes}
    assert resource["cloud.platform"].string_value == "aws_lambda"
    assert resource["faas.max_memory"].int_value == 512 * 1024 * 1024
    assert [v.string_value for v in resource["aws.log.group.names"].array_value.values] == [
        "/aws/lambda/orders"
    ]
    (scope_spans,) = resource_spans.scope_spans
    assert scope_spans.scope.name == "lambda-runtime"
    decoded = list(scope_spans.spans)
    assert len(decoded) == len(sdk_spans) == 2
    for sdk, wire in zip(sdk_spans, decoded, strict=True):
        assert wire.trace_id == sdk.context.trace_id.to_bytes(16, "big")
        assert wire.span_id == sdk.context.span_id.to_bytes(8, "big")
        assert wire.name == sdk.name
        assert wire.kind == 2  # SPAN_KIND_SERVER
        assert (wire.start_time_unix_nano, wire.end_time_unix_nano) == (
            sdk.start_time,
            sdk.end_time,
        )
        attrs = {kv.key: kv.value for kv in wire.attributes}
        for key, value in (sdk.attributes or {}).items():
            field = attrs[key].WhichOneof("value")
            assert getattr(attrs[key], field) == value, key
    first = decoded[0]
    assert first.parent_span_id == int(XRAY_PARENT, 16).to_bytes(8, "big")
    assert first.flags & 0xFF == 1 and first.flags & 0x300 == 0x300  # sampled, remote parent
    assert decoded[1].parent_span_id == b""


def test_exception_events_and_status_survive_encoding(collector: Collector) -> None:
    def handler(event: Any, context: Any) -> None:
        raise KeyError("ünïcödé")

    h = Harness(handler)
    spans = h.invoke({})
    exporter = OtlpHttpExporter(collector.url)
    assert exporter.send(spans, time.monotonic() + 5) == "ok"
    (wire,) = collector.spans()
    assert wire.status.code == 2  # STATUS_CODE_ERROR
    assert wire.status.message == "KeyError: 'ünïcödé'"
    (event,) = wire.events
    assert event.name == "exception"
    attrs = {kv.key: kv.value.string_value for kv in event.attributes}
    assert attrs["exception.type"] == "KeyError"
    assert "Traceback" in attrs["exception.stacktrace"]


def test_flush_is_bounded_when_the_collector_does_not_answer() -> None:
    # A collector that accepts connections and reads, but never answers.
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.1)
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                continue
            held.append(conn)

    threading.Thread(target=accept, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{listener.getsockname()[1]}/v1/traces"
        h = Harness(lambda event, context: None)
        pending = PendingSpans([OtlpHttpExporter(url)], budget_s=0.3)
        h.provider.add_span_processor(pending)
        started = time.monotonic()
        h.invoke({})
        assert pending.flush() is False  # nothing was lost, it is still queued
        elapsed = time.monotonic() - started
        assert elapsed < 2.0, elapsed
        assert pending.queued() == 1
    finally:
        stop.set()
        listener.close()
        for conn in held:
            conn.close()


def test_spans_kept_while_the_collector_is_down_are_sent_when_it_is_back(
    caplog: pytest.LogCaptureFixture,
) -> None:
    port = _free_port()  # nothing listens there yet: connection refused
    h = Harness(lambda event, context: None)
    pending = PendingSpans([OtlpHttpExporter(f"http://127.0.0.1:{port}/v1/traces")])
    h.provider.add_span_processor(pending)
    with caplog.at_level(logging.WARNING):
        h.invoke({})
        assert pending.flush() is False
        h.invoke({})
        assert pending.flush() is False
        assert pending.queued() == 2
        revived = Collector(port=port)
        try:
            assert pending.force_flush() is True
            assert len(revived.spans()) == 2
            assert pending.queued() == 0
        finally:
            revived.close()
    messages = [r.getMessage() for r in caplog.records if "OTLP export" in r.getMessage()]
    # One warning while it is down (not one per attempt), one when it works again.
    assert len([m for m in messages if " failed: " in m]) == 1, messages
    assert len([m for m in messages if "works again" in m]) == 1, messages


def _free_port() -> int:
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port: int = probe.getsockname()[1]
    probe.close()
    return port


def test_a_refusing_collector_drops_the_batch_instead_of_retrying_forever(
    collector: Collector,
) -> None:
    collector.status = 400
    h = Harness(lambda event, context: None)
    pending = PendingSpans([OtlpHttpExporter(collector.url)], budget_s=2.0)
    h.provider.add_span_processor(pending)
    h.invoke({})
    assert pending.flush() is True
    assert pending.queued() == 0
    assert len(collector.requests) == 1


def test_the_queue_is_bounded() -> None:
    url = f"http://127.0.0.1:{_free_port()}/v1/traces"
    h = Harness(lambda event, context: None)
    pending = PendingSpans([OtlpHttpExporter(url)], budget_s=0.5, max_queue=5)
    h.provider.add_span_processor(pending)
    for _ in range(8):
        h.invoke({})
    assert pending.queued() == 5


def test_encode_spans_of_an_empty_batch_is_an_empty_request() -> None:
    assert encode_spans([]) == b""


# --- without the OpenTelemetry SDK -------------------------------------------------------------

# Runs the runtime as `python -m runtime` does, with every opentelemetry import failing as it
# does where the package is not installed (the lean layer, `pip install lambda-runtime`).
WITHOUT_OTEL = """
import runpy, sys

del sys.path[0]  # -c puts the working directory first, -m its own path: init adds the task root

class NotInstalled:
    def find_spec(self, name, path=None, target=None):
        if name == "opentelemetry" or name.startswith("opentelemetry."):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None

sys.meta_path.insert(0, NotInstalled())
runpy.run_module("runtime", run_name="__main__", alter_sys=True)
"""


def test_tracing_without_the_sdk_is_an_init_error_naming_what_to_add(
    runtime_api: Any, start_runtime: Any
) -> None:
    proc = start_runtime(
        "basic.echo",
        command=(sys.executable, "-c", WITHOUT_OTEL),
        OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:4318",
    )
    post = runtime_api.wait_post()
    assert post.kind == "init_error"
    assert post.header("Lambda-Runtime-Function-Error-Type") == "Runtime.InvalidConfiguration"
    message = json.loads(post.body)["errorMessage"]
    assert "needs opentelemetry-sdk" in message
    assert "lambda-runtime package --with otel" in message
    assert "pip install lambda-runtime[otel]" in message
    assert proc.wait_exit() == 2
    assert "needs opentelemetry-sdk" in proc.stop()


def test_without_the_sdk_and_without_otel_variables_the_function_runs(
    runtime_api: Any, start_runtime: Any
) -> None:
    runtime_api.push('{"n": 1}')
    proc = start_runtime("basic.echo", command=(sys.executable, "-c", WITHOUT_OTEL))
    post = runtime_api.wait_post()
    assert (post.kind, json.loads(post.body)) == ("response", {"n": 1})
    proc.stop()


def test_an_invalid_endpoint_never_reaches_the_log_or_the_caller_with_its_credentials(
    runtime_api: Any, start_runtime: Any
) -> None:
    proc = start_runtime(
        "basic.echo", OTEL_EXPORTER_OTLP_ENDPOINT="ftp://user:password@host/x?api_key=k-secret"
    )
    post = runtime_api.wait_post()
    assert post.kind == "init_error"
    assert "ftp://***@host/x?api_key=***" in json.loads(post.body)["errorMessage"]
    assert proc.wait_exit() == 2
    output = proc.stop()
    assert "ftp://***@host/x?api_key=***" in output
    for secret in ("password", "k-secret"):
        assert secret not in output and secret.encode() not in post.body


# --- sampling ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("env", "sampled"),
    [
        ({}, True),
        ({"OTEL_TRACES_SAMPLER": "always_off"}, False),
        ({"OTEL_TRACES_SAMPLER": "traceidratio", "OTEL_TRACES_SAMPLER_ARG": "0"}, False),
        ({"OTEL_TRACES_SAMPLER": "parentbased_traceidratio", "OTEL_TRACES_SAMPLER_ARG": "1"}, True),
    ],
)
def test_the_sampler_comes_from_the_config(env: dict[str, str], sampled: bool) -> None:
    provider = TracerProvider(sampler=sampler_for(make_config(**env).observability.tracing))
    span = provider.get_tracer("t").start_span("root")
    assert span.get_span_context().trace_flags.sampled is sampled


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"OTEL_TRACES_SAMPLER": "sometimes"}, "OTEL_TRACES_SAMPLER='sometimes' is not supported"),
        (
            {"OTEL_TRACES_SAMPLER": "traceidratio", "OTEL_TRACES_SAMPLER_ARG": "2"},
            "must be a ratio from 0 to 1",
        ),
    ],
)
def test_a_bad_sampler_is_an_init_error_not_a_silent_default(
    env: dict[str, str], message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        make_config(**env)
