"""Error bodies posted to /error and /init/error, the X-Ray cause header, and the log form."""

from __future__ import annotations

import builtins
import json
import os
import sys
from typing import Any

import pytest

import runtime.errors
from runtime.context import LambdaContext
from runtime.errors import (
    ERROR_BODY_LIMIT,
    XRAY_CAUSE_LIMIT,
    LambdaError,
    encode_error,
    error_body,
    error_type_of,
    format_for_log,
    xray_cause,
)

RUNTIME_DIR = os.path.dirname(os.path.abspath(runtime.errors.__file__))
REQUEST_ID = "52fdfc07-2182-454f-963f-5f0f9a621d72"


def caught(fn: Any) -> BaseException:
    try:
        fn()
    except BaseException as exc:
        return exc
    raise AssertionError("nothing was raised")


def inner_user_function() -> None:
    raise ValueError("order 7 has no items")


def outer_user_function() -> None:
    inner_user_function()


def exception_group(message: str, members: list[Exception]) -> Exception:
    # By name, so the module still imports (and type-checks) on Python 3.10.
    group_type: Any = vars(builtins)["ExceptionGroup"]
    return group_type(message, members)  # type: ignore[no-any-return]


def depth_of(body: dict[str, Any], key: str) -> int:
    depth = 0
    while key in body:
        body = body[key]
        depth += 1
    return depth


# --- error_body ------------------------------------------------------------------------------


def test_plain_exception_body_has_the_managed_runtime_keys_in_order() -> None:
    body = error_body(caught(outer_user_function), REQUEST_ID)
    assert list(body) == ["errorMessage", "errorType", "requestId", "stackTrace"]
    assert body["errorMessage"] == "order 7 has no items"
    assert body["errorType"] == "ValueError"
    assert body["requestId"] == REQUEST_ID


def test_stack_trace_lists_user_frames_outermost_first_like_python() -> None:
    stack = error_body(caught(outer_user_function), REQUEST_ID)["stackTrace"]
    assert all(isinstance(entry, str) for entry in stack)
    outer = next(i for i, e in enumerate(stack) if "in outer_user_function" in e)
    inner = next(i for i, e in enumerate(stack) if "in inner_user_function" in e)
    assert outer < inner == len(stack) - 1
    assert stack[inner].startswith(f'  File "{__file__}", line ')
    assert 'raise ValueError("order 7 has no items")' in stack[inner]


class ExplodingStr:
    def __str__(self) -> str:
        raise RuntimeError("cannot render")


def test_stack_trace_leaves_out_the_runtimes_own_frames() -> None:
    # context.log() (runtime code) calls str() on the user's object, which raises: the trace
    # must go from the user's call straight to the user's __str__.
    ctx = LambdaContext(
        aws_request_id=REQUEST_ID, deadline_ms=0, invoked_function_arn="", function_name="f",
        function_version="$LATEST", memory_limit_in_mb="128", log_group_name="",
        log_stream_name="",
    )
    exc = caught(lambda: ctx.log(ExplodingStr()))
    stack = error_body(exc, REQUEST_ID)["stackTrace"]
    assert not any(RUNTIME_DIR + os.sep in entry for entry in stack)
    assert any("in __str__" in entry for entry in stack)
    assert any(__file__ in entry for entry in stack)


def test_without_request_id_the_key_is_absent() -> None:
    body = error_body(caught(outer_user_function))
    assert "requestId" not in body
    assert list(body)[:3] == ["errorMessage", "errorType", "stackTrace"]


def test_explicit_chain_is_kept_as_cause() -> None:
    def fail() -> None:
        stock: dict[str, int] = {}
        try:
            stock["sku"]
        except KeyError as err:
            raise RuntimeError("lookup failed") from err

    body = error_body(caught(fail), REQUEST_ID)
    assert body["errorType"] == "RuntimeError"
    assert body["cause"]["errorType"] == "KeyError"
    assert body["cause"]["errorMessage"] == "'sku'"
    assert any('stock["sku"]' in entry for entry in body["cause"]["stackTrace"])
    assert "context" not in body
    assert "requestId" not in body["cause"]


