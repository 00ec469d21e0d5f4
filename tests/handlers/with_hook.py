import os
import sys

import runtime


@runtime.on_shutdown
def flush() -> None:
    print("shutdown hook ran", flush=True)


def slow_hook() -> None:
    import time

    print(f"slow hook started at {time.time():.6f}", flush=True)
    time.sleep(5)


def signals_again() -> None:
    import signal
    import time

    print("repeating hook started", flush=True)
    # As a second SIGTERM from outside would: it reaches the runtime while its hooks run.
    os.kill(os.getpid(), signal.SIGTERM)
    time.sleep(0.1)
    print("repeating hook finished", flush=True)


if os.environ.get("REPEAT_SIGTERM"):
    runtime.on_shutdown(signals_again)

if "--slow-hook" in sys.argv or os.environ.get("SLOW_HOOK"):
    runtime.on_shutdown(slow_hook)


def handler(event, context):
    return "ok"
