"""The real `python -m runtime` process against a Runtime API server on a real socket."""

from __future__ import annotations

import datetime
import json
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from runtime_support import HANDLERS, runtime_env

XRAY = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1"


def run_one(runtime_api: Any, start_runtime: Any, handler: str, body: Any, **push: Any) -> Any:
    raw = body if isinstance(body, (bytes, str)) else json.dumps(body)
    runtime_api.push(raw, **push)
    proc = start_runtime(handler)
    post = runtime_api.wait_post()
    return post, proc


# --- results ----------------------------------------------------------------------------------


def test_echo_returns_the_event_as_json(runtime_api: Any, start_runtime: Any) -> None:
    event = {"key": "value", "n": [1, 2.5, None, True]}
    rid = runtime_api.push(json.dumps(event), headers={"Lambda-Runtime-Invocation-Id": "tok-1"})
    start_runtime("basic.echo")
    post = runtime_api.wait_post()
    assert (post.kind, post.request_id) == ("response", rid)
    assert json.loads(post.body) == event
    assert post.header("Content-Type") == "application/json"
    assert post.header("Lambda-Runtime-Invocation-Id") == "tok-1"
    rid2 = runtime_api.push("{}")
    post2 = runtime_api.wait_post()
    assert (post2.kind, post2.request_id) == ("response", rid2)
    assert post2.header("Lambda-Runtime-Invocation-Id") is None


def test_many_invokes_on_one_connection_each_get_one_answer(
    runtime_api: Any, start_runtime: Any
) -> None:
    ids = [runtime_api.push(json.dumps({"i": i})) for i in range(50)]
    start_runtime("basic.echo")
    posts = [runtime_api.wait_post() for _ in ids]
    assert [p.request_id for p in posts] == ids
    assert [json.loads(p.body)["i"] for p in posts] == list(range(50))
    runtime_api.expect_no_post()


def test_bytes_result_is_sent_raw(runtime_api: Any, start_runtime: Any) -> None:
    post, _ = run_one(runtime_api, start_runtime, "basic.bytes_result", {})
    assert post.kind == "response"
    assert post.body == b"\x00\x01binary\xff"
    assert post.header("Content-Type") == "application/octet-stream"


def test_non_json_event_reaches_the_handler_as_bytes(runtime_api: Any, start_runtime: Any) -> None:
    post, _ = run_one(
        runtime_api, start_runtime, "basic.echo", b"\x89PNG raw", content_type="image/png"
    )
    assert post.body == b"\x89PNG raw"


def test_rich_types_are_encoded_as_json(runtime_api: Any, start_runtime: Any) -> None:
    post, _ = run_one(runtime_api, start_runtime, "basic.rich_types", {})
    assert post.kind == "response"
    assert json.loads(post.body) == {
        "point": {"x": 1, "when": "2026-11-27T04:48:00+00:00"},
        "id": "12345678-1234-5678-1234-567812345678",
        "price": 19.99,
        "none": None,
        "tuple": [1, 2],
        "number_keys": {"1": "one"},
    }
    assert b'"price":19.990' in post.body


def test_ints_beyond_64_bits_are_not_lost(runtime_api: Any, start_runtime: Any) -> None:
    post, _ = run_one(runtime_api, start_runtime, "basic.huge_int", {})
    assert json.loads(post.body) == {"big": 2**80}


def test_string_result_is_a_json_string(runtime_api: Any, start_runtime: Any) -> None:
    post, _ = run_one(runtime_api, start_runtime, "basic.a_string", {})
    assert post.body == b'"plain string"'


def test_unicode_round_trip(runtime_api: Any, start_runtime: Any) -> None:
    post, _ = run_one(runtime_api, start_runtime, "basic.unicode", {"text": "ünïcödé 💡"})
    assert json.loads(post.body) == {"text": "ünïcödé 💡 ✓ héllo 日本 🎉"}