def test_implicit_chain_is_kept_as_context() -> None:
    def fail() -> None:
        try:
            int("seven")
        except ValueError:
            raise TypeError("while handling")  # noqa: B904 - the implicit chain is the point

    body = error_body(caught(fail), REQUEST_ID)
    assert body["errorType"] == "TypeError"
    assert body["context"]["errorType"] == "ValueError"
    assert "seven" in body["context"]["errorMessage"]
    assert "cause" not in body


def test_from_none_drops_the_chain() -> None:
    def fail() -> None:
        try:
            int("seven")
        except ValueError:
            raise LookupError("clean") from None

    body = error_body(caught(fail), REQUEST_ID)
    assert "cause" not in body
    assert "context" not in body


def test_notes_are_kept_in_order() -> None:
    if sys.version_info < (3, 11):
        pytest.skip("add_note() and exception groups are Python 3.11+")
    def fail() -> None:
        err = ValueError("bad input")
        err.add_note("field: price")
        err.add_note("hint: use a string")
        raise err

    body = error_body(caught(fail), REQUEST_ID)
    assert body["notes"] == ["field: price", "hint: use a string"]


def test_no_notes_key_without_notes() -> None:
    assert "notes" not in error_body(caught(outer_user_function), REQUEST_ID)


def test_exception_group_members_are_described() -> None:
    if sys.version_info < (3, 11):
        pytest.skip("add_note() and exception groups are Python 3.11+")
    def fail() -> None:
        raise exception_group("2 tasks failed", [ValueError("task a"), KeyError("task b")])

    body = error_body(caught(fail), REQUEST_ID)
    assert body["errorType"] == "ExceptionGroup"
    assert [m["errorType"] for m in body["exceptions"]] == ["ValueError", "KeyError"]
    assert [m["errorMessage"] for m in body["exceptions"]] == ["task a", "'task b'"]
    for member in body["exceptions"]:
        assert list(member)[:3] == ["errorMessage", "errorType", "stackTrace"]


def test_huge_exception_group_stays_bounded() -> None:
    if sys.version_info < (3, 11):
        pytest.skip("add_note() and exception groups are Python 3.11+")
    group = exception_group("many", [ValueError(str(i)) for i in range(10_000)])
    body = error_body(group, REQUEST_ID)
    assert 0 < len(body["exceptions"]) < 10_000
    assert body["exceptions"][0]["errorMessage"] == "0"


def test_cycle_in_the_chain_terminates() -> None:
    first = ValueError("first")
    second = KeyError("second")
    first.__cause__ = second
    second.__cause__ = first
    body = error_body(first, REQUEST_ID)
    assert body["cause"]["errorType"] == "KeyError"
    assert depth_of(body, "cause") == 1
    json.loads(encode_error(body))


def test_self_referencing_context_terminates() -> None:
    err = ValueError("loop")
    err.__context__ = err
    body = error_body(err, REQUEST_ID)
    assert "context" not in body


def test_very_long_chain_is_bounded_and_keeps_the_outermost() -> None:
    # Deeper than the recursion limit would allow if the chain were followed to the end.
    exc: BaseException = ValueError("root cause")
    for i in range(2_000):
        wrapper = RuntimeError(f"layer {i}")
        wrapper.__cause__ = exc
        exc = wrapper
    body = error_body(exc, REQUEST_ID)
    assert body["errorMessage"] == "layer 1999"
    assert 1 <= depth_of(body, "cause") < 2_000
    json.loads(encode_error(body))


def test_exception_whose_str_raises_still_gets_a_body() -> None:
    class Unprintable(Exception):
        def __str__(self) -> str:
            raise RuntimeError("no")

    body = error_body(Unprintable(), REQUEST_ID)
    assert body["errorType"] == "Unprintable"
    assert "Unprintable" in body["errorMessage"]


