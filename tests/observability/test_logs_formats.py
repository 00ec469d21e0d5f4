"""Golden tests of every log format case: Text and JSON from stdlib logging, each level,
exceptions, extra fields, multi-line, unicode; telemetry frames decoded from a pipe; level
filtering, the duplicate-handler rule and the per-invoke DEBUG buffer (structlog's cases are in
test_structlog_bridge.py).

JSON lines are parsed back and compared whole, key order included.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import structlog
from obs_support import REQUEST_ID

from runtime.bootstrap import install_logs
from runtime.config import Config
from runtime.context import LambdaContext
from runtime.errors import error_body
from runtime.loghandlers import FunctionLogHandler, LambdaLogHandler
from runtime.logs import (
    FrameOutput,
    RuntimeLog,
    Writer,
)
from runtime.observability.jsonlog import json_record
from runtime.observability.state import InvokeState, current_invoke

CREATED = 1_767_225_599.25  # 2025-12-31T23:59:59.250Z
STAMP = "2025-12-31T23:59:59.250Z"
HERE = __file__


def record(
    level: int,
    msg: Any,
    *args: Any,
    name: str = "app.orders",
    exc: BaseException | None = None,
    **extra: Any,
) -> logging.LogRecord:
    exc_info = (type(exc), exc, exc.__traceback__) if exc is not None else None
    rec = logging.getLogger(name).makeRecord(
        name, level, HERE, 42, msg, args, exc_info, func="place_order", extra=extra or None
    )
    rec.created = CREATED
    return rec


def text_of(rec: logging.LogRecord) -> str:
    stream = io.StringIO()
    LambdaLogHandler(stream).handle(rec)
    return stream.getvalue()


def json_of(rec: logging.LogRecord) -> list[tuple[str, Any]]:
    line = json_record(rec)
    assert line.endswith("\n") and line.count("\n") == 1, line
    return list(json.loads(line).items())


def raised(exc: BaseException) -> BaseException:
    try:
        raise exc
    except BaseException as caught:
        return caught


# --- stdlib, Text ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("level", "name"),
    [
        (logging.DEBUG, "DEBUG"),
        (logging.INFO, "INFO"),
        (logging.WARNING, "WARNING"),
        (logging.ERROR, "ERROR"),
        (logging.CRITICAL, "CRITICAL"),
    ],
)
def test_text_levels_keep_pythons_names(level: int, name: str, in_invoke: LambdaContext) -> None:
    assert text_of(record(level, "order %s placed", 7)) == (
        f"[{name}]\t{STAMP}\t{REQUEST_ID}\torder 7 placed\n"
    )


def test_text_outside_an_invoke_has_an_empty_request_id() -> None:
    assert text_of(record(logging.INFO, "at import")) == f"[INFO]\t{STAMP}\t\tat import\n"


def test_text_multi_line_and_unicode_stay_one_line(in_invoke: LambdaContext) -> None:
    line = text_of(record(logging.WARNING, "first\nsecond\r\nthird: ünïcödé 💡"))
    assert line == f"[WARNING]\t{STAMP}\t{REQUEST_ID}\tfirst\rsecond\rthird: ünïcödé 💡\n"


def test_text_exception_is_one_line_with_the_traceback(in_invoke: LambdaContext) -> None:
    exc = raised(KeyError("missing"))
    line = text_of(record(logging.ERROR, "lookup failed", exc=exc))
    head, _, trace = line.partition("\r")
    assert head == f"[ERROR]\t{STAMP}\t{REQUEST_ID}\tlookup failed"
    assert trace.startswith("Traceback (most recent call last):\r")
    assert trace.endswith("\rKeyError: 'missing'\n")
    assert line.count("\n") == 1


def test_text_ignores_extra_fields_like_the_managed_runtime(in_invoke: LambdaContext) -> None:
    assert text_of(record(logging.INFO, "placed", orderId="o-1")) == (
        f"[INFO]\t{STAMP}\t{REQUEST_ID}\tplaced\n"
    )


# --- stdlib, JSON ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("level", "name"),
    [
        (5, "TRACE"),
        (logging.DEBUG, "DEBUG"),
        (logging.INFO, "INFO"),
        (logging.WARNING, "WARNING"),
        (logging.ERROR, "ERROR"),
        (logging.CRITICAL, "CRITICAL"),
        (25, "INFO"),  # a custom level falls to the standard level below it
    ],
)
def test_json_levels_use_pythons_names_as_awslambdaric_does(level: int, name: str) -> None:
    assert json_of(record(level, "order %s placed", 7)) == [
        ("timestamp", STAMP),
        ("level", name),
        ("message", "order 7 placed"),
        ("logger", "app.orders"),
        ("requestId", ""),
    ]


def test_json_in_an_invoke_carries_request_tenant_and_xray_ids(in_invoke: LambdaContext) -> None:
    assert json_of(record(logging.INFO, "placed", name="root")) == [
        ("timestamp", STAMP),
        ("level", "INFO"),
        ("message", "placed"),
        ("logger", "root"),
        ("requestId", REQUEST_ID),
        ("xrayTraceId", "1-5759e988-bd862e3fe1be46a994272793"),
        ("tenantId", "tenant-7"),
    ]


def test_json_extra_fields_become_fields_but_never_replace_standard_keys() -> None:
    class Opaque:
        def __str__(self) -> str:
            return "<opaque>"

    fields = json_of(
        record(
            logging.INFO,
            "placed",
            orderId="o-1",
            amount=12.5,
            tags=["a", "b"],
            nested={"k": [1, None]},
            requestId="spoofed",
            obj=Opaque(),
        )
    )
    assert fields == [
        ("timestamp", STAMP),
        ("level", "INFO"),
        ("message", "placed"),
        ("logger", "app.orders"),
        ("requestId", ""),
        ("orderId", "o-1"),
        ("amount", 12.5),
        ("tags", ["a", "b"]),
        ("nested", {"k": [1, None]}),
        ("obj", "<opaque>"),
    ]


def test_json_values_json_cannot_hold_natively_are_still_logged() -> None:
    fields = dict(json_of(record(logging.INFO, "big", big=2**80, ids={1: "one"})))
    assert fields["big"] == 2**80
    assert fields["ids"] == {"1": "one"}


def test_json_multi_line_and_unicode_are_one_line_that_parses_back() -> None:
    message = 'first\nsecond\r\nthird: ünïcödé 💡 "quoted" \t tab'
    line = json_record(record(logging.WARNING, message))
    assert line.count("\n") == 1
    assert "ünïcödé 💡" in line  # UTF-8, not \u escapes
    assert json.loads(line)["message"] == message


def test_json_exception_fields() -> None:
    exc = raised(KeyError("missing"))
    fields = json_of(record(logging.ERROR, "lookup failed", exc=exc))
    assert [k for k, _ in fields] == [
        "timestamp",
        "level",
        "message",
        "logger",
        "requestId",
        "errorType",
        "errorMessage",
        "stackTrace",
        "location",
    ]
    values = dict(fields)
    assert values["errorType"] == "KeyError"
    assert values["errorMessage"] == "'missing'"
    assert len(values["stackTrace"]) == 1
    assert values["stackTrace"][0].startswith(f'  File "{HERE}", line ')
    assert "in raised" in values["stackTrace"][0]
    assert values["location"] == f"{HERE}:place_order:42"


def test_json_dict_message_stays_a_json_object() -> None:
    assert dict(json_of(record(logging.INFO, {"event": "placed", "n": 1})))["message"] == {
        "event": "placed",
        "n": 1,
    }


def test_json_stack_info_is_a_field() -> None:
    rec = record(logging.WARNING, "where")
    rec.stack_info = "Stack (most recent call last):\n  File x"
    assert dict(json_of(rec))["stackInfo"] == "Stack (most recent call last):\n  File x"


# --- telemetry frames -----------------------------------------------------------------------------


def read_frames(fd: int) -> list[tuple[int, int, str]]:
    """Decode every frame waiting on a pipe: (type, timestamp µs, message)."""
    data = b""
    os.set_blocking(fd, False)
    while True:
        try:
            chunk = os.read(fd, 65536)
        except BlockingIOError:
            break
        if not chunk:
            break
        data += chunk
    frames = []
    while data:
        assert len(data) >= 16, "truncated frame head"
        kind = int.from_bytes(data[:4], "big")
        length = int.from_bytes(data[4:8], "big")
        stamp = int.from_bytes(data[8:16], "big")
        payload = data[16 : 16 + length]
        assert len(payload) == length, "truncated frame"
        frames.append((kind, stamp, payload.decode("utf-8")))
        data = data[16 + length :]
    return frames


@pytest.fixture
def pipe() -> Iterator[tuple[int, int]]:
    r, w = os.pipe()
    yield r, w
    for fd in (r, w):
        with contextlib.suppress(OSError):
            os.close(fd)


@pytest.mark.parametrize(
    ("level", "text_type", "json_type"),
    [
        (5, 0xA55A0007, 0xA55A0006),
        (logging.DEBUG, 0xA55A000B, 0xA55A000A),
        (logging.INFO, 0xA55A000F, 0xA55A000E),
        (logging.WARNING, 0xA55A0013, 0xA55A0012),
        (logging.ERROR, 0xA55A0017, 0xA55A0016),
        (logging.CRITICAL, 0xA55A001B, 0xA55A001A),
    ],
)
def test_frame_types_carry_level_and_format(
    pipe: tuple[int, int], level: int, text_type: int, json_type: int
) -> None:
    r, w = pipe
    for text, expected in ((True, text_type), (False, json_type)):
        handler = FunctionLogHandler(
            Writer(FrameOutput(w, text=text)), None if text else json_record
        )
        handler.handle(record(level, "one\ntwo ünï"))
        ((kind, stamp, message),) = read_frames(r)
        assert kind == expected
        assert stamp == int(CREATED * 1_000_000)
        if text:
            # A frame is one event: the record keeps its real line break.
            assert message == f"[{logging.getLevelName(level)}]\t{STAMP}\t\tone\ntwo ünï\n"
        else:
            assert json.loads(message)["message"] == "one\ntwo ünï"


def test_frames_of_records_bigger_than_a_pipe_buffer_arrive_whole(pipe: tuple[int, int]) -> None:
    r, w = pipe
    big = "x" * 200_000
    got: list[bytes] = []

    import threading

    def drain() -> None:
        while True:
            chunk = os.read(r, 65536)
            if not chunk:
                return
            got.append(chunk)

    reader = threading.Thread(target=drain)
    reader.start()
    FrameOutput(w, text=True).write(big, logging.INFO, CREATED)
    os.close(w)
    reader.join(10)
    data = b"".join(got)
    assert int.from_bytes(data[4:8], "big") == len(big) == len(data) - 16


# --- install: routing, levels, duplicates, buffer --------------------------------------------


class PrivateStdio:
    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self._monkeypatch = monkeypatch
        self._raw = io.BytesIO()
        self.stdout = io.TextIOWrapper(self._raw, encoding="utf-8")
        self.stderr = io.TextIOWrapper(io.BytesIO(), encoding="utf-8")

    def install(self, **env: str) -> RuntimeLog:
        self._monkeypatch.setattr(sys, "stdout", self.stdout)
        self._monkeypatch.setattr(sys, "stderr", self.stderr)
        config = Config.from_environ(
            ["app.handler"], {"AWS_LAMBDA_RUNTIME_API": "127.0.0.1:1", **env}
        )
        return install_logs(config)

    def lines(self) -> list[str]:
        self.stdout.flush()
        return self._raw.getvalue().decode().split("\n")[:-1]


@pytest.fixture
def stdio(monkeypatch: pytest.MonkeyPatch) -> Iterator[PrivateStdio]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    meta_path = list(sys.meta_path)
    yield PrivateStdio(monkeypatch)
    root.handlers = handlers
    root.setLevel(level)
    sys.meta_path[:] = meta_path
    structlog.reset_defaults()


def test_json_install_routes_stdlib_and_the_runtimes_lines(
    stdio: PrivateStdio, in_invoke: LambdaContext
) -> None:
    log = stdio.install(AWS_LAMBDA_LOG_FORMAT="JSON", AWS_LAMBDA_LOG_LEVEL="INFO")
    logging.getLogger("app").info("from logging", extra={"k": 1})
    log.warning("410 from the Runtime API")
    print("printed as is")
    first, second, third = stdio.lines()
    assert json.loads(first)["k"] == 1
    assert {k: v for k, v in json.loads(second).items() if k != "timestamp"} == {
        "level": "WARNING",
        "message": "410 from the Runtime API",
        "logger": "lambda_runtime",
        "requestId": REQUEST_ID,
        "xrayTraceId": "1-5759e988-bd862e3fe1be46a994272793",
        "tenantId": "tenant-7",
    }
    assert third == "printed as is"


def test_the_log_level_also_filters_the_runtimes_own_lines(stdio: PrivateStdio) -> None:
    log = stdio.install(AWS_LAMBDA_LOG_FORMAT="JSON", AWS_LAMBDA_LOG_LEVEL="ERROR")
    log.warning("hidden warning")
    log.write("ERROR", "shown error")
    logging.getLogger("app").warning("hidden record")
    assert [json.loads(line)["message"] for line in stdio.lines()] == ["shown error"]


def test_a_named_logger_with_a_lower_level_is_still_filtered(stdio: PrivateStdio) -> None:
    stdio.install(AWS_LAMBDA_LOG_LEVEL="WARN")
    chatty = logging.getLogger("chatty.library")
    chatty.setLevel(logging.DEBUG)
    try:
        chatty.debug("hidden")
        chatty.warning("shown")
    finally:
        chatty.setLevel(logging.NOTSET)
    (line,) = stdio.lines()
    assert line.endswith("\tshown")


def test_unhandled_error_record_is_structured_in_json(
    stdio: PrivateStdio, in_invoke: LambdaContext
) -> None:
    log = stdio.install(AWS_LAMBDA_LOG_FORMAT="JSON")
    try:
        try:
            dict[str, int]()["k"]
        except KeyError as inner:
            raise RuntimeError("could not load") from inner
    except RuntimeError as exc:
        log.error(error_body(exc, REQUEST_ID))
    (line,) = stdio.lines()
    fields = json.loads(line)
    assert list(fields)[:9] == [
        "timestamp",
        "level",
        "message",
        "logger",
        "requestId",
        "xrayTraceId",
        "tenantId",
        "errorMessage",
        "errorType",
    ]
    assert fields["level"] == "ERROR"
    assert fields["message"] == "RuntimeError: could not load"
    assert (fields["errorType"], fields["errorMessage"]) == ("RuntimeError", "could not load")
    assert fields["requestId"] == REQUEST_ID
    assert "in test_unhandled_error_record_is_structured_in_json" in fields["stackTrace"][0]
    assert fields["cause"]["errorType"] == "KeyError"


def test_unhandled_error_record_in_text_is_one_line_with_type_message_and_stack(
    stdio: PrivateStdio, in_invoke: LambdaContext
) -> None:
    log = stdio.install()
    try:
        raise ValueError("bad\ninput")
    except ValueError as exc:
        log.error(error_body(exc, REQUEST_ID))
    (line,) = stdio.lines()
    level, _, request_id, message = line.split("\t")
    assert (level, request_id) == ("[ERROR]", REQUEST_ID)
    assert message.startswith("ValueError: bad\rinput\rTraceback (most recent call last):\r")


def test_telemetry_fd_gets_every_record_as_a_frame(
    stdio: PrivateStdio,
    pipe: tuple[int, int],
    monkeypatch: pytest.MonkeyPatch,
    in_invoke: LambdaContext,
) -> None:
    r, w = pipe
    monkeypatch.setenv("_LAMBDA_TELEMETRY_LOG_FD", str(w))
    log = stdio.install(AWS_LAMBDA_LOG_FORMAT="JSON")
    assert "_LAMBDA_TELEMETRY_LOG_FD" not in os.environ  # not inherited by child processes
    logging.getLogger("app").warning("to the frame")
    log.write("ERROR", "runtime line")
    print("print stays on stdout")
    frames = read_frames(r)
    assert [(kind, json.loads(m)["message"]) for kind, _, m in frames] == [
        (0xA55A0012, "to the frame"),
        (0xA55A0016, "runtime line"),
    ]
    assert stdio.lines() == ["print stays on stdout"]


def test_an_unusable_telemetry_fd_falls_back_to_stdout(
    stdio: PrivateStdio, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("_LAMBDA_TELEMETRY_LOG_FD", "987")
    stdio.install()
    logging.getLogger("app").warning("still logged")
    lines = stdio.lines()
    assert "_LAMBDA_TELEMETRY_LOG_FD='987' is not usable" in lines[0]
    assert lines[1].endswith("\tstill logged")


def test_a_second_root_handler_on_stdio_is_not_added(stdio: PrivateStdio, tmp_path: Path) -> None:
    stdio.install()
    root = logging.getLogger()
    root.addHandler(logging.StreamHandler(sys.stderr))
    root.addHandler(logging.StreamHandler(sys.stdout))
    logging.basicConfig(level=logging.INFO)  # a no-op: the root logger has a handler
    to_file = logging.FileHandler(tmp_path / "app.log")
    root.addHandler(to_file)
    try:
        assert [type(h) for h in root.handlers] == [LambdaLogHandler, logging.FileHandler]
        logging.getLogger("app").warning("once")
        lines = stdio.lines()
        assert len(lines) == 2
        assert "StreamHandler writing to stdout/stderr was added to the root logger" in lines[0]
        assert lines[1].endswith("\tonce")
        assert (tmp_path / "app.log").read_text() == "once\n"
    finally:
        root.removeHandler(to_file)
        to_file.close()


def test_replacing_the_root_configuration_outright_is_respected(stdio: PrivateStdio) -> None:
    stdio.install()
    replacement = logging.StreamHandler(io.StringIO())
    logging.basicConfig(handlers=[replacement], force=True)
    assert logging.getLogger().handlers == [replacement]


@pytest.fixture
def invoke_state() -> Iterator[InvokeState]:
    state = InvokeState(cold_start=False, buffer_size=3)
    token = current_invoke.set(state)
    yield state
    current_invoke.reset(token)


def test_debug_records_are_buffered_and_written_only_when_the_invoke_fails(
    stdio: PrivateStdio, invoke_state: InvokeState, in_invoke: LambdaContext
) -> None:
    log = stdio.install(AWS_LAMBDA_LOG_FORMAT="JSON", LAMBDA_RUNTIME_LOG_BUFFER="debug")
    app = logging.getLogger("app")
    app.debug("step 1")
    app.info("visible")
    app.debug("step 2")
    assert [json.loads(line)["message"] for line in stdio.lines()] == ["visible"]
    log.error(
        {
            "errorMessage": "boom",
            "errorType": "ValueError",
            "requestId": REQUEST_ID,
            "stackTrace": [],
        }
    )
    assert [json.loads(line)["message"] for line in stdio.lines()] == [
        "visible",
        "step 1",
        "step 2",
        "ValueError: boom",
    ]
    assert invoke_state.failed


def test_the_buffer_is_a_ring_that_says_how_much_it_dropped(
    stdio: PrivateStdio, invoke_state: InvokeState
) -> None:
    log = stdio.install(LAMBDA_RUNTIME_LOG_BUFFER="debug")
    for i in range(5):
        logging.getLogger("app").debug("step %d", i)
    log.error({"errorMessage": "boom", "errorType": "ValueError", "stackTrace": []})
    messages = [line.split("\t")[3] for line in stdio.lines()]
    assert messages[0].startswith("2 earlier record(s) of this invoke")
    assert messages[1:] == ["step 2", "step 3", "step 4", "ValueError: boom"]


def test_without_an_invoke_in_progress_debug_records_are_simply_dropped(
    stdio: PrivateStdio,
) -> None:
    log = stdio.install(LAMBDA_RUNTIME_LOG_BUFFER="debug", AWS_LAMBDA_LOG_LEVEL="INFO")
    logging.getLogger("app").debug("at import")
    log.error({"errorMessage": "init failed", "errorType": "ImportError", "stackTrace": []})
    assert len(stdio.lines()) == 1


def test_buffered_structlog_records_join_the_same_buffer(
    stdio: PrivateStdio, invoke_state: InvokeState
) -> None:
    structlog.reset_defaults()  # as if user code had not configured it
    log = stdio.install(AWS_LAMBDA_LOG_FORMAT="JSON", LAMBDA_RUNTIME_LOG_BUFFER="debug")
    structlog.get_logger().debug("structlog step")
    logging.getLogger("app").debug("stdlib step")
    assert stdio.lines() == []
    log.error({"errorMessage": "boom", "errorType": "ValueError", "stackTrace": []})
    assert [json.loads(line)["message"] for line in stdio.lines()] == [
        "structlog step",
        "stdlib step",
        "ValueError: boom",
    ]


def test_default_text_install_keeps_the_lean_handler(stdio: PrivateStdio) -> None:
    stdio.install()
    assert [type(h) for h in logging.getLogger().handlers] == [LambdaLogHandler]


def test_json_without_a_log_level_uses_lambdas_default_info(stdio: PrivateStdio) -> None:
    stdio.install(AWS_LAMBDA_LOG_FORMAT="JSON")
    app = logging.getLogger("app")
    app.debug("hidden")
    app.info("shown")
    assert [json.loads(line)["message"] for line in stdio.lines()] == ["shown"]
