"""Event decoding and result encoding, with Lambda's payload size limit."""

from __future__ import annotations

import orjson

from runtime.errors import LambdaError
from runtime.protocol import MAX_RESPONSE_BYTES

# typing costs milliseconds of cold start; it is only needed by the type checker.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

JSON_CONTENT_TYPE = "application/json"
BINARY_CONTENT_TYPE = "application/octet-stream"

_OPTIONS = orjson.OPT_NON_STR_KEYS | orjson.OPT_SERIALIZE_NUMPY
_RAW_TYPES = (bytes, bytearray, memoryview)


def decode_event(body: bytes, content_type: str | None) -> Any:
    """JSON events become Python objects, exactly as ``json.loads`` decodes them; any other
    content type is handed over as bytes."""
    if content_type and content_type != JSON_CONTENT_TYPE and not _is_json(content_type):
        return body
    if not body:
        return None
    try:
        event = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        # orjson refuses some valid JSON (lone surrogate escapes, nesting past 1024 levels,
        # numbers beyond a double's range): the stdlib decoder has the last word.
        return _decode_exact(body, exc)
    # orjson silently turns an integer beyond 64 bits into a float. Such a literal has at least
    # 19 digits in a row; this C-speed test is all an ordinary event pays (~0.5 us for a small
    # event, ~0.6 ms per MB).
    if len(body) > 18:
        zeros = body.translate(_DIGITS_AS_ZERO)
        if zeros.find(_DIGIT_RUN) >= 0 and _has_big_int(body, zeros):
            return _decode_exact(body, None)
    return event


# Every digit becomes "0", so a run of 19 digits becomes _DIGIT_RUN.
_DIGITS_AS_ZERO = bytes.maketrans(b"123456789", b"000000000")
_DIGIT_RUN = b"0" * 19


# Where a JSON number can stand: what may come before it and after it. A "." or an exponent
# after the digits makes a float, which orjson decodes as json.loads does.
_BEFORE_NUMBER = b" \t\r\n:,["
_AFTER_INTEGER = b" \t\r\n,]}"


def _has_big_int(body: bytes, zeros: bytes) -> bool:
    """Whether a digit run in ``body`` is an integer outside orjson's range. ``zeros`` is
    ``body`` with every digit as "0", where runs are found at C speed. Only a run that stands
    where a JSON integer can counts: a hex id inside a string ("...799728fb...") does not send
    a whole event down the slow path. A run inside a string that looks like an integer (after a
    space, say) is a false alarm: a slower decode, never a wrong one."""
    size = len(body)
    start = zeros.find(_DIGIT_RUN)
    while start >= 0:
        end = start + len(_DIGIT_RUN)
        while end < size and zeros[end] == 0x30:
            end += 1
        begin = start - 1 if start and body[start - 1] == 0x2D else start  # a minus sign
        if (begin == 0 or body[begin - 1] in _BEFORE_NUMBER) and (
            end == size or body[end] in _AFTER_INTEGER
        ):
            run = body[begin:end]
            digits = run.lstrip(b"-").lstrip(b"0")
            # More than 20 significant digits is out of range for sure (and int() of a huge
            # run would hit Python's 4300-digit limit).
            if len(digits) > 20 or not _INT_MIN <= int(run) <= _INT_MAX:
                return True
        start = zeros.find(_DIGIT_RUN, end)
    return False


def _decode_exact(body: bytes, orjson_error: Exception | None) -> Any:
    import json

    try:
        # JSON text is UTF-8 (RFC 8259); json.loads(bytes) would also guess UTF-16 and -32.
        text = body.decode("utf-8")
        try:
            return json.loads(text, parse_constant=_reject_constant)
        except RecursionError:
            return _decode_deep(text)
    except (ValueError, RecursionError) as exc:
        # Invalid JSON keeps orjson's message, which says where (line and column).
        detail = exc if orjson_error is None or isinstance(exc, _TooDeep) else orjson_error
        message = f"Unable to unmarshal input: {detail}"
        raise LambdaError("Runtime.UnmarshalError", message) from None


class _TooDeep(ValueError):
    pass


# Deeper than this is refused: each level costs a few Python frames (heap, not C stack).
MAX_EVENT_DEPTH = 10_000


def _decode_deep(text: str) -> Any:
    """Valid JSON nested deeper than the C decoder's recursion allows (~1000 levels)."""
    import json
    import json.scanner
    import sys

    decoder = json.JSONDecoder(parse_constant=_reject_constant)
    # The pure-Python scanner recurses in Python frames only (no C stack), so a higher
    # recursion limit is safe for it; restored at once.
    decoder.scan_once = json.scanner.py_make_scanner(decoder)  # type: ignore[attr-defined]
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(limit + 4 * MAX_EVENT_DEPTH)
    try:
        return decoder.decode(text)
    except RecursionError:
        raise _TooDeep(f"JSON nested deeper than {MAX_EVENT_DEPTH} levels") from None
    finally:
        sys.setrecursionlimit(limit)


