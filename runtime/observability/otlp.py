"""The built-in OTLP/HTTP trace exporter: protobuf encoded by hand, one keep-alive connection.

The official exporter pulls in ``requests`` and ``protobuf`` and costs over 100 ms of cold
start; the wire format of ``ExportTraceServiceRequest`` is small enough to write directly.
Settings come from :class:`runtime.config.TracingConfig`, never from the environment. The
endpoint is shown (in warnings) only through :func:`runtime.config.redact_url`.
"""

from __future__ import annotations

import _socket
import contextlib
import logging
import struct
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.trace import SpanContext

from runtime.api import user_agent
from runtime.config import DEFAULT_OTLP_TIMEOUT_MS, redact_url
from runtime.http import HTTPError, ResponseReader

if TYPE_CHECKING:
    from runtime.config import TracingConfig

_log = logging.getLogger("lambda_runtime.tracing")

# What one export attempt came to: sent, worth sending again later, or refused for good.
OK, RETRY, DROP = "ok", "retry", "drop"


class OtlpHttpExporter(SpanExporter):
    """OTLP over HTTP/1.1 with a protobuf body, on one keep-alive connection."""

    def __init__(
        self,
        endpoint: str,
        *,
        headers: Mapping[str, str] | None = None,
        gzip: bool = False,
        cafile: str | None = None,
        timeout_s: float = DEFAULT_OTLP_TIMEOUT_MS / 1000,
    ) -> None:
        url = urlsplit(endpoint)
        # What is logged: never the user:password or query values an endpoint URL may carry.
        self.endpoint = redact_url(endpoint)
        if url.scheme not in ("http", "https") or not url.hostname:
            raise ValueError(f"OTLP endpoint {self.endpoint!r} is not an http:// or https:// URL")
        # Failed exports in a row: only the first is logged, so a collector that is down does
        # not add a warning to every invoke's log.
        self._failures = 0
        self._tls = url.scheme == "https"
        self._host = url.hostname
        self._port = url.port or (443 if self._tls else 80)
        target = url.path or "/"
        if url.query:
            target = f"{target}?{url.query}"
        self._gzip = gzip
        self._cafile = cafile
        self._timeout_s = timeout_s
        lines = [
            f"POST {target} HTTP/1.1",
            f"Host: {url.netloc.rpartition('@')[2]}",
            "Content-Type: application/x-protobuf",
            f"User-Agent: {user_agent()}",
        ]
        if gzip:
            lines.append("Content-Encoding: gzip")
        for key, value in (headers or {}).items():
            if any(c in key + value for c in "\r\n\0") or not key or ":" in key:
                # The value may be a credential: name the header, never show the value.
                raise ValueError(f"OTLP header {key!r} has a character a header cannot carry")
            lines.append(f"{key}: {value}")
        self._head = ("\r\n".join(lines) + "\r\nContent-Length: ").encode("utf-8")
        self._sock: Any = None
        self._reader: ResponseReader | None = None
        self._deadline = 0.0
        self._resources: dict[int, tuple[Resource, bytes]] = {}

    @classmethod
    def from_config(cls, settings: TracingConfig) -> OtlpHttpExporter:
        return cls(
            settings.endpoint,
            headers=dict(settings.headers),
            gzip=settings.compression == "gzip",
            cafile=settings.certificate or None,
            timeout_s=settings.timeout_ms / 1000,
        )

    # SpanExporter interface, for code that calls it directly.
    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        outcome = self.send(spans, time.monotonic() + self._timeout_s)
        return SpanExportResult.SUCCESS if outcome == OK else SpanExportResult.FAILURE

    def shutdown(self) -> None:
        self._close()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True

    def send(self, spans: Sequence[ReadableSpan], deadline: float) -> str:
        """POST ``spans``: OK, RETRY (keep them for later) or DROP (the collector refused)."""
        body = encode_spans(spans, self._resources)
        if self._gzip:
            import zlib

            packer = zlib.compressobj(6, zlib.DEFLATED, 31)  # wbits 31: a gzip member
            body = packer.compress(body) + packer.flush()
        request = self._head + f"{len(body)}\r\n\r\n".encode() + body
        for attempt in (1, 2):
            reused = self._sock is not None
            try:
                if self._sock is None:
                    self._connect(deadline)
                self._deadline = deadline
                self._sock.settimeout(self._remaining())
                self._sock.sendall(request)
                assert self._reader is not None
                response = self._reader.read_response("POST")
            except (OSError, HTTPError) as exc:
                started = self._reader.started if self._reader is not None else False
                self._close()
                # A keep-alive connection the collector closed while the sandbox was frozen:
                # nothing of an answer came back, so sending once more cannot duplicate.
                if attempt == 1 and reused and not started and not isinstance(exc, TimeoutError):
                    continue
                self._failed(f"failed: {type(exc).__name__}: {exc}")
                return RETRY
            if not self._reader.keep_alive or self._reader.buffered:
                self._close()
            if 200 <= response.status < 300:
                if self._failures:
                    _log.warning(
                        "OTLP export to %s works again, after %d failed attempt(s)",
                        self.endpoint,
                        self._failures,
                    )
                    self._failures = 0
                return OK
            detail = response.body[:200].decode("utf-8", "replace")
            self._failed(f"answered {response.status}: {detail}")
            return RETRY if response.status in (408, 429, 502, 503, 504) else DROP
        return RETRY

    def _failed(self, what: str) -> None:
        self._failures += 1
        if self._failures == 1:
            _log.warning(
                "OTLP export to %s %s (further failures are not logged until an export works)",
                self.endpoint,
                what,
            )

    def _remaining(self) -> float:
        left = self._deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("flush time budget used up")
        return left

    def _recv_into(self, view: memoryview) -> int:
        self._sock.settimeout(self._remaining())
        n: int = self._sock.recv_into(view)
        return n

    def _connect(self, deadline: float) -> None:
        self._deadline = deadline
        if self._tls:
            import socket
            import ssl

            raw = socket.create_connection((self._host, self._port), timeout=self._remaining())
            context = ssl.create_default_context(cafile=self._cafile)
            sock: Any = context.wrap_socket(raw, server_hostname=self._host)
        else:
            infos = _socket.getaddrinfo(self._host, self._port, 0, _socket.SOCK_STREAM)
            error: OSError | None = None
            sock = None
            for family, kind, proto, _, address in infos:
                candidate = _socket.socket(family, kind, proto)
                try:
                    candidate.settimeout(self._remaining())
                    candidate.connect(address)
                except OSError as exc:
                    candidate.close()
                    error = exc
                    continue
                sock = candidate
                break
            if sock is None:
                raise error or OSError(f"cannot resolve {self._host}")
        sock.setsockopt(_socket.IPPROTO_TCP, _socket.TCP_NODELAY, 1)
        self._sock = sock
        self._reader = ResponseReader(self._recv_into)

    def _close(self) -> None:
        sock, self._sock, self._reader = self._sock, None, None
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.close()


