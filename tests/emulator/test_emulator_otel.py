"""--otel-console: the emulator receives the runtime's OTLP/HTTP spans and prints a tree per invoke.

The decoder is checked against the official protobuf classes (opentelemetry-proto), the tree
against hand-made spans, and the whole path end to end with our runtime and a handler that opens
its own spans through the OpenTelemetry API.
"""

from __future__ import annotations

import gzip
import io
import json
import re
import sys
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest
from emulator_support import HANDLERS, MARK, MARK_VAR
from hypothesis import given, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, ArrayValue, KeyValue, KeyValueList
from opentelemetry.proto.trace.v1.trace_pb2 import Span as PbSpan
from opentelemetry.proto.trace.v1.trace_pb2 import Status as PbStatus

from runtime.emulator.cli import main
from runtime.emulator.otel import OtlpError, Span, decode_export_request, render

TRACE = bytes.fromhex("6b091a9dffa1c8ba7ca90cc65cc324a1")
MS = 1_000_000

# One tree line: indentation, branch, then a span (name, kind, duration, the rest) or an event.
_TREE = re.compile(
    r"^(?P<indent>(?:│  |   )*)(?P<branch>├─ |└─ )?(?:"
    r"• (?P<event>\S+) at [+-]\d+\.\d\d ms(?P<attrs>.*)|"
    r"(?P<name>.+?)  (?P<kind>[A-Z_]+)  (?P<ms>\d+\.\d\d) ms(?P<rest>.*))$"
)


class Node:
    def __init__(self, depth: int, name: str, kind: str, ms: float, rest: str) -> None:
        self.depth, self.name, self.kind, self.ms, self.rest = depth, name, kind, ms, rest
        self.children: list[Node] = []

    def child(self, name: str) -> Node:
        found = [c for c in self.children if c.name == name]
        assert len(found) == 1, (name, [c.name for c in self.children])
        return found[0]


def tree_after(lines: list[str], start: int) -> list[Node]:
    """The trees printed from ``lines[start]`` on (until a line that is not a tree line)."""
    roots: list[Node] = []
    stack: list[Node] = []
    for line in lines[start:]:
        match = _TREE.match(line)
        if match is None or line.startswith("SPANS "):
            break
        depth = len(match["indent"]) // 3 + (1 if match["branch"] else 0)
        if match["event"] is not None:
            node = Node(depth, match["event"], "EVENT", 0.0, match["attrs"])
        else:
            node = Node(depth, match["name"], match["kind"], float(match["ms"]), match["rest"])
        while stack and stack[-1].depth >= depth:
            stack.pop()
        (stack[-1].children if stack else roots).append(node)
        stack.append(node)
    return roots


def spans_block(text: str, request_id: str) -> tuple[list[str], int]:
    """Console lines, and the index of the SPANS header of ``request_id``'s invoke, which must
    come right after its REPORT line."""
    lines = text.splitlines()
    header = next(
        i for i, line in enumerate(lines) if line.startswith(f"SPANS RequestId: {request_id}\t")
    )
    assert lines[header - 1].startswith(f"REPORT RequestId: {request_id}\t"), lines[header - 1]
    return lines, header


# --- the decoder ---------------------------------------------------------------------------------


def _kv(key: str, value: AnyValue) -> KeyValue:
    return KeyValue(key=key, value=value)


def _official_request() -> ExportTraceServiceRequest:
    request = ExportTraceServiceRequest()
    resource = request.resource_spans.add()
    resource.resource.attributes.append(_kv("service.name", AnyValue(string_value="svc")))
    scope = resource.scope_spans.add()
    scope.scope.name = "tests"
    server = scope.spans.add(
        trace_id=TRACE,
        span_id=bytes.fromhex("00000000000000aa"),
        parent_span_id=bytes.fromhex("53995c3f42cd8ad8"),
        name="function",
        kind=PbSpan.SPAN_KIND_SERVER,
        start_time_unix_nano=1_000 * MS,
        end_time_unix_nano=1_012 * MS + 345_678,
    )
    server.attributes.extend(
        [
            _kv("faas.invocation_id", AnyValue(string_value="req-1")),
            _kv("faas.coldstart", AnyValue(bool_value=False)),
            _kv("count", AnyValue(int_value=-5)),
            _kv("ratio", AnyValue(double_value=2.5)),
            _kv(
                "list",
                AnyValue(
                    array_value=ArrayValue(
                        values=[AnyValue(int_value=1), AnyValue(string_value="a")]
                    )
                ),
            ),
            _kv(
                "map",
                AnyValue(kvlist_value=KeyValueList(values=[_kv("k", AnyValue(bool_value=True))])),
            ),
            _kv("raw", AnyValue(bytes_value=b"\x00\xff")),
        ]
    )
    server.status.CopyFrom(PbStatus(code=PbStatus.STATUS_CODE_ERROR, message="bad thing"))
    event = server.events.add(time_unix_nano=1_005 * MS, name="exception")
    event.attributes.append(_kv("exception.type", AnyValue(string_value="ValueError")))
    other = resource.scope_spans.add()
    other.spans.add(
        trace_id=TRACE,
        span_id=bytes.fromhex("00000000000000bb"),
        parent_span_id=bytes.fromhex("00000000000000aa"),
        name="child",
        kind=PbSpan.SPAN_KIND_INTERNAL,
        start_time_unix_nano=1_001 * MS,
        end_time_unix_nano=1_003 * MS,
    )
    return request


