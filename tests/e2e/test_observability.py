"""Observability end to end: the real `python -m runtime` against the Runtime API stub, with an
OTLP/HTTP receiver on 127.0.0.1 that decodes the protobuf, a pipe for telemetry frames, and the
function's stdout."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from observability.obs_support import Collector, validate_emf
from runtime_support import RuntimeAPIStub, runtime_env

HANDLERS_OBS = Path(__file__).resolve().parent.parent / "handlers_obs"
XRAY_ROOT = "5759e988bd862e3fe1be46a994272793"
XRAY_PARENT = "53995c3f42cd8ad8"
XRAY = f"Root=1-5759e988-bd862e3fe1be46a994272793;Parent={XRAY_PARENT};Sampled=1"


@pytest.fixture
def start(start_runtime: Any) -> Any:
    def run(handler: str, **env: str) -> Any:
        return start_runtime(handler, task_root=HANDLERS_OBS, **env)

    return run


@pytest.fixture
def collector() -> Iterator[Collector]:
    c = Collector()
    yield c
    c.close()


def output_lines(api: RuntimeAPIStub, proc: Any) -> list[str]:
    """The runtime's output lines once its last invoke is over, after-post work included."""
    api.wait_idle()
    output: str = proc.stop()
    return output.split("\n")[:-1]


def json_lines(lines: list[str]) -> list[dict[str, Any]]:
    return [json.loads(line) for line in lines if line.startswith("{")]


def invoke(api: RuntimeAPIStub, body: Any = None, **push: Any) -> tuple[str, Any]:
    request_id = api.push(json.dumps({} if body is None else body), **push)
    post = api.wait_post()
    assert post.request_id == request_id
    return request_id, post


# --- what gets imported --------------------------------------------------------------------------


NOTHING: dict[str, list[str]] = {"structlog": [], "opentelemetry": [], "runtime.observability": []}
PACKAGE = "runtime.observability"


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, NOTHING),
        ({"AWS_LAMBDA_LOG_LEVEL": "DEBUG"}, NOTHING),
        (
            {"AWS_LAMBDA_LOG_FORMAT": "JSON", "AWS_LAMBDA_LOG_LEVEL": "DEBUG"},
            {**NOTHING, PACKAGE: [PACKAGE, f"{PACKAGE}.jsonlog", f"{PACKAGE}.state"]},
        ),
        (
            {"LAMBDA_RUNTIME_METRICS": "emf"},
            {
                **NOTHING,
                PACKAGE: [
                    PACKAGE,
                    f"{PACKAGE}.jsonlog",
                    f"{PACKAGE}.layer",
                    f"{PACKAGE}.metrics",
                    f"{PACKAGE}.state",
                ],
            },
        ),
    ],
)
def test_observability_libraries_are_imported_only_when_configured(
    runtime_api: RuntimeAPIStub, start: Any, env: dict[str, str], expected: dict[str, Any]
) -> None:
    start("obs.loaded_modules", **env)
    _, post = invoke(runtime_api)
    assert json.loads(post.body) == expected


def test_tracing_configured_by_otel_variables_loads_opentelemetry(
    runtime_api: RuntimeAPIStub, start: Any, collector: Collector
) -> None:
    start("obs.loaded_modules", OTEL_EXPORTER_OTLP_TRACES_ENDPOINT=collector.url)
    _, post = invoke(runtime_api)
    loaded = json.loads(post.body)
    assert "opentelemetry.sdk.trace" in loaded["opentelemetry"]
    assert {f"{PACKAGE}.tracing", f"{PACKAGE}.otlp"} <= set(loaded[PACKAGE])
    assert loaded["structlog"] == []
    assert "opentelemetry.exporter.otlp.proto.http" not in loaded["opentelemetry"]


# --- logs ----------------------------------------------------------------------------------------


