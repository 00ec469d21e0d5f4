"""Several invokes in flight in one environment (AWS_LAMBDA_MAX_CONCURRENCY, concurrency.py).

End to end: a real runtime process against the scripted Runtime API (one thread per connection,
so every slot's /next parks at once), handlers in tests/handlers/multi.py.
"""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from runtime_support import RuntimeAPIStub

from runtime import protocol
from runtime.api import Invocation, RuntimeAPIFatal
from runtime.concurrency import next_with_retry, split_slots
from runtime.config import Config, ConfigError, concurrency_settings
from runtime.http import ConnectionClosed, Response, ResponseFeed

TRACE = "Root=1-5759e988-bd862e3fe1be46a9942{:05d};Parent=53995c3f42cd8ad8;Sampled=1"


def _push_many(api: RuntimeAPIStub, count: int, **extra: Any) -> list[str]:
    return [
        api.push(
            json.dumps({"tag": tag, **extra}),
            headers={protocol.TRACE_ID_HEADER: TRACE.format(tag)},
        )
        for tag in range(count)
    ]


def _answers(api: RuntimeAPIStub, count: int, timeout: float = 30.0) -> dict[str, Any]:
    """request id -> the post for it, for the next ``count`` posts."""
    posts = [api.wait_post(timeout) for _ in range(count)]
    return {post.request_id: post for post in posts if post.request_id}


def _max_overlap(spans: list[tuple[float, float]]) -> int:
    edges = sorted([(start, 1) for start, _ in spans] + [(end, -1) for _, end in spans])
    best = now = 0
    for _, step in edges:
        now += step
        best = max(best, now)
    return best


def _json_lines(output: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in output.splitlines() if line.startswith("{")]


@pytest.mark.parametrize("handler", ["multi.sync_sleep", "multi.async_sleep"])
def test_64_invokes_at_once_in_one_process_each_with_its_own_ids(
    runtime_api: RuntimeAPIStub, start_runtime: Any, handler: str
) -> None:
    proc = start_runtime(handler, AWS_LAMBDA_MAX_CONCURRENCY="64")
    ids = _push_many(runtime_api, 64)
    answers = _answers(runtime_api, 64)
    assert set(answers) == set(ids)
    results = {rid: json.loads(post.body) for rid, post in answers.items()}
    for rid, result in results.items():
        assert answers[rid].kind == "response"
        assert result["request_id"] == rid
        assert result.get("request_id_after", rid) == rid
        assert result["trace_id"] == TRACE.format(result["tag"])
        # One process-wide variable cannot be per-invoke: the runtime leaves it unset.
        assert result["env_trace"] is None
    assert {r["pid"] for r in results.values()} == {proc.proc.pid}
    # They really ran side by side (64 x 50 ms one after the other would never overlap).
    assert _max_overlap([tuple(r["span"]) for r in results.values()]) >= 16
    if handler == "multi.async_sleep":
        assert len({r["loop"] for r in results.values()}) == 1  # one environment event loop
    runtime_api.wait_idle()
    time.sleep(0.2)  # the thread and pool lines of the last invokes are written by now
    tag_of = {rid: r["tag"] for rid, r in results.items()}
    lines = [line for line in _json_lines(proc.stop()) if line.get("logger") == "concurrent"]
    # start, from a thread (and, sync, from a pool)
    assert len(lines) == 64 * (3 if handler == "multi.sync_sleep" else 2)
    for line in lines:
        # Every record, including those of threads the handler started, names its own invoke.
        assert line["message"].endswith(f" {tag_of[line['requestId']]}"), line


def test_faults_stay_with_their_invoke(runtime_api: RuntimeAPIStub, start_runtime: Any) -> None:
    proc = start_runtime("multi.faulty", AWS_LAMBDA_MAX_CONCURRENCY="8")
    now_ms = int(time.time() * 1000)
    hang = runtime_api.push(json.dumps({"action": "hang", "sleep": 1.5}), deadline_ms=now_ms + 300)
    # As on Lambda: the hung invoke timed out, its late answer gets 410.
    runtime_api.status_overrides[hang] = protocol.STATUS_GONE
    raising = runtime_api.push(json.dumps({"action": "raise", "tag": "r"}))
    exiting = runtime_api.push(json.dumps({"action": "exit"}))
    fine = [runtime_api.push(json.dumps({"tag": n})) for n in range(5)]
    first = _answers(runtime_api, 7)
    assert hang not in first  # the others did not wait for it
    assert first[raising].kind == "error"
    assert first[raising].header(protocol.ERROR_TYPE_HEADER) == "ValueError"
    assert first[exiting].kind == "error"
    assert first[exiting].header(protocol.ERROR_TYPE_HEADER) == "Runtime.ExitError"
    assert "sys.exit(3)" in json.loads(first[exiting].body)["errorMessage"]
    for rid in fine:
        assert first[rid].kind == "response"
    late = runtime_api.wait_post()
    assert late.request_id == hang
    # Every slot still serves (the one that raised, exited and hung included).
    more = [runtime_api.push(json.dumps({"tag": n})) for n in range(8)]
    again = _answers(runtime_api, 8)
    assert set(again) == set(more)
    assert {json.loads(p.body)["pid"] for p in again.values()} == {proc.proc.pid}
    assert proc.proc.poll() is None
    assert "answered 410" in proc.stop()


