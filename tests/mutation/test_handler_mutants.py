"""Handler-loading promises that `make mutate` showed no test held (see README.md here).

The messages are what a user reads in the init error when the function will not start, so
their wording is the behaviour under test."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_handler import load_error, task_root, write

from runtime.errors import LambdaError
from runtime.handler import parse_handler_name

__all__ = ["task_root"]  # the fixture, imported for the tests below


def test_an_empty_handler_name_says_how_to_set_one() -> None:
    """Catches a changed or lost hint for a missing handler name."""
    with pytest.raises(LambdaError) as info:
        parse_handler_name("")
    assert str(info.value) == (
        "Bad handler '': no handler is set (pass MODULE.FUNCTION or set _HANDLER)"
    )


@pytest.mark.parametrize(
    ("value", "kind"), [("42", "int"), ("'text'", "str"), ("None", "NoneType")]
)
def test_a_handler_that_is_not_callable_names_what_it_is(
    task_root: Path, value: str, kind: str
) -> None:
    """Catches the message naming the wrong type for a non-callable handler attribute."""
    write(task_root, "uh_value.py", f"handler = {value}\n")
    error = load_error("uh_value.handler")
    assert error.message.endswith(f"is not callable (it is a {kind})")


def test_a_syntax_error_raised_by_hand_names_the_module(task_root: Path) -> None:
    """Catches a placeholder in place of the module name or the source line when the
    SyntaxError carries no file and no text (a module doing ``raise SyntaxError(...)``)."""
    write(task_root, "uh_raises_syntax.py", "raise SyntaxError('made up')\n")
    error = load_error("uh_raises_syntax.handler")
    assert error.error_type == "Runtime.UserCodeSyntaxError"
    assert error.message == (
        "Syntax error in module 'uh_raises_syntax': made up (uh_raises_syntax, line None)"
    )
    assert error.stack_trace == ['  File "None" Line None\n    \n']


@pytest.mark.parametrize("name", [".handler", "app.", "handler"])
def test_a_name_without_both_halves_asks_for_module_and_function(name: str) -> None:
    """Catches ``.handler`` (no module) being judged by the module-name rule instead, which
    would tell the user ``'' is not a valid Python module name``."""
    with pytest.raises(LambdaError) as info:
        parse_handler_name(name)
    assert info.value.message.endswith(": expected MODULE.FUNCTION, for example app.handler")


@pytest.mark.parametrize("name", ["/app.handler", "../app.handler", "a\\b.handler"])
def test_a_name_that_leaves_the_task_root_says_so(name: str) -> None:
    """Catches an absolute or backslashed name slipping past the task-root rule to be refused
    later for a confusing reason (``'' is not a valid Python module name``)."""
    with pytest.raises(LambdaError) as info:
        parse_handler_name(name)
    assert info.value.message == (
        f"Bad handler {name!r}: a handler may not leave the task root "
        "('..', '/' at the start or '\\')"
    )


@pytest.mark.parametrize(
    ("name", "problem"),
    [
        ("app.1st", "'1st' is not a valid Python function name"),
        ("app.my-handler", "'my-handler' is not a valid Python function name"),
        ("1app.handler", "'1app' is not a valid Python module name"),
        ("pkg/my-app.handler", "'my-app' is not a valid Python module name"),
    ],
)
def test_an_invalid_identifier_is_named_in_the_error(name: str, problem: str) -> None:
    """Catches the message naming the wrong part, or none, of a name Python cannot import."""
    with pytest.raises(LambdaError) as info:
        parse_handler_name(name)
    assert info.value.error_type == "Runtime.MalformedHandlerName"
    assert info.value.message == f"Bad handler {name!r}: {problem}"