def test_five_megabyte_event_is_echoed_intact(runtime_api: Any, start_runtime: Any) -> None:
    event = {"blob": "ab" * (5 * 1024 * 1024 // 2), "n": 1}
    post, _ = run_one(runtime_api, start_runtime, "basic.echo", event)
    assert post.kind == "response"
    assert len(post.body) > 5 * 1024 * 1024
    assert json.loads(post.body) == event


def test_result_over_six_mib_is_an_error_naming_size_and_limit(
    runtime_api: Any, start_runtime: Any
) -> None:
    post, _ = run_one(runtime_api, start_runtime, "basic.big", {"size": 7 * 1024 * 1024})
    assert post.kind == "error"
    body = json.loads(post.body)
    assert post.header("Lambda-Runtime-Function-Error-Type") == "Function.ResponseSizeTooLarge"
    assert str(7 * 1024 * 1024 + len('{"data":""}')) in body["errorMessage"]
    assert "6291556" in body["errorMessage"]
    runtime_api.push(json.dumps({"size": 10}))
    assert runtime_api.wait_post().kind == "response"


def test_unserialisable_result_names_type_and_place(runtime_api: Any, start_runtime: Any) -> None:
    post, _ = run_one(runtime_api, start_runtime, "basic.not_serialisable", {})
    assert post.kind == "error"
    assert post.header("Lambda-Runtime-Function-Error-Type") == "Runtime.MarshalError"
    message = json.loads(post.body)["errorMessage"]
    assert "Opaque" in message
    assert "result['items'][1]['when']" in message


def test_slow_handler_sees_its_remaining_time_shrink(runtime_api: Any, start_runtime: Any) -> None:
    deadline = int(time.time() * 1000) + 10_000
    post, _ = run_one(
        runtime_api, start_runtime, "basic.slow", {"seconds": 0.4}, deadline_ms=deadline
    )
    result = json.loads(post.body)
    assert 0 < result["before"] <= 10_000
    assert 300 <= result["before"] - result["after"] <= 2_000


def test_async_handler_is_awaited(runtime_api: Any, start_runtime: Any) -> None:
    post, _ = run_one(runtime_api, start_runtime, "basic.async_echo", {"a": 1})
    assert json.loads(post.body) == {"async": True, "event": {"a": 1}}
    runtime_api.push('{"a": 2}')
    assert json.loads(runtime_api.wait_post().body) == {"async": True, "event": {"a": 2}}


# --- context ----------------------------------------------------------------------------------


def test_context_carries_every_next_header(runtime_api: Any, start_runtime: Any) -> None:
    client_context = {
        "client": {"installation_id": "inst-1", "app_title": "App"},
        "custom": {"k": "v"},
        "env": {"platform": "test"},
    }
    identity = {"cognitoIdentityId": "id-1", "cognitoIdentityPoolId": "pool-1"}
    rid = runtime_api.push(
        "{}",
        headers={
            "Lambda-Runtime-Client-Context": json.dumps(client_context),
            "Lambda-Runtime-Cognito-Identity": json.dumps(identity),
            "Lambda-Runtime-Aws-Tenant-Id": "tenant-7",
            "Lambda-Runtime-Trace-Id": XRAY,
        },
    )
    start_runtime("basic.context_dump")
    ctx = json.loads(runtime_api.wait_post().body)
    assert ctx["aws_request_id"] == rid
    assert ctx["function_name"] == "test-function"
    assert ctx["function_version"] == "$LATEST"
    assert ctx["invoked_function_arn"] == "arn:aws:lambda:us-east-1:123456789012:function:test"
    assert ctx["memory_limit_in_mb"] == "256"
    assert ctx["log_group_name"] == "/aws/lambda/test-function"
    assert ctx["log_stream_name"] == "2026/11/27/[$LATEST]0123456789abcdef"
    assert 25_000 < ctx["remaining"] <= 30_000
    assert (ctx["identity_id"], ctx["identity_pool_id"]) == ("id-1", "pool-1")
    assert ctx["client_installation_id"] == "inst-1"
    assert ctx["client_custom"] == {"k": "v"}
    assert ctx["client_env"] == {"platform": "test"}
    assert ctx["tenant_id"] == "tenant-7"
    assert ctx["trace_env"] == XRAY
    assert rid in ctx["repr"] and "LambdaContext(" in ctx["repr"]
    # The next invoke has no trace header: the variable must not leak from the previous one.
    runtime_api.push("{}")
    ctx2 = json.loads(runtime_api.wait_post().body)
    assert ctx2["trace_env"] is None
    assert ctx2["tenant_id"] is None and ctx2["client_custom"] is None


def test_remaining_time_is_never_negative(runtime_api: Any, start_runtime: Any) -> None:
    past = int(time.time() * 1000) - 5_000
    post, _ = run_one(runtime_api, start_runtime, "basic.context_dump", {}, deadline_ms=past)
    assert json.loads(post.body)["remaining"] == 0


def test_bad_client_context_fails_that_invoke_only(runtime_api: Any, start_runtime: Any) -> None:
    post, _ = run_one(
        runtime_api, start_runtime, "basic.echo", {},
        headers={"Lambda-Runtime-Client-Context": "{not json"},
    )
    assert post.kind == "error"
    assert post.header("Lambda-Runtime-Function-Error-Type") == (
        "Runtime.LambdaContextUnmarshalError"
    )
    runtime_api.push('{"ok": 1}')
    assert json.loads(runtime_api.wait_post().body) == {"ok": 1}


# --- errors from the handler -------------------------------------------------------------------


def test_handler_exception_is_reported_with_user_frames_only(
    runtime_api: Any, start_runtime: Any
) -> None:
    post, proc = run_one(runtime_api, start_runtime, "basic.fail", {}, request_id="req-fail")
    assert post.kind == "error"
    assert post.header("Lambda-Runtime-Function-Error-Type") == "ValueError"
    body = json.loads(post.body)
    assert list(body)[:4] == ["errorMessage", "errorType", "requestId", "stackTrace"]
    assert body["errorMessage"] == "something went wrong"
    assert body["requestId"] == "req-fail"
    assert len(body["stackTrace"]) == 1
    assert 'basic.py", line' in body["stackTrace"][0]
    assert "in fail" in body["stackTrace"][0]
    assert "runtime" + "/" not in "".join(body["stackTrace"])
    cause = json.loads(post.header("Lambda-Runtime-Function-XRay-Error-Cause"))
    assert cause["exceptions"][0]["type"] == "ValueError"
    assert cause["exceptions"][0]["stack"][0]["label"] == "fail"
    assert cause["paths"][0].endswith("basic.py")
    runtime_api.push("{}")
    assert runtime_api.wait_post().kind == "error"
    output = proc.stop()
    error_lines = [line for line in output.split("\n") if line.startswith("[ERROR]")]
    assert error_lines, output
    assert "\treq-fail\tValueError: something went wrong\rTraceback" in error_lines[0]


def test_error_is_logged_before_it_is_posted(runtime_api: Any, start_runtime: Any) -> None:
    """Catches: the error posted first and logged only afterwards, or not logged at all.

    The output is read when the stub receives the post: whatever the runtime wrote before
    sending it is in the pipe by then."""
    proc = start_runtime("basic.fail_after_log")
    at_post: list[str] = []
    runtime_api.on_post = lambda post: at_post.append(proc.output_so_far())
    runtime_api.push("{}")
    assert runtime_api.wait_post().kind == "error"
    (output,) = at_post
    assert output.index("about to fail") < output.index("ValueError: logged then failed"), output


def test_chained_exception_keeps_its_cause(runtime_api: Any, start_runtime: Any) -> None:
    post, _ = run_one(runtime_api, start_runtime, "basic.chained", {})
    body = json.loads(post.body)
    assert body["errorType"] == "RuntimeError"
    assert body["cause"]["errorType"] == "KeyError"
    assert body["cause"]["errorMessage"] == "'missing'"
    assert any("_lookup" in frame for frame in body["cause"]["stackTrace"])
    cause = json.loads(post.header("Lambda-Runtime-Function-XRay-Error-Cause"))
    assert [e["type"] for e in cause["exceptions"]] == ["RuntimeError", "KeyError"]


def test_implicit_chain_is_kept_as_context(runtime_api: Any, start_runtime: Any) -> None:
    post, _ = run_one(runtime_api, start_runtime, "basic.implicit_chain", {})
    body = json.loads(post.body)
    assert body["context"]["errorType"] == "KeyError"
    assert "cause" not in body


@pytest.mark.skipif(sys.version_info < (3, 11), reason="notes and groups are Python 3.11+")
def test_notes_and_exception_groups_are_kept(runtime_api: Any, start_runtime: Any) -> None:
    runtime_api.push("{}")
    first = start_runtime("basic.with_notes")
    body = json.loads(runtime_api.wait_post().body)
    assert body["notes"] == ["field: name", "hint: send a string"]
    first.stop()
    runtime_api.push("{}")
    start_runtime("basic.group")
    body = json.loads(runtime_api.wait_post().body)
    assert body["errorType"] == "ExceptionGroup"
    assert [(e["errorType"], e["errorMessage"]) for e in body["exceptions"]] == [
        ("ValueError", "one"), ("TypeError", "two")
    ]


@pytest.mark.parametrize(
    ("handler", "error_type"), [("basic.exits", "SystemExit"),
                                ("basic.interrupted", "KeyboardInterrupt")]
)
def test_base_exceptions_are_reported_and_the_loop_goes_on(
    runtime_api: Any, start_runtime: Any, handler: str, error_type: str
) -> None:
    post, proc = run_one(runtime_api, start_runtime, handler, {})
    assert post.kind == "error"
    assert post.header("Lambda-Runtime-Function-Error-Type") == error_type
    runtime_api.push("{}")
    assert runtime_api.wait_post().kind == "error"
    assert proc.proc.poll() is None


def test_recursion_error_is_reported(runtime_api: Any, start_runtime: Any) -> None:
    post, _ = run_one(runtime_api, start_runtime, "basic.deep_recursion", {})
    assert post.header("Lambda-Runtime-Function-Error-Type") == "RecursionError"
    assert len(post.header("Lambda-Runtime-Function-XRay-Error-Cause") or "") < 64 * 1024


def test_exception_with_broken_str_is_still_reported(runtime_api: Any, start_runtime: Any) -> None:
    post, _ = run_one(runtime_api, start_runtime, "basic.unprintable", {})
    body = json.loads(post.body)
    assert body["errorType"] == "BadStr"
    assert "unprintable" in body["errorMessage"]


def test_invalid_json_event_fails_that_invoke_only(runtime_api: Any, start_runtime: Any) -> None:
    post, _ = run_one(runtime_api, start_runtime, "basic.echo", b"{broken")
    assert post.kind == "error"
    assert post.header("Lambda-Runtime-Function-Error-Type") == "Runtime.UnmarshalError"
    assert "Unable to unmarshal input" in json.loads(post.body)["errorMessage"]
    runtime_api.push('{"fine": true}')
    assert json.loads(runtime_api.wait_post().body) == {"fine": True}


# --- init errors ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("handler", "error_type", "message_part"),
    [
        ("nodot", "Runtime.MalformedHandlerName", "Bad handler 'nodot'"),
        ("../escape.handler", "Runtime.MalformedHandlerName", "'..'"),
        ("missing_module.handler", "Runtime.ImportModuleError",
         "Unable to import module 'missing_module'"),
        ("import_fails.handler", "Runtime.ImportModuleError", "this_module_does_not_exist"),
        ("syntax_error.handler", "Runtime.UserCodeSyntaxError", "line 1"),
        ("basic.no_such_function", "Runtime.HandlerNotFound", "no_such_function"),
        ("basic.not_callable", "Runtime.HandlerNotFound", "not callable"),
        ("sys.handler", "Runtime.BuiltInModuleConflict", "sys"),
        ("runtime.handler", "Runtime.BuiltInModuleConflict", "runtime"),
        ("raises_at_import.handler", "ConfigurationError", "DATABASE_URL is not set"),
        ("exits_at_import.handler", "SystemExit", "4"),
    ],
)
def test_init_errors_are_reported_then_the_runtime_exits(
    runtime_api: Any, start_runtime: Any, handler: str, error_type: str, message_part: str
) -> None:
    proc = start_runtime(handler, argv=False)
    post = runtime_api.wait_post()
    assert post.kind == "init_error"
    assert post.header("Lambda-Runtime-Function-Error-Type") == error_type
    body = json.loads(post.body)
    assert body["errorType"] == error_type
    assert message_part in body["errorMessage"]
    assert isinstance(body["stackTrace"], list)
    assert proc.wait_exit() != 0
    assert runtime_api.next_calls == 0


def test_syntax_error_names_file_and_line(runtime_api: Any, start_runtime: Any) -> None:
    start_runtime("syntax_error.handler")
    body = json.loads(runtime_api.wait_post().body)
    assert "syntax_error.py" in body["errorMessage"]
    assert 'syntax_error.py" Line 1' in body["stackTrace"][0]


@pytest.mark.parametrize(
    ("handler", "where"),
    [("pkg.sub.mod.handler", "pkg.sub.mod"), ("nested/dir/deep.handler", "nested/dir/deep")],
)
def test_handler_name_forms(
    runtime_api: Any, start_runtime: Any, handler: str, where: str
) -> None:
    post, _ = run_one(runtime_api, start_runtime, handler, {})
    assert json.loads(post.body) == {"where": where}


def test_user_module_named_like_a_runtime_dependency_does_not_break_it(
    runtime_api: Any, start_runtime: Any
) -> None:
    # tests/handlers/orjson.py sits in the task root, which is the working directory.
    post, _ = run_one(runtime_api, start_runtime, "basic.echo", {"still": "works"})
    assert json.loads(post.body) == {"still": "works"}


def test_layers_are_on_sys_path_after_the_task_root(
    runtime_api: Any, start_runtime: Any, tmp_path: Path
) -> None:
    task = tmp_path / "task"
    layers = tmp_path / "layers"
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    site = layers / "python" / "lib" / version / "site-packages"
    site.mkdir(parents=True)
    task.mkdir()
    (layers / "python" / "layer_util.py").write_text("WHO = 'layer python/'\n")
    (site / "layer_dep.py").write_text("WHO = 'layer site-packages'\n")
    (layers / "python" / "shadowed.py").write_text("WHO = 'layer'\n")
    (task / "shadowed.py").write_text("WHO = 'task root'\n")
    (task / "app.py").write_text(
        "import layer_util, layer_dep, shadowed, sys\n"
        "def handler(event, context):\n"
        "    return [layer_util.WHO, layer_dep.WHO, shadowed.WHO, sys.path[:3]]\n"
    )
    runtime_api.push("{}")
    start_runtime("app.handler", task_root=task, LAMBDA_RUNTIME_LAYER_ROOT=str(layers))
    util, dep, shadowed, path = json.loads(runtime_api.wait_post().body)
    assert (util, dep, shadowed) == ("layer python/", "layer site-packages", "task root")
    assert path == [str(task), str(layers / "python"), str(site)]


# --- Runtime API status codes ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "meaning"),
    [
        (410, "answered 410: the invoke had already timed out; result dropped"),
        (413, "answered 413: the payload is over Lambda's limit and was refused"),
        (400, "answered unexpected status 400: {\"errorMessage\":\"x\"}"),
    ],
)
def test_refused_post_is_logged_and_the_loop_goes_on(
    runtime_api: Any, start_runtime: Any, status: int, meaning: str
) -> None:
    """Catches: the 410 and 413 branches of runtime.api losing their specific meaning (falling
    back to the generic "unexpected status" line), and a refused post stopping the loop.

    The warning is written when the runtime reads the refusal, before it runs the next invoke,
    so it is in the output once the next post arrived."""
    rid = runtime_api.push("{}")
    runtime_api.status_overrides[rid] = status
    proc = start_runtime("basic.echo")
    assert runtime_api.wait_post().request_id == rid
    rid2 = runtime_api.push('{"after": 1}')
    post = runtime_api.wait_post()
    assert (post.request_id, post.body) == (rid2, b'{"after":1}')
    target = f"/2018-06-01/runtime/invocation/{rid}/response"
    warnings = [line for line in proc.stop().split("\n") if line.startswith("[WARNING]")]
    assert len(warnings) == 1 and warnings[0].endswith(f"\t{target} {meaning}"), warnings