def test_sys_exit_in_an_async_handler_fails_that_invoke_only(
    runtime_api: RuntimeAPIStub, start_runtime: Any
) -> None:
    start_runtime("multi.async_faulty", AWS_LAMBDA_MAX_CONCURRENCY="4")
    exiting = runtime_api.push(json.dumps({"action": "exit"}))
    others = [runtime_api.push("{}") for _ in range(3)]
    answers = _answers(runtime_api, 4)
    assert answers[exiting].header(protocol.ERROR_TYPE_HEADER) == "Runtime.ExitError"
    assert all(answers[rid].kind == "response" for rid in others)
    after = runtime_api.push("{}")  # the event loop survived
    assert _answers(runtime_api, 1)[after].kind == "response"


def test_process_mode_spreads_slots_over_forked_workers(
    runtime_api: RuntimeAPIStub, start_runtime: Any
) -> None:
    proc = start_runtime("multi.cpu", AWS_LAMBDA_MAX_CONCURRENCY="4", LAMBDA_RUNTIME_PROCESSES="2")
    ids = [runtime_api.push(json.dumps({"rounds": 50000, "tag": n})) for n in range(16)]
    answers = _answers(runtime_api, 16)
    assert set(answers) == set(ids)
    pids = {json.loads(post.body)["pid"] for post in answers.values()}
    assert len(pids) == 2 and proc.proc.pid not in pids
    for rid, post in answers.items():
        assert json.loads(post.body)["request_id"] == rid


def test_process_mode_with_an_async_handler_runs_tasks_in_each_worker(
    runtime_api: RuntimeAPIStub, start_runtime: Any
) -> None:
    proc = start_runtime(
        "multi.async_threads", AWS_LAMBDA_MAX_CONCURRENCY="8", LAMBDA_RUNTIME_PROCESSES="2"
    )
    ids = _push_many(runtime_api, 16, sleep=0.1)
    answers = _answers(runtime_api, 16)
    assert set(answers) == set(ids)
    results = [json.loads(post.body) for post in answers.values()]
    pids = {r["pid"] for r in results}
    assert len(pids) == 2 and proc.proc.pid not in pids
    assert max(r["threads"] for r in results) <= 4
    for rid, post in answers.items():
        assert json.loads(post.body)["request_id"] == rid


def test_a_worker_that_dies_ends_the_environment(
    runtime_api: RuntimeAPIStub, start_runtime: Any
) -> None:
    proc = start_runtime("multi.die", AWS_LAMBDA_MAX_CONCURRENCY="2", LAMBDA_RUNTIME_PROCESSES="2")
    runtime_api.push("{}")
    assert proc.wait_exit() != 0


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"AWS_LAMBDA_MAX_CONCURRENCY": "lots"}, "AWS_LAMBDA_MAX_CONCURRENCY='lots'"),
        ({"AWS_LAMBDA_MAX_CONCURRENCY": "0"}, "from 1 to"),
        (
            {"AWS_LAMBDA_MAX_CONCURRENCY": "2", "LAMBDA_RUNTIME_PROCESSES": "3"},
            "LAMBDA_RUNTIME_PROCESSES='3'",
        ),
        ({"LAMBDA_RUNTIME_PROCESSES": "2"}, "needs AWS_LAMBDA_MAX_CONCURRENCY"),
    ],
)
def test_bad_settings_are_a_clear_init_error(
    runtime_api: RuntimeAPIStub, start_runtime: Any, env: dict[str, str], message: str
) -> None:
    proc = start_runtime("multi.sync_sleep", **env)
    post = runtime_api.wait_post()
    assert post.kind == "init_error"
    assert message in json.loads(post.body)["errorMessage"]
    assert proc.wait_exit() == 2


