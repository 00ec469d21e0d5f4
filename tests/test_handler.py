"""Handler names, importing user code and its errors, and sys.path at init."""

from __future__ import annotations

import os
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from runtime.errors import LambdaError, error_body
from runtime.handler import load_handler, parse_handler_name, setup_sys_path


@pytest.fixture
def task_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """An empty task root on sys.path; modules imported from it are forgotten afterwards."""
    monkeypatch.syspath_prepend(str(tmp_path))
    before = set(sys.modules)
    yield tmp_path
    for name in set(sys.modules) - before:
        del sys.modules[name]


def write(root: Path, relative: str, source: str) -> Path:
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(source))
    return path


def load_error(name: str) -> LambdaError:
    with pytest.raises(LambdaError) as info:
        load_handler(name)
    return info.value


# --- parse_handler_name ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "module", "function"),
    [
        ("app.handler", "app", "handler"),
        ("lambda_function.lambda_handler", "lambda_function", "lambda_handler"),
        ("package.module.function", "package.module", "function"),
        ("a.b.c.d.fn", "a.b.c.d", "fn"),
        ("path/to/module.function", "path.to.module", "function"),
        ("src/app.handler", "src.app", "handler"),
        ("café.händler", "café", "händler"),
        ("_private._fn", "_private", "_fn"),
    ],
)
def test_valid_handler_names(name: str, module: str, function: str) -> None:
    assert parse_handler_name(name) == (module, function)


@pytest.mark.parametrize(
    "name",
    [
        "",
        "handler",
        "app.",
        ".handler",
        "app..handler",
        "../app.handler",
        "src/../app.handler",
        "/var/task/app.handler",
        "src\\app.handler",
        "my-app.handler",
        "app.my-handler",
        "1app.handler",
        "app.1handler",
        "app.handler()",
        "app.handler ",
        " app.handler",
        "my app.handler",
        "src//app.handler",
        "src/.app.handler",
        "src/app/.handler",
    ],
)
def test_malformed_handler_names(name: str) -> None:
    with pytest.raises(LambdaError) as info:
        parse_handler_name(name)
    assert info.value.error_type == "Runtime.MalformedHandlerName"
    assert repr(name) in info.value.message


@pytest.mark.parametrize("name", ["", "app.1handler", "../app.handler"])
def test_load_handler_reports_malformed_names_too(name: str) -> None:
    assert load_error(name).error_type == "Runtime.MalformedHandlerName"


# --- load_handler: success -------------------------------------------------------------------


def test_loads_module_function(task_root: Path) -> None:
    write(task_root, "uh_app.py", "def handler(event, context):\n    return ('app', event)\n")
    assert load_handler("uh_app.handler")({"k": 1}, None) == ("app", {"k": 1})


def test_loads_package_module_function(task_root: Path) -> None:
    write(task_root, "uh_pkg/__init__.py", "")
    write(task_root, "uh_pkg/orders.py", "def create(event, context):\n    return 'created'\n")
    assert load_handler("uh_pkg.orders.create")(None, None) == "created"


def test_loads_path_to_module_function_without_init_files(task_root: Path) -> None:
    write(task_root, "uh_src/api/v1.py", "def get(event, context):\n    return 'v1'\n")
    assert load_handler("uh_src/api/v1.get")(None, None) == "v1"


def test_loads_any_callable(task_root: Path) -> None:
    write(
        task_root,
        "uh_callables.py",
        """\
        class Handler:
            def __call__(self, event, context):
                return 'instance'

        instance = Handler()
        """,
    )
    assert load_handler("uh_callables.instance")(None, None) == "instance"


# --- load_handler: errors --------------------------------------------------------------------


def test_missing_module_is_an_import_module_error(task_root: Path) -> None:
    error = load_error("uh_does_not_exist.handler")
    assert error.error_type == "Runtime.ImportModuleError"
    assert "uh_does_not_exist" in error.message


def test_missing_package_is_an_import_module_error(task_root: Path) -> None:
    error = load_error("uh_nopkg/sub/app.handler")
    assert error.error_type == "Runtime.ImportModuleError"
    assert "uh_nopkg" in error.message