# --- OTLP protobuf encoding -------------------------------------------------------------------
# opentelemetry/proto/collector/trace/v1/trace_service.proto, written by hand: the wire format
# is small, and the protobuf runtime alone costs more cold start than all of this module.


_ONE_BYTE = [bytes((i,)) for i in range(128)]


def _varint(value: int) -> bytes:
    if 0 <= value < 128:  # tags, small lengths and counts: most varints of a request
        return _ONE_BYTE[value]
    value &= 0xFFFFFFFFFFFFFFFF  # negative int64: two's complement, ten bytes
    out = bytearray()
    while value > 0x7F:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _field(number: int, payload: bytes) -> bytes:
    """A length-delimited field (strings, bytes, messages), always written."""
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def _string(number: int, text: str) -> bytes:
    return _field(number, text.encode("utf-8", "surrogatepass")) if text else b""


def _uint(number: int, value: int) -> bytes:
    return _varint(number << 3) + _varint(value) if value else b""


def _fixed64(number: int, value: int) -> bytes:
    return _varint(number << 3 | 1) + (value & 0xFFFFFFFFFFFFFFFF).to_bytes(8, "little")


def _fixed32(number: int, value: int) -> bytes:
    return _varint(number << 3 | 5) + (value & 0xFFFFFFFF).to_bytes(4, "little")


_INT64 = range(-(2**63), 2**63)


def _any_value(value: Any) -> bytes:
    # AnyValue is a oneof: the chosen member is written even when it holds its default.
    if isinstance(value, bool):
        return _varint(2 << 3) + (b"\x01" if value else b"\x00")
    if isinstance(value, int) and value in _INT64:
        return _varint(3 << 3) + _varint(value)
    if isinstance(value, float):
        return _varint(4 << 3 | 1) + struct.pack("<d", value)
    if isinstance(value, (bytes, bytearray)):
        return _field(7, bytes(value))
    if isinstance(value, (list, tuple)):
        return _field(5, b"".join(_field(1, _any_value(v)) for v in value))
    if isinstance(value, Mapping):
        return _field(6, b"".join(_field(1, _key_value(str(k), v)) for k, v in value.items()))
    return _field(1, str(value).encode("utf-8", "surrogatepass"))