def test_settings_parse() -> None:
    assert concurrency_settings({}) == (0, 0)
    assert concurrency_settings({"AWS_LAMBDA_MAX_CONCURRENCY": " 64 "}) == (64, 0)
    both = {"AWS_LAMBDA_MAX_CONCURRENCY": "64", "LAMBDA_RUNTIME_PROCESSES": "4"}
    assert concurrency_settings(both) == (64, 4)
    with pytest.raises(ConfigError, match="from 1 to 1024"):
        concurrency_settings({"AWS_LAMBDA_MAX_CONCURRENCY": "5000"})


def test_json_logs_are_the_default_with_concurrency_and_an_explicit_format_wins() -> None:
    base = {"AWS_LAMBDA_RUNTIME_API": "127.0.0.1:9001"}
    assert Config.from_environ(["h.f"], base).log_format == "Text"
    many = {**base, "AWS_LAMBDA_MAX_CONCURRENCY": "8"}
    assert Config.from_environ(["h.f"], many).log_format == "JSON"
    text = {**many, "AWS_LAMBDA_LOG_FORMAT": "Text"}
    assert Config.from_environ(["h.f"], text).log_format == "Text"


def test_split_slots_is_even_and_complete() -> None:
    assert split_slots(64, 3) == [22, 21, 21]
    assert split_slots(4, 4) == [1, 1, 1, 1]
    with pytest.raises(ValueError):
        split_slots(2, 3)


