"""Platform log lines (Text and JSON, as Lambda writes them) and the error payloads Lambda builds.

Text lines are tab-separated exactly like CloudWatch shows them::

    START RequestId: <id> Version: $LATEST
    END RequestId: <id>
    REPORT RequestId: <id>\tDuration: 2.10 ms\tBilled Duration: 3 ms\tMemory Size: 128 MB\t...

With ``AWS_LAMBDA_LOG_FORMAT=JSON`` the same events are ``platform.*`` records.
"""

from __future__ import annotations

import hashlib
import math
import signal
import time
from dataclasses import dataclass

import orjson

VERSION = "$LATEST"
RUNTIME_VERSION = "lambda-runtime-emulator"
RUNTIME_VERSION_ARN_SUFFIX = hashlib.sha256(RUNTIME_VERSION.encode()).hexdigest()


def iso_now() -> str:
    """UTC time with milliseconds and a ``Z``, the form Lambda uses in platform records."""
    now = time.time()
    ms = int(now * 1000) % 1000
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + f".{ms:03d}Z"


@dataclass
class Report:
    """What a REPORT line says about one invoke (also returned by the Python API)."""

    request_id: str
    duration_ms: float
    billed_duration_ms: int
    memory_size_mb: int
    max_memory_used_mb: int
    init_duration_ms: float | None = None
    # None for success (and for a function error the runtime reported itself), else
    # "timeout" or "error" (the runtime crashed, ran out of memory or failed to init).
    status: str | None = None
    error_type: str | None = None
    # SnapStart: on the first invoke of a restored environment, instead of the Init Duration.
    restore_duration_ms: float | None = None

    @property
    def billed_restore_duration_ms(self) -> int | None:
        # The snapshot's own restore is simulated (no time), so all of it is billed: the
        # runtime's restore and the after-restore hooks.
        if self.restore_duration_ms is None:
            return None
        return billed_ms(self.restore_duration_ms)

    def text(self) -> str:
        parts = [
            f"REPORT RequestId: {self.request_id}",
            f"Duration: {self.duration_ms:.2f} ms",
            f"Billed Duration: {self.billed_duration_ms} ms",
            f"Memory Size: {self.memory_size_mb} MB",
            f"Max Memory Used: {self.max_memory_used_mb} MB",
        ]
        if self.init_duration_ms is not None:
            parts.append(f"Init Duration: {self.init_duration_ms:.2f} ms")
        if self.restore_duration_ms is not None:
            parts.append(f"Restore Duration: {self.restore_duration_ms:.2f} ms")
            parts.append(f"Billed Restore Duration: {self.billed_restore_duration_ms} ms")
        if self.status is not None:
            parts.append(f"Status: {self.status}")
            if self.error_type:
                parts.append(f"Error Type: {self.error_type}")
        return "\t".join(parts) + "\t"

    def json(self, function_error_type: str | None, note: str | None = None) -> bytes:
        metrics: dict[str, object] = {
            "durationMs": round(self.duration_ms, 2),
            "billedDurationMs": self.billed_duration_ms,
            "memorySizeMB": self.memory_size_mb,
            "maxMemoryUsedMB": self.max_memory_used_mb,
        }
        if self.init_duration_ms is not None:
            metrics["initDurationMs"] = round(self.init_duration_ms, 2)
        if self.restore_duration_ms is not None:
            metrics["restoreDurationMs"] = round(self.restore_duration_ms, 2)
            metrics["billedRestoreDurationMs"] = self.billed_restore_duration_ms
        record: dict[str, object] = {"requestId": self.request_id, "metrics": metrics}
        if self.status == "timeout":
            record["status"] = "timeout"
        elif self.status is not None:
            record["status"] = "failure"
            record["errorType"] = self.error_type
        elif function_error_type is not None:
            record["status"] = "error"
            record["errorType"] = function_error_type
        else:
            record["status"] = "success"
        if note is not None:
            record["emulatorNote"] = note
        return _record("platform.report", record)


def billed_ms(duration_ms: float) -> int:
    return max(1, math.ceil(duration_ms))


def _record(kind: str, record: dict[str, object]) -> bytes:
    return orjson.dumps({"time": iso_now(), "type": kind, "record": record})


