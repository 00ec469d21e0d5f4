"""The soak's function: each event says what to do, and carries an id that must come back."""

import os
import sys
import time


def handler(event, context):
    kind = event["do"]
    if kind == "ok":
        return {"id": event["id"], "request_id": context.aws_request_id}
    if kind == "error":
        raise ValueError(f"soak error {event['id']}")
    if kind == "timeout":
        # Past any timeout the soak sets: the emulator must stop it.
        time.sleep(60)
        return {"id": event["id"], "late": True}
    if kind == "crash":
        sys.stdout.flush()
        os._exit(7)
    raise KeyError(kind)
