"""SnapStart hooks: prepare the snapshot, then refresh what restored environments must not share.

With SnapStart, init runs once, when a version is published; Lambda snapshots the initialized
environment and starts new environments from that snapshot. Anything made at init is therefore
the same in every one of them: here an instance id, and the "connection" the function opened.

Run locally: lambda-runtime invoke app.handler --task-root examples/snapstart --snap-start
"""

from __future__ import annotations

import time
import uuid
from typing import Any

import runtime
from runtime import LambdaContext

# Made at init: expensive set-up belongs here, so the snapshot holds it ready.
SETTINGS = {"table": "orders", "loaded_at": time.time()}
STATE: dict[str, Any] = {"instance_id": uuid.uuid4().hex, "connection": "open", "restores": 0}


@runtime.register_before_snapshot
def close_connection() -> None:
    # A socket would not survive the snapshot usefully: close it, reopen after the restore.
    STATE["connection"] = "closed"
    print("connection closed for the snapshot")


@runtime.register_after_restore
def refresh_identity() -> None:
    # Every restored environment starts with the same memory: give this one its own id.
    STATE["instance_id"] = uuid.uuid4().hex
    STATE["restores"] += 1


@runtime.register_after_restore
def reopen_connection() -> None:
    STATE["connection"] = "open"
    print("connection reopened after the restore")


def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return {
        "instance_id": STATE["instance_id"],
        "connection": STATE["connection"],
        "restores": STATE["restores"],
        "table": SETTINGS["table"],
    }
