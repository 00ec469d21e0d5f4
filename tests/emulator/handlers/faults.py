"""Handlers that misbehave, for the fault tests (one entry point per fault)."""

import ctypes
import os
import signal
import subprocess
import sys
import threading
import time

import orjson  # noqa: F401  (the runtime's own dependency: present wherever it runs)


def ok(event, context):
    print("ok handler ran")
    return {"ok": True, "pid": os.getpid()}


def flood(event, context):
    # Many lines of output, written as fast as the pipe takes them.
    line = "x" * 1023 + "\n"
    chunk = line * 1024
    for _ in range(event.get("mb", 50)):
        sys.stdout.write(chunk)
    sys.stdout.flush()
    return {"flooded_mb": event.get("mb", 50)}


def raise_(event, context):
    raise RuntimeError("fault: raised")


def unserialisable(event, context):
    return {"when": object()}


def exit_(event, context):
    os._exit(7)


def sigkill(event, context):
    os.kill(os.getpid(), signal.SIGKILL)


def sigsegv(event, context):
    ctypes.string_at(0)


def busy(event, context):
    while True:
        pass


def sleep(event, context):
    time.sleep(300)


def hog(event, context):
    block = bytearray(event.get("mb", 400) * 1024 * 1024)
    for i in range(0, len(block), 4096):
        block[i] = 1
    time.sleep(5)


_HOG_CHILD = """
import sys, time
block = bytearray(int(sys.argv[1]) * 1024 * 1024)
for i in range(0, len(block), 4096):
    block[i] = 1
print("child holds", sys.argv[1], "MB", flush=True)
time.sleep(300)
"""


def escape(event, context):
    """A new-session child (out of the environment's process group): a sleeper, or one that
    holds ``mb`` MB; the handler waits for it to hold its memory when asked."""
    mb = event.get("mb", 0)
    if mb:
        child = subprocess.Popen(
            [sys.executable, "-c", _HOG_CHILD, str(mb)],
            start_new_session=True,
            stdout=subprocess.PIPE,
        )
        assert child.stdout is not None
        child.stdout.readline()
        time.sleep(event.get("hold", 0.5))
    else:
        child = subprocess.Popen(["sleep", "300"], start_new_session=True)
    return {"child": child.pid}


def close_stdio(event, context):
    os.close(1)
    os.close(2)
    return {"closed": True}


def linger(event, context):
    threading.Thread(target=time.sleep, args=(300,)).start()
    return {"lingering": True}


def drop_connection(event, context):
    """Close every socket of this process (the Runtime API connection among them)."""
    for name in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{name}")
        except OSError:
            continue
        if target.startswith("socket:"):
            os.close(int(name))
    return {"dropped": True}
