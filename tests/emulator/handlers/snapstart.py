"""SnapStart hooks for the emulator tests: registered through AWS's snapshot-restore-py and
through the runtime's own API, in both forms, to show the order they run in; a hook fails when
SNAP_FAIL names its phase, and the after-restore phase takes SNAP_RESTORE_SLEEP seconds."""

from __future__ import annotations

import os
import random
import time
from typing import Any

from snapshot_restore_py import register_after_restore, register_before_snapshot

import runtime

ORDER: list[str] = []
STATE: dict[str, Any] = {}


def note(label: str, *, suffix: str = "") -> None:
    ORDER.append(label + suffix)


def fail_if_asked(phase: str) -> None:
    if os.environ.get("SNAP_FAIL") == phase:
        raise RuntimeError(f"{phase} hook failed on purpose")


@register_before_snapshot
def package_before() -> None:
    note("before:package-decorator")


register_before_snapshot(note, "before:package-call", suffix="+kwargs")


@runtime.register_before_snapshot
def ours_before() -> None:
    note("before:ours-decorator")


runtime.register_before_snapshot(note, "before:ours-call", suffix="+kwargs")
register_before_snapshot(fail_if_asked, "before")


@register_before_snapshot
def remember_random_state() -> None:
    # Registered last, so it runs first: the generator exactly as the snapshot holds it.
    STATE["snapshot_random_state"] = random.getstate()


@register_after_restore
def package_after() -> None:
    note("after:package-decorator")


register_after_restore(note, "after:package-call", suffix="+kwargs")


@runtime.register_after_restore
def ours_after() -> None:
    note("after:ours-decorator")


runtime.register_after_restore(note, "after:ours-call", suffix="+kwargs")
register_after_restore(fail_if_asked, "after")


@register_after_restore
def draw_random() -> None:
    STATE["after_restore_random"] = random.random()
    print("after-restore hooks ran")
    time.sleep(float(os.environ.get("SNAP_RESTORE_SLEEP", "0")))


def handler(event: Any, context: Any) -> dict[str, Any]:
    saved = STATE.get("snapshot_random_state")
    predicted = None
    if saved is not None:
        # What random.random() would have returned had the generator been carried over.
        replay = random.Random()
        replay.setstate(saved)
        predicted = replay.random()
    return {
        "order": ORDER,
        "predicted_from_snapshot": predicted,
        "after_restore": STATE.get("after_restore_random"),
        "initialization_type": os.environ.get("AWS_LAMBDA_INITIALIZATION_TYPE"),
    }