def _reject_constant(name: str) -> Any:
    # NaN and Infinity are Python's extensions, not JSON; orjson refuses them too.
    raise ValueError(f"{name} is not valid JSON")


def _is_json(content_type: str) -> bool:
    media = content_type.partition(";")[0].strip().lower()
    return media == JSON_CONTENT_TYPE or media.endswith("+json")


def _default(obj: Any) -> Any:
    # orjson encodes dataclasses, datetimes and UUIDs itself; Decimal (and its subclasses) is
    # the one JSON type it leaves to us. Matched by name so that cold start does not pay for
    # importing decimal.
    if _is_decimal(obj):
        if not obj.is_finite():
            raise TypeError(f"Decimal {obj} has no JSON form")
        digits = str(obj)
        if len(digits) > _LONG_DECIMAL:
            # The slow path writes it, with few closing brackets after it (_FRAGMENT_DEPTH).
            raise TypeError("long Decimal")
        # A Fragment keeps every digit: float(obj) would round 0.1 to 0.1000000000000000055...
        return orjson.Fragment(digits.encode())
    if isinstance(obj, (set, frozenset)):
        raise TypeError("set")
    raise TypeError(type(obj).__name__)


def _is_decimal(obj: Any) -> bool:
    return any(
        c.__name__ == "Decimal" and c.__module__ in ("decimal", "_pydecimal")
        for c in type(obj).__mro__
    )


# orjson writes the brackets that close after a raw fragment without reserving room for them
# (see _FRAGMENT_DEPTH). A Decimal of thousands of digits nested 70 levels deep made it write
# past its buffer; none shorter than 2,100 characters was seen to. Longer than this, a Decimal
# is left to the slow path, which closes at most 16 brackets after a fragment.
_LONG_DECIMAL = 256


def encode_result(result: Any) -> tuple[bytes | bytearray | memoryview, str]:
    """The response body and its content type; raises LambdaError for what cannot be sent."""
    if isinstance(result, _RAW_TYPES):
        body: bytes | bytearray | memoryview = result
        content_type = BINARY_CONTENT_TYPE
    else:
        try:
            body = orjson.dumps(result, default=_default, option=_OPTIONS)
        except (TypeError, orjson.JSONEncodeError):
            body = _encode_slow(result)
        content_type = JSON_CONTENT_TYPE
    size = body.nbytes if isinstance(body, memoryview) else len(body)
    if size > MAX_RESPONSE_BYTES:
        raise LambdaError(
            "Function.ResponseSizeTooLarge",
            f"Response payload size ({size} bytes) exceeded maximum allowed payload size "
            f"({MAX_RESPONSE_BYTES} bytes).",
        )
    return body, content_type


def _encode_slow(result: Any) -> bytes:
    """orjson refused: name what and where, or encode what it cannot (huge ints, deep nesting)."""
    found = find_unserializable(result)
    if found is not None:
        path, obj = found
        if type(obj).__name__ == "Decimal":
            raise _marshal_error(f"Decimal({str(obj)!r}) has no JSON form (at {path})")
        raise _marshal_error(
            f"Object of type {type(obj).__name__} is not JSON serializable (at {path})"
        )
    try:
        return orjson.dumps(_encodable(result), default=_default, option=_OPTIONS)
    # orjson's error, e.g. a lone surrogate in a string; ValueError: an int of more digits than
    # Python converts to text (4,300 unless the function raised sys.set_int_max_str_digits).
    except (orjson.JSONEncodeError, ValueError) as slow_exc:
        raise _marshal_error(str(slow_exc)) from None


_INT_MIN = -(2**63)
_INT_MAX = 2**64 - 1

# orjson refuses to nest deeper than 255 levels: the copy made for it is cut into raw JSON
# fragments every this many levels, so that each orjson call stays within its limit. Far below
# it, because orjson writes the brackets that close after a fragment without reserving room:
# past about 64 of them it writes beyond its buffer (orjson 3.13: a heap corruption, seen with
# a 3,900-byte fragment inside 70 lists). It reserves 32 bytes beyond a fragment, so 16 fit.
_FRAGMENT_DEPTH = 16
# Deeper than this is refused, as for events (MAX_EVENT_DEPTH).
MAX_RESULT_DEPTH = 10_000

if TYPE_CHECKING:
    from collections.abc import Iterator

    # A container being copied: its kind ("dict", "list" or "attr" for a dataclass), the
    # (key, value) pairs still to copy, the copy, its key in its parent, its path segment, id.
    _Open = tuple[str, Iterator[tuple[Any, Any]], Any, Any, str, int]