def test_lambda_error_uses_its_own_type_message_and_trace() -> None:
    err = LambdaError("Runtime.UserCodeSyntaxError", "bad syntax", ['  File "app.py" Line 3\n'])
    body = error_body(err, REQUEST_ID)
    assert body["errorType"] == "Runtime.UserCodeSyntaxError"
    assert body["errorMessage"] == "bad syntax"
    assert body["stackTrace"] == ['  File "app.py" Line 3\n']
    assert error_type_of(err) == "Runtime.UserCodeSyntaxError"


@pytest.mark.parametrize(
    ("exc", "error_type", "message"),
    [
        (SystemExit(3), "SystemExit", "3"),
        (KeyboardInterrupt(), "KeyboardInterrupt", ""),
        (KeyError("k"), "KeyError", "'k'"),
        (Exception(), "Exception", ""),
    ],
)
def test_base_exceptions_and_empty_messages(
    exc: BaseException, error_type: str, message: str
) -> None:
    body = error_body(exc, REQUEST_ID)
    assert (body["errorType"], body["errorMessage"], body["stackTrace"]) == (
        error_type, message, [],
    )


def test_encoded_body_parses_back_with_unicode_intact() -> None:
    body = error_body(ValueError("prix: 10 € — ☃ 😀"), REQUEST_ID)
    assert json.loads(encode_error(body)) == body


def test_message_with_lone_surrogate_still_encodes() -> None:
    name = b"caf\xe9.txt".decode("utf-8", "surrogateescape")
    body = error_body(FileNotFoundError(f"no such file: {name}"), REQUEST_ID)
    decoded = json.loads(encode_error(body))
    assert decoded["errorType"] == "FileNotFoundError"
    assert decoded["errorMessage"].startswith("no such file: caf")


# --- xray_cause ------------------------------------------------------------------------------


def parse_cause(exc: BaseException) -> dict[str, Any]:
    raw = xray_cause(exc)
    assert raw is not None
    return json.loads(raw)  # type: ignore[no-any-return]


def test_xray_cause_shape() -> None:
    cause = parse_cause(caught(outer_user_function))
    assert set(cause) == {"working_directory", "exceptions", "paths"}
    assert cause["working_directory"] == os.getcwd()
    [exception] = cause["exceptions"]
    assert exception["message"] == "order 7 has no items"
    assert exception["type"] == "ValueError"
    labels = [frame["label"] for frame in exception["stack"]]
    assert "outer_user_function" in labels
    assert "inner_user_function" in labels
    for frame in exception["stack"]:
        assert set(frame) == {"path", "line", "label"}
        assert isinstance(frame["line"], int)
        assert frame["path"] in cause["paths"]
    assert __file__ in cause["paths"]
    assert not any(path.startswith(RUNTIME_DIR + os.sep) for path in cause["paths"])


def test_xray_cause_follows_the_chain() -> None:
    def fail() -> None:
        try:
            inner_user_function()
        except ValueError as err:
            raise RuntimeError("wrapped") from err

    cause = parse_cause(caught(fail))
    assert [e["type"] for e in cause["exceptions"]] == ["RuntimeError", "ValueError"]


def test_xray_cause_for_lambda_error_uses_the_lambda_type() -> None:
    cause = parse_cause(LambdaError("Runtime.MarshalError", "cannot marshal"))
    assert cause["exceptions"][0]["type"] == "Runtime.MarshalError"
    assert cause["exceptions"][0]["message"] == "cannot marshal"


@pytest.mark.parametrize("text", ["héllo", "prix 10 €", "日本語", "emoji 😀 and ☃", "\u2028"])
def test_xray_cause_is_ascii_and_parses_back_to_the_original_text(text: str) -> None:
    raw = xray_cause(ValueError(text))
    assert raw is not None
    assert raw.isascii()
    assert json.loads(raw)["exceptions"][0]["message"] == text


