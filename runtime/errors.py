"""Error payloads: what the runtime posts to /error and /init/error, and what it logs.

Body: ``{"errorMessage", "errorType", "requestId", "stackTrace"}`` as the managed Python runtime
sends it. ``stackTrace`` holds the user's frames only, each a string formatted like a line pair of
a Python traceback. Beyond the managed runtime, and only when present:

- ``notes``: the exception's ``__notes__`` (``add_note``), in order;
- ``cause``: the error object of ``__cause__`` (``raise ... from err``);
- ``context``: the error object of ``__context__`` (raised while handling another), when there is
  no explicit cause and the context was not suppressed (``from None``);
- ``exceptions``: the error objects of an exception group's members.

Nested objects have the same shape (without ``requestId``), to a bounded depth.
"""

from __future__ import annotations

import builtins
import importlib
import json
import os
from types import TracebackType

import orjson

from runtime.protocol import XRAY_CAUSE_LIMIT

# typing costs milliseconds of cold start; it is only needed by the type checker.
TYPE_CHECKING = False
if TYPE_CHECKING:
    import traceback
    from typing import Any

_RUNTIME_DIR = os.path.dirname(os.path.abspath(__file__))
_IMPORTLIB_DIR = os.path.dirname(os.path.abspath(importlib.__file__))
_NOT_USER_DIRS = (_RUNTIME_DIR + os.sep, _IMPORTLIB_DIR + os.sep)
_MAX_DEPTH = 8
_MAX_GROUP_MEMBERS = 32
# An error body (and the log line made from it) stays under CloudWatch's 256 KB event size,
# far under the 6 MB a post may carry.
ERROR_BODY_LIMIT = 256 * 1024
# Python 3.10 has no exception groups; there the attribute is simply absent.
_BASE_EXCEPTION_GROUP: type[BaseException] | None = getattr(builtins, "BaseExceptionGroup", None)


class LambdaError(Exception):
    """An error the runtime reports with a Lambda error type of its own (``Runtime.*``)."""

    def __init__(
        self, error_type: str, message: str, stack_trace: list[str] | None = None
    ) -> None:
        super().__init__(message)
        self.error_type = error_type
        self.message = message
        self.stack_trace = stack_trace if stack_trace is not None else []


def error_type_of(exc: BaseException) -> str:
    if isinstance(exc, LambdaError):
        return exc.error_type
    return type(exc).__name__


def _message_of(exc: BaseException) -> str:
    if isinstance(exc, LambdaError):
        return exc.message
    try:
        return str(exc)
    except Exception:
        return f"<unprintable {type(exc).__name__} object>"


def _user_frames(tb: TracebackType | None) -> traceback.StackSummary:
    """The frames of user code: not the runtime's, nor the import machinery's that sit between
    the runtime and a module failing at import."""
    import traceback  # with textwrap and linecache: only once something has failed

    frames = traceback.extract_tb(tb)
    return traceback.StackSummary.from_list(
        [
            f
            for f in frames
            if not os.path.abspath(f.filename).startswith(_NOT_USER_DIRS)
            and not f.filename.startswith("<frozen importlib")
        ]
    )


def _describe(exc: BaseException, depth: int, seen: set[int]) -> dict[str, Any]:
    seen.add(id(exc))
    if isinstance(exc, LambdaError):
        stack = list(exc.stack_trace)
    else:
        stack = _user_frames(exc.__traceback__).format()
    body: dict[str, Any] = {
        "errorMessage": _message_of(exc),
        "errorType": error_type_of(exc),
        "stackTrace": stack,
    }
    notes = getattr(exc, "__notes__", None)
    if isinstance(notes, list) and notes:
        body["notes"] = [str(n) for n in notes]
    if depth >= _MAX_DEPTH:
        return body
    cause = exc.__cause__
    context = exc.__context__
    if cause is not None and id(cause) not in seen:
        body["cause"] = _describe(cause, depth + 1, seen)
    elif context is not None and not exc.__suppress_context__ and id(context) not in seen:
        body["context"] = _describe(context, depth + 1, seen)
    members = getattr(exc, "exceptions", None)
    if _is_group(exc) and isinstance(members, tuple):
        body["exceptions"] = [
            _describe(m, depth + 1, seen)
            for m in members[:_MAX_GROUP_MEMBERS]
            if isinstance(m, BaseException) and id(m) not in seen
        ]
    return body


def _is_group(exc: BaseException) -> bool:
    return _BASE_EXCEPTION_GROUP is not None and isinstance(exc, _BASE_EXCEPTION_GROUP)


def error_body(exc: BaseException, request_id: str | None = None) -> dict[str, Any]:
    """The JSON-ready error object for ``exc`` (see the module docstring for its shape), at
    most ERROR_BODY_LIMIT bytes once encoded."""
    body = _describe(exc, 0, set())
    if request_id is not None:
        # Keep the managed runtime's key order: message, type, requestId, stackTrace.
        ordered = {
            "errorMessage": body.pop("errorMessage"),
            "errorType": body.pop("errorType"),
            "requestId": request_id,
        }
        ordered.update(body)
        body = ordered
    return _within_limit(body)