class _FlakyClient:
    """Fails ``failures`` times, then hands out an invocation (the retry policy alone)."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.calls = 0

    def next_invocation(self) -> Invocation:
        self.calls += 1
        if self.calls <= self.failures:
            raise RuntimeAPIFatal("connection refused")
        return Invocation({protocol.REQUEST_ID_KEY: "r"}, b"{}")


def test_next_is_retried_with_backoff_then_given_up() -> None:
    warnings: list[str] = []
    client = _FlakyClient(2)
    started = time.monotonic()
    got = next_with_retry(client, warnings.append, retries=3, backoff=0.05)  # type: ignore[arg-type]
    assert got.request_id == "r"
    assert time.monotonic() - started >= 0.05 + 0.1  # doubling
    assert len(warnings) == 2
    with pytest.raises(RuntimeAPIFatal):
        next_with_retry(_FlakyClient(10), warnings.append, retries=2, backoff=0.01)  # type: ignore[arg-type]


def test_structlog_context_and_emf_metrics_stay_with_their_invoke(
    runtime_api: RuntimeAPIStub, start_runtime: Any
) -> None:
    proc = start_runtime(
        "multi.observed", AWS_LAMBDA_MAX_CONCURRENCY="16", LAMBDA_RUNTIME_METRICS="emf"
    )
    ids = _push_many(runtime_api, 32)
    answers = _answers(runtime_api, 32)
    assert set(answers) == set(ids)
    tag_of = {rid: json.loads(post.body)["tag"] for rid, post in answers.items()}
    runtime_api.wait_idle()
    time.sleep(0.2)
    lines = _json_lines(proc.stop())
    metrics = [line for line in lines if "_aws" in line]
    logs = [line for line in lines if line.get("message") == "observed"]
    assert len(metrics) == len(logs) == 32
    for line in metrics:
        assert line["Tag"] == line["FromThread"] == tag_of[line["requestId"]], line
    for line in logs:
        assert line["tag"] == tag_of[line["requestId"]], line


def test_sigterm_in_process_mode_stops_every_worker(
    runtime_api: RuntimeAPIStub, start_runtime: Any
) -> None:
    import os
    import signal

    proc = start_runtime("multi.cpu", AWS_LAMBDA_MAX_CONCURRENCY="4", LAMBDA_RUNTIME_PROCESSES="2")
    rid = runtime_api.push(json.dumps({"rounds": 10}))
    worker = json.loads(_answers(runtime_api, 1)[rid].body)["pid"]
    proc.proc.send_signal(signal.SIGTERM)
    assert proc.wait_exit() == 0
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            os.kill(worker, 0)
        except ProcessLookupError:
            break
        time.sleep(0.05)
    else:
        raise AssertionError(f"worker {worker} outlived the runtime process")


# --- async handlers: slots as tasks on the event loop, over the non-blocking client ----------


def test_async_slots_are_tasks_on_one_thread_and_invokes_share_no_context(
    runtime_api: RuntimeAPIStub, start_runtime: Any
) -> None:
    proc = start_runtime("multi.async_threads", AWS_LAMBDA_MAX_CONCURRENCY="32")
    for _ in range(2):  # the second round runs on slots that already served an invoke
        ids = _push_many(runtime_api, 32)
        answers = _answers(runtime_api, 32)
        assert set(answers) == set(ids)
        results = [json.loads(post.body) for post in answers.values()]
        assert all(post.kind == "response" for post in answers.values())
        # 32 invokes waiting at once, and no thread per slot (a slot thread each would be 33+).
        assert max(r["threads"] for r in results) <= 4
        # A context variable the handler set is gone when its slot serves the next invoke.
        assert {r["seen"] for r in results} == {None}
    assert {r["pid"] for r in results} == {proc.proc.pid}


def test_a_stream_an_async_handler_returns_is_streamed(lambda_emulator: Any) -> None:
    from concurrent.futures import ThreadPoolExecutor
    from pathlib import Path

    handlers = Path(__file__).resolve().parent / "handlers"
    fn = lambda_emulator(
        "multi.async_stream_result", task_root=handlers, max_concurrency=4, timeout=10, echo=False
    )
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda _: fn.invoke({}), range(8)))
    for result in results:
        assert result.ok, result.payload
        assert result.raw == f"one two {result.request_id}".encode()


_RESPONSES = [
    b"HTTP/1.1 200 OK\r\nLambda-Runtime-Aws-Request-Id: a\r\nContent-Length: 5\r\n\r\nhello",
    b"HTTP/1.1 202 Accepted\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\nX-T: 1\r\n\r\n",
]


@pytest.mark.parametrize("piece", [1, 7, 1000])
def test_the_feed_parses_responses_however_they_arrive(piece: int) -> None:
    stream = b"".join(_RESPONSES)
    feed = ResponseFeed()
    got: list[Response] = []
    for start in range(0, len(stream), piece):
        feed.feed(stream[start : start + piece])
        while (response := feed.parse("GET")) is not None:
            got.append(response)
    assert [(r.status, r.body, r.trailers) for r in got] == [
        (200, b"hello", {}),
        (202, b"abc", {"x-t": "1"}),
    ]
    assert got[0].headers["lambda-runtime-aws-request-id"] == "a"
    assert feed.buffered == 0 and feed.keep_alive


def test_the_feed_asks_for_a_large_body_in_one_wait_and_reports_a_cut_one() -> None:
    body = b"x" * 300_000
    feed = ResponseFeed()
    feed.feed(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body) + body[:1000])
    assert feed.parse("GET") is None
    assert feed.need == len(body) - 1000  # not one parse per received segment
    feed.feed(body[1000:])
    response = feed.parse("GET")
    assert response is not None and response.body == body
    cut = ResponseFeed()
    cut.feed(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc")
    assert cut.parse("GET") is None
    cut.end()
    with pytest.raises(ConnectionClosed, match="3 of 10 bytes"):
        cut.parse("GET")


def test_the_non_blocking_client_reconnects_and_reads_pipelined_answers() -> None:
    import asyncio
    import socket
    import threading

    from runtime.concurrency import AsyncConnection

    listener = socket.create_server(("127.0.0.1", 0))
    seen: list[bytes] = []

    def serve() -> None:
        # Connection 1: one answer, then closed as an idle keep-alive connection can be.
        # Connection 2: a post with a pipelined GET behind it, both answered in one write.
        for answers in (1, 2):
            conn, _ = listener.accept()
            with conn:
                data = b""
                while data.count(b"\r\n\r\n") < answers:
                    data += conn.recv(65536)
                seen.append(data)
                ok = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n"
                conn.sendall(ok + b"r1" if answers == 1 else ok + b"r2" + ok + b"r3")
                if answers == 2:
                    conn.recv(1)  # until the client is done

    server = threading.Thread(target=serve, daemon=True)
    server.start()

    async def client() -> list[bytes]:
        conn = AsyncConnection(asyncio.get_running_loop(), "127.0.0.1", listener.getsockname()[1])
        first = await conn.request("GET", "/a")
        await asyncio.sleep(0.1)  # the server has closed it by now
        second = await conn.request("POST", "/b", (), b"", then=("GET", "/c"))
        third = await conn.request("GET", "/c")  # sends nothing: the answer is already here
        conn.close()
        return [first.body, second.body, third.body]

    try:
        assert asyncio.run(client()) == [b"r1", b"r2", b"r3"]
    finally:
        listener.close()
    server.join(5)
    assert seen[0].startswith(b"GET /a ")
    assert seen[1].startswith(b"POST /b ") and b"\r\n\r\nGET /c " in seen[1]
