"""Property tests for the X-Ray trace header (``Root=1-...;Parent=...;Sampled=...``): what the
runtime parses it into (the OpenTelemetry parent, the ``xrayTraceId`` of JSON logs) and how it
hands it to user code (``_X_AMZN_TRACE_ID``). Any header value is taken without an exception;
a well-formed one, in any field order and with extra fields, means exactly what it says."""

from __future__ import annotations

import os
import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_traceid import restore_variable  # noqa: F401  (the same fixture)

from runtime import traceid
from runtime.observability.jsonlog import _xray_root
from runtime.observability.tracing import xray_span_context
from runtime.traceid import NAME, TraceIdVariable

PROPS = settings(max_examples=200, deadline=None)

hex_digits = "0123456789abcdefABCDEF"


def hex_text(length: int) -> st.SearchStrategy[str]:
    return st.text(alphabet=hex_digits, min_size=length, max_size=length)


# Header values as they reach the runtime: the Runtime API's header bytes decoded as latin-1.
header_values = st.one_of(
    st.text(alphabet=st.characters(min_codepoint=1, max_codepoint=255), max_size=200),
    st.lists(
        st.sampled_from(
            ["Root=", "1-", "-", ";", "=", "Parent=", "Sampled=1", "Sampled=0", " ", "abc", "0"]
        ),
        max_size=12,
    ).map("".join),
)


@given(header_values)
@PROPS
def test_any_header_parses_or_is_ignored(header: str) -> None:
    parsed = xray_span_context(header)
    if parsed is not None:
        assert parsed.is_remote and parsed.is_valid
    assert isinstance(_xray_root(header), str)


@st.composite
def well_formed(draw: st.DrawFn) -> tuple[str, int, int, str | None, str]:
    """A header in any field order, with extra fields; and what it must mean."""
    seconds = draw(hex_text(8))
    unique = draw(hex_text(24))
    parent = draw(hex_text(16))
    sampled = draw(st.sampled_from([None, "0", "1", "?"]))
    root = f"1-{seconds}-{unique}"
    fields = [f"Root={root}", f"Parent={parent}"]
    if sampled is not None:
        fields.append(f"Sampled={sampled}")
    extra = draw(
        st.lists(
            st.from_regex(r"\A[A-Za-z][A-Za-z0-9]{0,8}=[A-Za-z0-9:,-]{0,16}\Z").filter(
                lambda f: f.split("=")[0] not in ("Root", "Parent", "Sampled")
            ),
            max_size=3,
        )
    )
    fields += extra
    random.Random(draw(st.integers())).shuffle(fields)
    return ";".join(fields), int(seconds + unique, 16), int(parent, 16), sampled, root


@given(well_formed())
@PROPS
def test_well_formed_header_means_what_it_says(
    case: tuple[str, int, int, str | None, str],
) -> None:
    header, trace_id, span_id, sampled, root = case
    parsed = xray_span_context(header)
    if trace_id == 0 or span_id == 0:
        assert parsed is None  # all-zero ids are invalid in OpenTelemetry and X-Ray
        return
    assert parsed is not None
    assert (parsed.trace_id, parsed.span_id) == (trace_id, span_id)
    assert parsed.trace_flags.sampled == (sampled == "1")
    assert _xray_root(header) == root


@given(well_formed(), st.sampled_from(["Root", "Parent"]), st.text(max_size=30))
@PROPS
def test_a_broken_id_is_not_a_parent(
    case: tuple[str, int, int, str | None, str], field: str, junk: str
) -> None:
    header = case[0]
    fields = [f for f in header.split(";") if not f.startswith(field + "=")]
    fields.append(f"{field}={junk}")
    parsed = xray_span_context(";".join(fields))
    if parsed is not None:
        # Only a junk value that happens to be a valid id of its own may parse.
        wanted = junk[2:].replace("-", "") if field == "Root" else junk
        expected = parsed.trace_id if field == "Root" else parsed.span_id
        assert int(wanted, 16) == expected


@given(
    st.lists(
        st.none() | st.text(alphabet=st.characters(min_codepoint=1, max_codepoint=255)),
        min_size=1,
        max_size=8,
    ),
    st.integers(1, 4),
)
@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@pytest.mark.usefixtures("restore_variable")
def test_variable_holds_each_invokes_header(
    monkeypatch: pytest.MonkeyPatch,
    values: list[str | None],
    warm_up: int,
) -> None:
    # A small warm-up so a sequence crosses from os.environ to the runtime's own buffer.
    monkeypatch.setattr(traceid, "WARM_UP", warm_up)
    variable = TraceIdVariable()
    for value in values:
        variable.set(value)
        assert os.environ.get(NAME) == (value or None)