def test_500_from_the_runtime_api_makes_the_runtime_exit(
    runtime_api: Any, start_runtime: Any
) -> None:
    rid = runtime_api.push("{}")
    runtime_api.status_overrides[rid] = 500
    proc = start_runtime("basic.echo")
    runtime_api.wait_post()
    assert proc.wait_exit(timeout=5) == 1
    assert "500" in proc.stop()


def test_missing_runtime_api_address_is_a_clear_error(tmp_path: Path) -> None:
    import os
    import subprocess

    env = {k: v for k, v in os.environ.items() if k != "AWS_LAMBDA_RUNTIME_API"}
    done = subprocess.run(
        [sys.executable, "-m", "runtime", "app.handler"],
        env=env, cwd=tmp_path, capture_output=True, text=True, timeout=30,
    )
    assert done.returncode == 2
    assert "AWS_LAMBDA_RUNTIME_API is not set" in done.stderr


def test_runtime_api_that_goes_away_makes_the_runtime_exit(
    runtime_api: Any, start_runtime: Any
) -> None:
    runtime_api.push("{}")
    proc = start_runtime("basic.echo")
    runtime_api.wait_post()
    assert runtime_api.server is not None
    runtime_api.server._stopping = True
    runtime_api.server.shutdown()
    runtime_api.server.server_close()
    assert proc.wait_exit(timeout=10) == 1


