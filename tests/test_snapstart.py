"""The SnapStart hook registry and the refresh after a restore (runtime.snapstart).

The emulator tests (tests/emulator/test_emulator_snapstart.py) run the whole phase in a real
runtime process; these cover the registry's two homes: snapshot-restore-py when it can be
imported, the runtime's own list when it cannot."""

from __future__ import annotations

import os
import random
import subprocess
import sys
from typing import Any

import pytest

import runtime
from runtime import snapstart
from runtime.config import Config


@pytest.fixture
def calls() -> list[str]:
    return []


@pytest.fixture
def own_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    """snapshot-restore-py cannot be imported (None in sys.modules makes `import` fail), and
    the runtime's own lists start empty."""
    monkeypatch.setitem(sys.modules, snapstart.PACKAGE, None)  # type: ignore[arg-type]
    monkeypatch.setattr(snapstart, "_before_snapshot", [])
    monkeypatch.setattr(snapstart, "_after_restore", [])


@pytest.fixture
def package_registry(monkeypatch: pytest.MonkeyPatch) -> Any:
    package = pytest.importorskip(snapstart.PACKAGE)
    monkeypatch.setattr(package, "_before_snapshot_registry", [])
    monkeypatch.setattr(package, "_after_restore_registry", [])
    monkeypatch.setattr(snapstart, "_before_snapshot", [])
    monkeypatch.setattr(snapstart, "_after_restore", [])
    return package


def _register_four(calls: list[str]) -> None:
    def note(label: str, *, suffix: str = "") -> None:
        calls.append(label + suffix)

    @runtime.register_before_snapshot
    def first_before() -> None:
        calls.append("before-1")

    runtime.register_before_snapshot(note, "before-2", suffix="!")

    @runtime.register_after_restore
    def first_after() -> None:
        calls.append("after-1")

    runtime.register_after_restore(note, "after-2", suffix="!")


@pytest.mark.usefixtures("own_registry")
def test_without_the_package_hooks_run_from_the_runtimes_own_list(calls: list[str]) -> None:
    _register_four(calls)
    snapstart.run_before_snapshot()
    snapstart.run_after_restore()
    assert calls == ["before-2!", "before-1", "after-1", "after-2!"]
    # Before-snapshot hooks run once; after-restore hooks stay for every restore.
    calls.clear()
    snapstart.run_before_snapshot()
    snapstart.run_after_restore()
    assert calls == ["after-1", "after-2!"]


def test_with_the_package_our_hooks_join_its_registry_in_order(
    package_registry: Any, calls: list[str]
) -> None:
    @package_registry.register_before_snapshot
    def package_before() -> None:
        calls.append("before-package")

    _register_four(calls)
    package_registry.register_after_restore(calls.append, "after-package")
    # One registry: awslambdaric (which reads only the package's) sees our hooks too.
    assert len(package_registry.get_before_snapshot()) == 3
    assert len(package_registry.get_after_restore()) == 3
    assert snapstart._before_snapshot == [] and snapstart._after_restore == []
    snapstart.run_before_snapshot()
    snapstart.run_after_restore()
    assert calls == [
        "before-2!",
        "before-1",
        "before-package",
        "after-1",
        "after-2!",
        "after-package",
    ]


@pytest.mark.usefixtures("own_registry")
def test_a_failing_hook_stops_the_phase_with_its_exception(calls: list[str]) -> None:
    def boom() -> None:
        raise LookupError("no such thing")

    runtime.register_after_restore(calls.append, "first")
    runtime.register_after_restore(boom)
    runtime.register_after_restore(calls.append, "never")
    with pytest.raises(LookupError, match="no such thing"):
        snapstart.run_after_restore()
    assert calls == ["first"]


def test_a_hook_must_be_callable() -> None:
    with pytest.raises(TypeError, match=r"register_before_snapshot\(\) needs a callable, got int"):
        runtime.register_before_snapshot(3)  # type: ignore[type-var]
    with pytest.raises(TypeError, match=r"register_after_restore\(\) needs a callable, got str"):
        runtime.register_after_restore("hook")  # type: ignore[type-var]


def test_refresh_reseeds_random_and_drops_the_stale_trace_header(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("_X_AMZN_TRACE_ID", "Root=1-00000000-000000000000000000000000")
    snapshot_state = random.getstate()
    snapstart.refresh_after_restore()
    assert random.getstate() != snapshot_state
    assert "_X_AMZN_TRACE_ID" not in os.environ


def test_config_knows_snap_start() -> None:
    base = {"AWS_LAMBDA_RUNTIME_API": "127.0.0.1:9001"}
    assert Config.from_environ(["app.handler"], base).snap_start is False
    on = {**base, "AWS_LAMBDA_INITIALIZATION_TYPE": "snap-start"}
    assert Config.from_environ(["app.handler"], on).snap_start is True
    other = {**base, "AWS_LAMBDA_INITIALIZATION_TYPE": "provisioned-concurrency"}
    assert Config.from_environ(["app.handler"], other).snap_start is False


def test_on_demand_cold_start_does_not_import_snapstart() -> None:
    code = (
        "import sys, runtime, runtime.bootstrap; "
        "print(sorted(m for m in ('runtime.snapstart', 'snapshot_restore_py') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    ).stdout
    assert out.strip() == "[]"
