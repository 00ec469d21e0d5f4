"""Context promises that `make mutate` showed no test held (see tests/mutation/README.md)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from runtime.context import LambdaContext


def _context(deadline_ms: int) -> LambdaContext:
    return LambdaContext(
        aws_request_id="r",
        deadline_ms=deadline_ms,
        invoked_function_arn="arn:aws:lambda:us-east-1:123456789012:function:f",
        function_name="f",
        function_version="$LATEST",
        memory_limit_in_mb="128",
        log_group_name="/aws/lambda/f",
        log_stream_name="s",
    )


def test_the_last_millisecond_before_the_deadline_is_reported(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Catches clamping too early (``remaining > 1``): with 1 ms left the answer is 1, not 0,
    and it only becomes 0 at the deadline. The clock is pinned: a real one moves under load."""
    now = 1_800_000_000.0
    monkeypatch.setattr(time, "time", lambda: now)
    at = int(now * 1000)
    assert _context(at + 1).get_remaining_time_in_millis() == 1
    assert _context(at).get_remaining_time_in_millis() == 0


def test_a_handler_finds_its_own_invoke_in_current_context(
    runtime_api: Any, start_runtime: Any, tmp_path: Path
) -> None:
    """Catches the runtime entering an invoke without setting ``current_context`` (the docs
    promise code without the context at hand reads it there)."""
    (tmp_path / "app.py").write_text(
        "from runtime.context import current_context\n"
        "seen = []\n"
        "def handler(event, context):\n"
        "    seen.append(current_context.get())\n"
        "    return {'same': seen[-1] is context, 'id': seen[-1].aws_request_id,\n"
        "            'invokes': len(seen)}\n",
        encoding="utf-8",
    )
    first = runtime_api.push("{}")
    start_runtime("app.handler", task_root=tmp_path)
    post = runtime_api.wait_post()
    assert json.loads(post.body) == {"same": True, "id": first, "invokes": 1}
    second = runtime_api.push("{}")
    post = runtime_api.wait_post()
    assert json.loads(post.body) == {"same": True, "id": second, "invokes": 2}
