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


# Run in a child: isolate_threads patches threading for the whole process, for good.
_THREADS_SCRIPT = r"""
import _thread, json, threading
from concurrent.futures import ThreadPoolExecutor
from runtime.context import (LambdaContext, enter_invoke, leave_invoke, invoke_context,
    isolate_threads)

def ctx(rid):
    return LambdaContext(aws_request_id=rid, deadline_ms=0, invoked_function_arn="a",
        function_name="f", function_version="1", memory_limit_in_mb="128",
        log_group_name="g", log_stream_name="s")

def in_raw_thread():
    # A thread started below threading (no context copied, no patch): it sees only the fallback.
    seen, done = [], threading.Event()
    _thread.start_new_thread(lambda: (seen.append(invoke_context()), done.set()), ())
    done.wait(5)
    return seen[0]

out = {}
token = enter_invoke(ctx("one-at-a-time"))
out["raw_single"] = getattr(in_raw_thread(), "aws_request_id", None)
leave_invoke(token)

isolate_threads()
start, submit = threading.Thread.start, ThreadPoolExecutor.submit
isolate_threads()
out["idempotent"] = threading.Thread.start is start and ThreadPoolExecutor.submit is submit
token = enter_invoke(ctx("concurrent"))
raw = in_raw_thread()
out["raw_multi"] = raw if raw is None else repr(raw)
seen = []
t = threading.Thread(target=lambda: seen.append(invoke_context().aws_request_id))
t.start(); t.join()
out["thread"] = seen[0]
with ThreadPoolExecutor(1) as pool:
    call = lambda a, *, b: (a, b, invoke_context().aws_request_id)
    out["pool"] = pool.submit(call, 1, b=2).result()
leave_invoke(token)
print(json.dumps(out))
"""


def test_threads_belong_to_the_invoke_that_started_them_one_or_many_at_a_time() -> None:
    """One invoke at a time, a thread the handler starts (even below ``threading``) belongs to
    the invoke in progress; with several in flight (``isolate_threads``) that fallback is off,
    threads and pool calls carry their starter's context, keyword arguments reach the pool
    call, and a second call changes nothing (it is documented idempotent).

    Kills ``_InProgress.__init__`` 2 and 3 (fallback off), ``isolate_threads`` 2 and 3 (fallback
    left on or left as ""), 5, 7, 11, 12 (patched twice) and 29-31 (kwargs dropped)."""
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-c", _THREADS_SCRIPT], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.splitlines()[-1]) == {
        "raw_single": "one-at-a-time",
        "idempotent": True,
        "raw_multi": None,
        "thread": "concurrent",
        "pool": [1, 2, "concurrent"],
    }
