"""The caller's X-Ray header through the emulator and our runtime to the function: any valid
header value arrives exactly (``_X_AMZN_TRACE_ID``); an invalid one is refused with 400 and
never reaches (or crashes) the environment."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from runtime.emulator import Emulator

ROOT = "Root=1-5759e988-bd862e3fe1be46a994272793"

# Printable ASCII without leading or trailing blanks (HTTP strips those from header values).
field_text = st.text(
    alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), min_size=1, max_size=60
).filter(lambda s: s == s.strip())


@pytest.fixture
def traced(make: Callable[..., Emulator]) -> Emulator:
    return make("app.context_info", timeout=5)


@given(
    parent=st.text(alphabet="0123456789abcdef", min_size=16, max_size=16),
    sampled=st.sampled_from(["0", "1", "?"]),
    extra=st.lists(field_text, max_size=3),
)
@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
def test_trace_header_reaches_the_function_exactly(
    traced: Emulator, parent: str, sampled: str, extra: list[str]
) -> None:
    header = ";".join([ROOT, f"Parent={parent}", f"Sampled={sampled}", *extra])
    result = traced.invoke({}, trace_id=header)
    assert result.status_code == 200 and result.function_error is None, result.raw
    assert result.payload["env"]["_X_AMZN_TRACE_ID"] == header


@pytest.mark.parametrize("byte", [b"\x7f", b"\x01", b"\x1b"], ids=["DEL", "SOH", "ESC"])
def test_control_byte_in_trace_header_is_refused(traced: Emulator, byte: bytes) -> None:
    header = ROOT.encode() + b";Parent=53995c3f42cd8ad8;Sampled=1;x=" + byte
    result = traced.invoke({}, headers={"X-Amzn-Trace-Id": header.decode("latin-1")})
    assert result.status_code == 400, (result.status_code, result.raw)
    assert traced.invoke({}).status_code == 200
