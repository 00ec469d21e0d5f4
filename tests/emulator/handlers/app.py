"""Handlers the emulator tests drive (one module, many entry points)."""

import os
import signal
import subprocess
import sys
import time


def echo(event, context):
    print("echo got", event)
    return {"event": event, "request_id": context.aws_request_id}


def context_info(event, context):
    keys = [
        "AWS_LAMBDA_FUNCTION_NAME",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
        "AWS_LAMBDA_FUNCTION_VERSION",
        "AWS_LAMBDA_LOG_GROUP_NAME",
        "AWS_LAMBDA_LOG_STREAM_NAME",
        "AWS_REGION",
        "AWS_DEFAULT_REGION",
        "AWS_LAMBDA_INITIALIZATION_TYPE",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "LAMBDA_TASK_ROOT",
        "_HANDLER",
        "AWS_LAMBDA_RUNTIME_API",
        "TZ",
        "LANG",
        "_X_AMZN_TRACE_ID",
        "CUSTOM_VAR",
        "HOME_MARK",
    ]
    client = None
    if context.client_context is not None:
        client = {"custom": context.client_context.custom, "env": context.client_context.env}
    return {
        "env": {k: os.environ.get(k) for k in keys},
        "function_name": context.function_name,
        "arn": context.invoked_function_arn,
        "memory": context.memory_limit_in_mb,
        "remaining_ms": context.get_remaining_time_in_millis(),
        "log_stream": context.log_stream_name,
        "client_context": client,
        "tenant_id": getattr(context, "tenant_id", None),
        "pid": os.getpid(),
    }


def fail(event, context):
    print("about to fail")
    raise ValueError("boom: " + str(event.get("why", "no reason")))


def sleep(event, context):
    print("sleeping", event.get("seconds", 0))
    time.sleep(event.get("seconds", 0))
    return {"slept": event.get("seconds", 0), "pid": os.getpid()}


def crash(event, context):
    print("crashing now")
    sys.stdout.flush()
    os._exit(event.get("status", 3))


def segfault(event, context):
    os.kill(os.getpid(), signal.SIGSEGV)


def hog(event, context):
    # Touch every page so the memory is resident, then hold it for a moment.
    block = bytearray(event["mb"] * 1024 * 1024)
    for i in range(0, len(block), 4096):
        block[i] = 1
    time.sleep(event.get("hold", 0.3))
    return {"allocated_mb": event["mb"]}


def spawn_child_then_crash(event, context):
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    print("child pid", child.pid)
    sys.stdout.flush()
    if event.get("crash", True):
        os._exit(1)
    return {"child": child.pid}


def pid(event, context):
    return {"pid": os.getpid()}


def big_response(event, context):
    return "x" * event["size"]


def printer(event, context):
    for i in range(event.get("lines", 3)):
        print(f"line {i}")
    return "printed"


def otel_env(event, context):
    return {
        "otel": {k: v for k, v in os.environ.items() if k.startswith("OTEL_")},
        "runtime_api": os.environ["AWS_LAMBDA_RUNTIME_API"],
    }


def fail_stamped(event, context):
    # CLOCK_MONOTONIC is system-wide on Linux: the test compares it with its own.
    print(f"attempt started at {time.monotonic():.6f}")
    raise ValueError("fails on every attempt")
