"""``--otel-console``: receive the spans runtimes export over OTLP/HTTP and print them per invoke.

Imported only when ``--otel-console`` is on. How it works:

* **Receiver.** Each environment's Runtime API port also serves ``POST /v1/traces`` (OTLP/HTTP,
  protobuf body, optionally gzip), and the environment is started with
  ``OTEL_EXPORTER_OTLP_ENDPOINT=http://<that port>`` and ``OTEL_TRACES_EXPORTER=otlp``. So
  every span is known to come from one environment, with no extra port or thread.
* **Decoding.** ``ExportTraceServiceRequest`` is decoded by hand (the few messages of
  ``opentelemetry/proto/trace/v1/trace.proto`` the tree needs): the protobuf runtime would cost
  more to import than all of this.
* **Which invoke.** Spans are kept per environment and printed when the invoke they arrived
  during ends, right after its END/REPORT lines (our runtime exports after posting the response
  and before its next ``/next``, so an invoke's spans are in before its REPORT). Spans that
  arrive while no invoke runs on their environment are printed at once. Each trace is headed
  by the request id of the SERVER span it holds (``faas.invocation_id``), so spans exported late
  (retried by the runtime after a failed export) still say which invoke they belong to.
* **Tree.** One line per span, indented under its parent: name, kind, duration, start offset
  from the tree's root, status when set (``OK``, or ``ERROR`` with its description), and its
  attributes (minus the constant ARN ones); events (exceptions above all) are shown under
  their span.
"""

from __future__ import annotations

import json
import struct
import zlib
from collections.abc import Callable, Iterator

KINDS = ("UNSPECIFIED", "INTERNAL", "SERVER", "CLIENT", "PRODUCER", "CONSUMER")
STATUSES = ("UNSET", "OK", "ERROR")
SERVER = 2

# The same on every span of a function: shown nowhere, to keep lines short.
HIDDEN_ATTRIBUTES = frozenset({"cloud.resource_id", "cloud.account.id", "aws.lambda.invoked_arn"})
HIDDEN_EVENT_ATTRIBUTES = frozenset({"exception.stacktrace", "exception.escaped"})
MAX_ATTRIBUTES = 16
MAX_VALUE_CHARS = 80
# Per environment, spans waiting for the end of their invoke; older ones go first.
MAX_POOL = 10_000
MAX_BODY = 64 * 1024 * 1024
_MAX_DEPTH = 32


class OtlpError(ValueError):
    """The request is not a well-formed OTLP/HTTP protobuf trace export."""


class OtlpUnsupported(OtlpError):
    """A content type or encoding the receiver does not take (HTTP 415)."""


class Span:
    __slots__ = (
        "attributes",
        "end",
        "events",
        "kind",
        "name",
        "parent_id",
        "span_id",
        "start",
        "status_code",
        "status_message",
        "trace_id",
    )

    def __init__(self) -> None:
        self.trace_id = b""
        self.span_id = b""
        self.parent_id = b""
        self.name = ""
        self.kind = 0
        self.start = 0
        self.end = 0
        self.attributes: dict[str, object] = {}
        self.events: list[tuple[str, int, dict[str, object]]] = []
        self.status_code = 0
        self.status_message = ""

    @property
    def duration_ms(self) -> float:
        return max(0, self.end - self.start) / 1e6

    @property
    def invocation_id(self) -> str | None:
        value = self.attributes.get("faas.invocation_id")
        return value if self.kind == SERVER and isinstance(value, str) else None


# --- protobuf wire format -----------------------------------------------------------------------


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    result = 0
    shift = 0
    end = len(data)
    while True:
        if pos >= end:
            raise OtlpError("truncated varint")
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result, pos
        shift += 7
        if shift >= 70:
            raise OtlpError("varint longer than 10 bytes")


def _fields(data: bytes) -> Iterator[tuple[int, int, int | bytes]]:
    """(field number, wire type, value): an int for varints, bytes for the other types."""
    pos = 0
    size = len(data)
    while pos < size:
        key, pos = _varint(data, pos)
        number, wire = key >> 3, key & 7
        if number == 0:
            raise OtlpError("field number 0")
        value: int | bytes
        if wire == 0:
            value, pos = _varint(data, pos)
        elif wire == 2:
            length, pos = _varint(data, pos)
            if length > size - pos:
                raise OtlpError("length-delimited field runs past the end")
            value = data[pos : pos + length]
            pos += length
        elif wire == 1 or wire == 5:
            width = 8 if wire == 1 else 4
            if width > size - pos:
                raise OtlpError("fixed-size field runs past the end")
            value = data[pos : pos + width]
            pos += width
        else:
            raise OtlpError(f"unsupported wire type {wire}")
        yield number, wire, value


