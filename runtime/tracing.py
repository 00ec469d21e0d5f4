"""OpenTelemetry traces: one SERVER span per invoke, exported after the response is posted.

Imported only when the standard variables configure a trace exporter (see
``runtime.config._trace_exporters``); otherwise OpenTelemetry is never imported.

- The invoke span is named after the function and carries the FaaS semantic-convention
  attributes (``faas.invocation_id``, ``faas.trigger`` inferred from the event's shape,
  ``faas.coldstart``, ``cloud.resource_id``, ``cloud.account.id``, ``aws.lambda.invoked_arn``,
  and the HTTP request attributes for API Gateway / function URL / ALB events).
- Its parent: the ``Lambda-Runtime-Trace-Id`` X-Ray header when it says ``Sampled=1``; else a
  W3C ``traceparent`` in the event's HTTP headers; else the span is a root (sampled by
  ``OTEL_TRACES_SAMPLER``, default always on) linked to the unsampled X-Ray trace if any.
- On the cold invoke, an ``init`` span (child of the invoke span) covers runtime init, with
  an ``import`` span for the handler module's import.
- The provider is installed as OpenTelemetry's global one, so ``trace.get_tracer(__name__)``
  in user code works as usual and user spans nest under the invoke span.
- Ended spans wait in memory; ``flush`` (the layer's after-invoke step) exports them once the
  response is posted and before the next ``/next``, within a time budget
  (``OTEL_EXPORTER_OTLP_TRACES_TIMEOUT`` / ``OTEL_EXPORTER_OTLP_TIMEOUT`` in milliseconds,
  default 2000). Spans that could not be sent stay queued (bounded by
  ``OTEL_BSP_MAX_QUEUE_SIZE``, default 2048) for the next flush, with back-off while the
  collector is unreachable.
- The OTLP/HTTP exporter is built in (protobuf encoded by hand, one keep-alive connection):
  the official one pulls in ``requests`` and ``protobuf`` and costs over 100 ms of cold start.
"""

from __future__ import annotations

import _socket
import contextlib
import logging
import os
import random
import struct
import sys
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.id_generator import IdGenerator
from opentelemetry.sdk.version import __version__ as SDK_VERSION
from opentelemetry.trace import (
    Link,
    NonRecordingSpan,
    SpanContext,
    SpanKind,
    Status,
    StatusCode,
    TraceFlags,
    TraceState,
)

from runtime.http import HTTPError, ResponseReader

if TYPE_CHECKING:
    from runtime.config import Config
    from runtime.context import LambdaContext
    from runtime.layers import Call, InitInfo
    from runtime.observability import InvokeState

_log = logging.getLogger("lambda_runtime.tracing")

SCOPE_NAME = "lambda-runtime"
SCOPE_VERSION = "0.1.0"
DEFAULT_FLUSH_MS = 2000
DEFAULT_QUEUE = 2048
EXPORT_BATCH = 512
MAX_BACKOFF_S = 30.0


# --- configuration ----------------------------------------------------------------------------


def _env_first(env: Mapping[str, str], *names: str) -> str:
    for name in names:
        value = env.get(name, "").strip()
        if value:
            return value
    return ""


def _positive_int(raw: str, what: str, default: int) -> int:
    if not raw:
        return default
    try:
        value = int(float(raw))
    except ValueError:
        raise ValueError(f"{what}={raw!r} is not a number") from None
    if value <= 0:
        raise ValueError(f"{what}={raw!r} must be positive")
    return value


def parse_key_values(raw: str) -> dict[str, str]:
    """``k1=v1,k2=v2`` with percent-encoded values (OTEL_RESOURCE_ATTRIBUTES, *_HEADERS)."""
    out: dict[str, str] = {}
    for item in raw.split(","):
        key, sep, value = item.partition("=")
        if sep and key.strip():
            out[unquote(key.strip())] = unquote(value.strip())
    return out


def lambda_resource(config: Config, env: Mapping[str, str]) -> Resource:
    attributes: dict[str, Any] = {
        "telemetry.sdk.name": "opentelemetry",
        "telemetry.sdk.language": "python",
        "telemetry.sdk.version": SDK_VERSION,
        "cloud.provider": "aws",
        "cloud.platform": "aws_lambda",
        "faas.name": config.function_name,
        "faas.version": config.function_version,
        "faas.instance": config.log_stream_name,
        "faas.max_memory": config.memory_limit_in_mb * 1024 * 1024,
    }
    if config.observability.region:
        attributes["cloud.region"] = config.observability.region
    if config.log_group_name:
        attributes["aws.log.group.names"] = (config.log_group_name,)
    # What the user configured wins over what the runtime detected.
    attributes.update(parse_key_values(env.get("OTEL_RESOURCE_ATTRIBUTES", "")))
    service = env.get("OTEL_SERVICE_NAME", "").strip()
    if service:
        attributes["service.name"] = service
    elif "service.name" not in attributes:
        attributes["service.name"] = config.function_name or "unknown_service"
    # Built directly: Resource.create() would scan every installed distribution's entry points.
    return Resource(attributes)