def _key_value(key: str, value: Any) -> bytes:
    return _string(1, key) + _field(2, _any_value(value))


def _attributes(number: int, attributes: Mapping[str, Any] | None) -> bytes:
    if not attributes:
        return b""
    return b"".join(_field(number, _key_value(k, v)) for k, v in attributes.items())


def _span_flags(flags: int, parent: SpanContext | None) -> int:
    # Bits 8 and 9: "whether the parent is remote" is known (always, here), and its value.
    return int(flags) & 0xFF | 0x100 | (0x200 if parent is not None and parent.is_remote else 0)


def _encode_span(span: ReadableSpan) -> bytes:
    ctx = span.context
    assert ctx is not None
    parts = [
        _field(1, ctx.trace_id.to_bytes(16, "big")),
        _field(2, ctx.span_id.to_bytes(8, "big")),
    ]
    if ctx.trace_state:
        parts.append(_string(3, ctx.trace_state.to_header()))
    if span.parent is not None:
        parts.append(_field(4, span.parent.span_id.to_bytes(8, "big")))
    parts.append(_fixed32(16, _span_flags(ctx.trace_flags, span.parent)))
    parts.append(_string(5, span.name))
    parts.append(_uint(6, span.kind.value + 1))  # the SDK counts from INTERNAL=0, OTLP from 1
    parts.append(_fixed64(7, span.start_time or 0))
    parts.append(_fixed64(8, span.end_time or 0))
    parts.append(_attributes(9, span.attributes))
    parts.append(_uint(10, span.dropped_attributes))
    for event in span.events:
        parts.append(
            _field(
                11,
                _fixed64(1, event.timestamp)
                + _string(2, event.name)
                + _attributes(3, event.attributes)
                + _uint(4, event.dropped_attributes),
            )
        )
    parts.append(_uint(12, span.dropped_events))
    for link in span.links:
        linked = link.context
        parts.append(
            _field(
                13,
                _field(1, linked.trace_id.to_bytes(16, "big"))
                + _field(2, linked.span_id.to_bytes(8, "big"))
                + (_string(3, linked.trace_state.to_header()) if linked.trace_state else b"")
                + _attributes(4, link.attributes)
                + _uint(5, link.dropped_attributes)
                + _fixed32(6, _span_flags(linked.trace_flags, linked)),
            )
        )
    parts.append(_uint(14, span.dropped_links))
    status = span.status
    code = status.status_code.value
    if code or status.description:
        parts.append(_field(15, _string(2, status.description or "") + _uint(3, code)))
    return b"".join(parts)


def _resource_message(resource: Resource) -> bytes:
    return _attributes(1, resource.attributes)


def encode_spans(
    spans: Iterable[ReadableSpan], resource_cache: dict[int, tuple[Resource, bytes]] | None = None
) -> bytes:
    """An ``ExportTraceServiceRequest``: spans grouped by resource, then by scope.

    ``resource_cache`` keeps each resource's encoding (resources are immutable, and one
    function has one): it is most of a small request's bytes.
    """
    by_resource: dict[int, tuple[Resource, dict[tuple[str, str, str], list[bytes]]]] = {}
    for span in spans:
        resource = span.resource
        _, scopes = by_resource.setdefault(id(resource), (resource, {}))
        scope = span.instrumentation_scope
        key = (scope.name, scope.version or "", scope.schema_url or "") if scope else ("", "", "")
        scopes.setdefault(key, []).append(_encode_span(span))
    out = []
    for resource, scopes in by_resource.values():
        scope_spans = []
        for (name, version, schema_url), encoded in scopes.items():
            scope_message = _string(1, name) + _string(2, version)
            scope_spans.append(
                _field(1, scope_message)
                + b"".join(_field(2, s) for s in encoded)
                + _string(3, schema_url)
            )
        if resource_cache is None:
            encoded_resource = _resource_message(resource)
        else:
            cached = resource_cache.get(id(resource))
            if cached is None or cached[0] is not resource:
                cached = resource_cache[id(resource)] = (resource, _resource_message(resource))
            encoded_resource = cached[1]
        body = _field(1, encoded_resource) + b"".join(_field(2, s) for s in scope_spans)
        body += _string(3, resource.schema_url or "")
        out.append(_field(1, body))
    return b"".join(out)
