"""Handlers for the end-to-end runtime tests. Each name says what it does."""

from __future__ import annotations

import dataclasses
import datetime
import decimal
import logging
import os
import sys
import time
import uuid
from typing import Any


def echo(event: Any, context: Any) -> Any:
    return event


def context_dump(event: Any, context: Any) -> dict[str, Any]:
    cc = context.client_context
    return {
        "aws_request_id": context.aws_request_id,
        "function_name": context.function_name,
        "function_version": context.function_version,
        "invoked_function_arn": context.invoked_function_arn,
        "memory_limit_in_mb": context.memory_limit_in_mb,
        "log_group_name": context.log_group_name,
        "log_stream_name": context.log_stream_name,
        "remaining": context.get_remaining_time_in_millis(),
        "identity_id": context.identity.cognito_identity_id,
        "identity_pool_id": context.identity.cognito_identity_pool_id,
        "client_installation_id": cc.client.installation_id if cc and cc.client else None,
        "client_custom": cc.custom if cc else None,
        "client_env": cc.env if cc else None,
        "tenant_id": context.tenant_id,
        "trace_env": os.environ.get("_X_AMZN_TRACE_ID"),
        "repr": repr(context),
    }


def fail(event: Any, context: Any) -> None:
    raise ValueError("something went wrong")


def _lookup(key: str) -> str:
    return {"a": "1"}[key]


def chained(event: Any, context: Any) -> None:
    try:
        _lookup("missing")
    except KeyError as exc:
        raise RuntimeError("could not load settings") from exc


def implicit_chain(event: Any, context: Any) -> None:
    try:
        _lookup("missing")
    except KeyError:
        raise RuntimeError("failed while handling")  # noqa: B904 - the implicit chain is the point


def with_notes(event: Any, context: Any) -> None:
    exc = ValueError("bad input")
    if hasattr(exc, "add_note"):
        exc.add_note("field: name")
        exc.add_note("hint: send a string")
    raise exc


def group(event: Any, context: Any) -> None:
    raise ExceptionGroup("several failures", [ValueError("one"), TypeError("two")])  # noqa: F821


class Opaque:
    pass


def not_serialisable(event: Any, context: Any) -> dict[str, Any]:
    return {"items": [1, {"when": Opaque()}]}


def bytes_result(event: Any, context: Any) -> bytes:
    return b"\x00\x01binary\xff"


def big(event: Any, context: Any) -> dict[str, str]:
    return {"data": "x" * int(event["size"])}


def unicode(event: Any, context: Any) -> dict[str, str]:
    return {"text": event["text"] + " ✓ héllo 日本 🎉"}


def slow(event: Any, context: Any) -> dict[str, float]:
    before = context.get_remaining_time_in_millis()
    time.sleep(float(event.get("seconds", 0.5)))
    return {"before": before, "after": context.get_remaining_time_in_millis()}


@dataclasses.dataclass
class Point:
    x: int
    when: datetime.datetime


def rich_types(event: Any, context: Any) -> dict[str, Any]:
    return {
        "point": Point(1, datetime.datetime(2026, 11, 27, 4, 48, tzinfo=datetime.timezone.utc)),
        "id": uuid.UUID("12345678-1234-5678-1234-567812345678"),
        "price": decimal.Decimal("19.990"),
        "none": None,
        "tuple": (1, 2),
        "number_keys": {1: "one"},
    }


def huge_int(event: Any, context: Any) -> dict[str, int]:
    return {"big": 2**80}


def a_string(event: Any, context: Any) -> str:
    return "plain string"


def exits(event: Any, context: Any) -> None:
    sys.exit(3)


def interrupted(event: Any, context: Any) -> None:
    raise KeyboardInterrupt


def logs(event: Any, context: Any) -> str:
    print("printed line")
    logging.getLogger("app").warning("first line\nsecond line")
    context.log("context log\n")
    return "ok"


def fail_after_log(event: Any, context: Any) -> None:
    logging.getLogger("app").warning("about to fail")
    raise ValueError("logged then failed")


async def async_echo(event: Any, context: Any) -> Any:
    import asyncio

    await asyncio.sleep(0.01)
    return {"async": True, "event": event}


def deep_recursion(event: Any, context: Any) -> None:
    def recurse(n: int) -> int:
        return recurse(n + 1) + 1

    recurse(0)


class BadStr(Exception):
    def __str__(self) -> str:
        raise RuntimeError("no str for you")


def unprintable(event: Any, context: Any) -> None:
    raise BadStr()


not_callable = {"handler": "is a dict"}


def weird_error_name(event: Any, context: Any) -> None:
    raise type("Bad\nName", (Exception,), {})("header injection attempt")


_IMPORT_TIME_LOOP = None


def _remember_import_loop() -> None:
    import asyncio
    import warnings

    global _IMPORT_TIME_LOOP
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        _IMPORT_TIME_LOOP = asyncio.get_event_loop()


_remember_import_loop()


async def same_loop_as_import(event: Any, context: Any) -> bool:
    import asyncio

    return asyncio.get_running_loop() is _IMPORT_TIME_LOOP


def decimal_nan(event: Any, context: Any) -> dict[str, Any]:
    return {"value": decimal.Decimal("NaN")}