def test_decoder_reads_what_the_official_protobuf_classes_write():
    spans = decode_export_request(_official_request().SerializeToString())
    assert [s.name for s in spans] == ["function", "child"]
    server, child = spans
    assert server.trace_id == TRACE and server.span_id.hex() == "00000000000000aa"
    assert server.parent_id.hex() == "53995c3f42cd8ad8"
    assert server.kind == 2 and child.kind == 1
    assert server.duration_ms == pytest.approx(12.345678)
    assert server.attributes == {
        "faas.invocation_id": "req-1",
        "faas.coldstart": False,
        "count": -5,
        "ratio": 2.5,
        "list": [1, "a"],
        "map": {"k": True},
        "raw": b"\x00\xff",
    }
    assert (server.status_code, server.status_message) == (2, "bad thing")
    assert server.events == [("exception", 1_005 * MS, {"exception.type": "ValueError"})]
    assert server.invocation_id == "req-1" and child.invocation_id is None
    assert child.parent_id == server.span_id


def test_decoder_rejects_broken_input_with_its_own_error():
    body = _official_request().SerializeToString()
    failures = 0
    for cut in range(1, len(body)):
        try:
            decode_export_request(body[:cut])
        except OtlpError:
            failures += 1
    # One top-level field holds everything: every cut leaves it short.
    assert failures == len(body) - 1
    with pytest.raises(OtlpError, match="wire type"):
        decode_export_request(b"\x0b")  # field 1, wire type 3 (groups): not OTLP
    with pytest.raises(OtlpError, match="past the end"):
        decode_export_request(b"\x0a\x05ab")
    bad_ids = ExportTraceServiceRequest()
    bad_ids.resource_spans.add().scope_spans.add().spans.add(trace_id=b"short", span_id=b"x")
    with pytest.raises(OtlpError, match="16-byte trace_id"):
        decode_export_request(bad_ids.SerializeToString())


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_decoder_never_fails_other_than_with_otlp_error(data: bytes):
    try:
        spans = decode_export_request(data)
    except OtlpError:
        return
    assert all(isinstance(s, Span) for s in spans)


# --- the tree ------------------------------------------------------------------------------------


def _span(name: str, span_id: int, parent: int, start_ms: float, ms: float, **kw: Any) -> Span:
    span = Span()
    span.trace_id = kw.pop("trace", TRACE)
    span.span_id = span_id.to_bytes(8, "big")
    span.parent_id = parent.to_bytes(8, "big") if parent else b""
    span.name = name
    span.kind = kw.pop("kind", 1)
    span.start = int(start_ms * MS)
    span.end = int((start_ms + ms) * MS)
    span.attributes = kw.pop("attributes", {})
    span.events = kw.pop("events", [])
    span.status_code, span.status_message = kw.pop("status", (0, ""))
    return span