def test_xray_cause_cycle_terminates() -> None:
    first = ValueError("first")
    second = KeyError("second")
    first.__cause__ = second
    second.__context__ = first
    cause = parse_cause(first)
    assert [e["type"] for e in cause["exceptions"]] == ["ValueError", "KeyError"]


def _deep_recursion_error(depth: int) -> BaseException:
    # Frames from a file with a long name make every stack entry big.
    namespace: dict[str, Any] = {}
    source = "def recurse(n):\n    if n == 0:\n        raise RecursionError('deep')\n" \
             "    return recurse(n - 1)\n"
    exec(compile(source, "/var/task/" + "d" * 300 + "/deep.py", "exec"), namespace)
    return caught(lambda: namespace["recurse"](depth))


def test_xray_cause_for_a_huge_stack_stays_under_64_kib_and_keeps_the_innermost_frame() -> None:
    exc = _deep_recursion_error(400)
    raw = xray_cause(exc)
    assert raw is not None
    assert len(raw) < XRAY_CAUSE_LIMIT == 64 * 1024
    stack = json.loads(raw)["exceptions"][0]["stack"]
    assert stack
    # The innermost frame is where the error was raised: line 3 of the recursing function.
    assert stack[-1]["label"] == "recurse"
    assert stack[-1]["line"] == 3


@pytest.mark.parametrize("message", ["x" * 1_000_000, "é" * 200_000, "😀" * 100_000])
def test_xray_cause_for_a_huge_message_stays_under_64_kib(message: str) -> None:
    raw = xray_cause(ValueError(message))
    assert raw is None or len(raw) < XRAY_CAUSE_LIMIT
    if raw is not None:
        kept = json.loads(raw)["exceptions"][0]["message"]
        assert kept[:100] == message[:100]


def test_xray_cause_for_a_long_chain_with_huge_messages_stays_under_64_kib() -> None:
    exc: BaseException = ValueError("v" * 100_000)
    for i in range(20):
        wrapper = RuntimeError(f"{i}" * 50_000)
        wrapper.__cause__ = exc
        exc = wrapper
    raw = xray_cause(exc)
    assert raw is None or len(raw) < XRAY_CAUSE_LIMIT


def _many_files_error(files: int, message: str) -> BaseException:
    # A call chain through many distinct source files with long names (as template engines
    # produce), so that the list of paths alone is bigger than the header limit.
    namespace: dict[str, Any] = {}
    for i in range(files):
        exec(
            compile(f"def f{i}(g):\n    return g()\n",
                    "/var/task/templates/" + "t" * 220 + f"/page{i}.py", "exec"),
            namespace,
        )

    def call(i: int) -> None:
        if i == files:
            raise ValueError(message)
        namespace[f"f{i}"](lambda: call(i + 1))

    return caught(lambda: call(0))


def _bounded_ascii_json(monkeypatch: pytest.MonkeyPatch) -> None:
    # The real encoder, with a call budget: a shrinking loop that makes no progress fails the
    # test instead of hanging it.
    real = runtime.errors._encode_cause
    calls = [0]

    def counted(*args: Any) -> bytes:
        calls[0] += 1
        if calls[0] > 1_000:
            raise AssertionError("xray_cause does not terminate")
        return real(*args)

    monkeypatch.setattr(runtime.errors, "_encode_cause", counted)