# --- logs ---------------------------------------------------------------------------------------


def test_logging_and_print_reach_stdout(runtime_api: Any, start_runtime: Any) -> None:
    post, proc = run_one(runtime_api, start_runtime, "basic.logs", {}, request_id="req-log")
    assert post.kind == "response"
    runtime_api.wait_idle()
    lines = proc.stop().split("\n")
    assert "printed line" in lines
    record = next(line for line in lines if "first line" in line)
    level, stamp, request_id, message = record.split("\t")
    assert level == "[WARNING]"
    assert time.strptime(stamp, "%Y-%m-%dT%H:%M:%S.%fZ")
    assert request_id == "req-log"
    assert message == "first line\rsecond line"
    assert "context log" in lines


# --- shutdown -----------------------------------------------------------------------------------


def test_shutdown_hooks_register_an_extension_and_run_on_sigterm(
    runtime_api: Any, start_runtime: Any
) -> None:
    proc = start_runtime("with_hook.handler")
    register = runtime_api.wait_post()
    assert register.kind == "register"
    assert register.header("Lambda-Extension-Name")
    assert json.loads(register.body) == {"events": []}
    runtime_api.push("{}")
    assert runtime_api.wait_post().kind == "response"
    proc.proc.send_signal(signal.SIGTERM)
    assert proc.wait_exit(timeout=5) == 0
    assert "shutdown hook ran" in proc.stop()