def _bytes(wire: int, value: int | bytes, what: str) -> bytes:
    if wire != 2 or not isinstance(value, bytes):
        raise OtlpError(f"{what}: expected a length-delimited field")
    return value


def _text(wire: int, value: int | bytes, what: str) -> str:
    return _bytes(wire, value, what).decode("utf-8", "replace")


def _uint(wire: int, value: int | bytes, what: str) -> int:
    if wire != 0 or not isinstance(value, int):
        raise OtlpError(f"{what}: expected a varint")
    return value


def _fixed64(wire: int, value: int | bytes, what: str) -> int:
    if wire != 1 or not isinstance(value, bytes):
        raise OtlpError(f"{what}: expected a fixed64")
    return int.from_bytes(value, "little")


def _any_value(data: bytes, depth: int) -> object:
    if depth > _MAX_DEPTH:
        raise OtlpError("attribute values nested too deeply")
    result: object = None
    for number, wire, value in _fields(data):
        if number == 1:
            result = _text(wire, value, "AnyValue.string_value")
        elif number == 2:
            result = bool(_uint(wire, value, "AnyValue.bool_value"))
        elif number == 3:
            n = _uint(wire, value, "AnyValue.int_value") & 0xFFFFFFFFFFFFFFFF
            result = n - (1 << 64) if n >= 1 << 63 else n
        elif number == 4:
            raw = value if wire == 1 and isinstance(value, bytes) else None
            if raw is None:
                raise OtlpError("AnyValue.double_value: expected a fixed64")
            result = struct.unpack("<d", raw)[0]
        elif number == 5:
            result = [
                _any_value(_bytes(w, v, "ArrayValue.values"), depth + 1)
                for n, w, v in _fields(_bytes(wire, value, "AnyValue.array_value"))
                if n == 1
            ]
        elif number == 6:
            result = dict(
                _key_value(_bytes(w, v, "KeyValueList.values"), depth + 1)
                for n, w, v in _fields(_bytes(wire, value, "AnyValue.kvlist_value"))
                if n == 1
            )
        elif number == 7:
            result = _bytes(wire, value, "AnyValue.bytes_value")
    return result


def _key_value(data: bytes, depth: int = 0) -> tuple[str, object]:
    key = ""
    result: object = None
    for number, wire, value in _fields(data):
        if number == 1:
            key = _text(wire, value, "KeyValue.key")
        elif number == 2:
            result = _any_value(_bytes(wire, value, "KeyValue.value"), depth)
    return key, result


def _event(data: bytes) -> tuple[str, int, dict[str, object]]:
    name = ""
    when = 0
    attributes: dict[str, object] = {}
    for number, wire, value in _fields(data):
        if number == 1:
            when = _fixed64(wire, value, "Event.time_unix_nano")
        elif number == 2:
            name = _text(wire, value, "Event.name")
        elif number == 3:
            key, item = _key_value(_bytes(wire, value, "Event.attributes"))
            attributes[key] = item
    return name, when, attributes


def _span(data: bytes) -> Span:
    span = Span()
    for number, wire, value in _fields(data):
        if number == 1:
            span.trace_id = _bytes(wire, value, "Span.trace_id")
        elif number == 2:
            span.span_id = _bytes(wire, value, "Span.span_id")
        elif number == 4:
            span.parent_id = _bytes(wire, value, "Span.parent_span_id")
        elif number == 5:
            span.name = _text(wire, value, "Span.name")
        elif number == 6:
            span.kind = _uint(wire, value, "Span.kind")
        elif number == 7:
            span.start = _fixed64(wire, value, "Span.start_time_unix_nano")
        elif number == 8:
            span.end = _fixed64(wire, value, "Span.end_time_unix_nano")
        elif number == 9:
            key, item = _key_value(_bytes(wire, value, "Span.attributes"))
            span.attributes[key] = item
        elif number == 11:
            span.events.append(_event(_bytes(wire, value, "Span.events")))
        elif number == 15:
            for n, w, v in _fields(_bytes(wire, value, "Span.status")):
                if n == 2:
                    span.status_message = _text(w, v, "Status.message")
                elif n == 3:
                    span.status_code = _uint(w, v, "Status.code")
    if len(span.trace_id) != 16 or len(span.span_id) != 8:
        raise OtlpError("a span needs a 16-byte trace_id and an 8-byte span_id")
    return span