def test_json_logs_from_stdlib_with_print_unchanged(
    runtime_api: RuntimeAPIStub, start: Any
) -> None:
    proc = start("obs.stdlib_records", AWS_LAMBDA_LOG_FORMAT="JSON", AWS_LAMBDA_LOG_LEVEL="DEBUG")
    request_id, post = invoke(runtime_api, headers={"Lambda-Runtime-Trace-Id": XRAY})
    assert post.kind == "response"
    lines = output_lines(runtime_api, proc)
    records = json_lines(lines)
    assert [(r["level"], r["message"]) for r in records] == [
        ("DEBUG", "debug record"),
        ("INFO", "order 7 accepted"),
        ("WARNING", "stock low\nsecond line"),
        ("ERROR", "from the root logger: ünïcödé 💡"),
        ("ERROR", "lookup failed"),
        ("CRITICAL", "on fire"),
    ]
    assert {r["requestId"] for r in records} == {request_id}
    assert {r["xrayTraceId"] for r in records} == {"1-5759e988-bd862e3fe1be46a994272793"}
    assert (records[1]["orderId"], records[1]["amount"]) == ("o-7", 12.5)
    assert records[4]["errorType"] == "KeyError"
    assert "printed line" in lines


@pytest.mark.parametrize("log_format", ["Text", "JSON"])
def test_records_from_a_thread_the_handler_starts_carry_the_request_id(
    runtime_api: RuntimeAPIStub, start: Any, log_format: str
) -> None:
    proc = start("obs.logs_from_a_thread", AWS_LAMBDA_LOG_FORMAT=log_format)
    request_id, post = invoke(runtime_api, headers={"Lambda-Runtime-Trace-Id": XRAY})
    assert post.kind == "response"
    lines = [line for line in output_lines(runtime_api, proc) if "from a worker thread" in line]
    if log_format == "JSON":
        [record] = json_lines(lines)
        assert (record["requestId"], record["xrayTraceId"]) == (
            request_id,
            "1-5759e988-bd862e3fe1be46a994272793",
        )
    else:
        [line] = lines
        assert line.split("\t")[2] == request_id


def test_json_level_filter(runtime_api: RuntimeAPIStub, start: Any) -> None:
    proc = start("obs.stdlib_records", AWS_LAMBDA_LOG_FORMAT="JSON", AWS_LAMBDA_LOG_LEVEL="ERROR")
    invoke(runtime_api)
    levels = [r["level"] for r in json_lines(output_lines(runtime_api, proc))]
    assert levels == ["ERROR", "ERROR", "CRITICAL"]


def test_unhandled_error_is_one_structured_json_record(
    runtime_api: RuntimeAPIStub, start: Any
) -> None:
    proc = start("obs.fail", AWS_LAMBDA_LOG_FORMAT="JSON")
    request_id, post = invoke(runtime_api)
    assert post.kind == "error"
    (record,) = json_lines(output_lines(runtime_api, proc))
    assert record["level"] == "ERROR"
    assert (record["errorType"], record["errorMessage"]) == ("ValueError", "something went wrong")
    assert record["requestId"] == request_id
    assert "in fail" in record["stackTrace"][0]
    assert record == {
        **json.loads(post.body),
        **{k: record[k] for k in ("timestamp", "level", "message", "logger")},
    }


@pytest.mark.parametrize("log_format", ["Text", "JSON"])
def test_structlog_imported_by_the_handler_module_writes_the_same_format(
    runtime_api: RuntimeAPIStub, start: Any, log_format: str
) -> None:
    # INFO made visible in both formats (JSON's default already; Text follows Python's WARNING).
    proc = start(
        "with_structlog.handler", AWS_LAMBDA_LOG_FORMAT=log_format, AWS_LAMBDA_LOG_LEVEL="INFO"
    )
    request_id, _ = invoke(runtime_api)
    lines = output_lines(runtime_api, proc)
    if log_format == "JSON":
        records = json_lines(lines)
        assert [(r["message"], r["requestId"]) for r in records] == [
            ("imported", ""),
            ("bound keys become fields", request_id),
            ("multi\nline", request_id),
            ("lookup failed", request_id),
        ]
        assert (records[1]["user"], records[1]["count"], records[1]["order"]) == ("ana", 3, "o-1")
        assert records[3]["errorType"] == "KeyError"
    else:
        text = [line for line in lines if line.startswith("[")]
        assert [line.split("\t")[0] for line in text] == [
            "[INFO]",
            "[INFO]",
            "[WARNING]",
            "[ERROR]",
        ]
        assert text[0].endswith("\t\timported phase=init")
        assert text[1].endswith(
            f"\t{request_id}\tbound keys become fields user=ana count=3 order=o-1"
        )
        assert "\rTraceback (most recent call last):\r" in text[3]