def test_a_second_sigterm_while_the_hooks_run_is_ignored(
    runtime_api: Any, start_runtime: Any
) -> None:
    """Catches: a repeated SIGTERM re-entering the handler, which ran the hooks again (or
    crashed importing what the first one was importing) and exited before they finished."""
    proc = start_runtime("with_hook.handler", REPEAT_SIGTERM="1")
    assert runtime_api.wait_post().kind == "register"
    runtime_api.push("{}")
    assert runtime_api.wait_post().kind == "response"
    proc.proc.send_signal(signal.SIGTERM)
    assert proc.wait_exit(timeout=5) == 0
    output = proc.stop()
    assert output.count("repeating hook started") == 1, output
    assert "repeating hook finished" in output, output
    assert "Traceback" not in output, output


def test_a_hanging_shutdown_hook_is_abandoned_after_the_budget_with_a_warning(
    runtime_api: Any, start_runtime: Any
) -> None:
    """Catches: a shutdown budget other than 0.4 s (1.5 s would meet Lambda's SIGKILL, about
    500 ms after SIGTERM, before the runtime exits by itself), and a missing or wrong warning
    for the hook still running when the budget ends.

    The budget is measured inside the runtime process, from the moment the hanging hook started
    (it prints time.time()) to the warning's own timestamp, so a slow test machine does not
    blur it."""
    proc = start_runtime("with_hook.handler", SLOW_HOOK="1")
    assert runtime_api.wait_post().kind == "register"
    rid = runtime_api.push("{}")
    assert runtime_api.wait_post().kind == "response"
    proc.proc.send_signal(signal.SIGTERM)
    assert proc.wait_exit(timeout=5) == 0
    output = proc.stop()
    started = re.search(r"^slow hook started at (\d+\.\d+)$", output, re.MULTILINE)
    warning = re.search(
        rf"^\[WARNING\]\t(\S+)Z\t(?:{rid})?\t"
        r"shutdown hooks still running after 0\.4s; exiting anyway$",
        output,
        re.MULTILINE,
    )
    assert started and warning, output
    warned = datetime.datetime.fromisoformat(warning[1]).replace(tzinfo=datetime.timezone.utc)
    budget = warned.timestamp() - float(started[1])
    # The log stamp has millisecond resolution.
    assert 0.39 <= budget < 0.5, output


