"""Error report promises that `make mutate` showed no test held (see README.md here).

What a user sees of a failure: the JSON body posted to /error (docs/handlers.md "Error
reports": its fields, the depth of the chain, the clipping under 256 KiB), the X-Ray cause
header (compact ASCII JSON under 64 KiB) and the log record's text."""

from __future__ import annotations

import builtins
import importlib
import json
import os
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

from runtime.errors import (
    ERROR_BODY_LIMIT,
    XRAY_CAUSE_LIMIT,
    LambdaError,
    encode_error,
    error_body,
    format_for_log,
    xray_cause,
)

REQUEST_ID = "52fdfc07-2182-454f-963f-5f0f9a621d72"
needs_groups = pytest.mark.skipif(sys.version_info < (3, 11), reason="exception groups: 3.11+")


def _group(message: str, members: list[BaseException]) -> BaseException:
    # By name, so the module still imports (and type-checks) on Python 3.10.
    group_type: Any = vars(builtins)["BaseExceptionGroup"]
    return group_type(message, members)  # type: ignore[no-any-return]


def _raised(exc: BaseException) -> BaseException:
    """``exc`` with a traceback of one user frame, as a handler's exception has."""
    try:
        raise exc
    except BaseException as caught:
        return caught


def _chain(length: int, link: str) -> BaseException:
    """``length`` errors, each linked to the next by ``link`` (``__cause__`` or
    ``__context__``); the outermost is returned."""
    outer: BaseException = ValueError("error 0")
    current = outer
    for number in range(1, length):
        following = ValueError(f"error {number}")
        setattr(current, link, following)
        current = following
    return outer


def _depth(body: dict[str, Any], key: str) -> int:
    depth = 0
    while key in body:
        inner = body[key]
        body = inner[0] if isinstance(inner, list) else inner
        depth += 1
    return depth


# --- the body: depth, notes, members --------------------------------------------------------


@pytest.mark.parametrize("link", ["__cause__", "__context__"])
def test_a_long_chain_is_described_to_a_depth_of_8(link: str) -> None:
    """Kills error_body mutant 8 and _describe mutants 49, 65 and 66: docs/handlers.md promises
    nested objects "to a depth of 8", for an explicit cause as for an implicit context."""
    body = error_body(_chain(20, link), REQUEST_ID)
    key = "cause" if link == "__cause__" else "context"
    assert _depth(body, key) == 8
    inner = body
    for _ in range(8):
        inner = inner[key]
    assert inner["errorMessage"] == "error 8"


@needs_groups
def test_nested_groups_are_described_to_a_depth_of_8() -> None:
    """Kills _describe mutants 86 and 87: members of a group nest to the same depth of 8."""
    group = _group("level 19", [ValueError("leaf")])
    for level in range(18, -1, -1):
        group = _group(f"level {level}", [group])
    body = error_body(group, REQUEST_ID)
    assert _depth(body, "exceptions") == 8
    assert body["exceptions"][0]["errorMessage"] == "level 1 (1 sub-exception)"


def test_notes_that_are_not_a_list_are_left_out() -> None:
    """Kills _describe mutant 27: ``__notes__`` assigned a string (not by ``add_note``) must
    not become one note per character."""
    exc = ValueError("boom")
    exc.__notes__ = "not a list"  # type: ignore[attr-defined]
    assert "notes" not in error_body(exc, REQUEST_ID)


class _HasExceptions(Exception):
    """Not a group, but with an ``exceptions`` attribute, as some libraries' errors have."""

    def __init__(self) -> None:
        super().__init__("several")
        self.exceptions = (ValueError("one"), KeyError("two"))


def test_only_an_exception_group_gets_the_exceptions_key() -> None:
    """Kills _describe mutant 75 and _is_group mutant 1: ``exceptions`` is the members of an
    exception group, not any ``exceptions`` attribute."""
    assert "exceptions" not in error_body(_HasExceptions(), REQUEST_ID)


@needs_groups
def test_a_group_member_already_described_as_the_cause_is_not_repeated() -> None:
    """Kills _describe mutants 88 and 89: each exception is described once (the same guard
    that ends cycles), so a group raised ``from`` one of its members lists it as the cause
    only."""
    member = ValueError("the member")
    group = _group("one failed", [member, KeyError("other")])
    group.__cause__ = member
    body = error_body(group, REQUEST_ID)
    assert body["cause"]["errorMessage"] == "the member"
    assert [m["errorMessage"] for m in body["exceptions"]] == ["'other'"]