def test_structlog_imported_lazily_inside_the_handler_is_routed_too(
    runtime_api: RuntimeAPIStub, start: Any
) -> None:
    proc = start("lazy_structlog.handler", AWS_LAMBDA_LOG_LEVEL="INFO")
    request_id, _ = invoke(runtime_api)
    (line,) = [line for line in output_lines(runtime_api, proc) if "lazy import" in line]
    assert line.startswith("[INFO]\t")
    assert line.endswith(f"\t{request_id}\tlazy import k=v")


def test_a_structlog_configuration_of_the_users_own_wins(
    runtime_api: RuntimeAPIStub, start: Any
) -> None:
    proc = start("own_structlog_config.handler", AWS_LAMBDA_LOG_FORMAT="JSON")
    invoke(runtime_api)
    assert "k='v' event='own config'" in output_lines(runtime_api, proc)


def test_structlog_contextvars_bound_in_an_invoke_do_not_leak_into_the_next(
    runtime_api: RuntimeAPIStub, start: Any
) -> None:
    start("with_structlog.bound", AWS_LAMBDA_LOG_FORMAT="JSON")
    seen = [json.loads(invoke(runtime_api, {"n": n})[1].body) for n in range(3)]
    assert seen == [{}, {}, {}]


def test_a_second_root_handler_does_not_duplicate_lines(
    runtime_api: RuntimeAPIStub, start: Any
) -> None:
    proc = start("obs.adds_root_handler")
    invoke(runtime_api)
    invoke(runtime_api)
    lines = output_lines(runtime_api, proc)
    assert sum("written once" in line for line in lines) == 2  # once per invoke
    warnings = [line for line in lines if "was added to the root logger and ignored" in line]
    assert len(warnings) == 1


def test_debug_records_are_written_only_for_the_invoke_that_fails(
    runtime_api: RuntimeAPIStub, start: Any
) -> None:
    proc = start(
        "obs.debug_then_fail",
        AWS_LAMBDA_LOG_FORMAT="JSON",
        AWS_LAMBDA_LOG_LEVEL="INFO",
        LAMBDA_RUNTIME_LOG_BUFFER="debug",
    )
    ok_id, ok_post = invoke(runtime_api, {"fail": False})
    failed_id, failed_post = invoke(runtime_api, {"fail": True})
    assert (ok_post.kind, failed_post.kind) == ("response", "error")
    records = json_lines(output_lines(runtime_api, proc))
    assert [(r["requestId"], r["level"], r["message"]) for r in records] == [
        (ok_id, "INFO", "about to fail"),
        (failed_id, "INFO", "about to fail"),
        (failed_id, "DEBUG", "step 0"),
        (failed_id, "DEBUG", "step 1"),
        (failed_id, "DEBUG", "step 2"),
        (failed_id, "ERROR", "RuntimeError: failed after debugging"),
    ]


def test_records_go_to_the_telemetry_fd_as_frames(runtime_api: RuntimeAPIStub) -> None:
    read_fd, write_fd = os.pipe()
    env = runtime_env(
        runtime_api,
        HANDLERS_OBS,
        _LAMBDA_TELEMETRY_LOG_FD=str(write_fd),
        AWS_LAMBDA_LOG_LEVEL="INFO",
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "runtime", "obs.stdlib_records"],
        cwd=HANDLERS_OBS,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        pass_fds=(write_fd,),
    )
    os.close(write_fd)
    try:
        request_id, _ = invoke(runtime_api)
        started = time.time()
        runtime_api.wait_idle()
    finally:
        proc.kill()
        stdout, _ = proc.communicate(timeout=10)
    data = b""
    while chunk := os.read(read_fd, 65536):
        data += chunk
    os.close(read_fd)
    frames = []
    while data:
        kind, length = int.from_bytes(data[:4], "big"), int.from_bytes(data[4:8], "big")
        stamp = int.from_bytes(data[8:16], "big")
        frames.append((kind, stamp, data[16 : 16 + length].decode()))
        data = data[16 + length :]
    assert [kind for kind, _, _ in frames] == [
        0xA55A000F,
        0xA55A0013,
        0xA55A0017,
        0xA55A0017,
        0xA55A001B,
    ]
    assert all(abs(stamp / 1e6 - started) < 10 for _, stamp, _ in frames)
    warning = frames[1][2]
    assert warning.startswith("[WARNING]\t") and warning.endswith(
        f"\t{request_id}\tstock low\nsecond line\n"
    )
    # print() output is not a record: it stays on stdout.
    assert stdout.decode().split("\n")[:-1] == ["printed line"]