def test_no_hooks_no_extension(runtime_api: Any, start_runtime: Any) -> None:
    post, _ = run_one(runtime_api, start_runtime, "basic.echo", {})
    assert post.kind == "response"


def test_exception_class_name_cannot_break_the_error_header(
    runtime_api: Any, start_runtime: Any
) -> None:
    post, proc = run_one(runtime_api, start_runtime, "basic.weird_error_name", {})
    assert post.kind == "error"
    assert post.header("Lambda-Runtime-Function-Error-Type") == "BadName"
    assert json.loads(post.body)["errorType"] == "Bad\nName"
    runtime_api.push("{}")
    assert runtime_api.wait_post().kind == "error"
    assert proc.proc.poll() is None


def test_request_id_that_cannot_be_posted_is_logged_and_the_loop_goes_on(
    runtime_api: Any, start_runtime: Any
) -> None:
    runtime_api.push("{}", request_id="not a path")
    good = runtime_api.push('{"next": 1}')
    proc = start_runtime("basic.echo")
    post = runtime_api.wait_post()
    assert (post.request_id, json.loads(post.body)) == (good, {"next": 1})
    assert "could not post" in proc.stop()


def test_async_handler_runs_on_the_loop_set_up_at_import(
    runtime_api: Any, start_runtime: Any
) -> None:
    # Clients and pools created at import time are bound to that loop: it must be the one.
    post, _ = run_one(runtime_api, start_runtime, "basic.same_loop_as_import", {})
    assert post.body == b"true"