# --- ids and parents --------------------------------------------------------------------------


class XRayIdGenerator(IdGenerator):
    """Trace ids whose first 32 bits are the epoch second, as X-Ray requires of its trace ids."""

    def generate_span_id(self) -> int:
        return random.getrandbits(64) or 1

    def generate_trace_id(self) -> int:
        return int(time.time()) << 96 | random.getrandbits(96)


_HEX = frozenset("0123456789abcdefABCDEF")


def _is_hex(text: str, length: int) -> bool:
    return len(text) == length and all(c in _HEX for c in text)


def xray_span_context(header: str | None) -> SpanContext | None:
    """``Root=1-{8 hex}-{24 hex};Parent={16 hex};Sampled=0|1`` as a remote span context."""
    if not header:
        return None
    fields: dict[str, str] = {}
    for part in header.split(";"):
        key, _, value = part.strip().partition("=")
        fields[key] = value
    root, parent = fields.get("Root", ""), fields.get("Parent", "")
    pieces = root.split("-")
    if len(pieces) != 3 or pieces[0] != "1" or not _is_hex(pieces[1], 8):
        return None
    if not _is_hex(pieces[2], 24) or not _is_hex(parent, 16):
        return None
    trace_id, span_id = int(pieces[1] + pieces[2], 16), int(parent, 16)
    if not trace_id or not span_id:
        return None
    flags = TraceFlags(TraceFlags.SAMPLED if fields.get("Sampled") == "1" else 0)
    return SpanContext(trace_id, span_id, is_remote=True, trace_flags=flags)


def _http_headers(event: Any) -> dict[str, str]:
    if not isinstance(event, dict):
        return {}
    found: dict[str, str] = {}
    multi = event.get("multiValueHeaders")
    if isinstance(multi, dict):
        for key, values in multi.items():
            if isinstance(key, str) and isinstance(values, list) and values:
                found[key.lower()] = str(values[0])
    headers = event.get("headers")
    if isinstance(headers, dict):
        for key, value in headers.items():
            if isinstance(key, str) and isinstance(value, str):
                found[key.lower()] = value
    return found


def traceparent_span_context(headers: Mapping[str, str]) -> SpanContext | None:
    """A W3C ``traceparent`` (and ``tracestate``) header as a remote span context."""
    value = headers.get("traceparent", "").strip()
    parts = value.split("-")
    if len(parts) < 4 or not _is_hex(parts[0], 2) or parts[0].lower() == "ff":
        return None
    if parts[0] == "00" and len(parts) != 4:
        return None
    trace_hex, span_hex, flags_hex = parts[1:4]
    if not (_is_hex(trace_hex, 32) and _is_hex(span_hex, 16) and _is_hex(flags_hex, 2)):
        return None
    trace_id, span_id = int(trace_hex, 16), int(span_hex, 16)
    if not trace_id or not span_id:
        return None
    state = None
    if headers.get("tracestate"):
        try:
            state = TraceState.from_header([headers["tracestate"]])
        except Exception:
            state = None
    return SpanContext(
        trace_id,
        span_id,
        is_remote=True,
        trace_flags=TraceFlags(int(flags_hex, 16) & TraceFlags.SAMPLED),
        trace_state=state,
    )


def parent_of(event: Any, xray_header: str | None) -> tuple[otel_context.Context, list[Link]]:
    """The invoke span's parent context, and links to traces it is not part of."""
    xray = xray_span_context(xray_header)
    if xray is not None and xray.trace_flags.sampled:
        return trace.set_span_in_context(NonRecordingSpan(xray)), []
    links = [Link(xray)] if xray is not None else []
    w3c = traceparent_span_context(_http_headers(event))
    if w3c is not None:
        return trace.set_span_in_context(NonRecordingSpan(w3c)), links
    # An empty context, not None: None would mean "whatever span is current".
    return otel_context.Context(), links


# --- event shapes -----------------------------------------------------------------------------

_RECORD_TRIGGERS = {
    "aws:sqs": "pubsub",
    "aws:sns": "pubsub",
    "aws:kinesis": "pubsub",
    "aws:s3": "datasource",
    "aws:dynamodb": "datasource",
}


