"""The SnapStart example under the emulator's simulated snapshot and restore.

Run: pytest examples/snapstart/test_snapstart_app.py
"""

from pathlib import Path

HERE = Path(__file__).parent


def test_restored_environment_refreshes_what_init_made(lambda_emulator):
    fn = lambda_emulator("app.handler", task_root=HERE, snap_start=True)
    first = fn.invoke({})
    second = fn.invoke({})
    assert first.ok
    assert first.payload["connection"] == "open"
    assert first.payload["restores"] == 1
    # The hooks ran once, between init and the first invoke, in registration order.
    log = first.log
    assert log.index("connection closed for the snapshot") < log.index("RESTORE_START")
    assert log.index("connection reopened after the restore") < log.index("RESTORE_REPORT")
    # The first invoke's REPORT shows the restore, as on Lambda; later ones do not.
    assert first.report.restore_duration_ms is not None
    assert first.report.init_duration_ms is None
    assert second.report.restore_duration_ms is None
    assert second.payload["instance_id"] == first.payload["instance_id"]


def test_without_snap_start_the_hooks_never_run(lambda_emulator):
    fn = lambda_emulator("app.handler", task_root=HERE)
    result = fn.invoke({})
    assert result.payload | {"instance_id": None} == {
        "instance_id": None,
        "connection": "open",
        "restores": 0,
        "table": "orders",
    }
    assert result.report.restore_duration_ms is None
