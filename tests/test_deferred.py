"""runtime.deferred: a module registered as deferred runs its code once, on first use, into the
very object every importer holds."""

from __future__ import annotations

import sys
import threading
import types
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from runtime.deferred import defer

MakeModule = Callable[..., str]

MODULE = """\
import sys, time
RUNS = getattr(sys, "_deferred_test_runs", 0) + 1
sys._deferred_test_runs = RUNS
time.sleep({sleep})
VALUE = 42
{extra}
def double(x):
    return 2 * x
"""


@pytest.fixture
def make_module(tmp_path: Path) -> Iterator[Callable[..., str]]:
    """Write a module named ``deferred_probe_N`` on a sys.path folder; clean up after."""
    names: list[str] = []
    sys.path.insert(0, str(tmp_path))

    def make(sleep: float = 0.0, extra: str = "") -> str:
        name = f"deferred_probe_{len(names)}"
        (tmp_path / f"{name}.py").write_text(MODULE.format(sleep=sleep, extra=extra))
        names.append(name)
        return name

    sys._deferred_test_runs = 0  # type: ignore[attr-defined]
    yield make
    sys.path.remove(str(tmp_path))
    for name in names:
        sys.modules.pop(name, None)
    del sys._deferred_test_runs  # type: ignore[attr-defined]


def runs() -> int:
    return sys._deferred_test_runs  # type: ignore[attr-defined,no-any-return]


def test_import_does_not_run_the_code_first_use_runs_it_once(make_module: MakeModule) -> None:
    name = make_module()
    assert defer(name) is True
    module = __import__(name)
    assert runs() == 0
    assert module.__name__ == name and module.__file__.endswith(f"{name}.py")
    assert module.double(4) == 8
    assert (runs(), module.VALUE) == (1, 42)
    assert type(module) is types.ModuleType  # an ordinary module from then on
    assert __import__(name) is module is sys.modules[name]
    assert runs() == 1


def test_from_import_and_dir_trigger_the_code(make_module: MakeModule) -> None:
    first = make_module()
    second = make_module()
    defer(first)
    defer(second)
    namespace: dict[str, object] = {}
    exec(f"from {first} import VALUE", namespace)
    assert namespace["VALUE"] == 42
    assert "double" in dir(__import__(second))
    assert runs() == 2


def test_a_missing_name_is_an_attribute_error_after_the_code_ran(make_module: MakeModule) -> None:
    name = make_module()
    defer(name)
    module = __import__(name)
    with pytest.raises(AttributeError, match="no_such_name"):
        module.no_such_name  # noqa: B018
    assert runs() == 1
    assert not hasattr(module, "still_missing")
    assert runs() == 1


def test_threads_using_it_at_once_all_see_the_finished_module(make_module: MakeModule) -> None:
    name = make_module(sleep=0.2)
    defer(name)
    module = __import__(name)
    results: list[object] = []
    barrier = threading.Barrier(8)

    def use() -> None:
        barrier.wait()
        results.append(module.double(module.VALUE))

    threads = [threading.Thread(target=use) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert results == [84] * 8
    assert runs() == 1


def test_the_modules_own_code_sees_itself_partially_initialised(make_module: MakeModule) -> None:
    # As with a normal import: a name the module has not defined yet is an AttributeError for
    # code that runs while the module itself runs, not a second run or endless recursion.
    extra = "try:\n    sys.modules[__name__].later\nexcept AttributeError as e:\n    seen = str(e)"
    name = make_module(extra=extra + "\nlater = 1")
    defer(name)
    module = __import__(name)
    assert module.seen == f"partially initialized module {name!r} has no attribute 'later'"
    assert (module.later, runs()) == (1, 1)


def test_an_error_in_the_code_reaches_the_first_user(make_module: MakeModule) -> None:
    name = make_module(extra="raise ValueError('broken module')")
    defer(name)
    module = __import__(name)
    with pytest.raises(ValueError, match="broken module"):
        module.VALUE  # noqa: B018


def test_modules_already_imported_or_missing_are_left_alone() -> None:
    assert defer("json") is False
    assert type(sys.modules["json"]) is types.ModuleType
    assert defer("no_module_has_this_name_here") is False
    assert "no_module_has_this_name_here" not in sys.modules