def trigger_of(event: Any) -> tuple[str, dict[str, Any]]:
    """``faas.trigger`` for the event's shape, and HTTP request attributes for HTTP events."""
    if not isinstance(event, dict):
        return "other", {}
    context = event.get("requestContext")
    if isinstance(context, dict):
        http = context.get("http")
        if isinstance(http, dict):  # API Gateway HTTP API (v2) and function URLs
            return "http", _http_attributes(
                http.get("method"),
                http.get("path") or event.get("rawPath"),
                _route_of(event.get("routeKey")),
                event,
            )
        if "httpMethod" in event:  # API Gateway REST API (v1), ALB
            return "http", _http_attributes(
                event.get("httpMethod"), event.get("path"), event.get("resource"), event
            )
    elif "httpMethod" in event and "path" in event:
        return "http", _http_attributes(event.get("httpMethod"), event.get("path"), None, event)
    records = event.get("Records")
    if isinstance(records, list) and records and isinstance(records[0], dict):
        source = records[0].get("eventSource") or records[0].get("EventSource")
        if isinstance(source, str) and source in _RECORD_TRIGGERS:
            return _RECORD_TRIGGERS[source], {}
    if "detail-type" in event and "source" in event:
        if event.get("detail-type") == "Scheduled Event":
            return "timer", {}
        return "pubsub", {}
    return "other", {}


def _route_of(route_key: Any) -> str | None:
    if not isinstance(route_key, str) or route_key == "$default":
        return None
    return route_key.partition(" ")[2] or route_key


def _http_attributes(method: Any, path: Any, route: Any, event: dict[str, Any]) -> dict[str, Any]:
    attributes: dict[str, Any] = {}
    if isinstance(method, str):
        attributes["http.request.method"] = method
    if isinstance(path, str):
        attributes["url.path"] = path
    if isinstance(route, str):
        attributes["http.route"] = route
    headers = _http_headers(event)
    if "user-agent" in headers:
        attributes["user_agent.original"] = headers["user-agent"]
    if "host" in headers:
        attributes["server.address"] = headers["host"]
    if "x-forwarded-proto" in headers:
        attributes["url.scheme"] = headers["x-forwarded-proto"]
    return attributes


def arn_attributes(arn: str, version: str) -> dict[str, str]:
    attributes = {"aws.lambda.invoked_arn": arn}
    parts = arn.split(":")
    if len(parts) >= 7 and parts[0] == "arn":
        attributes["cloud.account.id"] = parts[4]
        # The function's ARN, the alias replaced by the version that runs (semantic conventions).
        resource = ":".join(parts[:7])
        if version and version != "$LATEST":
            resource = f"{resource}:{version}"
        attributes["cloud.resource_id"] = resource
    return attributes


# --- the invoke span --------------------------------------------------------------------------


