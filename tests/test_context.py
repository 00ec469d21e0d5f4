"""The context object handlers receive, checked against what awslambdaric's users rely on."""

from __future__ import annotations

import contextvars
import threading
import time
from typing import Any

import pytest

import runtime
from runtime.context import (
    Client,
    ClientContext,
    CognitoIdentity,
    LambdaContext,
    current_context,
    enter_invoke,
    invoke_context,
    leave_invoke,
)

REQUEST_ID = "8f507cfc-example-4697-b07a-ac58fc914c95"
ARN = "arn:aws:lambda:us-east-1:123456789012:function:orders:prod"


def make_context(deadline_ms: int | None = None, **overrides: Any) -> LambdaContext:
    fields: dict[str, Any] = {
        "aws_request_id": REQUEST_ID,
        "deadline_ms": deadline_ms if deadline_ms is not None else now_ms() + 30_000,
        "invoked_function_arn": ARN,
        "function_name": "orders",
        "function_version": "$LATEST",
        "memory_limit_in_mb": "256",
        "log_group_name": "/aws/lambda/orders",
        "log_stream_name": "2026/11/27/[$LATEST]0123456789abcdef",
    }
    fields.update(overrides)
    return LambdaContext(**fields)


def now_ms() -> int:
    return int(time.time() * 1000)


def test_every_documented_attribute_is_there() -> None:
    ctx = make_context(tenant_id="tenant-1", xray_trace_id="Root=1-abc")
    assert ctx.aws_request_id == REQUEST_ID
    assert ctx.function_name == "orders"
    assert ctx.function_version == "$LATEST"
    assert ctx.invoked_function_arn == ARN
    assert ctx.memory_limit_in_mb == "256"
    assert ctx.log_group_name == "/aws/lambda/orders"
    assert ctx.log_stream_name == "2026/11/27/[$LATEST]0123456789abcdef"
    assert ctx.tenant_id == "tenant-1"
    assert ctx.xray_trace_id == "Root=1-abc"
    assert callable(ctx.get_remaining_time_in_millis)
    assert callable(ctx.log)


def test_memory_limit_works_the_ways_lambda_code_uses_it() -> None:
    ctx = make_context()
    assert int(ctx.memory_limit_in_mb) == 256
    assert f"{ctx.memory_limit_in_mb} MB" == "256 MB"


def test_without_identity_the_fields_exist_and_are_none() -> None:
    # awslambdaric always gives an identity object, so `context.identity.cognito_identity_id`
    # must not raise AttributeError for a plain invoke.
    ctx = make_context()
    assert ctx.identity.cognito_identity_id is None
    assert ctx.identity.cognito_identity_pool_id is None
    assert ctx.client_context is None
    assert ctx.tenant_id is None


def test_cognito_identity_fields() -> None:
    ctx = make_context(identity=CognitoIdentity("us-east-1:id", "us-east-1:pool"))
    assert ctx.identity.cognito_identity_id == "us-east-1:id"
    assert ctx.identity.cognito_identity_pool_id == "us-east-1:pool"


def test_client_context_fields() -> None:
    cc = ClientContext(
        {
            "client": {
                "installation_id": "inst-1",
                "app_title": "Shop",
                "app_version_name": "1.2.3",
                "app_version_code": "123",
                "app_package_name": "com.example.shop",
            },
            "custom": {"cart": "42"},
            "env": {"platform": "Android", "locale": "fr_FR"},
        }
    )
    ctx = make_context(client_context=cc)
    client = ctx.client_context.client if ctx.client_context else None
    assert isinstance(client, Client)
    assert client.installation_id == "inst-1"
    assert client.app_title == "Shop"
    assert client.app_version_name == "1.2.3"
    assert client.app_version_code == "123"
    assert client.app_package_name == "com.example.shop"
    assert cc.custom == {"cart": "42"}
    assert cc.env == {"platform": "Android", "locale": "fr_FR"}


def test_partial_client_context_leaves_missing_fields_none() -> None:
    cc = ClientContext({"custom": {"k": "v"}})
    assert cc.client is None
    assert cc.env is None
    assert cc.custom == {"k": "v"}
    client = Client({"app_title": "Shop"})
    assert client.app_title == "Shop"
    assert client.installation_id is None
    assert client.app_package_name is None


def test_remaining_time_counts_down_from_the_deadline() -> None:
    ctx = make_context(deadline_ms=now_ms() + 10_000)
    first = ctx.get_remaining_time_in_millis()
    assert 9_000 < first <= 10_000
    time.sleep(0.03)
    second = ctx.get_remaining_time_in_millis()
    assert second < first
    assert first - second >= 20


