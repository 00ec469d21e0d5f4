"""Handlers that misbehave, for the fault tests (one entry point per fault)."""

import ctypes
import os
import signal
import subprocess
import sys
import threading
import time


def _init_fault() -> None:
    """With FAULT_INIT=hang|raise, the first FAULT_INIT_TIMES inits (counted in the file
    FAULT_COUNTER) hang or raise; later ones succeed, so the next invoke can succeed."""
    kind = os.environ.get("FAULT_INIT")
    if not kind:
        return
    counter = os.environ["FAULT_COUNTER"]
    try:
        with open(counter) as f:
            done = int(f.read() or 0)
    except FileNotFoundError:
        done = 0
    if done >= int(os.environ.get("FAULT_INIT_TIMES", "2")):
        return
    with open(counter, "w") as f:
        f.write(str(done + 1))
    if kind == "hang":
        time.sleep(300)
    raise RuntimeError("fault: init raised")


_init_fault()


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


def handler(event, context):
    """Every fault by name (``{"fault": NAME}``); no fault: a plain success."""
    fault = event.get("fault") if isinstance(event, dict) else None
    if not fault:
        return {"ok": True, "pid": os.getpid()}
    return FAULTS[fault](event, context)


FAULTS = {
    "raise": raise_,
    "unserialisable": unserialisable,
    "exit": exit_,
    "sigkill": sigkill,
    "sigsegv": sigsegv,
    "busy": busy,
    "sleep": sleep,
    "hog": hog,
    "escape": escape,
    "close_stdio": close_stdio,
    "flood": flood,
    "linger": linger,
    "drop_connection": drop_connection,
}


def daemonize(event, context):
    """Double fork: a grandchild in its own session, orphaned at once, exiting after a moment."""
    read_end, write_end = os.pipe()
    child = os.fork()
    if child == 0:
        os.setsid()
        grandchild = os.fork()
        if grandchild == 0:
            time.sleep(event.get("seconds", 0.2))
            os._exit(0)
        os.write(write_end, str(grandchild).encode())
        os._exit(0)
    os.waitpid(child, 0)
    os.close(write_end)
    grandchild = int(os.read(read_end, 32))
    os.close(read_end)
    time.sleep(event.get("hold", 0))
    return {"grandchild": grandchild}