def test_missing_dependency_of_the_module_is_an_import_module_error(task_root: Path) -> None:
    write(task_root, "uh_needs_dep.py", "import uh_missing_dependency\n\ndef handler(e, c): pass\n")
    error = load_error("uh_needs_dep.handler")
    assert error.error_type == "Runtime.ImportModuleError"
    assert "uh_needs_dep" in error.message
    assert "uh_missing_dependency" in error.message


def test_import_error_raised_by_the_module_is_an_import_module_error(task_root: Path) -> None:
    write(task_root, "uh_bad_name.py", "from os import uh_no_such_name\n")
    error = load_error("uh_bad_name.handler")
    assert error.error_type == "Runtime.ImportModuleError"
    assert "uh_no_such_name" in error.message


def test_syntax_error_names_file_and_line(task_root: Path) -> None:
    path = write(
        task_root,
        "uh_syntax.py",
        """\
        import os


        def handler(event, context)
            return os.getcwd()
        """,
    )
    error = load_error("uh_syntax.handler")
    assert error.error_type == "Runtime.UserCodeSyntaxError"
    assert "uh_syntax.py" in error.message
    assert "line 4" in error.message
    trace = "".join(error.stack_trace)
    assert str(path) in trace
    assert "4" in trace
    assert "def handler(event, context)" in trace


def test_syntax_error_body_carries_the_trace(task_root: Path) -> None:
    write(task_root, "uh_syntax2.py", "x = (\n")
    body = error_body(load_error("uh_syntax2.handler"), "")
    assert body["errorType"] == "Runtime.UserCodeSyntaxError"
    assert any("uh_syntax2.py" in entry for entry in body["stackTrace"])


def test_indentation_error_is_a_syntax_error(task_root: Path) -> None:
    write(task_root, "uh_indent.py", "def handler(event, context):\nreturn 1\n")
    error = load_error("uh_indent.handler")
    assert error.error_type == "Runtime.UserCodeSyntaxError"
    assert "line 2" in error.message


def test_syntax_error_in_an_imported_dependency_names_that_file(task_root: Path) -> None:
    write(task_root, "uh_broken_dep.py", "\n\nif True\n    pass\n")
    write(task_root, "uh_uses_broken.py", "import uh_broken_dep\n")
    error = load_error("uh_uses_broken.handler")
    assert error.error_type == "Runtime.UserCodeSyntaxError"
    assert "uh_broken_dep.py" in error.message
    assert "line 3" in error.message


def test_missing_handler_attribute_is_handler_not_found(task_root: Path) -> None:
    write(task_root, "uh_no_fn.py", "def other(event, context):\n    pass\n")
    error = load_error("uh_no_fn.handler")
    assert error.error_type == "Runtime.HandlerNotFound"
    assert "handler" in error.message
    assert "uh_no_fn" in error.message


@pytest.mark.parametrize("value", ["42", "'a string'", "None", "{'a': 1}"])
def test_non_callable_handler_is_handler_not_found_at_init(task_root: Path, value: str) -> None:
    write(task_root, "uh_not_callable.py", f"handler = {value}\n")
    error = load_error("uh_not_callable.handler")
    assert error.error_type == "Runtime.HandlerNotFound"
    assert "handler" in error.message
    assert "callable" in error.message


@pytest.mark.parametrize(
    ("name", "module"),
    [
        ("sys.handler", "sys"),
        ("builtins.handler", "builtins"),
        ("sys/sub.handler", "sys"),
        ("runtime.handler", "runtime"),
        ("runtime/bootstrap.main", "runtime"),
        ("orjson.handler", "orjson"),
    ],
)
def test_shadowing_a_builtin_or_the_runtime_is_a_conflict(
    task_root: Path, name: str, module: str
) -> None:
    # Even with a matching file in the task root, the handler may not take the name.
    write(task_root, f"{module}.py", "def handler(event, context):\n    return 'shadow'\n")
    error = load_error(name)
    assert error.error_type == "Runtime.BuiltInModuleConflict"
    assert module in error.message


