"""Fixtures of the observability tests."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from obs_support import REQUEST_ID, XRAY

from runtime.context import LambdaContext


@pytest.fixture
def in_invoke(enter_invoke: Callable[..., LambdaContext]) -> LambdaContext:
    """An invoke in progress with a request id, a tenant and an X-Ray header."""
    return enter_invoke(aws_request_id=REQUEST_ID, tenant_id="tenant-7", xray_trace_id=XRAY)