def decode_export_request(data: bytes) -> list[Span]:
    """The spans of an ``ExportTraceServiceRequest`` (resource and scope are not kept)."""
    spans: list[Span] = []
    for number, wire, value in _fields(data):
        if number != 1:
            continue
        for n, w, v in _fields(_bytes(wire, value, "ResourceSpans")):
            if n != 2:
                continue
            for sn, sw, sv in _fields(_bytes(w, v, "ScopeSpans")):
                if sn == 2:
                    spans.append(_span(_bytes(sw, sv, "Span")))
    return spans


def read_body(body: bytes, content_type: bytes | None, encoding: bytes | None) -> list[Span]:
    """Check the request's headers, undo gzip, decode. Raises OtlpError with the reason."""
    kind = (content_type or b"application/x-protobuf").split(b";")[0].strip().lower()
    if kind != b"application/x-protobuf":
        raise OtlpUnsupported(
            f"content type {kind.decode('latin-1')!r} is not supported: the emulator takes "
            "OTLP/HTTP with protobuf bodies (OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf)"
        )
    coding = (encoding or b"identity").strip().lower()
    if coding == b"gzip":
        inflater = zlib.decompressobj(31)
        try:
            body = inflater.decompress(body, MAX_BODY)
        except zlib.error as exc:
            raise OtlpError(f"bad gzip body: {exc}") from None
        if inflater.unconsumed_tail:
            raise OtlpError(f"body larger than {MAX_BODY} bytes once decompressed")
    elif coding != b"identity":
        name = coding.decode("latin-1")
        raise OtlpUnsupported(f"content encoding {name!r} is not supported (use gzip or none)")
    return decode_export_request(body)


# --- the tree -----------------------------------------------------------------------------------


def _show(value: object) -> str:
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, float):
        text = f"{value:g}"
    elif isinstance(value, int):
        text = str(value)
    elif isinstance(value, str):
        plain = value and all(c.isprintable() and c not in " \"'=" for c in value)
        text = value if plain else json.dumps(value, ensure_ascii=False)
    elif isinstance(value, bytes):
        text = "0x" + value.hex()
    else:
        text = json.dumps(value, ensure_ascii=False, default=repr, separators=(",", ":"))
    if len(text) > MAX_VALUE_CHARS:
        text = text[: MAX_VALUE_CHARS - 1] + "…"
    return text


def _attributes(attributes: dict[str, object], hidden: frozenset[str]) -> str:
    shown = [(k, v) for k, v in attributes.items() if k not in hidden]
    parts = [f"{k}={_show(v)}" for k, v in shown[:MAX_ATTRIBUTES]]
    if len(shown) > MAX_ATTRIBUTES:
        parts.append(f"(+{len(shown) - MAX_ATTRIBUTES} more)")
    return " ".join(parts)


def _status(span: Span) -> str:
    """``OK``, ``ERROR "why"``, or nothing for the usual unset status."""
    if span.status_code == 0 and not span.status_message:
        return ""
    code = STATUSES[span.status_code] if 0 <= span.status_code < len(STATUSES) else "?"
    if span.status_message:
        return f"{code} {_show(span.status_message)}"
    return code


def _span_line(span: Span, origin: int, is_root: bool) -> str:
    kind = KINDS[span.kind] if 0 <= span.kind < len(KINDS) else f"KIND_{span.kind}"
    parts = [span.name or "(unnamed)", kind, f"{span.duration_ms:.2f} ms"]
    if not is_root:
        parts.append(f"at {(span.start - origin) / 1e6:+.2f} ms")
    status = _status(span)
    if status:
        parts.append(status)
    attributes = _attributes(span.attributes, HIDDEN_ATTRIBUTES)
    if attributes:
        parts.append(attributes)
    return "  ".join(parts)


