"""Every example the README shows runs, and does what the README says."""

from __future__ import annotations

import json
import signal
from pathlib import Path
from typing import Any

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def test_hello_answers_from_event_and_context(runtime_api: Any, start_runtime: Any) -> None:
    rid = runtime_api.push(json.dumps({"name": "Ada"}))
    start_runtime("app.handler", task_root=EXAMPLES / "hello")
    body = json.loads(runtime_api.wait_post().body)
    assert body["message"] == "Hello, Ada!"
    assert body["request_id"] == rid
    assert body["function_name"] == "test-function"
    assert body["memory_limit_in_mb"] == "256"
    assert body["remaining_time_in_millis"] > 0


def test_async_handler_example(runtime_api: Any, start_runtime: Any) -> None:
    runtime_api.push(json.dumps({"items": ["x", "y"]}))
    start_runtime("app.handler", task_root=EXAMPLES / "async_handler")
    assert json.loads(runtime_api.wait_post().body)["results"] == ["X", "Y"]


def test_shutdown_example_flushes_on_sigterm(runtime_api: Any, start_runtime: Any) -> None:
    proc = start_runtime("app.handler", task_root=EXAMPLES / "shutdown")
    assert runtime_api.wait_post().kind == "register"
    runtime_api.push('{"n": 1}')
    runtime_api.push('{"n": 2}')
    assert [runtime_api.wait_post().kind for _ in range(2)] == ["response", "response"]
    proc.proc.send_signal(signal.SIGTERM)
    assert proc.wait_exit(timeout=5) == 0
    assert "flushing 2 buffered records" in proc.stop()


def test_observability_example_logs_json_spans_and_metrics(
    runtime_api: Any, start_runtime: Any
) -> None:
    rid = runtime_api.push(json.dumps({"orderId": "o-42", "items": [{"price": 4.5}]}))
    proc = start_runtime(
        "app.handler",
        task_root=EXAMPLES / "observability",
        AWS_LAMBDA_LOG_FORMAT="JSON",
        LAMBDA_RUNTIME_METRICS="emf",
        OTEL_TRACES_EXPORTER="console",
    )
    assert json.loads(runtime_api.wait_post().body) == {"orderId": "o-42", "total": 4.5}
    runtime_api.push("{}")  # the next /next proves the flush after the post happened
    runtime_api.wait_post()
    records = [json.loads(line) for line in proc.stop().split("\n") if line.startswith("{")]
    mine = [r for r in records if r.get("requestId") == rid]
    received = next(r for r in mine if r.get("message") == "order received")
    assert (received["level"], received["order_id"], received["items"]) == ("INFO", "o-42", 1)
    priced = next(r for r in mine if r.get("message") == "order priced")
    assert priced["orderId"] == "o-42" and priced["total"] == 4.5
    assert len(priced["traceId"]) == 32 and len(priced["spanId"]) == 16
    emf = next(r for r in records if "_aws" in r and r.get("orderId") == "o-42")
    names = {m["Name"] for m in emf["_aws"]["CloudWatchMetrics"][0]["Metrics"]}
    assert {"OrdersPlaced", "OrderValue", "Duration", "ColdStart"} <= names
    assert emf["OrdersPlaced"] == 1 and emf["ColdStart"] == 1
    spans = {r["name"]: r for r in records if "context" in r and "kind" in r}
    invoke, custom = spans["test-function"], spans["price-order"]
    assert invoke["kind"] == "SpanKind.SERVER"
    assert invoke["attributes"]["faas.invocation_id"] == rid
    assert custom["parent_id"] == invoke["context"]["span_id"]
    assert custom["context"]["trace_id"] == invoke["context"]["trace_id"]