@pytest.mark.parametrize("offset_ms", [-1, -60_000])
def test_remaining_time_is_zero_once_the_deadline_has_passed(offset_ms: int) -> None:
    ctx = make_context(deadline_ms=now_ms() + offset_ms)
    assert ctx.get_remaining_time_in_millis() == 0


def test_remaining_time_is_an_int() -> None:
    # Handlers compute timeouts like `remaining / 1000 - 1`; awslambdaric returns an int.
    assert isinstance(make_context().get_remaining_time_in_millis(), int)


def test_repr_is_readable_and_shows_the_request_id() -> None:
    text = repr(make_context(client_context=ClientContext({"client": {"app_title": "Shop"}})))
    assert REQUEST_ID in text
    assert text.startswith("LambdaContext(")
    assert " at 0x" not in text
    assert "orders" in text
    assert "Shop" in text


def test_repr_of_the_parts_is_readable() -> None:
    for part in (CognitoIdentity("id-1", "pool-1"), Client({"app_title": "Shop"}),
                 ClientContext({"custom": {"k": "v"}})):
        assert " at 0x" not in repr(part)
    assert "id-1" in repr(CognitoIdentity("id-1", "pool-1"))


def test_log_writes_the_message_as_is(capsys: pytest.CaptureFixture[str]) -> None:
    ctx = make_context()
    ctx.log("first line\nsecond line")
    ctx.log("no newline added")
    ctx.log(42)
    assert capsys.readouterr().out == "first line\nsecond lineno newline added42"


def test_current_context_is_unset_outside_an_invoke() -> None:
    assert current_context.get() is None
    ctx = make_context()
    token = current_context.set(ctx)
    try:
        assert current_context.get() is ctx
    finally:
        current_context.reset(token)
    assert current_context.get() is None


def test_context_classes_are_importable_from_the_package() -> None:
    assert runtime.LambdaContext is LambdaContext
    assert runtime.ClientContext is ClientContext
    assert runtime.CognitoIdentity is CognitoIdentity
    assert runtime.Client is Client


# Attributes awslambdaric has that this runtime knowingly lacks: w3c(), a W3C trace-context
# helper that is not part of Lambda's documented context.
_NOT_YET = {"w3c"}


def _awslambdaric_context() -> Any:
    lambda_context = pytest.importorskip("awslambdaric.lambda_context")
    return lambda_context.LambdaContext(
        REQUEST_ID,
        {"client": {"app_title": "Shop"}, "custom": {}, "env": {}},
        {"cognitoIdentityId": "id", "cognitoIdentityPoolId": "pool"},
        now_ms() + 30_000,
        ARN,
        "tenant-1",
    )


def _public(obj: object) -> set[str]:
    return {name for name in dir(obj) if not name.startswith("_")}


def test_has_every_public_attribute_of_awslambdarics_context() -> None:
    theirs = _awslambdaric_context()
    ours = make_context(
        identity=CognitoIdentity("id", "pool"),
        client_context=ClientContext({"client": {"app_title": "Shop"}, "custom": {}, "env": {}}),
        tenant_id="tenant-1",
    )
    assert (_public(theirs) - _NOT_YET) <= _public(ours)
    assert _public(theirs.identity) <= _public(ours.identity)
    assert ours.client_context is not None
    assert _public(theirs.client_context) <= _public(ours.client_context)
    assert _public(theirs.client_context.client) <= _public(ours.client_context.client)


def test_threads_the_handler_starts_see_the_invoke_in_progress() -> None:
    # A new thread has an empty context; its log records still belong to the invoke.
    def from_a_thread() -> LambdaContext | None:
        seen: list[LambdaContext | None] = []
        thread = threading.Thread(target=lambda: seen.append(invoke_context()))
        thread.start()
        thread.join(5)
        return seen[0]

    assert from_a_thread() is None  # init: no invoke yet
    ctx = make_context()
    token = enter_invoke(ctx)
    try:
        assert invoke_context() is ctx
        assert from_a_thread() is ctx
        # A context of its own (an async task's, say) still wins over the fallback.
        other = make_context(aws_request_id="other")
        copied = contextvars.copy_context()
        copied.run(current_context.set, other)
        assert copied.run(invoke_context) is other
    finally:
        leave_invoke(token)
    assert invoke_context() is None
    assert from_a_thread() is None  # between invokes
