"""Platform records in JSON mode, and per-environment prefixes on the console."""

from __future__ import annotations

import contextlib
import io
import json
import time
from concurrent.futures import ThreadPoolExecutor


def _records(log: str) -> list[dict]:
    out = []
    for line in log.splitlines():
        if line.startswith("{"):
            with contextlib.suppress(ValueError):
                out.append(json.loads(line))
    return out


def test_json_log_format_platform_records(emulator):
    fn = emulator("app.fail", log_format="JSON")
    result = fn.invoke({})
    records = _records(result.log)
    kinds = [r.get("type") for r in records if "type" in r]
    assert kinds[0] == "platform.initStart"
    assert "platform.start" in kinds and kinds[-1] == "platform.report"
    start = next(r for r in records if r.get("type") == "platform.start")
    assert start["record"] == {"requestId": result.request_id, "version": "$LATEST"}
    report = records[-1]
    assert report["time"].endswith("Z")
    metrics = report["record"]["metrics"]
    assert set(metrics) == {
        "durationMs",
        "billedDurationMs",
        "memorySizeMB",
        "maxMemoryUsedMB",
        "initDurationMs",
    }
    assert metrics["memorySizeMB"] == 128 and metrics["maxMemoryUsedMB"] > 0
    assert report["record"]["status"] == "error"
    assert report["record"]["errorType"] == "ValueError"
    assert "END RequestId" not in result.log
    # The function is told the format too.
    info = emulator("app.context_info", env={"AWS_LAMBDA_LOG_FORMAT": "JSON"})
    assert json.loads(info.invoke({}).raw)["env"]["AWS_LAMBDA_FUNCTION_NAME"] == "function"


def test_json_timeout_record(make):
    fn = make("app.sleep", log_format="JSON", timeout=0.5)
    result = fn.invoke({"seconds": 5})
    report = _records(result.log)[-1]
    assert report["type"] == "platform.report" and report["record"]["status"] == "timeout"
    assert "Task timed out after 0.50 seconds" in result.log


def test_console_prefixes_lines_per_environment_when_several_run(make):
    stream = io.BytesIO()
    fn = make("app.sleep", concurrency=2, echo=stream)
    fn.invoke({"seconds": 0})
    with ThreadPoolExecutor(2) as pool:
        list(pool.map(lambda _: fn.invoke({"seconds": 0.3}), range(2)))
    deadline = time.monotonic() + 2
    while b"[env-2] REPORT" not in stream.getvalue() and time.monotonic() < deadline:
        time.sleep(0.05)
    text = stream.getvalue().decode()
    lines = text.splitlines()
    # One environment alive: plain lines; two alive: every line says which one it came from.
    assert lines[0].startswith("INIT_START")
    assert lines[4].startswith("REPORT RequestId")
    assert any(line.startswith("[env-1] ") for line in lines), text
    assert any(line.startswith("[env-2] sleeping 0.3") for line in lines), text
    assert any(line.startswith("[env-2] REPORT RequestId") for line in lines), text
