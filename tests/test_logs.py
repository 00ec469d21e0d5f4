"""Function logs in Lambda's Text format, through real stdlib loggers."""

from __future__ import annotations

import datetime
import io
import logging
import re
import sys
import time
from collections.abc import Callable, Iterator

import pytest

from runtime.bootstrap import install_logs
from runtime.config import Config
from runtime.context import LambdaContext
from runtime.errors import error_body
from runtime.loghandlers import LambdaLogHandler
from runtime.logs import RuntimeLog, text_line

REQUEST_ID = "0b4b5d2f-9a3e-4c5e-8f43-1c2d3e4f5a6b"
LINE = re.compile(
    r"\[(?P<level>[A-Z]+)\]\t(?P<time>\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z)\t"
    r"(?P<request_id>[^\t]*)\t(?P<message>[^\n]*)\n"
)


def expected_stamp(created: float) -> str:
    moment = datetime.datetime.fromtimestamp(created, tz=datetime.timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


@pytest.fixture
def in_invoke(enter_invoke: Callable[..., LambdaContext]) -> LambdaContext:
    return enter_invoke(aws_request_id=REQUEST_ID)


def parse(line: str) -> dict[str, str]:
    match = LINE.fullmatch(line)
    assert match, f"not a Text-format line: {line!r}"
    return match.groupdict()


# --- text_line -------------------------------------------------------------------------------


@pytest.mark.parametrize("created", [1_700_000_000.0625, 1_700_000_000.5, 0.0, 1_767_225_599.75])
def test_text_line_format_outside_an_invoke(created: float) -> None:
    assert text_line("INFO", "hello", created) == f"[INFO]\t{expected_stamp(created)}\t\thello\n"


def test_text_line_carries_the_request_id_during_an_invoke(in_invoke: LambdaContext) -> None:
    line = text_line("WARNING", "careful", 1_700_000_000.25)
    assert line == f"[WARNING]\t{expected_stamp(1_700_000_000.25)}\t{REQUEST_ID}\tcareful\n"


def test_text_line_defaults_to_now() -> None:
    before = time.time()
    fields = parse(text_line("INFO", "now"))
    after = time.time()
    stamp = datetime.datetime.strptime(fields["time"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(
        tzinfo=datetime.timezone.utc
    ).timestamp()
    assert before - 0.001 <= stamp <= after


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        ("one\ntwo", "one\rtwo"),
        ("one\r\ntwo", "one\rtwo"),
        ("a\n\nb\n", "a\r\rb\r"),
        ("tab\tkept", "tab\tkept"),
    ],
)
def test_multi_line_messages_stay_one_line(message: str, expected: str) -> None:
    line = text_line("ERROR", message, 0.0)
    assert line.count("\n") == 1
    assert line.endswith(f"\t{expected}\n")


# --- LambdaLogHandler with real loggers ------------------------------------------------------


@pytest.fixture
def logger() -> Iterator[tuple[logging.Logger, io.StringIO]]:
    stream = io.StringIO()
    log = logging.getLogger("tests.test_logs.function")
    log.propagate = False
    log.setLevel(logging.DEBUG)
    handler = LambdaLogHandler(stream)
    log.addHandler(handler)
    yield log, stream
    log.removeHandler(handler)
    log.propagate = True


def test_records_become_text_lines_with_level_and_request_id(
    logger: tuple[logging.Logger, io.StringIO], in_invoke: LambdaContext
) -> None:
    log, stream = logger
    log.info("order %s accepted", 7)
    log.warning("stock low")
    lines = stream.getvalue().splitlines(keepends=True)
    assert [parse(line)["level"] for line in lines] == ["INFO", "WARNING"]
    assert [parse(line)["request_id"] for line in lines] == [REQUEST_ID, REQUEST_ID]
    assert [parse(line)["message"] for line in lines] == ["order 7 accepted", "stock low"]


def test_record_time_is_the_records_own_time() -> None:
    # A record logged at one moment and written later keeps the moment it was logged.
    stream = io.StringIO()
    record = logging.LogRecord("app", logging.INFO, __file__, 1, "queued", None, None)
    record.created = 1_700_000_000.0625
    LambdaLogHandler(stream).handle(record)
    assert parse(stream.getvalue())["time"] == expected_stamp(1_700_000_000.0625)


def test_exception_records_keep_the_traceback_on_one_line(
    logger: tuple[logging.Logger, io.StringIO], in_invoke: LambdaContext
) -> None:
    log, stream = logger
    stock: dict[str, int] = {}
    try:
        stock["missing"]
    except KeyError:
        log.exception("lookup failed")
    output = stream.getvalue()
    assert output.count("\n") == 1
    fields = parse(output)
    assert fields["level"] == "ERROR"
    parts = fields["message"].split("\r")
    assert parts[0] == "lookup failed"
    assert parts[1] == "Traceback (most recent call last):"
    assert parts[-1] == "KeyError: 'missing'"
    assert any("test_exception_records_keep_the_traceback_on_one_line" in p for p in parts)


def test_stack_info_is_kept(logger: tuple[logging.Logger, io.StringIO]) -> None:
    log, stream = logger
    log.warning("where am I", stack_info=True)
    message = parse(stream.getvalue())["message"]
    assert message.startswith("where am I\rStack (most recent call last):")


def test_broken_stream_does_not_raise_into_user_code(
    logger: tuple[logging.Logger, io.StringIO], monkeypatch: pytest.MonkeyPatch
) -> None:
    log, stream = logger
    stream.close()
    monkeypatch.setattr(logging, "raiseExceptions", False)
    log.error("nowhere to go")


# --- RuntimeLog ------------------------------------------------------------------------------


def test_runtime_log_writes_the_error_of_a_failed_invoke_as_one_line(
    in_invoke: LambdaContext,
) -> None:
    stream = io.StringIO()
    try:
        raise ValueError("bad order\nsecond line")
    except ValueError as exc:
        RuntimeLog(stream).error(error_body(exc, REQUEST_ID))
    fields = parse(stream.getvalue())
    assert fields["level"] == "ERROR"
    assert fields["request_id"] == REQUEST_ID
    assert fields["message"].startswith("ValueError: bad order\rsecond line")
    assert "Traceback (most recent call last):" in fields["message"]


def test_runtime_log_warning() -> None:
    stream = io.StringIO()
    RuntimeLog(stream).warning("410 from the Runtime API")
    fields = parse(stream.getvalue())
    assert (fields["level"], fields["message"]) == ("WARNING", "410 from the Runtime API")


def test_runtime_log_survives_a_closed_stream() -> None:
    stream = io.StringIO()
    stream.close()
    RuntimeLog(stream).write("ERROR", "still fine")


# --- install ---------------------------------------------------------------------------------


def make_config(**env: str) -> Config:
    return Config.from_environ(["app.handler"], {"AWS_LAMBDA_RUNTIME_API": "127.0.0.1:9001", **env})


class PrivateStdio:
    """A private stdout/stderr pair for install(), so the test can read what it wrote.

    pytest swaps its own capture into sys.stdout when the test body starts (after fixtures
    ran), so the swap is done by ``install`` inside the test body.
    """

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self._monkeypatch = monkeypatch
        self._raw = io.BytesIO()
        self.stdout = io.TextIOWrapper(self._raw, encoding="utf-8")
        self.stderr = io.TextIOWrapper(io.BytesIO(), encoding="utf-8")

    def install(self, config: Config) -> None:
        self._monkeypatch.setattr(sys, "stdout", self.stdout)
        self._monkeypatch.setattr(sys, "stderr", self.stderr)
        install_logs(config)

    def unflushed(self) -> bytes:
        return self._raw.getvalue()

    def written(self) -> str:
        self.stdout.flush()
        return self._raw.getvalue().decode()


@pytest.fixture
def stdio(monkeypatch: pytest.MonkeyPatch) -> Iterator[PrivateStdio]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield PrivateStdio(monkeypatch)
    root.handlers[:] = handlers
    root.setLevel(level)


def test_install_replaces_root_handlers(stdio: PrivateStdio) -> None:
    root = logging.getLogger()
    stale = logging.StreamHandler(io.StringIO())
    root.addHandler(stale)
    stdio.install(make_config())
    assert stale not in root.handlers
    assert [type(h) for h in root.handlers] == [LambdaLogHandler]


def test_after_install_logging_and_print_reach_stdout(
    stdio: PrivateStdio, in_invoke: LambdaContext
) -> None:
    stdio.install(make_config())
    logging.getLogger("app").warning("from logging")
    print("from print")
    lines = stdio.written().splitlines(keepends=True)
    fields = parse(lines[0])
    assert (fields["level"], fields["request_id"], fields["message"]) == (
        "WARNING", REQUEST_ID, "from logging",
    )
    assert lines[1] == "from print\n"


def test_install_makes_stdout_line_buffered(stdio: PrivateStdio) -> None:
    stdio.install(make_config())
    print("no flush needed")
    assert stdio.unflushed() == b"no flush needed\n"


@pytest.mark.parametrize(
    ("level", "shown", "hidden"),
    [
        ("ERROR", "error", "warning"),
        ("warn", "warning", "info"),
        ("DEBUG", "debug", None),
        ("TRACE", "debug", None),
        ("FATAL", "critical", "error"),
    ],
)
def test_install_honours_the_log_level(
    stdio: PrivateStdio, level: str, shown: str, hidden: str | None
) -> None:
    stdio.install(make_config(AWS_LAMBDA_LOG_LEVEL=level))
    app = logging.getLogger("app")
    getattr(app, shown)("shown record")
    if hidden:
        getattr(app, hidden)("hidden record")
    output = stdio.written()
    assert "shown record" in output
    assert "hidden record" not in output


def test_install_without_a_log_level_keeps_the_root_level(stdio: PrivateStdio) -> None:
    root = logging.getLogger()
    root.setLevel(logging.INFO)
    stdio.install(make_config())
    assert root.level == logging.INFO


class _WatchingFinder:
    """Like the emulator's import watcher: asks every other finder on sys.meta_path itself."""

    def __init__(self) -> None:
        self.busy = False

    def find_spec(self, fullname: str, path: object = None, target: object = None) -> object:
        if self.busy:
            return None
        self.busy = True
        try:
            for finder in list(sys.meta_path):
                if finder is self or not hasattr(finder, "find_spec"):
                    continue
                spec = finder.find_spec(fullname, path, target)
                if spec is not None:
                    return spec
            return None
        finally:
            self.busy = False


def test_a_routed_import_works_beside_a_finder_that_asks_every_finder(
    tmp_path: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`import structlog` under the emulator's import watcher failed with "list.remove(x): x
    not in list": the watcher called back into the runtime's finder, which then configured and
    removed itself twice. Break caught: no re-entrancy guard in _ConfigureOnImport."""
    from runtime.logs import when_imported

    (tmp_path / "routed_pkg_for_test.py").write_text("VALUE = 1\n")  # type: ignore[operator]
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(sys, "meta_path", list(sys.meta_path))
    sys.meta_path.insert(0, _WatchingFinder())  # before the path finder, as the emulator puts it
    seen: list[object] = []
    when_imported("routed_pkg_for_test", seen.append)
    try:
        import routed_pkg_for_test  # type: ignore[import-not-found]
    finally:
        sys.modules.pop("routed_pkg_for_test", None)
    assert seen == [routed_pkg_for_test]