def _encodable(result: Any) -> Any:
    """A copy of ``result`` that orjson writes exactly as it would write ``result`` itself if it
    had no 64-bit and no 255-level limit: ints beyond 64 bits become raw JSON fragments, and so
    does every container nested a multiple of ``_FRAGMENT_DEPTH`` levels deep, encoded by orjson
    (Decimal digits, NaN as null, key conversion all stay orjson's). Iterative, so depth costs
    heap, not Python frames."""
    import enum

    top: list[Any] = []
    stack: list[_Open] = [("list", iter([(0, result)]), top, None, "", id(top))]
    active: set[int] = set()
    while stack:
        kind, children, copy, _, _, _ = stack[-1]
        child = next(children, None)
        if child is None:
            _, _, done, key, _, ident = stack.pop()
            active.discard(ident)
            if not stack:
                break
            if len(stack) % _FRAGMENT_DEPTH == 0:
                done = orjson.Fragment(orjson.dumps(done, default=_default, option=_OPTIONS))
            _put(stack[-1][0], stack[-1][2], key, done)
            continue
        key, value = child
        if isinstance(value, enum.Enum) and not isinstance(value, int):
            value = value.value  # orjson writes a member as its value, which may be a big int
        opened = _open(value)
        if opened is None:
            _put(kind, copy, key, _as_fragment(value))
            continue
        segment = f".{key}" if kind == "attr" else f"[{key!r}]"
        if id(value) in active:
            # stack[0] stands for the caller, stack[1] is the result itself.
            path = "result" + "".join(frame[4] for frame in stack[2:]) + segment
            raise _marshal_error(f"circular reference at {path}")
        if len(stack) > MAX_RESULT_DEPTH:
            # No path: it would be tens of kilobytes of "[0]".
            raise _marshal_error(f"result nested deeper than {MAX_RESULT_DEPTH} levels")
        active.add(id(value))
        stack.append((opened[0], opened[1], opened[2], key, segment, id(value)))
    return top[0]


def _marshal_error(problem: str) -> LambdaError:
    return LambdaError("Runtime.MarshalError", f"Unable to marshal response: {problem}")


def _open(value: Any) -> tuple[str, Iterator[tuple[Any, Any]], Any] | None:
    """A container's kind, (key, value) pairs and empty copy; None for anything else."""
    if isinstance(value, dict):
        return "dict", iter(value.items()), {}
    if isinstance(value, (list, tuple)):
        return "list", enumerate(value), []
    import dataclasses

    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return "attr", iter(_dataclass_items(value)), {}
    return None


def _put(kind: str, copy: Any, key: Any, value: Any) -> None:
    if kind == "list":
        copy.append(value)
    else:
        copy[_big_key(key)] = value


def _dataclass_items(obj: Any) -> list[tuple[str, Any]]:
    """The attributes orjson writes for a dataclass instance: those of its ``__dict__`` (its
    fields for a slotted one), without the "private" ones whose name starts with "_"."""
    import dataclasses

    if hasattr(obj, "__dict__"):
        items = list(vars(obj).items())
    else:
        items = [(f.name, getattr(obj, f.name)) for f in dataclasses.fields(obj)]
    return [(name, value) for name, value in items if not name.startswith("_")]


def _is_big_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and not (
        _INT_MIN <= value <= _INT_MAX
    )


def _as_fragment(value: Any) -> Any:
    """Ints beyond 64 bits and Decimals as raw JSON (orjson writes neither itself); any other
    value as it is."""
    if _is_big_int(value):
        return orjson.Fragment(str(int(value)).encode())
    if _is_decimal(value):  # finite: find_unserializable refused the others
        return orjson.Fragment(str(value).encode())
    return value


def _big_key(key: Any) -> Any:
    # A key is a string in JSON anyway; orjson refuses to write a big int key itself, or an
    # Enum key whose value is one.
    import enum

    plain = key.value if isinstance(key, enum.Enum) and not isinstance(key, int) else key
    return str(int(plain)) if _is_big_int(plain) else key


def find_unserializable(obj: Any, path: str = "result") -> tuple[str, Any] | None:
    """The path and value of the first part of ``obj`` that JSON cannot hold, or None."""
    # The error path only: these imports cost cold start, so they wait until needed.
    import dataclasses
    import datetime
    import decimal
    import enum
    import uuid

    scalars = (str, int, float, bool, type(None), datetime.datetime, datetime.date,
               datetime.time, uuid.UUID)
    stack: list[tuple[str, Any]] = [(path, obj)]
    seen: set[int] = set()
    while stack:
        where, value = stack.pop()
        if isinstance(value, scalars):
            continue
        if isinstance(value, decimal.Decimal):
            if not value.is_finite():
                return where, value
            continue
        if isinstance(value, enum.Enum):
            stack.append((f"{where}.value", value.value))
            continue
        if id(value) in seen:
            # Shared or cyclic; a cycle is then reported by _encodable, with its path.
            continue
        seen.add(id(value))
        if isinstance(value, dict):
            for key, item in reversed(list(value.items())):
                if not isinstance(key, (*scalars, enum.Enum)):
                    return f"{where} (key {key!r})", key
                stack.append((f"{where}[{key!r}]", item))
        elif isinstance(value, (list, tuple)):
            for index in range(len(value) - 1, -1, -1):
                stack.append((f"{where}[{index}]", value[index]))
        elif dataclasses.is_dataclass(value) and not isinstance(value, type):
            for name, item in reversed(_dataclass_items(value)):
                stack.append((f"{where}.{name}", item))
        elif type(value).__module__ == "numpy":
            continue
        else:
            return where, value
    return None