def test_any_other_exception_at_import_propagates_with_its_own_class(task_root: Path) -> None:
    write(
        task_root,
        "uh_raises.py",
        """\
        class DatabaseUnavailable(Exception):
            pass

        raise DatabaseUnavailable("cannot reach db at init")
        """,
    )
    with pytest.raises(Exception) as info:
        load_handler("uh_raises.handler")
    assert type(info.value).__name__ == "DatabaseUnavailable"
    body = error_body(info.value, "")
    assert body["errorType"] == "DatabaseUnavailable"
    assert body["errorMessage"] == "cannot reach db at init"
    assert any("uh_raises.py" in entry for entry in body["stackTrace"])


def test_system_exit_at_import_propagates(task_root: Path) -> None:
    write(task_root, "uh_exits.py", "import sys\nsys.exit(3)\n")
    with pytest.raises(SystemExit):
        load_handler("uh_exits.handler")


def test_a_failed_import_can_be_retried_after_the_file_is_fixed(task_root: Path) -> None:
    write(task_root, "uh_retry.py", "raise RuntimeError('first attempt')\n")
    with pytest.raises(RuntimeError):
        load_handler("uh_retry.handler")
    write(task_root, "uh_retry.py", "def handler(event, context):\n    return 'fixed'\n")
    assert load_handler("uh_retry.handler")(None, None) == "fixed"


# --- setup_sys_path --------------------------------------------------------------------------

VERSION = f"python{sys.version_info.major}.{sys.version_info.minor}"


def expected_front(task: str, layer: str) -> list[str]:
    return [
        task,
        os.path.join(layer, "python"),
        os.path.join(layer, "python", "lib", VERSION, "site-packages"),
    ]


def test_sys_path_order(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "path", ["", "/usr/lib/python.zip", "/usr/lib/site-packages"])
    setup_sys_path("/var/task", "/opt")
    assert sys.path == [
        *expected_front("/var/task", "/opt"),
        "/usr/lib/python.zip",
        "/usr/lib/site-packages",
    ]


def test_sys_path_moves_existing_entries_to_the_front_without_duplicates(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    layer = str(tmp_path / "layer")
    front = expected_front("/var/task", layer)
    # As bootstrap leaves it: the layer paths come from PYTHONPATH, the task root from cwd.
    monkeypatch.setattr(sys, "path", ["/var/task", front[2], "", "/usr/lib/stdlib", front[1]])
    setup_sys_path("/var/task", layer)
    assert sys.path == [*front, "/usr/lib/stdlib"]


def test_sys_path_setup_is_idempotent(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "path", ["/usr/lib/stdlib"])
    setup_sys_path("/var/task", "/opt")
    once = list(sys.path)
    setup_sys_path("/var/task", "/opt")
    assert sys.path == once


def test_sys_path_has_no_duplicates_at_all(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "path", ["/usr/lib/a", "/usr/lib/b", "/usr/lib/a"])
    setup_sys_path("/var/task", "/opt")
    assert sys.path == [*expected_front("/var/task", "/opt"), "/usr/lib/a", "/usr/lib/b"]


def test_task_root_shadows_layers_and_layers_shadow_the_rest(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    task = tmp_path / "task"
    layer = tmp_path / "layer"
    other = tmp_path / "other"
    site = layer / "python" / "lib" / VERSION / "site-packages"
    write(task, "uh_order_a.py", "where = 'task'\n")
    write(layer / "python", "uh_order_a.py", "where = 'layer'\n")
    write(layer / "python", "uh_order_b.py", "where = 'layer'\n")
    write(site, "uh_order_b.py", "where = 'site'\n")
    write(site, "uh_order_c.py", "where = 'site'\n")
    write(other, "uh_order_c.py", "where = 'other'\n")
    monkeypatch.setattr(sys, "path", [str(other), *sys.path])
    before = set(sys.modules)
    try:
        setup_sys_path(str(task), str(layer))
        import uh_order_a  # type: ignore[import-not-found]
        import uh_order_b  # type: ignore[import-not-found]
        import uh_order_c  # type: ignore[import-not-found]

        assert (uh_order_a.where, uh_order_b.where, uh_order_c.where) == ("task", "layer", "site")
    finally:
        for name in set(sys.modules) - before:
            del sys.modules[name]