class Tracing:
    """Starts the invoke span around the handler and flushes ended spans after the invoke."""

    def __init__(
        self,
        provider: TracerProvider,
        pending: PendingSpans,
        *,
        function_name: str,
        function_version: str,
        handler: str = "",
        init_info: InitInfo | None = None,
    ) -> None:
        self.provider = provider
        self.pending = pending
        self._tracer = provider.get_tracer(SCOPE_NAME, SCOPE_VERSION)
        self._name = function_name or "handler"
        self._version = function_version
        self._handler = handler
        self._init_info = init_info

    @classmethod
    def from_config(
        cls, config: Config, init_info: InitInfo, environ: Mapping[str, str] | None = None
    ) -> Tracing:
        env = os.environ if environ is None else environ
        budget_ms = _positive_int(
            _env_first(env, "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT", "OTEL_EXPORTER_OTLP_TIMEOUT"),
            "OTEL_EXPORTER_OTLP_TIMEOUT",
            DEFAULT_FLUSH_MS,
        )
        queue = _positive_int(
            env.get("OTEL_BSP_MAX_QUEUE_SIZE", "").strip(), "OTEL_BSP_MAX_QUEUE_SIZE", DEFAULT_QUEUE
        )
        names = config.observability.trace_exporters
        exporters = [exporter_for(name, env, budget_ms / 1000) for name in names]
        pending = PendingSpans(exporters, budget_s=budget_ms / 1000, max_queue=queue)
        provider = TracerProvider(
            resource=lambda_resource(config, env),
            id_generator=XRayIdGenerator(),
            shutdown_on_exit=False,
        )
        provider.add_span_processor(pending)
        trace.set_tracer_provider(provider)
        return cls(
            provider,
            pending,
            function_name=config.function_name,
            function_version=config.function_version,
            handler=config.handler,
            init_info=init_info,
        )

    def invoke(self, call: Call, event: Any, context: LambdaContext, state: InvokeState) -> Any:
        parent, links = parent_of(event, context.xray_trace_id)
        trigger, http = trigger_of(event)
        attributes: dict[str, Any] = {
            "faas.invocation_id": context.aws_request_id,
            "faas.trigger": trigger,
            "faas.coldstart": state.cold_start,
            **arn_attributes(context.invoked_function_arn, self._version),
            **http,
        }
        span = self._tracer.start_span(
            self._name, context=parent, kind=SpanKind.SERVER, attributes=attributes, links=links
        )
        span_context = span.get_span_context()
        state.trace_ids = (f"{span_context.trace_id:032x}", f"{span_context.span_id:016x}")
        if self._init_info is not None:
            self._init_spans(span, self._init_info)
            self._init_info = None
        token = otel_context.attach(trace.set_span_in_context(span))
        try:
            result = call(event, context)
        except BaseException as exc:
            _record_failure(span, exc)
            raise
        else:
            if http and isinstance(result, dict):
                status = result.get("statusCode")
                if isinstance(status, int) and not isinstance(status, bool):
                    span.set_attribute("http.response.status_code", status)
                    if status >= 500:
                        span.set_status(Status(StatusCode.ERROR, f"HTTP {status}"))
            return result
        finally:
            otel_context.detach(token)
            span.end()

    def _init_spans(self, invoke_span: trace.Span, info: InitInfo) -> None:
        parent = trace.set_span_in_context(invoke_span)
        import_ms = round(info.handler_import_ns / 1_000_000, 3)
        init = self._tracer.start_span(
            "init",
            context=parent,
            start_time=info.started_ns,
            attributes={
                "faas.coldstart": True,
                "lambda_runtime.handler": self._handler,
                "lambda_runtime.handler.import_ms": import_ms,
            },
        )
        module = self._handler.rpartition(".")[0] or self._handler
        imported = self._tracer.start_span(
            f"import {module}",
            context=trace.set_span_in_context(init),
            start_time=info.handler_loaded_ns - info.handler_import_ns,
            attributes={"lambda_runtime.handler.import_ms": import_ms},
        )
        imported.end(end_time=info.handler_loaded_ns)
        init.end(end_time=info.handler_loaded_ns)

    def flush(self) -> None:
        self.pending.flush()


def _record_failure(span: trace.Span, exc: BaseException) -> None:
    try:
        description = f"{type(exc).__name__}: {exc}"
        span.record_exception(exc, escaped=True)
    except Exception:  # an exception whose str() raises is still recorded by its type
        description = type(exc).__name__
        span.add_event("exception", {"exception.type": type(exc).__qualname__})
    span.set_status(Status(StatusCode.ERROR, description))


# --- pending spans and their export -----------------------------------------------------------

OK, RETRY, DROP = "ok", "retry", "drop"


class _Channel:
    """One exporter and the spans waiting for it."""

    def __init__(self, exporter: SpanExporter, max_queue: int) -> None:
        self.exporter = exporter
        self.max_queue = max_queue
        self.spans: list[ReadableSpan] = []
        self.dropped = 0
        self.failures = 0
        self.retry_at = 0.0

    def add(self, spans: Iterable[ReadableSpan]) -> None:
        self.spans.extend(spans)
        excess = len(self.spans) - self.max_queue
        if excess > 0:  # the oldest go first: the newest are what is being looked at
            del self.spans[:excess]
            self.dropped += excess


