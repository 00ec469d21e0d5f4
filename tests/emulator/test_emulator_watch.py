"""--watch: a saved change reaches the next invoke; invokes in flight finish on the old code."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest
from emulator_support import MARK, MARK_VAR, OutputWatch, marked_processes, wait_for

from runtime.emulator import ConfigError, Emulator
from runtime.emulator.watch import Reload, Watched, describe, sort_changes

# From saving a file to an invoke served by the new code, beyond the new environment's init.
RELOAD_BUDGET_S = 0.3

APP = """
import time

VERSION = {version!r}


def handler(event, context):
    time.sleep(event.get("sleep", 0))
    return {{"version": VERSION, "helper": helper()}}


from helper import helper
"""


def _write_app(folder: Path, version: str) -> None:
    # Written aside and renamed, as editors save: the watcher must see one change.
    tmp = folder / ".app.py.tmp"
    tmp.write_text(APP.format(version=version))
    tmp.replace(folder / "app.py")


@pytest.fixture
def function_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "fn"
    folder.mkdir()
    _write_app(folder, "v1")
    (folder / "helper.py").write_text("def helper():\n    return 'h1'\n")
    return folder


def _make(lambda_emulator: Any, folder: Path, **options: Any) -> tuple[Emulator, OutputWatch]:
    output = OutputWatch()
    fn = lambda_emulator(
        "app.handler",
        task_root=folder,
        watch=True,
        timeout=10,
        echo=output,
        env={MARK_VAR: MARK},
        **options,
    )
    return fn, output


def test_reload_while_an_invoke_runs(lambda_emulator: Any, function_dir: Path) -> None:
    fn, output = _make(lambda_emulator, function_dir)
    assert fn.invoke({}).payload == {"version": "v1", "helper": "h1"}

    slow: dict[str, Any] = {}
    thread = threading.Thread(target=lambda: slow.update(result=fn.invoke({"sleep": 1.5})))
    thread.start()
    # The slow invoke is running on the first environment (the only free one).
    wait_for(lambda: b"START RequestId" in output.getvalue().split(b"REPORT")[-1], "slow start")

    saved = time.monotonic()
    _write_app(function_dir, "v2")
    while True:
        result = fn.invoke({})
        if result.payload["version"] == "v2":
            served = time.monotonic()
            break
        assert time.monotonic() - saved < 5, "the new code never served an invoke"
        time.sleep(0.005)
    output.wait_for(b"reloaded function (app.py changed)")
    assert result.report is not None and result.report.init_duration_ms is not None
    beyond_init = served - saved - result.report.init_duration_ms / 1000
    assert beyond_init <= RELOAD_BUDGET_S, f"{beyond_init * 1000:.0f} ms beyond init"

    thread.join(timeout=10)
    old = slow["result"]
    # The invoke in flight finished on the old code, untouched by the reload.
    assert old.ok and old.payload == {"version": "v1", "helper": "h1"}
    assert old.report is not None and old.report.status is None

    # Its environment is stopped once idle (as is one that started between the save and the
    # reload, whatever code it loaded); the new code's environment stays warm.
    wait_for(lambda: len(marked_processes()) <= 1, "the stale environments stopped")
    assert fn.invoke({}).payload["version"] == "v2"
    again = fn.invoke({})
    assert again.payload["version"] == "v2"
    assert again.report is not None and again.report.init_duration_ms is None
    assert len(marked_processes()) == 1


def test_a_changed_module_the_handler_imports_is_reloaded_and_named(
    lambda_emulator: Any, function_dir: Path
) -> None:
    fn, output = _make(lambda_emulator, function_dir)
    assert fn.invoke({}).payload["helper"] == "h1"
    (function_dir / "helper.py").write_text("def helper():\n    return 'h2'\n")
    output.wait_for(b"reloaded function (helper.py changed)")
    assert fn.invoke({}).payload["helper"] == "h2"

    # requirements.txt is not code: noted, nothing restarts.
    (function_dir / "requirements.txt").write_text("six\n")
    output.wait_for(b"function: requirements.txt changed: not reloaded")
    result = fn.invoke({})
    assert result.report is not None and result.report.init_duration_ms is None


def test_changes_are_debounced_into_one_reload(lambda_emulator: Any, function_dir: Path) -> None:
    fn, output = _make(lambda_emulator, function_dir)
    fn.invoke({})
    for n in range(5):
        (function_dir / "helper.py").write_text(f"def helper():\n    return 'h{n}'\n")
    output.wait_for(b"reloaded function")
    time.sleep(0.3)
    assert output.getvalue().count(b"reloaded function") == 1
    assert fn.invoke({}).payload["helper"] == "h4"


def test_a_layer_change_reloads_the_functions_using_it(
    lambda_emulator: Any, tmp_path: Path
) -> None:
    code = tmp_path / "code"
    layer = tmp_path / "layer"
    (layer / "python").mkdir(parents=True)
    code.mkdir()
    (code / "app.py").write_text("import shared\n\ndef handler(e, c):\n    return shared.VALUE\n")
    (layer / "python" / "shared.py").write_text("VALUE = 1\n")
    fn, output = _make(lambda_emulator, code, layers=[layer])
    assert fn.invoke({}).payload == 1
    (layer / "python" / "shared.py").write_text("VALUE = 2\n")
    output.wait_for(b"reloaded function (layer layer/python/shared.py changed)")
    assert fn.invoke({}).payload == 2


def test_sort_changes_names_each_function_and_ignores_caches(tmp_path: Path) -> None:
    a, b, shared = tmp_path / "a", tmp_path / "b", tmp_path / "shared"
    watched = [Watched("A", a, [shared]), Watched("B", b, [shared])]
    changes = sort_changes(
        watched,
        [f"{a}/app.py", f"{a}/__pycache__/app.cpython-311.pyc", f"{a}/notes.txt",
         f"{b}/requirements.txt", f"{shared}/python/lib.py"],
    )
    assert changes == [
        Reload("A", ["app.py"], ["shared/python/lib.py"], []),
        Reload("B", [], ["shared/python/lib.py"], ["requirements.txt"]),
    ]
    assert "reloaded B (layer shared/python/lib.py changed)" in describe(changes[1])[0]


def test_watch_is_a_serve_option_that_needs_folders(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="--package and --watch exclude each other"):
        Emulator("app.handler", task_root=tmp_path, watch=True, package=tmp_path / "nope")


TEMPLATE = """\
AWSTemplateFormatVersion: "2010-09-09"
Transform: AWS::Serverless-2016-10-31
Resources:
  First:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: first/
      Handler: app.handler
      Runtime: python3.12
  Second:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: second/
      Handler: app.handler
      Runtime: python3.12
"""


def test_with_a_template_only_the_function_whose_code_changed_reloads(
    lambda_emulator: Any, tmp_path: Path
) -> None:
    for name in ("first", "second"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "app.py").write_text(f"def handler(e, c):\n    return '{name} 1'\n")
    (tmp_path / "template.yaml").write_text(TEMPLATE)
    output = OutputWatch()
    emulator = lambda_emulator(
        template=tmp_path / "template.yaml", watch=True, echo=output, env={MARK_VAR: MARK}
    )
    first, second = emulator.function("First"), emulator.function("Second")
    assert first.invoke({}).payload == "first 1"
    assert second.invoke({}).payload == "second 1"
    (tmp_path / "first" / "app.py").write_text("def handler(e, c):\n    return 'first 2'\n")
    output.wait_for(b"reloaded First (app.py changed)")
    assert first.invoke({}).payload == "first 2"
    kept = second.invoke({})
    assert kept.payload == "second 1"
    # Second's environment was left alone: still warm.
    assert kept.report is not None and kept.report.init_duration_ms is None
    assert b"reloaded Second" not in output.getvalue()