def _within_limit(body: dict[str, Any]) -> dict[str, Any]:
    """``body``, with long texts and stacks clipped until it fits: an error the Runtime API
    refuses (413) or a log line CloudWatch splits would lose the error itself."""
    if len(encode_error(body)) <= ERROR_BODY_LIMIT:
        return body
    for keep in (16384, 2048, 256):
        clipped: dict[str, Any] = _clip(body, keep)
        if len(encode_error(clipped)) <= ERROR_BODY_LIMIT:
            return clipped
    # Only the outermost error is left: its type, id and the start of its message.
    keys = ("errorMessage", "errorType", "requestId")
    top: dict[str, Any] = {k: _clip(body[k], 256) for k in keys if k in body}
    top["stackTrace"] = _clip(body.get("stackTrace", []), 256)[-16:]
    return top


def _clip(value: Any, keep: int) -> Any:
    if isinstance(value, str):
        if len(value) <= keep:
            return value
        return f"{value[:keep]}... [{len(value) - keep} more characters]"
    if isinstance(value, list):
        # Stack traces: the innermost frames (the end of the list) say where it failed.
        return [_clip(v, keep) for v in value[-max(keep // 64, 4) :]]
    if isinstance(value, dict):
        return {k: _clip(v, keep) for k, v in value.items()}
    return value


def encode_error(body: dict[str, Any]) -> bytes:
    try:
        return orjson.dumps(body, default=str)
    except TypeError:
        # orjson refuses lone surrogates (e.g. a file name read with surrogateescape).
        return json.dumps(body, default=str, separators=(",", ":")).encode()


def xray_cause(exc: BaseException) -> bytes | None:
    """The ``Lambda-Runtime-Function-XRay-Error-Cause`` header value, under 64 KiB, or None.

    The value is ASCII-only JSON (non-ASCII characters escaped), as a header must be.
    """
    exceptions: list[dict[str, Any]] = []
    current: BaseException | None = exc
    seen: set[int] = set()
    while current is not None and id(current) not in seen and len(exceptions) < _MAX_DEPTH:
        seen.add(id(current))
        stack = [
            {"path": frame.filename, "line": frame.lineno, "label": frame.name}
            for frame in _user_frames(current.__traceback__)
        ]
        exceptions.append(
            {"message": _message_of(current), "type": error_type_of(current), "stack": stack}
        )
        current = current.__cause__ or (
            None if current.__suppress_context__ else current.__context__
        )
    cwd = os.getcwd()
    encoded = _encode_cause(cwd, exceptions)
    # Shrink the biggest parts first: the innermost frames matter most, so keep them.
    while len(encoded) >= XRAY_CAUSE_LIMIT:
        biggest = max(exceptions, key=lambda e: len(e["stack"]))
        if biggest["stack"]:
            del biggest["stack"][: max(1, len(biggest["stack"]) // 2)]
        elif len(exceptions) > 1:
            exceptions.pop()
        elif len(exceptions[0]["message"]) > _XRAY_MESSAGE_KEEP + len(_TRUNCATED):
            exceptions[0]["message"] = exceptions[0]["message"][:_XRAY_MESSAGE_KEEP] + _TRUNCATED
        else:
            return None
        encoded = _encode_cause(cwd, exceptions)
    return encoded


_XRAY_MESSAGE_KEEP = 1024
_TRUNCATED = "... (truncated)"


def _encode_cause(cwd: str, exceptions: list[dict[str, Any]]) -> bytes:
    # Paths are derived from the frames kept, so shrinking the stacks shrinks them too.
    paths = list(dict.fromkeys(f["path"] for e in exceptions for f in e["stack"]))
    cause = {"working_directory": cwd, "exceptions": exceptions, "paths": paths}
    # The stdlib encoder escapes to ASCII (headers must be) and copes with lone surrogates.
    return json.dumps(cause, ensure_ascii=True, separators=(",", ":"), default=str).encode()


def format_for_log(body: dict[str, Any]) -> str:
    """The error as the log shows it: ``Type: message`` then a Python-style traceback."""
    lines = [f"{body.get('errorType', '')}: {body.get('errorMessage', '')}"]
    _append_trace(lines, body)
    return "\n".join(lines)


def _append_trace(lines: list[str], body: dict[str, Any]) -> None:
    stack = body.get("stackTrace") or []
    if stack:
        lines.append("Traceback (most recent call last):")
        for entry in stack:
            lines.extend(str(entry).rstrip("\n").splitlines())
    for note in body.get("notes", ()):
        lines.append(str(note))
    for index, member in enumerate(body.get("exceptions", ()), 1):
        lines.append(f"  +---------------- {index} ----------------")
        lines.append(f"  {member.get('errorType')}: {member.get('errorMessage')}")
    if "cause" in body:
        lines.append("")
        lines.append("Caused by (raise ... from): " + _headline(body["cause"]))
        _append_trace(lines, body["cause"])
    elif "context" in body:
        lines.append("")
        lines.append("During handling of: " + _headline(body["context"]))
        _append_trace(lines, body["context"])


def _headline(body: dict[str, Any]) -> str:
    return f"{body.get('errorType')}: {body.get('errorMessage')}"