class PendingSpans(SpanProcessor):
    """Keeps ended, sampled spans until :meth:`flush` exports them, within a time budget."""

    def __init__(
        self,
        exporters: Sequence[SpanExporter],
        *,
        budget_s: float = DEFAULT_FLUSH_MS / 1000,
        max_queue: int = DEFAULT_QUEUE,
    ) -> None:
        self._channels = [_Channel(e, max_queue) for e in exporters]
        self._budget_s = budget_s
        self._lock = threading.Lock()

    def on_start(self, span: Any, parent_context: Any = None) -> None:
        pass

    def on_end(self, span: ReadableSpan) -> None:
        if not span.context.trace_flags.sampled:
            return
        with self._lock:
            for channel in self._channels:
                channel.add((span,))

    def queued(self) -> int:
        with self._lock:
            return max((len(c.spans) for c in self._channels), default=0)

    def flush(self, budget_s: float | None = None, *, force: bool = False) -> bool:
        """Export what is queued; True when nothing is left over. Never raises."""
        deadline = time.monotonic() + (self._budget_s if budget_s is None else budget_s)
        clean = True
        for channel in self._channels:
            try:
                clean = self._flush_channel(channel, deadline, force) and clean
            except Exception as exc:  # a broken exporter must not break the invoke loop
                _log.warning("trace export failed: %s: %s", type(exc).__name__, exc)
                clean = False
        return clean

    def _flush_channel(self, channel: _Channel, deadline: float, force: bool) -> bool:
        now = time.monotonic()
        if not force and now < channel.retry_at:
            return False
        with self._lock:
            spans, channel.spans = channel.spans, []
        while spans:
            batch, spans = spans[:EXPORT_BATCH], spans[EXPORT_BATCH:]
            outcome = _export(channel.exporter, batch, deadline)
            if outcome == OK:
                channel.failures = 0
                channel.retry_at = 0.0
                continue
            if outcome == RETRY:
                with self._lock:
                    channel.spans[:0] = batch + spans
                    excess = len(channel.spans) - channel.max_queue
                    if excess > 0:
                        del channel.spans[:excess]
                        channel.dropped += excess
                channel.failures += 1
                channel.retry_at = time.monotonic() + min(
                    MAX_BACKOFF_S, 0.25 * 2 ** min(channel.failures, 8)
                )
                return False
            channel.dropped += len(batch)
        if channel.dropped:
            _log.warning("%d span(s) could not be exported and were dropped", channel.dropped)
            channel.dropped = 0
        return True

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self.flush(timeout_millis / 1000, force=True)

    def shutdown(self) -> None:
        self.flush(force=True)
        for channel in self._channels:
            with contextlib.suppress(Exception):
                channel.exporter.shutdown()


def _export(exporter: SpanExporter, spans: Sequence[ReadableSpan], deadline: float) -> str:
    if isinstance(exporter, OtlpHttpExporter):
        return exporter.send(spans, deadline)
    result = exporter.export(spans)
    return OK if result is SpanExportResult.SUCCESS else RETRY


# --- exporters --------------------------------------------------------------------------------


def exporter_for(name: str, env: Mapping[str, str], timeout_s: float) -> SpanExporter:
    if name == "console":
        from opentelemetry.sdk.trace.export import ConsoleSpanExporter

        # One line per span: a multi-line JSON document would be many CloudWatch events.
        return ConsoleSpanExporter(
            out=sys.stdout, formatter=lambda span: span.to_json(indent=None) + "\n"
        )
    if name != "otlp":
        raise ValueError(f"trace exporter {name!r} is not supported (use otlp or console)")
    protocol = _env_first(env, "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL")
    if protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (  # type: ignore[import-not-found]
            OTLPSpanExporter,
        )

        exporter: SpanExporter = OTLPSpanExporter(timeout=timeout_s)
        return exporter
    return OtlpHttpExporter.from_env(env)


class OtlpHttpExporter(SpanExporter):
    """OTLP over HTTP/1.1 with a protobuf body, on one keep-alive connection."""

    def __init__(
        self,
        endpoint: str,
        *,
        headers: Mapping[str, str] | None = None,
        gzip: bool = False,
        cafile: str | None = None,
        timeout_s: float = DEFAULT_FLUSH_MS / 1000,
    ) -> None:
        url = urlsplit(endpoint)
        # What is logged: never the user:password an endpoint URL may carry.
        shown = url._replace(netloc=url.netloc.rpartition("@")[2]).geturl()
        if url.scheme not in ("http", "https") or not url.hostname:
            raise ValueError(f"OTLP endpoint {shown!r} is not an http:// or https:// URL")
        self.endpoint = shown
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
            f"User-Agent: lambda-runtime/{SCOPE_VERSION}",
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
    def from_env(cls, env: Mapping[str, str]) -> OtlpHttpExporter:
        endpoint = env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "").strip()
        if not endpoint:
            base = env.get("OTEL_EXPORTER_OTLP_ENDPOINT", "").strip() or "http://localhost:4318"
            endpoint = base.rstrip("/") + "/v1/traces"
        headers = parse_key_values(
            _env_first(env, "OTEL_EXPORTER_OTLP_TRACES_HEADERS", "OTEL_EXPORTER_OTLP_HEADERS")
        )
        compression = _env_first(
            env, "OTEL_EXPORTER_OTLP_TRACES_COMPRESSION", "OTEL_EXPORTER_OTLP_COMPRESSION"
        ).lower()
        if compression not in ("", "none", "gzip"):
            raise ValueError(f"OTLP compression {compression!r} is not supported (gzip or none)")
        cafile = _env_first(
            env, "OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE", "OTEL_EXPORTER_OTLP_CERTIFICATE"
        )
        return cls(endpoint, headers=headers, gzip=compression == "gzip", cafile=cafile or None)

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