def test_init_error_stack_shows_user_frames_not_the_import_machinery(
    runtime_api: Any, start_runtime: Any
) -> None:
    start_runtime("raises_at_import.handler")
    body = json.loads(runtime_api.wait_post().body)
    assert body["stackTrace"], body
    assert all("raises_at_import.py" in frame for frame in body["stackTrace"])


def test_decimal_nan_is_named_in_the_marshal_error(
    runtime_api: Any, start_runtime: Any
) -> None:
    post, _ = run_one(runtime_api, start_runtime, "basic.decimal_nan", {})
    message = json.loads(post.body)["errorMessage"]
    assert "Decimal('NaN') has no JSON form (at result['value'])" in message


def test_bad_configuration_is_posted_as_an_init_error(
    runtime_api: Any, start_runtime: Any
) -> None:
    proc = start_runtime("basic.echo", OTEL_TRACES_EXPORTER="zipkin")
    post = runtime_api.wait_post()
    assert post.kind == "init_error"
    assert post.header("Lambda-Runtime-Function-Error-Type") == "Runtime.InvalidConfiguration"
    assert "zipkin" in json.loads(post.body)["errorMessage"]
    assert proc.wait_exit() == 2


def test_unknown_log_settings_are_reported_not_silently_ignored(
    runtime_api: Any, start_runtime: Any
) -> None:
    runtime_api.push("{}")
    proc = start_runtime("basic.echo", AWS_LAMBDA_LOG_LEVEL="LOUD", AWS_LAMBDA_LOG_FORMAT="xml")
    assert runtime_api.wait_post().kind == "response"
    output = proc.stop()
    assert "AWS_LAMBDA_LOG_LEVEL='LOUD' is not a log level" in output
    assert "AWS_LAMBDA_LOG_FORMAT='xml' is not Text or JSON; using Text" in output


# --- cold start -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "command",
    [(sys.executable, "-m", "runtime"), (str(Path(sys.executable).with_name("lambda-runtime")),)],
    ids=["python -m runtime", "lambda-runtime"],
)
def test_a_minimal_function_runs_without_logging_inspect_or_threading(
    runtime_api: Any, start_runtime: Any, command: tuple[str, ...]
) -> None:
    # What a cold start leaves out is what makes it faster than awslambdaric's (make bench).
    runtime_api.push("{}")
    start_runtime("lean.loaded", command=command)
    post = runtime_api.wait_post()
    assert (post.kind, json.loads(post.body)) == ("response", [])


def test_logging_first_imported_during_an_invoke_writes_lambda_lines(
    runtime_api: Any, start_runtime: Any
) -> None:
    rid = runtime_api.push("{}")
    proc = start_runtime("lean.log_late")
    post = runtime_api.wait_post()
    assert json.loads(post.body) == ["LambdaLogHandler"]
    output = proc.stop()
    assert re.search(
        rf"^\[WARNING\]\t\d{{4}}-\d\d-\d\dT[\d:.]+Z\t{rid}\timported during the invoke$",
        output,
        re.MULTILINE,
    ), output


def test_dataclasses_and_signatures_work_after_a_lean_init(
    runtime_api: Any, start_runtime: Any
) -> None:
    post, _ = run_one(runtime_api, start_runtime, "lean.inspect_late", {})
    assert json.loads(post.body) == {
        "doc": "Point(x: 'int', y: 'int' = 0)",
        "signature": "(event: 'Any', context: 'Any') -> 'Any'",
    }


