"""Property tests for the error formatter: any graph of exceptions (cycles through ``__cause__``
and ``__context__``, huge exception groups, deep chains, huge or unprintable messages) gives a
valid JSON error body, an X-Ray cause header under 64 KiB (or none), a log text, in bounded
time."""

from __future__ import annotations

import builtins
import itertools
import json
import sys
import time
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from runtime.errors import encode_error, error_body, format_for_log, xray_cause
from runtime.protocol import XRAY_CAUSE_LIMIT

pytestmark = pytest.mark.skipif(sys.version_info < (3, 11), reason="exception groups: 3.11+")

GRAPHS = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
# Generous for a loaded 2-core machine; the formatter itself takes milliseconds.
TIME_BOUND_S = 2.0
# Looked up at run time: Python 3.10 has no exception groups (the module is skipped there).
ExceptionGroup: Any = vars(builtins).get("ExceptionGroup")


class Unprintable(Exception):
    def __str__(self) -> str:
        raise RuntimeError("str() of this exception fails")


@dataclass
class Node:
    kind: str  # "plain", "unprintable", "group"
    message: str
    members: list[int]
    cause: int | None
    context: int | None
    suppress: bool
    notes: list[str]
    frames: int  # depth of the call stack the exception is raised from


messages = st.one_of(
    st.text(max_size=50),
    st.sampled_from(["\ud800 lone surrogate", "\x00\x7f\r\n", "é" * 3]),
    st.integers(1, 300_000).map(lambda n: "m" * n),  # up to ~300 KB: a huge message
)


@st.composite
def exception_graphs(draw: st.DrawFn) -> list[Node]:
    count = draw(st.integers(1, 12))
    index = st.integers(0, count - 1)
    nodes = []
    for _ in range(count):
        kind = draw(st.sampled_from(["plain", "plain", "unprintable", "group"]))
        nodes.append(
            Node(
                kind=kind,
                message=draw(messages),
                # Members may repeat and point back at any node: the graph may be cyclic.
                members=draw(st.lists(index, min_size=1, max_size=6)) if kind == "group" else [],
                cause=draw(st.none() | index),
                context=draw(st.none() | index),
                suppress=draw(st.booleans()),
                notes=draw(st.lists(st.text(max_size=20), max_size=3)),
                frames=draw(st.integers(0, 40)),
            )
        )
    return nodes


def raised_from_depth(exc: BaseException, depth: int) -> BaseException:
    """``exc`` with a traceback ``depth`` frames deep (test frames count as user frames)."""

    def dive(n: int) -> None:
        if n:
            dive(n - 1)
        raise exc

    try:
        dive(depth)
    except BaseException as caught:
        return caught
    raise AssertionError("unreachable")


def build(nodes: list[Node]) -> BaseException:
    built: list[BaseException | None] = [None] * len(nodes)
    # Groups take their members at construction: build leaves first, then groups (a group
    # whose member is itself a later group gets a plain stand-in; cycles come from cause and
    # context, which can be set afterwards).
    for i, node in enumerate(nodes):
        if node.kind == "plain":
            built[i] = ValueError(node.message)
        elif node.kind == "unprintable":
            built[i] = Unprintable(node.message)
    for i, node in enumerate(nodes):
        if node.kind == "group":
            members = [built[m] or KeyError(m) for m in node.members]
            built[i] = ExceptionGroup(node.message, members)
    done = [b for b in built if b is not None]
    for exc, node in zip(done, nodes, strict=True):
        for note in node.notes:
            exc.add_note(note)
    for i, (exc, node) in enumerate(zip(done, nodes, strict=True)):
        done[i] = raised_from_depth(exc, node.frames)
    for exc, node in zip(done, nodes, strict=True):
        exc.__cause__ = done[node.cause] if node.cause is not None else None
        exc.__context__ = done[node.context] if node.context is not None else None
        exc.__suppress_context__ = node.suppress
    return done[0]


def depth_of(body: dict[str, Any]) -> int:
    children = [body[k] for k in ("cause", "context") if k in body]
    children += body.get("exceptions", [])
    return 1 + max((depth_of(c) for c in children), default=0)


def check_all_outputs(exc: BaseException) -> dict[str, Any]:
    """Every output the runtime makes of an error, checked against Lambda's limits."""
    started = time.perf_counter()
    body = error_body(exc, "req-1")
    encoded = encode_error(body)
    cause = xray_cause(exc)
    text = format_for_log(body)
    elapsed = time.perf_counter() - started
    assert elapsed < TIME_BOUND_S, f"formatting took {elapsed:.2f} s"

    decoded = json.loads(encoded)
    assert list(decoded)[:4] == ["errorMessage", "errorType", "requestId", "stackTrace"]
    assert isinstance(decoded["errorMessage"], str) and isinstance(decoded["errorType"], str)
    assert all(isinstance(line, str) for line in decoded["stackTrace"])
    assert depth_of(decoded) <= 9  # the top object and at most 8 levels below it
    assert isinstance(text, str) and text.startswith(decoded["errorType"])

    if cause is not None:
        assert len(cause) < XRAY_CAUSE_LIMIT
        cause.decode("ascii")  # a header value: ASCII only
        shape = json.loads(cause)
        assert set(shape) == {"working_directory", "exceptions", "paths"}
        assert shape["exceptions"], "a cause header names at least one exception"
    return decoded


@given(exception_graphs())
@GRAPHS
def test_any_exception_graph_stays_within_limits(nodes: list[Node]) -> None:
    check_all_outputs(build(nodes))


@given(st.integers(0, 20_000), st.integers(0, 2000))
@settings(max_examples=25, deadline=None)
def test_huge_groups(members: int, message_size: int) -> None:
    group = ExceptionGroup("many", [ValueError("x" * message_size) for _ in range(members or 1)])
    body = check_all_outputs(raised_from_depth(group, 3))
    assert len(body["exceptions"]) <= 32  # members past the first 32 are left out


@given(st.integers(1, 5000), st.booleans())
@settings(max_examples=20, deadline=None)
def test_deep_chains(length: int, cyclic: bool) -> None:
    chain = [RuntimeError(f"level {i}") for i in range(length)]
    for outer, inner in itertools.pairwise(chain):
        outer.__cause__ = inner
    if cyclic:
        chain[-1].__context__ = chain[0]
    check_all_outputs(chain[0])


@given(st.integers(1, 8), st.integers(0, 2000))
@settings(max_examples=15, deadline=None)
def test_nested_groups(levels: int, width: int) -> None:
    exc: BaseException = ValueError("leaf")
    for level in range(levels):
        exc = ExceptionGroup(f"level {level}", [exc, *(KeyError(i) for i in range(width))])
    check_all_outputs(exc)


def test_deep_recursion_traceback_fits_the_xray_header() -> None:
    def recurse(n: int) -> None:
        if n == 0:
            raise RecursionError("bottom " + "why " * 30_000)
        recurse(n - 1)

    try:
        recurse(sys.getrecursionlimit() - 50)
    except RecursionError as caught:
        exc = caught
    check_all_outputs(exc)


def test_self_cycles() -> None:
    exc = ValueError("me")
    exc.__cause__ = exc
    exc.__context__ = exc
    body = check_all_outputs(exc)
    assert "cause" not in body and "context" not in body
