"""Our runtime's streamed responses end to end: the real `python -m runtime` process under the
real emulator, called with boto3's invoke_with_response_stream and the Python API.

What is checked here is the runtime's side: log records and metrics during a stream belong to
the invoke, a span covers the whole stream, async generators run on the environment's one
event loop, and the function's log shows a failed stream like any other error.
"""

from __future__ import annotations

import base64
import io
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import boto3
import botocore.config

HANDLERS = Path(__file__).resolve().parent.parent / "emulator" / "handlers"


def _client(url: str) -> Any:
    return boto3.client(
        "lambda",
        endpoint_url=url,
        region_name="us-east-1",
        aws_access_key_id="test",
        aws_secret_access_key="test",
        config=botocore.config.Config(retries={"max_attempts": 1, "mode": "standard"}),
    )


def test_logs_and_metrics_during_a_stream_belong_to_the_invoke(lambda_emulator):
    fn = lambda_emulator(
        "streaming.observed",
        task_root=HANDLERS,
        env={"AWS_LAMBDA_LOG_FORMAT": "JSON", "LAMBDA_RUNTIME_METRICS": "emf"},
    )
    result = fn.invoke({})
    assert result.ok and result.raw == b"0\n1\n2\n"
    records = [json.loads(line) for line in result.log.splitlines() if line.startswith("{")]
    chunks = [r for r in records if str(r.get("message", "")).startswith("chunk ")]
    assert [r["message"] for r in chunks] == ["chunk 0", "chunk 1", "chunk 2"]
    assert {r["requestId"] for r in chunks} == {result.request_id}
    # The EMF line comes after the last chunk, with every chunk's metric in it.
    (emf,) = [r for r in records if "_aws" in r]
    assert emf["chunks"] == [1, 1, 1] or emf["chunks"] == 3
    assert emf["requestId"] == result.request_id


def test_a_span_covers_the_whole_stream(lambda_emulator):
    console = io.BytesIO()
    fn = lambda_emulator(
        "streaming.observed", task_root=HANDLERS, otel_console=True, echo=console, timeout=5
    )
    client = _client(fn.url)
    try:
        response = client.invoke_with_response_stream(FunctionName="function", Payload=b"{}")
        events = list(response["EventStream"])
    finally:
        client.close()
    assert b"".join(e["PayloadChunk"]["Payload"] for e in events if "PayloadChunk" in e) == (
        b"0\n1\n2\n"
    )
    fn.stop()
    text = console.getvalue().decode()
    # The root span ("function  SERVER  <ms> ms") lasts at least the two pauses between chunks.
    (ms,) = re.findall(r"^function  SERVER  (\d+\.\d\d) ms", text, re.MULTILINE)
    assert float(ms) >= 400


def test_async_generators_run_on_the_one_environment_loop(lambda_emulator):
    fn = lambda_emulator("streaming.loop_identity", task_root=HANDLERS)
    loops = {fn.invoke({}).raw for _ in range(3)}
    assert len(loops) == 1 and loops != {b""}


def test_a_failed_stream_is_logged_like_any_error(lambda_emulator):
    fn = lambda_emulator("streaming.fails_midway", task_root=HANDLERS)
    client = _client(fn.url)
    try:
        response = client.invoke_with_response_stream(
            FunctionName="function", Payload=b"{}", LogType="Tail"
        )
        events = list(response["EventStream"])
    finally:
        client.close()
    done = events[-1]["InvokeComplete"]
    assert done["ErrorCode"] == "ValueError"
    log = base64.b64decode(done["LogResult"]).decode()
    request_id = response["ResponseMetadata"]["RequestId"]
    assert f"\t{request_id}\tValueError: broke after two chunks" in log
    assert "[ERROR]" in log and "Traceback" in log


def test_only_functions_that_stream_import_the_streaming_module():
    code = (
        "import sys, runtime, runtime.bootstrap\n"
        "print('runtime.streaming' in sys.modules)\n"
        "from runtime import HttpResponse, StreamResponse\n"
        "print(HttpResponse.__module__, StreamResponse.__module__)\n"
        "print('HttpResponse' in runtime.__all__)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=30
    ).stdout.split()
    assert out == ["False", "runtime.streaming", "runtime.streaming", "True"]