def test_a_logging_py_in_the_task_root_does_not_replace_the_standard_library(
    runtime_api: Any, start_runtime: Any, tmp_path: Path
) -> None:
    # With awslambdaric, logging is imported before the task root is on sys.path; importing it
    # later must not change which module that is.
    (tmp_path / "logging.py").write_text("raise RuntimeError('the user logging.py was imported')\n")
    (tmp_path / "app.py").write_text(
        "import logging\n"
        "def handler(event, context):\n"
        "    logging.getLogger().warning('stdlib logging')\n"
        "    return logging.__file__\n"
    )
    rid = runtime_api.push("{}")
    proc = start_runtime("app.handler", task_root=tmp_path)
    post = runtime_api.wait_post()
    assert post.kind == "response", post.body
    assert json.loads(post.body) != str(tmp_path / "logging.py")
    assert f"\t{rid}\tstdlib logging" in proc.stop()


def test_trace_header_variable_stays_right_across_a_long_lived_environment(
    runtime_api: Any, start_runtime: Any
) -> None:
    # Past runtime.traceid.WARM_UP invokes the variable lives in a buffer of the runtime's own
    # (so that glibc's setenv() does not keep every header): what Python code and subprocesses
    # see must not change.
    def trace(i: int) -> str:
        return f"Root=1-5759e988-bd862e3fe1be46a994272793;Parent={i:016x};Sampled=1"

    checks = {0, 1, 998, 999, 1000, 1001, 1002, 1003, 1100}
    expected: list[list[str | None]] = []
    for i in range(1101):
        with_trace = i % 100 != 3  # now and then an invoke without one
        runtime_api.push(
            json.dumps({"subprocess": i in checks}),
            headers={"Lambda-Runtime-Trace-Id": trace(i)} if with_trace else {},
        )
        value = trace(i) if with_trace else None
        expected.append([value, value or "UNSET"] if i in checks else [value])
    start_runtime("lean.trace_env")
    seen = [json.loads(runtime_api.wait_post().body) for _ in expected]
    assert seen == expected


# --- pipelining -------------------------------------------------------------------------------


class _At:
    def __init__(self, port: int) -> None:
        self.address = f"127.0.0.1:{port}"


def _read_until(conn: socket.socket, buf: bytearray, marker: bytes) -> bytes:
    while marker not in buf:
        chunk = conn.recv(65536)
        if not chunk:
            raise EOFError(bytes(buf))
        buf += chunk
    end = buf.index(marker) + len(marker)
    out = bytes(buf[:end])
    del buf[:end]
    return out


@pytest.mark.parametrize(
    ("env", "pipelined"),
    [({}, True), ({"LAMBDA_RUNTIME_LOG_BUFFER": "debug"}, False)],
    ids=["nothing-runs-after-the-post", "debug-buffer-flushes-after-the-post"],
)
def test_next_rides_with_the_response_only_when_nothing_runs_in_between(
    env: dict[str, str], pipelined: bool
) -> None:
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(15)
    proc = subprocess.Popen(
        [sys.executable, "-m", "runtime", "basic.echo"],
        cwd=HANDLERS,
        env=runtime_env(_At(server.getsockname()[1]), HANDLERS, **env),  # type: ignore[arg-type]
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        conn, _ = server.accept()
        conn.settimeout(15)
        buf = bytearray()
        assert _read_until(conn, buf, b"\r\n\r\n").startswith(b"GET /2018-06-01/runtime/")
        conn.sendall(
            b"HTTP/1.1 200 OK\r\nLambda-Runtime-Aws-Request-Id: r1\r\n"
            b"Lambda-Runtime-Deadline-Ms: 9999999999999\r\nContent-Type: application/json\r\n"
            b"Content-Length: 7\r\n\r\n{\"a\":1}"
        )
        head = _read_until(conn, buf, b"\r\n\r\n")
        assert head.startswith(b"POST /2018-06-01/runtime/invocation/r1/response ")
        length = int(re.search(rb"Content-Length: (\d+)", head, re.IGNORECASE)[1])  # type: ignore[index]
        while len(buf) < length:
            buf += conn.recv(65536)
        assert bytes(buf[:length]) == b'{"a":1}'
        del buf[:length]
        # The post is not answered yet: does the next GET come anyway?
        conn.settimeout(1.0)
        try:
            arrived = _read_until(conn, buf, b"\r\n\r\n")
        except TimeoutError:
            arrived = b""
        assert arrived.startswith(b"GET /2018-06-01/runtime/invocation/next ") == pipelined
        conn.close()
    finally:
        proc.kill()
        proc.wait(10)
        server.close()