def test_render_nests_children_in_start_order_with_events_and_status():
    other_trace = bytes(range(16))
    spans = [
        _span("late", 9, 0, 0, 1, trace=other_trace),
        _span("second", 3, 1, 1000.5, 2),
        _span(
            "fn",
            1,
            77,
            1000,
            10,
            kind=2,
            attributes={
                "faas.invocation_id": "req-9",
                "faas.coldstart": True,
                "aws.lambda.invoked_arn": "arn:aws:lambda:us-east-1:123456789012:function:fn",
                "note": "two words",
            },
        ),
        _span(
            "first",
            2,
            1,
            1000.25,
            1,
            status=(2, "ValueError: x"),
            events=[("exception", int(1000.5 * MS), {"exception.type": "ValueError"})],
        ),
        _span("grandchild", 4, 3, 1001, 0.5, status=(1, "")),
    ]
    lines = render(spans, "req-9")
    assert lines[0] == f"SPANS RequestId: req-9\tTraceId: {TRACE.hex()}\tSpans: 4"
    assert lines[1] == (
        'fn  SERVER  10.00 ms  faas.invocation_id=req-9 faas.coldstart=true note="two words"'
    )
    assert lines[2] == '├─ first  INTERNAL  1.00 ms  at +0.25 ms  ERROR "ValueError: x"'
    assert lines[3] == "│  └─ • exception at +0.50 ms  exception.type=ValueError"
    assert lines[4] == "└─ second  INTERNAL  2.00 ms  at +0.50 ms"
    assert lines[5] == "   └─ grandchild  INTERNAL  0.50 ms  at +1.00 ms  OK"
    # A trace without a SERVER span comes after, with no request id.
    assert lines[6] == f"SPANS RequestId: -\tTraceId: {other_trace.hex()}\tSpans: 1"
    assert lines[7] == "late  INTERNAL  1.00 ms"
    assert len(lines) == 8


def test_render_survives_deep_chains_and_cycles():
    chain = [_span(f"s{i}", i + 1, i, i * 0.01, 1) for i in range(3000)]
    lines = render(chain)
    assert len(lines) == 3001 and lines[-1].lstrip(" └─").startswith("s2999  INTERNAL")
    # A parent cycle (malformed input) has no root: every span is still shown, once.
    cycle = [_span("a", 1, 2, 0, 1), _span("b", 2, 1, 0.5, 1)]
    lines = render(cycle)
    assert lines[1] == "a  INTERNAL  1.00 ms" and lines[2] == "└─ b  INTERNAL  1.00 ms  at +0.50 ms"
    assert len(lines) == 3


# --- end to end ----------------------------------------------------------------------------------


def test_invoke_spans_print_as_a_tree_after_report(make):
    stream = io.BytesIO()
    fn = make("traced.handler", otel_console=True, echo=stream, timeout=3)
    results = [fn.invoke({"outer": 0.05, "inner": 0.1}) for _ in range(2)]
    assert all(r.ok for r in results)
    fn.stop()
    text = stream.getvalue().decode()
    for number, result in enumerate(results):
        lines, header = spans_block(text, result.request_id)
        assert "SPANS" not in result.log  # trees are for the console, not the function's log
        (root,) = tree_after(lines, header + 1)
        assert (root.depth, root.name, root.kind) == (0, "function", "SERVER")
        assert f"faas.invocation_id={result.request_id}" in root.rest
        assert "faas.trigger=other" in root.rest
        assert f"faas.coldstart={'true' if number == 0 else 'false'}" in root.rest
        outer = root.child("outer-work")
        inner = outer.child("inner-work")
        assert outer.kind == inner.kind == "INTERNAL"
        assert "work.kind=outer" in outer.rest and "work.items=3" in inner.rest
        # Durations: the sleeps, nested, within the function's span and REPORT's Duration.
        assert 100 <= inner.ms < outer.ms
        assert outer.ms >= 150 and root.ms >= outer.ms
        assert result.report is not None and root.ms <= result.report.duration_ms
        names = [c.name for c in root.children]
        if number == 0:
            assert names == ["init", "outer-work"]  # the cold start's init span
            assert root.child("init").child("import traced").kind == "INTERNAL"
        else:
            assert names == ["outer-work"]


def test_parallel_invokes_each_get_their_own_tree(make):
    stream = io.BytesIO()
    fn = make("traced.handler", otel_console=True, echo=stream, concurrency=2, timeout=3)
    with ThreadPoolExecutor(2) as pool:
        results = list(pool.map(lambda _: fn.invoke({"outer": 0.2, "inner": 0.05}), range(2)))
    assert all(r.ok for r in results)
    fn.stop()
    lines = stream.getvalue().decode().splitlines()
    for result in results:
        # Two environments: every line carries its [env-N] prefix; the tree follows its REPORT.
        header = next(
            i for i, line in enumerate(lines) if f"SPANS RequestId: {result.request_id}\t" in line
        )
        prefix = lines[header].partition("SPANS")[0]
        assert re.fullmatch(r"\[env-\d\] ", prefix), lines[header]
        assert lines[header - 1].startswith(f"{prefix}REPORT RequestId: {result.request_id}\t")
        block = [line.removeprefix(prefix) for line in lines[header + 1 : header + 6]]
        (root,) = tree_after(block, 0)
        assert f"faas.invocation_id={result.request_id}" in root.rest
        assert root.child("outer-work").child("inner-work").ms >= 50