def render(spans: list[Span], first_request_id: str | None = None) -> list[str]:
    """Lines for ``spans``: one block per trace, a tree per root (spans whose parent is not
    among them). The trace holding ``first_request_id``'s SERVER span comes first."""
    traces: dict[bytes, list[Span]] = {}
    for span in spans:
        traces.setdefault(span.trace_id, []).append(span)
    order = list(traces)
    if first_request_id is not None:
        order.sort(key=lambda t: not any(s.invocation_id == first_request_id for s in traces[t]))
    lines: list[str] = []
    for trace_id in order:
        members = traces[trace_id]
        by_id = {s.span_id: s for s in members}
        children: dict[bytes, list[Span]] = {}
        roots: list[Span] = []
        for span in members:
            if span.parent_id and span.parent_id in by_id and span.parent_id != span.span_id:
                children.setdefault(span.parent_id, []).append(span)
            else:
                roots.append(span)
        for group in children.values():
            group.sort(key=lambda s: s.start)
        roots.sort(key=lambda s: s.start)
        request_ids = [s.invocation_id for s in members if s.invocation_id]
        header = f"SPANS RequestId: {request_ids[0] if request_ids else '-'}"
        header += f"\tTraceId: {trace_id.hex()}\tSpans: {len(members)}"
        lines.append(header)
        seen: set[bytes] = set()
        for root in roots:
            _walk(root, children, lines, seen)
        # Spans caught in a parent cycle (malformed input) have no root: still show them.
        for span in sorted(members, key=lambda s: s.start):
            if span.span_id not in seen:
                _walk(span, children, lines, seen)
    return lines


_Item = tuple[str, str, bool, "Span | tuple[str, int, dict[str, object]]"]


def _walk(
    root: Span, children: dict[bytes, list[Span]], lines: list[str], seen: set[bytes]
) -> None:
    """Append ``root``'s tree. Iterative: a deep chain of spans must not hit the recursion
    limit inside the emulator's event loop."""
    origin = root.start
    # (lead, branch, is_root, span or event), in printing order.
    stack: list[_Item] = [("", "", True, root)]
    while stack:
        lead, branch, is_root, item = stack.pop()
        if not isinstance(item, Span):
            name, when, attributes = item
            text = f"• {name or 'event'} at {(when - origin) / 1e6:+.2f} ms"
            shown = _attributes(attributes, HIDDEN_EVENT_ATTRIBUTES)
            lines.append(lead + branch + (f"{text}  {shown}" if shown else text))
            continue
        if item.span_id in seen:  # a span id used twice: print it once
            continue
        seen.add(item.span_id)
        lines.append(lead + branch + _span_line(item, origin, is_root))
        below = lead + ("" if is_root else ("   " if branch.startswith("└") else "│  "))
        below_items: list[Span | tuple[str, int, dict[str, object]]] = [
            *item.events,
            *children.get(item.span_id, []),
        ]
        last = len(below_items) - 1
        for index in range(last, -1, -1):
            stack.append((below, "└─ " if index == last else "├─ ", False, below_items[index]))


class SpanConsole:
    """Spans per environment, printed per invoke on ``write`` (one call per line)."""

    def __init__(self, write: Callable[[bytes, bytes], None]) -> None:
        self._write = write
        self._pools: dict[int, list[Span]] = {}
        self._dropped: dict[int, int] = {}
        self.received = 0
        self._hinted = False

    def add(self, env_id: int, spans: list[Span]) -> None:
        self.received += len(spans)
        pool = self._pools.setdefault(env_id, [])
        pool.extend(spans)
        excess = len(pool) - MAX_POOL
        if excess > 0:
            del pool[:excess]
            self._dropped[env_id] = self._dropped.get(env_id, 0) + excess

    def flush(
        self, env_id: int, request_id: str | None, prefix: bytes, *, hint: bool = False
    ) -> None:
        """Print what ``env_id`` sent so far (after ``request_id``'s REPORT, when given).
        ``hint``: the invoke went well, so no spans at all by now means none are coming."""
        pool = self._pools.pop(env_id, None)
        dropped = self._dropped.pop(env_id, 0)
        if dropped:
            self._write(f"SPANS {dropped} span(s) not shown (too many at once)".encode(), prefix)
        if not pool:
            if hint and request_id is not None and not self.received and not self._hinted:
                self._hinted = True
                self._write(
                    f"SPANS RequestId: {request_id}\tnone received: the runtime exported no "
                    "spans to OTEL_EXPORTER_OTLP_ENDPOINT (our runtime does; another one needs "
                    "OpenTelemetry set up to export OTLP/HTTP)".encode(),
                    prefix,
                )
            return
        try:
            lines = render(pool, request_id)
        except Exception as exc:  # showing spans must never take the emulator down
            lines = [f"SPANS {len(pool)} span(s) could not be shown: {type(exc).__name__}: {exc}"]
        for line in lines:
            self._write(line.encode("utf-8", "replace"), prefix)
