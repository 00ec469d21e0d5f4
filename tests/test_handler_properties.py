"""Property tests for handler names: any string either loads a handler or fails with one of the
runtime's own ``Runtime.*`` errors, never with another exception (which would crash init with a
traceback instead of the error Lambda users know)."""

from __future__ import annotations

import keyword
import textwrap
import unicodedata
import uuid
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_handler import task_root  # noqa: F401  (the same fixture)

from runtime.errors import LambdaError
from runtime.handler import load_handler, parse_handler_name

PROPS = settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
LOADS = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

# A top-level module name no test environment has: names under it can never import a real
# module (importing arbitrary stdlib modules has side effects, e.g. ``this`` or ``antigravity``).
ABSENT = f"zz_absent_{uuid.uuid4().hex}"

# Characters whose names survive NFKC normalisation unchanged: Python normalises identifiers in
# source (``def ﬁ`` defines ``fi``) but not in getattr() or file names.
_ID_START = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_éüßλжå"
_ID_CONTINUE = _ID_START + "0123456789"

identifiers = st.builds(
    lambda head, tail: head + tail,
    st.sampled_from(_ID_START),
    st.text(alphabet=_ID_CONTINUE, max_size=12),
).filter(lambda s: not keyword.iskeyword(s) and unicodedata.normalize("NFKC", s) == s)

# Text biased towards the characters handler names are built from, plus anything at all.
name_text = st.one_of(
    st.text(max_size=40),
    st.text(alphabet="ab_./\\:-1 \x00é", max_size=20),
    st.lists(st.one_of(identifiers, st.sampled_from(["", "..", " ", "1x", "a-b"])), max_size=5).map(
        lambda parts: ".".join(parts)
    ),
)


@given(name_text)
@PROPS
def test_any_name_parses_or_is_malformed(name: str) -> None:
    try:
        module, function = parse_handler_name(name)
    except LambdaError as exc:
        assert exc.error_type == "Runtime.MalformedHandlerName"
        assert repr(name) in exc.message  # the user sees which name was refused
        return
    # What parses names a module inside the task root and a function in it, nothing else.
    assert function.isidentifier()
    assert all(part.isidentifier() for part in module.split("."))
    assert f"{module}.{function}" == name.replace("/", ".")


@given(name_text)
@PROPS
def test_unknown_module_is_import_error_or_malformed(name: str) -> None:
    handler = f"{ABSENT}/{name}" if name[:1] not in ("", "/") else ABSENT + name
    with pytest.raises(LambdaError) as info:
        load_handler(handler)
    assert info.value.error_type in ("Runtime.MalformedHandlerName", "Runtime.ImportModuleError")


@given(
    packages=st.lists(identifiers, max_size=3),
    module=identifiers,
    function=identifiers,
    slashes=st.booleans(),
)
@LOADS
def test_valid_names_load_the_function(
    task_root: Path,  # noqa: F811  (the fixture imported above)
    packages: list[str],
    module: str,
    function: str,
    slashes: bool,
) -> None:
    # A fresh folder per example: hypothesis reuses the fixture across examples.
    top = f"t{uuid.uuid4().hex[:12]}"
    folder = task_root / top
    for part in packages:
        folder.mkdir(exist_ok=True)
        (folder / "__init__.py").touch()
        folder = folder / part
    folder.mkdir(exist_ok=True)
    (folder / "__init__.py").touch()
    marker = uuid.uuid4().hex
    source = f"""
        def {function}(event, context):
            return {marker!r}

        not_callable = 42
    """
    (folder / f"{module}.py").write_text(textwrap.dedent(source), encoding="utf-8")
    importable = ".".join([top, *packages, module])
    sep = "/" if slashes else "."
    name = sep.join([top, *packages, module]) + "." + function
    handler = load_handler(name)
    assert handler({}, None) == marker

    missing = function + "_missing"
    for absent in (missing, "not_callable"):
        with pytest.raises(LambdaError) as info:
            load_handler(f"{importable}.{absent}")
        assert info.value.error_type == "Runtime.HandlerNotFound"
    with pytest.raises(LambdaError) as info:
        load_handler(f"{importable}_missing.{function}")
    assert info.value.error_type == "Runtime.ImportModuleError"
