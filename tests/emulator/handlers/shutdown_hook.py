import os

import runtime

MARK = os.environ.get("SHUTDOWN_MARK_FILE")


def _on_shutdown():
    if MARK:
        with open(MARK, "w") as f:
            f.write("shutdown hook ran")


runtime.on_shutdown(_on_shutdown)


def handler(event, context):
    return "ok"
