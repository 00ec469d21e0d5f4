"""OpenTelemetry traces: one SERVER span per invoke, exported after the response is posted.

Imported only when the standard variables configure a trace exporter (read into
:class:`runtime.config.TracingConfig`, the only place they are read); otherwise OpenTelemetry is
never imported.

- The invoke span is named after the function and carries the FaaS semantic-convention
  attributes (``faas.invocation_id``, ``faas.trigger`` inferred from the event's shape,
  ``faas.coldstart``, ``cloud.resource_id``, ``cloud.account.id``, ``aws.lambda.invoked_arn``,
  and the HTTP request attributes for API Gateway / function URL / ALB events).
- Its parent: the ``Lambda-Runtime-Trace-Id`` X-Ray header when it says ``Sampled=1``; else a
  W3C ``traceparent`` in the event's HTTP headers; else the span is a root linked to the
  unsampled X-Ray trace if any. ``OTEL_TRACES_SAMPLER`` (default ``parentbased_always_on``)
  decides which spans are recorded.
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
- The OTLP/HTTP exporter is built in (:mod:`runtime.observability.otlp`): the official one
  pulls in ``requests`` and ``protobuf`` and costs over 100 ms of cold start.
"""

from __future__ import annotations

import contextlib
import logging
import random
import sys
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, TracerProvider, sampling
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.id_generator import IdGenerator
from opentelemetry.sdk.trace.sampling import Sampler
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

from runtime import __version__
from runtime.config import DEFAULT_OTLP_TIMEOUT_MS, DEFAULT_SPAN_QUEUE
from runtime.observability.otlp import OK, RETRY, OtlpHttpExporter

if TYPE_CHECKING:
    from runtime.config import Config, TracingConfig
    from runtime.context import LambdaContext
    from runtime.layers import Call, InitInfo
    from runtime.observability.state import InvokeState

_log = logging.getLogger("lambda_runtime.tracing")

SCOPE_NAME = "lambda-runtime"
EXPORT_BATCH = 512
MAX_BACKOFF_S = 30.0


# --- the resource -----------------------------------------------------------------------------


def lambda_resource(config: Config) -> Resource:
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
    tracing = config.observability.tracing
    # What the user configured wins over what the runtime detected.
    attributes.update(tracing.resource_attributes)
    service = tracing.service_name
    if service:
        attributes["service.name"] = service
    elif "service.name" not in attributes:
        attributes["service.name"] = config.function_name or "unknown_service"
    # Built directly: Resource.create() would scan every installed distribution's entry points.
    return Resource(attributes)


def sampler_for(settings: TracingConfig) -> Sampler:
    """The sampler ``OTEL_TRACES_SAMPLER`` names, from the config (the SDK's own reading of
    the environment is never used, so a bad value is an init error, not a silent default)."""
    name, ratio = settings.sampler, settings.sampler_arg
    if name == "traceidratio":
        return sampling.TraceIdRatioBased(ratio)
    if name == "parentbased_traceidratio":
        return sampling.ParentBasedTraceIdRatio(ratio)
    static = {
        "always_on": sampling.ALWAYS_ON,
        "always_off": sampling.ALWAYS_OFF,
        "parentbased_always_on": sampling.ParentBased(sampling.ALWAYS_ON),
        "parentbased_always_off": sampling.ParentBased(sampling.ALWAYS_OFF),
    }
    return static[name]


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
        self._tracer = provider.get_tracer(SCOPE_NAME, __version__)
        self._name = function_name or "handler"
        self._version = function_version
        self._handler = handler
        self._init_info = init_info

    @classmethod
    def from_config(cls, config: Config, init_info: InitInfo) -> Tracing:
        settings = config.observability.tracing
        budget_s = settings.timeout_ms / 1000
        exporters = [exporter_for(name, settings) for name in settings.exporters]
        pending = PendingSpans(exporters, budget_s=budget_s, max_queue=settings.max_queue)
        provider = TracerProvider(
            sampler=sampler_for(settings),
            resource=lambda_resource(config),
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
        budget_s: float = DEFAULT_OTLP_TIMEOUT_MS / 1000,
        max_queue: int = DEFAULT_SPAN_QUEUE,
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


def exporter_for(name: str, settings: TracingConfig) -> SpanExporter:
    if name == "console":
        from opentelemetry.sdk.trace.export import ConsoleSpanExporter

        # One line per span: a multi-line JSON document would be many CloudWatch events.
        return ConsoleSpanExporter(
            out=sys.stdout, formatter=lambda span: span.to_json(indent=None) + "\n"
        )
    if name != "otlp":
        raise ValueError(f"trace exporter {name!r} is not supported (use otlp or console)")
    if settings.protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (  # type: ignore[import-not-found]
            OTLPSpanExporter,
        )

        exporter: SpanExporter = OTLPSpanExporter(
            endpoint=settings.endpoint or None,
            headers=dict(settings.headers) or None,
            timeout=settings.timeout_ms / 1000,
        )
        return exporter
    return OtlpHttpExporter.from_config(settings)
