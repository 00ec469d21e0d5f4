import sys

import runtime


@runtime.on_shutdown
def flush() -> None:
    print("shutdown hook ran", flush=True)


def slow_hook() -> None:
    import time

    print(f"slow hook started at {time.time():.6f}", flush=True)
    time.sleep(5)


if "--slow-hook" in sys.argv or __import__("os").environ.get("SLOW_HOOK"):
    runtime.on_shutdown(slow_hook)


def handler(event, context):
    return "ok"