def test_a_failing_span_shows_its_error_and_exception(make):
    stream = io.BytesIO()
    fn = make("traced.fail", otel_console=True, echo=stream)
    result = fn.invoke({})
    assert result.error is not None and result.error["errorType"] == "ValueError"
    fn.stop()
    lines, header = spans_block(stream.getvalue().decode(), result.request_id)
    (root,) = tree_after(lines, header + 1)
    assert 'ERROR "ValueError: traced failure"' in root.rest
    step = root.child("failing-step")
    assert 'ERROR "ValueError: traced failure"' in step.rest
    event = step.child("exception")
    assert event.kind == "EVENT"
    assert "exception.type=ValueError" in event.rest
    assert 'exception.message="traced failure"' in event.rest
    assert "stacktrace" not in event.rest


def test_otel_variables_and_receiver_only_with_the_console(make):
    plain = make("app.otel_env", env={"OTEL_SERVICE_NAME": "mine"})
    body = plain.invoke({}).payload
    assert body["otel"] == {"OTEL_SERVICE_NAME": "mine"}
    with httpx.Client(timeout=5) as client:
        r = client.post(f"http://{body['runtime_api']}/v1/traces", content=b"")
        assert r.status_code == 404

    stream = io.BytesIO()
    fn = make(
        "app.otel_env",
        otel_console=True,
        echo=stream,
        env={
            "OTEL_SERVICE_NAME": "mine",
            "OTEL_TRACES_EXPORTER": "console",
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://elsewhere:4318/v1/traces",
            "OTEL_SDK_DISABLED": "true",
        },
    )
    body = fn.invoke({}).payload
    address = body["runtime_api"]
    assert body["otel"] == {
        "OTEL_SERVICE_NAME": "mine",
        "OTEL_TRACES_EXPORTER": "otlp",
        "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
        "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://{address}",
    }
    request = _official_request()
    with httpx.Client(base_url=f"http://{address}", timeout=5) as client:
        r = client.post("/v1/traces", content=b"{}", headers={"Content-Type": "application/json"})
        assert r.status_code == 415 and "http/protobuf" in r.json()["errorMessage"]
        r = client.post(
            "/v1/traces",
            content=b"\x0a\x05ab",
            headers={"Content-Type": "application/x-protobuf"},
        )
        assert r.status_code == 400
        # Spans that arrive while no invoke runs are printed at once (gzip is understood).
        r = client.post(
            "/v1/traces",
            content=gzip.compress(request.SerializeToString()),
            headers={"Content-Type": "application/x-protobuf", "Content-Encoding": "gzip"},
        )
        assert r.status_code == 200
        assert r.headers["content-type"] == "application/x-protobuf"
    fn.stop()
    text = stream.getvalue().decode()
    assert f"SPANS RequestId: req-1\tTraceId: {TRACE.hex()}\tSpans: 2" in text
    assert "\n└─ child  INTERNAL  2.00 ms  at +1.00 ms\n" in text


def test_without_echo_the_trees_go_to_stderr(make, capfd):
    fn = make("traced.handler", otel_console=True)
    result = fn.invoke({"outer": 0, "inner": 0})
    fn.stop()
    err = capfd.readouterr().err
    assert f"SPANS RequestId: {result.request_id}\t" in err
    assert "START RequestId" not in err


def test_a_runtime_that_exports_nothing_gets_one_hint(make):
    stream = io.BytesIO()
    fn = make("app.echo", runtime="awslambdaric", otel_console=True, echo=stream)
    assert fn.invoke({}).ok and fn.invoke({}).ok
    fn.stop()
    text = stream.getvalue().decode()
    assert text.count("none received: the runtime exported no spans") == 1


def test_cli_otel_console(capfd):
    common = ["--task-root", str(HANDLERS), "--env", f"{MARK_VAR}={MARK}", "--otel-console"]
    event = json.dumps({"outer": 0.01, "inner": 0.01})
    assert main(["invoke", "traced.handler", *common, "--event", event]) == 0
    err = capfd.readouterr().err
    request_id = re.search(r"^START RequestId: (\S+)", err, re.MULTILINE)[1]  # type: ignore[index]
    lines, header = spans_block(err, request_id)
    (root,) = tree_after(lines, header + 1)
    assert root.child("outer-work").child("inner-work").ms >= 10
    # --quiet: no log, only the trees.
    assert main(["invoke", "traced.handler", *common, "--quiet", "--event", event]) == 0
    err = capfd.readouterr().err
    assert err.startswith("SPANS RequestId: ") and "REPORT" not in err


if __name__ == "__main__":  # pragma: no cover
    sys.exit(pytest.main([__file__, "-q"]))