# --- metrics -------------------------------------------------------------------------------------


def test_one_emf_line_per_invoke(runtime_api: RuntimeAPIStub, start: Any) -> None:
    proc = start(
        "metrics_handler.handler",
        LAMBDA_RUNTIME_METRICS="emf",
        LAMBDA_RUNTIME_METRICS_NAMESPACE="Shop",
    )
    ids = [invoke(runtime_api, {"fail": fail})[0] for fail in (False, False, True)]
    lines = [line for line in output_lines(runtime_api, proc) if line.startswith('{"_aws"')]
    docs = [validate_emf(line + "\n") for line in lines]
    assert [d["requestId"] for d in docs] == ids
    assert [(d["ColdStart"], "InitDuration" in d, d["Errors"]) for d in docs] == [
        (1, True, 0),
        (0, False, 0),
        (0, False, 1),
    ]
    assert all(d["FunctionName"] == "test-function" for d in docs)
    assert (docs[0]["OrdersPlaced"], docs[0]["Latency"], docs[0]["orderId"]) == (1, [3, 4], "o-42")
    assert docs[0]["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "Shop"


def test_a_marshal_error_counts_as_an_error(runtime_api: RuntimeAPIStub, start: Any) -> None:
    proc = start("metrics_handler.not_serialisable", LAMBDA_RUNTIME_METRICS="emf")
    _, post = invoke(runtime_api)
    assert post.header("Lambda-Runtime-Function-Error-Type") == "Runtime.MarshalError"
    lines = output_lines(runtime_api, proc)
    (doc,) = [validate_emf(line + "\n") for line in lines if '"_aws"' in line]
    assert doc["Errors"] == 1


# --- traces --------------------------------------------------------------------------------------


def attrs_of(span: Any) -> dict[str, Any]:
    out = {}
    for kv in span.attributes:
        field = kv.value.WhichOneof("value")
        out[kv.key] = getattr(kv.value, field) if field else None
    return out


def test_otlp_traces_end_to_end(
    runtime_api: RuntimeAPIStub, start: Any, collector: Collector
) -> None:
    proc = start(
        "traced.handler",
        OTEL_EXPORTER_OTLP_ENDPOINT=collector.url.removesuffix("/v1/traces"),
        OTEL_SERVICE_NAME="orders-service",
        AWS_LAMBDA_LOG_FORMAT="JSON",
        AWS_REGION="eu-west-1",
    )
    n = 100
    ids = [runtime_api.push(json.dumps({"i": 0}), headers={"Lambda-Runtime-Trace-Id": XRAY})]
    ids += [runtime_api.push(json.dumps({"i": i})) for i in range(1, n)]
    posts = [runtime_api.wait_post() for _ in range(n)]
    assert [p.request_id for p in posts] == ids
    runtime_api.wait_idle()  # the last invoke's export is answered before this /next
    spans = collector.spans()
    server = [s for s in spans if s.kind == 2]  # SPAN_KIND_SERVER
    # One invoke span per invoke, none lost, none twice.
    assert sorted(attrs_of(s)["faas.invocation_id"] for s in server) == sorted(ids)
    by_invoke = {attrs_of(s)["faas.invocation_id"]: s for s in server}
    first = by_invoke[ids[0]]
    # Parent from the X-Ray header.
    assert first.trace_id.hex() == XRAY_ROOT
    assert first.parent_span_id.hex() == XRAY_PARENT
    assert first.name == "test-function"
    attrs = attrs_of(first)
    assert attrs["faas.trigger"] == "other"
    assert attrs["aws.lambda.invoked_arn"] == "arn:aws:lambda:us-east-1:123456789012:function:test"
    assert attrs["cloud.account.id"] == "123456789012"
    assert attrs["cloud.resource_id"] == "arn:aws:lambda:us-east-1:123456789012:function:test"
    # Cold start true, then false.
    assert [attrs_of(by_invoke[i])["faas.coldstart"] for i in ids] == [True] + [False] * (n - 1)
    # The user's span nests under the invoke span; the returned ids are the user span's.
    result = json.loads(posts[0].body)
    (user_span,) = [
        s for s in spans if s.name == "load-order" and s.trace_id.hex() == result["trace_id"]
    ]
    assert user_span.parent_span_id == first.span_id
    assert user_span.span_id.hex() == result["span_id"]
    # Init span (with the handler's import) on the cold invoke only.
    init_spans = [s for s in spans if s.name == "init"]
    assert len(init_spans) == 1 and init_spans[0].parent_span_id == first.span_id
    assert [s.name for s in spans if s.parent_span_id == init_spans[0].span_id] == ["import traced"]
    # Resource.
    _, message = collector.requests[0]
    resource = {
        kv.key: kv.value.string_value for kv in message.resource_spans[0].resource.attributes
    }
    assert resource["service.name"] == "orders-service"
    assert (resource["cloud.platform"], resource["cloud.region"]) == ("aws_lambda", "eu-west-1")
    assert resource["faas.name"] == "test-function"
    # JSON log records inside the user span carry its ids.
    records = json_lines(output_lines(runtime_api, proc))
    records = [r for r in records if r.get("message") == "inside a user span"]
    assert len(records) == n
    assert (records[0]["traceId"], records[0]["spanId"]) == (result["trace_id"], result["span_id"])


def test_spans_are_exported_after_the_response_and_before_the_next_invoke(
    runtime_api: RuntimeAPIStub, start: Any
) -> None:
    """Catches: spans exported before the response is posted (the caller would wait for the
    export), or the next /next sent while the export is still waiting for the collector."""
    seen: list[tuple[str, int, int]] = []
    slow = Collector()
    original = slow.server.RequestHandlerClass.do_POST  # type: ignore[attr-defined]

    def observed(handler: Any) -> None:
        seen.append(("export", runtime_api.answered, runtime_api.next_calls))
        time.sleep(0.3)  # a slow collector (not synchronisation: the runtime must wait for it)
        seen.append(("answer", runtime_api.answered, runtime_api.next_calls))
        original(handler)

    slow.server.RequestHandlerClass.do_POST = observed  # type: ignore[attr-defined]
    try:
        start("obs.echo", OTEL_EXPORTER_OTLP_TRACES_ENDPOINT=slow.url)
        runtime_api.push("{}")
        runtime_api.push("{}")
        first = runtime_api.wait_post()
        second = runtime_api.wait_post()
        assert (first.kind, second.kind) == ("response", "response")
        # The export of invoke 1 came once its response was posted, and the runtime asked for
        # invoke 2 only after the collector answered.
        assert seen[:2] == [("export", 1, 1), ("answer", 1, 1)]
        assert runtime_api.next_calls >= 2
    finally:
        slow.close()


def test_a_collector_that_never_answers_delays_invokes_only_by_the_budget(
    runtime_api: RuntimeAPIStub, start: Any
) -> None:
    """Catches: OTEL_EXPORTER_OTLP_TRACES_TIMEOUT ignored (the default 2,000 ms used instead),
    and an export that gives up before its budget is spent.

    The delay an invoke adds is what the stub sees between the runtime's post and its next
    /next: the export runs in between."""
    import socket

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)  # accepts connections (in the backlog) and never answers
    try:
        url = f"http://127.0.0.1:{listener.getsockname()[1]}/v1/traces"
        start(
            "obs.echo",
            OTEL_EXPORTER_OTLP_TRACES_ENDPOINT=url,
            OTEL_EXPORTER_OTLP_TRACES_TIMEOUT="300",
        )
        posts = []
        for i in range(4):
            _, post = invoke(runtime_api, {"i": i})
            assert json.loads(post.body) == {"i": i}
            posts.append(post)
        runtime_api.push("{}")  # the /next it waits for ends the fourth invoke's export
        runtime_api.wait_post()
        delays = [
            after - post.received
            for post, after in zip(posts, runtime_api.next_times[1:5], strict=True)
        ]
        # The first export waits the whole 0.3 s; after that failure it backs off (0.5 s), so
        # at least one of the next invokes does not try at all.
        assert 0.3 <= delays[0] < 0.45, delays
        assert all(delay < 0.45 for delay in delays), delays
        assert min(delays[1:]) < 0.1, delays
    finally:
        listener.close()


def test_no_export_at_all_while_tracing_is_off(
    runtime_api: RuntimeAPIStub, start: Any, collector: Collector
) -> None:
    # The collector runs at the default OTLP port's stand-in; without OTEL_* nothing is sent.
    start("obs.echo")
    for i in range(5):
        invoke(runtime_api, {"i": i})
    runtime_api.wait_idle()  # an export would come between the last post and this /next
    assert collector.requests == []