def test_the_import_machinery_frames_are_left_out_of_an_import_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Kills _user_frames mutants 10 and 11: docs/handlers.md promises that for errors at
    import the frames of the import machinery (``<frozen importlib._bootstrap>``) are left
    out; only the failing module's line is the user's."""
    (tmp_path / "breaks_at_import_x7.py").write_text("raise RuntimeError('no config')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        importlib.import_module("breaks_at_import_x7")
    except RuntimeError as exc:
        stack = error_body(exc, REQUEST_ID)["stackTrace"]
    finally:
        sys.modules.pop("breaks_at_import_x7", None)
    assert not [frame for frame in stack if "<frozen" in frame], stack
    assert "breaks_at_import_x7.py" in stack[-1]


# --- the body: clipped under 256 KiB --------------------------------------------------------


def test_a_huge_message_arrives_as_its_first_16384_characters() -> None:
    """Kills _within_limit mutant 2 and _clip mutant 2: docs/handlers.md says "a 10 MB
    ``ValueError`` message arrives as its first 16,384 characters", ending in
    ``... [N more characters]`` with N what was cut."""
    body = error_body(_raised(ValueError("x" * 10_000_000)), REQUEST_ID)
    assert body["errorMessage"] == "x" * 16384 + "... [9983616 more characters]"


@pytest.mark.parametrize(
    ("entries", "errors", "keep"),
    [(10, 1, 16384), (100, 1, 2048), (100, 9, 256)],
    ids=["16384", "2048", "256"],
)
def test_the_shortest_cut_that_fits_is_made(entries: int, errors: int, keep: int) -> None:
    """Kills _within_limit mutants 3 and 4 and _clip mutant 1: texts are cut to 16,384
    characters, or 2,048, or 256, whichever is the first to fit, each stack keeping its
    innermost frames; a text of exactly that length is not cut (no "... [0 more
    characters]")."""
    length = 40_000
    stack = [f"{n:06d}" + "s" * (length - 6) for n in range(entries)]
    exc = LambdaError("Runtime.Big", "m" * keep, stack)
    current = exc
    for _ in range(errors - 1):
        current.__cause__ = LambdaError("Runtime.Inner", "inner", list(stack))
        current = current.__cause__
    body = error_body(exc, REQUEST_ID)
    assert len(encode_error(body)) <= ERROR_BODY_LIMIT
    assert body["errorMessage"] == "m" * keep
    first = max(entries - max(keep // 64, 4), 0)
    assert body["stackTrace"] == [
        f"{n:06d}" + "s" * (keep - 6) + f"... [{length - keep} more characters]"
        for n in range(first, entries)
    ]


def _exactly(limit: int, make: Any) -> Any:
    """``make(n)`` for the ``n`` whose encoded error body is exactly ``limit`` bytes (each
    ``n`` adds one byte)."""
    size = len(encode_error(error_body(make(0), REQUEST_ID)))
    return make(limit - size)


def test_a_body_of_exactly_256_kib_is_sent_whole() -> None:
    """Kills _within_limit mutant 1: the limit is "at most" 256 KiB; a body of exactly that
    size must not lose anything."""
    exc = _exactly(ERROR_BODY_LIMIT, lambda n: LambdaError("Runtime.Big", "m" * n))
    body = error_body(exc, REQUEST_ID)
    assert len(encode_error(body)) == ERROR_BODY_LIMIT
    assert body["errorMessage"] == exc.message


def test_a_body_that_fits_exactly_after_the_first_cut_keeps_16384_characters() -> None:
    """Kills _within_limit mutant 10: once clipped to 16,384 characters a body of exactly
    256 KiB fits, so it is not cut further (to 2,048)."""
    stack = ["s" * 20_000] * 15

    def make(n: int) -> LambdaError:
        # The message stays whole (under 16,384), so each n adds one byte to the clipped body.
        return LambdaError("Runtime.Big", "m" * (1000 + n), stack)

    clipped_size = len(encode_error(error_body(make(0), REQUEST_ID)))
    exc = make(ERROR_BODY_LIMIT - clipped_size)
    body = error_body(exc, REQUEST_ID)
    assert len(encode_error(body)) == ERROR_BODY_LIMIT
    assert body["stackTrace"][0] == "s" * 16384 + "... [3616 more characters]"


@needs_groups
def test_when_nothing_else_fits_the_outermost_error_is_sent_alone() -> None:
    """Kills _within_limit mutants 11 to 44 (but 37 and 39, judged in equivalent.tsv) and
    _clip mutant 14: past every cut (1,024 members of nested groups), the body is the outermost
    error's type, request id, the first 256 characters of its message and its 4 innermost
    frames, each cut to 256 characters."""

    def tree(levels: int) -> BaseException:
        # Every list is cut to its last 4 items too, so it takes 4 ** 5 distinct leaves.
        if levels == 0:
            return LambdaError("Leaf", "l" * 1000, ["frame\n"] * 10)
        return _group("g" * 1000, [tree(levels - 1) for _ in range(4)])

    stack = [f"{n}" + "f" * 1000 for n in range(8)]
    top = LambdaError("Runtime.Big", "t" * 1000, stack)
    top.__cause__ = tree(5)
    body = error_body(top, REQUEST_ID)
    assert body == {
        "errorMessage": "t" * 256 + "... [744 more characters]",
        "errorType": "Runtime.Big",
        "requestId": REQUEST_ID,
        "stackTrace": [f"{n}" + "f" * 255 + "... [745 more characters]" for n in range(4, 8)],
    }


# --- the X-Ray cause header -----------------------------------------------------------------


def _xray(exc: BaseException) -> dict[str, Any]:
    raw = xray_cause(exc)
    assert raw is not None
    return json.loads(raw)  # type: ignore[no-any-return]


def test_the_xray_cause_follows_an_implicit_context_but_not_one_suppressed() -> None:
    """Kills xray_cause mutants 31 and 32: like the body, the X-Ray chain follows
    ``__context__`` unless ``raise ... from None`` suppressed it."""
    implicit = _chain(2, "__context__")
    assert [e["message"] for e in _xray(implicit)["exceptions"]] == ["error 0", "error 1"]
    implicit.__suppress_context__ = True
    assert [e["message"] for e in _xray(implicit)["exceptions"]] == ["error 0"]


def test_the_xray_cause_chain_is_bounded_at_8() -> None:
    """Kills xray_cause mutant 9: a long chain gives its 8 outermost errors."""
    messages = [e["message"] for e in _xray(_chain(20, "__cause__"))["exceptions"]]
    assert messages == [f"error {n}" for n in range(8)]


def test_the_xray_cause_is_compact_json() -> None:
    """Kills _encode_cause mutants 17 and 21: the header is compact JSON (no spaces after
    separators), which is what keeps the most of a chain under 64 KiB."""
    raw = xray_cause(_raised(ValueError("boom")))
    assert raw is not None
    assert raw == json.dumps(json.loads(raw), separators=(",", ":")).encode()


def test_a_shrunk_xray_cause_keeps_the_working_directory() -> None:
    """Kills xray_cause mutant 70: after shrinking, ``working_directory`` is still the cwd
    (X-Ray shows paths relative to it)."""
    assert _xray(_raised(ValueError("x" * 100_000)))["working_directory"] == os.getcwd()


def test_a_too_big_xray_cause_drops_inner_errors_before_cutting_the_outer_message() -> None:
    """Kills xray_cause mutant 58: frames go first, then the inner errors, and only then is
    the outermost message cut: two 40 KB messages give the outer one, whole."""
    outer = _raised(ValueError("o" * 40_000))
    outer.__cause__ = _raised(ValueError("i" * 40_000))
    cause = _xray(outer)
    assert [e["message"] for e in cause["exceptions"]] == ["o" * 40_000]


def test_an_xray_cause_of_exactly_64_kib_is_shrunk() -> None:
    """Kills xray_cause mutant 39: the header stays *under* 64 KiB (lambda-facts.md)."""
    base = len(xray_cause(ValueError("")) or b"")
    raw = xray_cause(ValueError("a" * (XRAY_CAUSE_LIMIT - base)))
    assert raw is not None
    assert len(raw) < XRAY_CAUSE_LIMIT
    assert json.loads(raw)["exceptions"][0]["message"].endswith("... (truncated)")


def _inner(message: str) -> None:
    raise ValueError(message)


def _outer(message: str) -> None:
    _inner(message)


def _three_frames(message: str) -> BaseException:
    try:
        _outer(message)
    except ValueError as exc:
        return exc
    raise AssertionError("nothing was raised")


def test_a_too_big_xray_cause_drops_only_the_outer_frames_it_must() -> None:
    """Kills xray_cause mutant 54 (at least two frames dropped per step): a cause one byte
    too big loses its outermost frame only, and keeps the two innermost, which say where it
    failed."""
    base = len(xray_cause(_three_frames("")) or b"")
    cause = _xray(_three_frames("a" * (XRAY_CAUSE_LIMIT - base)))
    assert [frame["label"] for frame in cause["exceptions"][0]["stack"]] == ["_outer", "_inner"]


@pytest.mark.parametrize("length", [1030, 1039, 1040])
def test_an_xray_cause_that_cannot_shrink_enough_is_dropped_promptly(length: int) -> None:
    """Kills xray_cause mutants 59 and 60 (which loop forever cutting a message that is
    already as short as the cut makes it): an error whose type name alone is over 64 KiB
    gets no X-Ray cause, and reporting it does not hang the runtime."""
    exc = type("T" * XRAY_CAUSE_LIMIT, (Exception,), {})("m" * length)
    results: list[bytes | None] = []
    worker = threading.Thread(target=lambda: results.append(xray_cause(exc)), daemon=True)
    worker.start()
    worker.join(5)
    assert results == [None]


# --- the log record -------------------------------------------------------------------------


def _fails_with_x() -> None:
    # A frame whose line ends in "X": the log keeps each line whole.
    X = ValueError("inner")
    raise X


def test_the_log_text_of_a_chain_is_exact() -> None:
    """Kills _append_trace mutants 15, 49, 52, 53, 54, 68, 71, 72 and 73: the log record reads
    like Python's own traceback: each chained error after an empty line, introduced by
    "Caused by (raise ... from): " or "During handling of: ", and every line of the frames
    kept whole (here one ending in ``X``)."""
    try:
        try:
            _fails_with_x()
        except ValueError as inner:
            try:
                raise KeyError("middle") from inner
            except KeyError:
                raise RuntimeError("outer")  # noqa: B904 - the implicit chain is the point
    except RuntimeError as exc:
        body = error_body(exc, REQUEST_ID)

    def frames(entry: dict[str, Any]) -> list[str]:
        return "".join(entry["stackTrace"]).splitlines()

    middle = body["context"]
    inner = middle["cause"]
    assert frames(inner)[-1].endswith("raise X")
    assert format_for_log(body).split("\n") == [
        "RuntimeError: outer",
        "Traceback (most recent call last):",
        *frames(body),
        "",
        "During handling of: KeyError: 'middle'",
        "Traceback (most recent call last):",
        *frames(middle),
        "",
        "Caused by (raise ... from): ValueError: inner",
        "Traceback (most recent call last):",
        *frames(inner),
    ]


@needs_groups
def test_the_log_text_numbers_group_members_from_1() -> None:
    """Kills _append_trace mutants 27 and 34: members are numbered from 1, as Python's own
    traceback of an exception group numbers them."""
    group = _group("2 failed", [ValueError("task a"), KeyError("task b")])
    assert format_for_log(error_body(group, REQUEST_ID)).split("\n") == [
        "ExceptionGroup: 2 failed (2 sub-exceptions)",
        "  +---------------- 1 ----------------",
        "  ValueError: task a",
        "  +---------------- 2 ----------------",
        "  KeyError: 'task b'",
    ]


def test_a_non_ascii_message_is_sent_as_utf8_and_measured_so() -> None:
    """Kills encode_error mutant 3 (every body encoded by the ASCII-escaping fallback): the
    body is UTF-8 JSON, so a 100,000-character message in accented letters (200 KB) fits
    under 256 KiB and arrives whole, not clipped as its escaped form (600 KB) would be."""
    message = "\u00e9" * 100_000
    body = error_body(_raised(ValueError(message)), REQUEST_ID)
    assert body["errorMessage"] == message
    assert message.encode() in encode_error(body)
