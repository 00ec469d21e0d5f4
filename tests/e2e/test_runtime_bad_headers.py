"""Stray bytes in the headers of a /next answer: the runtime keeps running.

The values come from callers (a tenant id, a trace header, a client context); Lambda and the
emulator validate them, but the runtime does not rely on that: at worst the invoke that carries
such a value fails, and the next one is served on the same process.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

TRACE = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1"


@pytest.mark.parametrize(
    ("header", "value", "field", "seen"),
    [
        ("Lambda-Runtime-Aws-Tenant-Id", "tenant\x7f1", "tenant_id", "tenant\x7f1"),
        ("Lambda-Runtime-Aws-Tenant-Id", "a\x01\x1bb", "tenant_id", "a\x01\x1bb"),
        (
            "Lambda-Runtime-Client-Context",
            '{"custom": {"k": "v\x7f"}}',
            "client_custom",
            {"k": "v\x7f"},
        ),
        ("Lambda-Runtime-Trace-Id", TRACE + "\x7f", "trace_env", TRACE + "\x7f"),
    ],
)
def test_control_byte_in_a_header_value_reaches_the_handler_as_data(
    runtime_api: Any, start_runtime: Any, header: str, value: str, field: str, seen: Any
) -> None:
    rid = runtime_api.push("{}", headers={header: value})
    proc = start_runtime("basic.context_dump")
    post = runtime_api.wait_post()
    assert (post.kind, post.request_id) == ("response", rid), post.body
    assert json.loads(post.body)[field] == seen
    rid2 = runtime_api.push('{"ok": 1}')
    post2 = runtime_api.wait_post()
    assert (post2.kind, post2.request_id) == ("response", rid2)
    assert proc.proc.poll() is None, "the runtime is still running"


def test_nul_in_the_trace_header_fails_that_invoke_only(
    runtime_api: Any, start_runtime: Any
) -> None:
    # No environment variable can hold a NUL byte: _X_AMZN_TRACE_ID cannot be set.
    rid = runtime_api.push("{}", headers={"Lambda-Runtime-Trace-Id": "Root=1-a\x00b"})
    proc = start_runtime("basic.echo")
    post = runtime_api.wait_post()
    assert (post.kind, post.request_id) == ("error", rid)
    assert "null" in json.loads(post.body)["errorMessage"]
    rid2 = runtime_api.push('{"ok": 1}', headers={"Lambda-Runtime-Trace-Id": TRACE})
    post2 = runtime_api.wait_post()
    assert (post2.kind, post2.request_id) == ("response", rid2)
    assert json.loads(post2.body) == {"ok": 1}
    assert proc.proc.poll() is None