def test_xray_cause_with_many_paths_and_short_message_terminates_under_64_kib(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _bounded_ascii_json(monkeypatch)
    raw = xray_cause(_many_files_error(300, "short"))
    # Dropping frames (and the paths only they named) is enough: the header is kept.
    assert raw is not None and len(raw) < XRAY_CAUSE_LIMIT
    assert json.loads(raw)["exceptions"][0]["message"] == "short"


def test_xray_cause_with_many_paths_and_long_message_terminates_under_64_kib(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _bounded_ascii_json(monkeypatch)
    raw = xray_cause(_many_files_error(300, "m" * 5_000))
    assert raw is None or len(raw) < XRAY_CAUSE_LIMIT


def test_xray_cause_with_lone_surrogate_does_not_raise() -> None:
    raw = xray_cause(ValueError(b"caf\xe9".decode("utf-8", "surrogateescape")))
    assert raw is not None
    assert raw.isascii()


# --- format_for_log ---------------------------------------------------------------------------


def test_log_form_starts_with_type_and_message_then_a_traceback() -> None:
    text = format_for_log(error_body(caught(outer_user_function), REQUEST_ID))
    lines = text.splitlines()
    assert lines[0] == "ValueError: order 7 has no items"
    assert lines[1] == "Traceback (most recent call last):"
    assert "inner_user_function" in text
    assert 'raise ValueError("order 7 has no items")' in text


def test_log_form_without_stack_is_one_line() -> None:
    assert format_for_log(error_body(KeyError("k"), REQUEST_ID)) == "KeyError: 'k'"


def test_log_form_shows_notes_members_and_chain_in_order() -> None:
    if sys.version_info < (3, 11):
        pytest.skip("add_note() and exception groups are Python 3.11+")
    def fail() -> None:
        try:
            inner_user_function()
        except ValueError as err:
            outer = RuntimeError("outer failure")
            outer.add_note("while saving order 7")
            raise outer from err

    text = format_for_log(error_body(caught(fail), REQUEST_ID))
    assert text.index("RuntimeError: outer failure") < text.index("while saving order 7")
    assert text.index("while saving order 7") < text.index("ValueError: order 7 has no items")


def test_log_form_shows_implicit_context() -> None:
    def fail() -> None:
        try:
            inner_user_function()
        except ValueError:
            raise KeyError("during handling")  # noqa: B904 - the implicit chain is the point

    text = format_for_log(error_body(caught(fail), REQUEST_ID))
    assert text.index("KeyError") < text.index("ValueError: order 7 has no items")


def test_log_form_lists_group_members() -> None:
    if sys.version_info < (3, 11):
        pytest.skip("add_note() and exception groups are Python 3.11+")
    group = exception_group("2 failed", [ValueError("task a"), KeyError("task b")])
    text = format_for_log(error_body(group, REQUEST_ID))
    assert "ValueError: task a" in text
    assert "KeyError: 'task b'" in text


def _raise_with_message(message: str) -> BaseException:
    try:
        raise ValueError(message)
    except ValueError as exc:
        return exc


def test_a_huge_message_is_clipped_so_the_error_still_reaches_the_caller() -> None:
    """A 10 MB message would make a 10 MB body, which the Runtime API refuses (413): the caller
    would get Function.ResponseSizeTooLarge instead of the error. Breaks caught: no clipping."""
    exc = _raise_with_message("x" * 10_000_000)
    body = error_body(exc, REQUEST_ID)
    encoded = encode_error(body)
    assert len(encoded) <= ERROR_BODY_LIMIT
    assert body["errorType"] == "ValueError" and body["requestId"] == REQUEST_ID
    assert body["errorMessage"].startswith("xxxx")
    assert body["errorMessage"].endswith("more characters]")
    assert body["stackTrace"], "the frames that say where it failed are kept"


@pytest.mark.skipif(sys.version_info < (3, 11), reason="exception groups are 3.11+")
def test_a_big_group_of_big_errors_stays_within_the_limit_with_its_members() -> None:
    """32 members of 1 MB each: clipped texts, but the shape (members, types) survives."""
    members = [_raise_with_message("y" * 1_000_000) for _ in range(40)]
    group = vars(builtins)["ExceptionGroup"]("many", members)
    body = error_body(group, REQUEST_ID)
    assert len(encode_error(body)) <= ERROR_BODY_LIMIT
    assert body["errorType"] == "ExceptionGroup"
    assert [m["errorType"] for m in body["exceptions"]] == ["ValueError"] * 32


def test_an_ordinary_error_is_not_touched_by_the_limit() -> None:
    exc = _raise_with_message("a" * 20_000)
    assert error_body(exc, REQUEST_ID)["errorMessage"] == "a" * 20_000
