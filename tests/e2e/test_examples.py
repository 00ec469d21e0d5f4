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