class PlatformLog:
    """Renders platform events in the function's log format (Text or JSON)."""

    def __init__(self, json_format: bool, function_name: str, region: str) -> None:
        self.json = json_format
        self.function_name = function_name
        self.arn = f"arn:aws:lambda:{region}::runtime:{RUNTIME_VERSION_ARN_SUFFIX}"
        # A field the emulator adds to every REPORT (e.g. that the timeout is suspended while
        # debugging), so nobody takes the numbers for Lambda's.
        self.report_note: str | None = None

    def init_start(self, init_type: str = "on-demand", phase: str = "init") -> bytes:
        if self.json:
            return _record(
                "platform.initStart",
                {
                    "initializationType": init_type,
                    "phase": phase,
                    "runtimeVersion": RUNTIME_VERSION,
                    "runtimeVersionArn": self.arn,
                    "functionName": self.function_name,
                    "functionVersion": VERSION,
                },
            )
        return (
            f"INIT_START Runtime Version: {RUNTIME_VERSION}\tRuntime Version ARN: {self.arn}"
        ).encode()

    def init_report(
        self,
        duration_ms: float,
        phase: str,
        status: str,
        error_type: str | None,
        init_type: str = "on-demand",
    ) -> bytes:
        if self.json:
            record: dict[str, object] = {
                "initializationType": init_type,
                "phase": phase,
                "status": status,
                "metrics": {"durationMs": round(duration_ms, 2)},
            }
            if error_type:
                record["errorType"] = error_type
            return _record("platform.initReport", record)
        line = f"INIT_REPORT Init Duration: {duration_ms:.2f} ms\tPhase: {phase}\tStatus: {status}"
        if error_type:
            line += f"\tError Type: {error_type}"
        return line.encode()

    def restore_start(self) -> bytes:
        """SnapStart: an environment is being restored from the snapshot."""
        if self.json:
            return _record(
                "platform.restoreStart",
                {
                    "runtimeVersion": RUNTIME_VERSION,
                    "runtimeVersionArn": self.arn,
                    "functionName": self.function_name,
                    "functionVersion": VERSION,
                },
            )
        return (
            f"RESTORE_START Runtime Version: {RUNTIME_VERSION}\tRuntime Version ARN: {self.arn}"
        ).encode()

    def restore_report(
        self, duration_ms: float, status: str = "success", error_type: str | None = None
    ) -> bytes:
        """SnapStart: the restore (with the after-restore hooks) is over."""
        if self.json:
            record: dict[str, object] = {
                "status": status,
                "metrics": {"durationMs": round(duration_ms, 2)},
            }
            if error_type:
                record["errorType"] = error_type
            return _record("platform.restoreReport", record)
        line = f"RESTORE_REPORT Restore Duration: {duration_ms:.2f} ms"
        if status != "success":
            line += f"\tStatus: {status}"
            if error_type:
                line += f"\tError Type: {error_type}"
        return line.encode()

    def start(self, request_id: str) -> bytes:
        if self.json:
            return _record("platform.start", {"requestId": request_id, "version": VERSION})
        return f"START RequestId: {request_id} Version: {VERSION}".encode()

    def end(self, request_id: str) -> bytes | None:
        # JSON mode has no END record; platform.report closes the invoke.
        if self.json:
            return None
        return f"END RequestId: {request_id}".encode()

    def report(self, report: Report, function_error_type: str | None) -> bytes:
        if self.json:
            return report.json(function_error_type, self.report_note)
        text = report.text()
        return (text + f"{self.report_note}\t" if self.report_note else text).encode()

    def timeout(self, request_id: str, seconds: float) -> bytes:
        # Lambda writes this line in both formats as plain text.
        return f"{iso_now()} {request_id} Task timed out after {seconds:.2f} seconds".encode()


def exit_description(returncode: int) -> str:
    """``exit status 1`` / ``signal: killed``, the way Lambda (Go) words a process's end."""
    if returncode >= 0:
        return f"exit status {returncode}"
    signum = -returncode
    try:
        name = signal.strsignal(signum) or f"signal {signum}"
    except ValueError:
        name = f"signal {signum}"
    return f"signal: {name.lower()}"


def error_payload(error_type: str, message: str) -> bytes:
    return orjson.dumps({"errorType": error_type, "errorMessage": message})


def timeout_payload(request_id: str, seconds: float) -> bytes:
    return error_payload(
        "Sandbox.Timedout",
        f"RequestId: {request_id} Error: Task timed out after {seconds:.2f} seconds",
    )


def exit_payload(request_id: str, error_type: str, returncode: int) -> bytes:
    return error_payload(
        error_type,
        f"RequestId: {request_id} Error: Runtime exited with error: {exit_description(returncode)}",
    )


def api_error(kind: str, message: str, *, service: bool = False, **extra: str) -> bytes:
    """Body of an Invoke API error (the error code also goes in ``x-amzn-ErrorType``).

    ``Type`` says whose fault it is, as in AWS's error bodies: ``User`` for the caller's
    (4xx), ``Service`` for the service's own (5xx)."""
    body: dict[str, str] = {"Type": "Service" if service else "User", "message": message}
    body.update(extra)
    return orjson.dumps(body)


def error_payload_from_runtime(error_type: str, body: bytes) -> bytes:
    """The error JSON a runtime posted; Lambda falls back to the header when it is unreadable."""
    if body:
        try:
            parsed = orjson.loads(body)
        except orjson.JSONDecodeError:
            parsed = None
        if isinstance(parsed, dict):
            return body
    return error_payload(error_type or "Runtime.Unknown", "Unknown application error occurred")
