"""structlog routed into the function log: bound keys as fields (JSON) or key=value pairs
(Text), levels, exceptions, the log level, a user's own configuration winning, and the same
JSON line as stdlib logging gives."""

from __future__ import annotations

import io
import json
import logging
import time
from collections.abc import Iterator

import pytest
import structlog
from obs_support import REQUEST_ID

from runtime.context import LambdaContext
from runtime.logs import StreamOutput, Writer
from runtime.observability.jsonlog import json_record
from runtime.observability.structlog_bridge import configure_structlog

HERE = __file__


@pytest.fixture
def struct_log() -> Iterator[io.StringIO]:
    """structlog routed to a private stream the way the runtime routes it, then reset."""
    stream = io.StringIO()
    structlog.reset_defaults()
    structlog.contextvars.clear_contextvars()
    yield stream
    structlog.reset_defaults()
    structlog.contextvars.clear_contextvars()


def route(stream: io.StringIO, *, json_format: bool, level: int = logging.DEBUG) -> None:
    """As the runtime routes structlog with AWS_LAMBDA_LOG_LEVEL=DEBUG unless told otherwise."""
    writer = Writer(StreamOutput(stream), level)
    assert configure_structlog(structlog, writer, json=json_format, min_level=level)


def test_structlog_without_a_configured_level_follows_the_root_logger(
    struct_log: io.StringIO, in_invoke: LambdaContext
) -> None:
    # As stdlib records do: Python's WARNING by default, or what user code sets on the root.
    route(struct_log, json_format=False, level=0)
    root = logging.getLogger()
    saved = root.level
    try:
        root.setLevel(logging.WARNING)
        structlog.get_logger().info("hidden")
        structlog.get_logger().warning("shown")
        root.setLevel(logging.INFO)
        structlog.get_logger().info("now shown")
    finally:
        root.setLevel(saved)
    lines = struct_log.getvalue().splitlines()
    assert [line.split("\t")[3] for line in lines] == ["shown", "now shown"]


def test_structlog_json_bound_keys_become_fields(
    struct_log: io.StringIO, in_invoke: LambdaContext
) -> None:
    route(struct_log, json_format=True)
    structlog.contextvars.bind_contextvars(order="o-1")
    log = structlog.get_logger("app.struct").bind(user="ana")
    log.warning("placed: ünïcödé\nline two", count=3)
    (line,) = struct_log.getvalue().splitlines()
    fields = list(json.loads(line).items())
    stamp = fields[0][1]
    assert time.strptime(stamp, "%Y-%m-%dT%H:%M:%S.%fZ") and len(stamp) == 24
    assert fields[1:] == [
        ("level", "WARNING"),
        ("message", "placed: ünïcödé\nline two"),
        ("logger", "app.struct"),
        ("requestId", REQUEST_ID),
        ("xrayTraceId", "1-5759e988-bd862e3fe1be46a994272793"),
        ("tenantId", "tenant-7"),
        ("user", "ana"),
        ("count", 3),
        ("order", "o-1"),
    ]


@pytest.mark.parametrize(
    ("method", "level"),
    [
        ("debug", "DEBUG"),
        ("info", "INFO"),
        ("warning", "WARNING"),
        ("warn", "WARNING"),
        ("error", "ERROR"),
        ("critical", "CRITICAL"),
        ("fatal", "CRITICAL"),
        ("msg", "INFO"),
    ],
)
def test_structlog_json_levels(struct_log: io.StringIO, method: str, level: str) -> None:
    route(struct_log, json_format=True)
    getattr(structlog.get_logger(), method)("event")
    assert json.loads(struct_log.getvalue())["level"] == level


def test_structlog_json_exception_has_the_same_fields_as_stdlib(struct_log: io.StringIO) -> None:
    route(struct_log, json_format=True)
    log = structlog.get_logger()
    try:
        dict[str, int]()["missing"]
    except KeyError:
        log.exception("lookup failed", order="o-1")
    fields = json.loads(struct_log.getvalue())
    assert list(fields)[-5:] == ["order", "errorType", "errorMessage", "stackTrace", "location"]
    assert (fields["level"], fields["errorType"], fields["errorMessage"]) == (
        "ERROR",
        "KeyError",
        "'missing'",
    )
    assert fields["location"].startswith(f"{HERE}:test_structlog_json_exception_has_the_same")
    assert "logger" not in fields  # unnamed logger


def test_structlog_text_puts_bound_keys_after_the_message(
    struct_log: io.StringIO, in_invoke: LambdaContext
) -> None:
    route(struct_log, json_format=False)
    log = structlog.get_logger()
    log.info("placed", user="ana", note="two words", n=3)
    log.warning("multi\nline")
    first, second = (line + "\n" for line in struct_log.getvalue().split("\n")[:-1])
    prefix = f"\t{REQUEST_ID}\t"
    assert first.startswith("[INFO]\t") and second.startswith("[WARNING]\t")
    assert first.endswith(f'{prefix}placed user=ana note="two words" n=3\n')
    assert second.endswith(f"{prefix}multi\rline\n")


def test_structlog_text_exception_is_one_line(struct_log: io.StringIO) -> None:
    route(struct_log, json_format=False)
    try:
        raise ValueError("bad")
    except ValueError:
        structlog.get_logger().exception("failed")
    line = struct_log.getvalue()
    assert line.count("\n") == 1
    assert line.startswith("[ERROR]\t")
    assert "\t\tfailed\rTraceback (most recent call last):\r" in line
    assert line.endswith("\rValueError: bad\n")


def test_structlog_honours_the_log_level(struct_log: io.StringIO) -> None:
    route(struct_log, json_format=True, level=logging.WARNING)
    log = structlog.get_logger()
    log.info("hidden")
    log.warning("shown")
    assert [json.loads(line)["message"] for line in struct_log.getvalue().splitlines()] == ["shown"]


def test_a_structlog_configuration_of_the_users_wins(struct_log: io.StringIO) -> None:
    structlog.configure(processors=[structlog.processors.KeyValueRenderer()])
    writer = Writer(StreamOutput(struct_log))
    assert configure_structlog(structlog, writer, json=True, min_level=0) is False


def test_stdlib_and_structlog_produce_the_same_json_line(
    struct_log: io.StringIO, in_invoke: LambdaContext
) -> None:
    route(struct_log, json_format=True)
    structlog.get_logger("app.orders").info("placed", orderId="o-1")
    from_structlog = json.loads(struct_log.getvalue())
    stdlib_record = logging.getLogger("app.orders").makeRecord(
        "app.orders", logging.INFO, __file__, 1, "placed", None, None, extra={"orderId": "o-1"}
    )
    from_stdlib = json.loads(json_record(stdlib_record))
    from_structlog.pop("timestamp")
    from_stdlib.pop("timestamp")
    assert list(from_structlog.items()) == list(from_stdlib.items())


