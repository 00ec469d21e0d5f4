"""Section "observability" (issue 4): logs and traces built in, against the add-ons people use.

Side by side in one run, each pair against its own Runtime API server (bench.rapi_server, its
own process) with the same event, environment and measurement as the "runtime" section:

  text      ours, Text logs, nothing configured      vs  awslambdaric, bare
  json      ours, AWS_LAMBDA_LOG_FORMAT=JSON, one    vs  awslambdaric + a handler module that
            stdlib INFO record per invoke                imports and configures Powertools'
                                                         Logger (inject_lambda_context), one
                                                         logger.info per invoke
  tracing   ours, OTEL_EXPORTER_OTLP_ENDPOINT set     vs  awslambdaric + a handler module that
            (built-in OTLP/HTTP exporter)                sets up the OTel SDK, BatchSpanProcessor
                                                         with the official OTLP/HTTP exporter and
                                                         opentelemetry-instrumentation-aws-lambda

Both tracing sides export to the same kind of local OTLP/HTTP receiver (a thread of the
harness that decodes the protobuf and counts spans); the section checks that each side
exported one span per invoke.

Measured: init (spawn to first /next) over cold starts, and CPU per invoke (kernel accounting
of the runtime process, all its threads) over batches of a 7-byte event.
Targets (issue 4): JSON init and per-invoke CPU, tracing init and per-invoke CPU, each at most
0.8x the comparison; Text init no higher than bare awslambdaric's.
"""

from __future__ import annotations

import argparse
import statistics
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from bench import events
from bench.report import Row, render
from bench.runtimes import REPO_ROOT, BenchError, Runtime, RuntimeSpec, Server
from bench.section_runtime import INIT_TIMEOUT_S, CaseResult, _batch, _check_batch, _cold_start

TASK_ROOT = REPO_ROOT / "out" / "bench-observability" / "task_root"

# The handler modules, written into TASK_ROOT by the section (the same bytes every run).
HANDLER_FILES = {
    "plain.py": """
def echo(event, context):
    return event
""",
    "text_log.py": """
import logging

log = logging.getLogger("bench")
log.setLevel(logging.INFO)


def handler(event, context):
    return event
""",
    "ours_log.py": """
import logging

log = logging.getLogger("bench")


def handler(event, context):
    log.info("handled", extra={"n": 1})
    return event
""",
    "powertools_log.py": """
from aws_lambda_powertools import Logger

logger = Logger(service="bench")


@logger.inject_lambda_context
def handler(event, context):
    logger.info("handled", extra={"n": 1})
    return event
""",
    "otel_theirs.py": """
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.instrumentation.aws_lambda import AwsLambdaInstrumentor
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

provider = TracerProvider()
provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
trace.set_tracer_provider(provider)


def handler(event, context):
    return event


# Wraps this module's `handler` (named by _HANDLER) in the instrumentation's span + flush.
AwsLambdaInstrumentor().instrument()
""",
}


@dataclass(frozen=True)
class Setup:
    label: str
    module: str  # python -m MODULE
    handler: str
    env: dict[str, str] = field(default_factory=dict)


class ObsRuntime(Runtime):
    """A runtime process started with this section's handler and extra environment."""

    def __init__(self, setup: Setup, server: Server, log_path: Path) -> None:
        super().__init__(
            RuntimeSpec(setup.label, setup.module),
            server,
            log_path,
            handler=setup.handler,
            task_root=TASK_ROOT,
            extra_env=setup.env,
        )
        self.setup = setup


class Receiver:
    """A local OTLP/HTTP endpoint: decodes each request and counts the spans in it."""

    def __init__(self) -> None:
        from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
            ExportTraceServiceRequest,
        )

        self.spans = 0
        self.requests = 0
        self.bad = 0
        lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                message = ExportTraceServiceRequest()
                try:
                    message.ParseFromString(body)
                    count = sum(
                        len(ss.spans) for rs in message.resource_spans for ss in rs.scope_spans
                    )
                except Exception:
                    count = -1
                with lock:
                    outer.requests += 1
                    if count < 0:
                        outer.bad += 1
                    else:
                        outer.spans += count
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def reset(self) -> None:
        self.spans = self.requests = self.bad = 0

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def add_arguments(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("observability section")
    g.add_argument(
        "--obs-cold-starts", type=int, default=25, help="cold starts per runtime and setup"
    )
    g.add_argument("--obs-rounds", type=int, default=5, help="measured batches per runtime")
    g.add_argument(
        "--obs-seconds",
        type=float,
        default=1.0,
        help="target wall time of one measured batch of the slower runtime",
    )


def _setups(endpoint: str) -> list[tuple[str, Setup, Setup]]:
    json_env = {"AWS_LAMBDA_LOG_FORMAT": "JSON", "AWS_LAMBDA_LOG_LEVEL": "INFO"}
    otel_env = {"OTEL_EXPORTER_OTLP_ENDPOINT": endpoint, "OTEL_SERVICE_NAME": "bench"}
    return [
        (
            "text",
            Setup("ours-text", "runtime", "plain.echo"),
            Setup("awslambdaric", "awslambdaric", "plain.echo"),
        ),
        (
            "text-logging",
            Setup("ours-text-logging", "runtime", "text_log.handler"),
            Setup("awslambdaric-logging", "awslambdaric", "text_log.handler"),
        ),
        (
            "json",
            Setup("ours-json", "runtime", "ours_log.handler", json_env),
            Setup("awslambdaric+powertools", "awslambdaric", "powertools_log.handler", json_env),
        ),
        (
            "tracing",
            Setup("ours-otlp", "runtime", "plain.echo", otel_env),
            Setup("awslambdaric+otel", "awslambdaric", "otel_theirs.handler", otel_env),
        ),
    ]


def _write_handlers() -> None:
    TASK_ROOT.mkdir(parents=True, exist_ok=True)
    for name, text in HANDLER_FILES.items():
        path = TASK_ROOT / name
        if not path.exists() or path.read_text() != text.lstrip():
            path.write_text(text.lstrip())


def _check_imports() -> None:
    missing = []
    for module in (
        "aws_lambda_powertools",
        "opentelemetry.instrumentation.aws_lambda",
        "opentelemetry.exporter.otlp.proto.http",
    ):
        try:
            __import__(module)
        except ImportError:
            missing.append(module)
    if missing:
        raise BenchError(
            f"comparison packages missing: {', '.join(missing)}; install the dev extra "
            "(aws-lambda-powertools, opentelemetry-instrumentation-aws-lambda, "
            "opentelemetry-exporter-otlp-proto-http)"
        )


def run(args: argparse.Namespace) -> dict[str, Any]:
    _check_imports()
    _write_handlers()
    log_dir = REPO_ROOT / "out" / "bench-logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    receiver = Receiver()
    servers: list[Server] = []
    runtimes: dict[str, ObsRuntime] = {}
    try:
        pairs = _setups(receiver.endpoint)
        for _, *sides in pairs:
            for setup in sides:
                server = Server()
                servers.append(server)
                server.load("small", events.SMALL_EVENT)
                log = log_dir / f"observability-{setup.label}.log"
                log.write_bytes(b"")
                runtimes[setup.label] = ObsRuntime(setup, server, log)
        return _measure(pairs, runtimes, receiver, args)
    finally:
        for rt in runtimes.values():
            rt.stop()
        for server in servers:
            server.stop()
        receiver.close()


def _check_works(rt: ObsRuntime, receiver: Receiver) -> None:
    """One unmeasured start with a few invokes: proves the setup answers (and, when tracing,
    exports one span per invoke) and leaves bytecode caches written for the measured starts."""
    rt.server.reset()
    receiver.reset()
    rt.start()
    try:
        rt.wait_idle(INIT_TIMEOUT_S)
        rt.server.start_batch("small", 5)
        _, stats = rt.wait_idle(60.0)
        _check_batch(rt, 5, stats)
        if "OTEL_EXPORTER_OTLP_ENDPOINT" in rt.setup.env:
            deadline = time.monotonic() + 10
            while receiver.spans < 5 and time.monotonic() < deadline:
                time.sleep(0.02)
            if receiver.spans < 5 or receiver.bad:
                raise BenchError(
                    f"{rt.setup.label}: the receiver got {receiver.spans} spans for 5 invokes "
                    f"({receiver.bad} undecodable requests); see {rt.log_path}"
                )
    finally:
        rt.stop()


def _measure(
    pairs: list[tuple[str, Setup, Setup]],
    runtimes: dict[str, ObsRuntime],
    receiver: Receiver,
    args: argparse.Namespace,
) -> dict[str, Any]:
    t0 = time.monotonic()
    for rt in runtimes.values():
        _check_works(rt, receiver)

    init_ns: dict[str, list[int]] = {label: [] for label in runtimes}
    for i in range(args.obs_cold_starts):
        for _, ours, theirs in pairs:
            order = (ours, theirs) if i % 2 == 0 else (theirs, ours)
            for setup in order:
                to_next, _ = _cold_start(runtimes[setup.label])
                init_ns[setup.label].append(to_next)
    print(f"  cold starts done ({time.monotonic() - t0:.1f} s)", flush=True)

    cpu: dict[str, CaseResult] = {}
    for name, ours, theirs in pairs:
        if name.startswith("text"):
            continue  # per-invoke CPU of the bare runtimes is the "runtime" section's
        sides = [runtimes[ours.label], runtimes[theirs.label]]
        per_invoke_s = []
        for rt in sides:
            rt.server.reset()
            rt.start()
            rt.wait_idle(INIT_TIMEOUT_S)
            rt.server.start_batch("small", 100)
            _, stats = rt.wait_idle(120.0)
            _check_batch(rt, 100, stats)
            per_invoke_s.append((stats.finished_ns - stats.started_ns) / 100 / 1e9)
        n = max(40, min(int(args.obs_seconds / max(per_invoke_s)), 20_000))
        for rt in sides:
            cpu[rt.setup.label] = CaseResult(n=n)
        for r in range(args.obs_rounds):
            for rt in sides if r % 2 == 0 else sides[::-1]:
                _batch(rt, "small", n, cpu[rt.setup.label])
        for rt in sides:
            rt.stop()
        print(
            f"  {name}: {args.obs_rounds} rounds of {n} invokes ({time.monotonic() - t0:.1f} s)",
            flush=True,
        )
    return _report(pairs, init_ns, cpu, time.monotonic() - t0)


def _report(
    pairs: list[tuple[str, Setup, Setup]],
    init_ns: dict[str, list[int]],
    cpu: dict[str, CaseResult],
    elapsed_s: float,
) -> dict[str, Any]:
    def init_ms(label: str) -> float:
        return statistics.median(init_ns[label]) / 1e6

    def cpu_us(label: str) -> float:
        return statistics.median(cpu[label].cpu_ns_per_invoke) / 1000

    def wall_us(label: str) -> float:
        return statistics.median(cpu[label].wall_median_ns) / 1000

    (_, text_ours, text_theirs), (_, logging_ours, logging_theirs) = pairs[0], pairs[1]
    (_, json_ours, json_theirs), (_, otel_ours, otel_theirs) = pairs[2], pairs[3]
    rows = [
        Row(
            "init, Text logs vs bare",
            "ms",
            init_ms(text_ours.label),
            init_ms(text_theirs.label),
            1.0,
        ),
        Row(
            "init, Text logs, handler imports logging",
            "ms",
            init_ms(logging_ours.label),
            init_ms(logging_theirs.label),
        ),
        Row(
            "init, JSON logs vs Powertools Logger",
            "ms",
            init_ms(json_ours.label),
            init_ms(json_theirs.label),
            0.8,
        ),
        Row(
            "CPU/invoke, 1 INFO record, JSON vs Powertools",
            "us",
            cpu_us(json_ours.label),
            cpu_us(json_theirs.label),
            0.8,
        ),
        Row(
            "wall/invoke, 1 INFO record, JSON vs Powertools",
            "us",
            wall_us(json_ours.label),
            wall_us(json_theirs.label),
        ),
        Row(
            "init, tracing (OTLP/HTTP) vs OTel instrumentation",
            "ms",
            init_ms(otel_ours.label),
            init_ms(otel_theirs.label),
            0.8,
        ),
        Row(
            "CPU/invoke, tracing vs OTel instrumentation",
            "us",
            cpu_us(otel_ours.label),
            cpu_us(otel_theirs.label),
            0.8,
        ),
        Row(
            "wall/invoke, tracing vs OTel instrumentation",
            "us",
            wall_us(otel_ours.label),
            wall_us(otel_theirs.label),
        ),
    ]
    print()
    print(render(rows, "theirs"))
    print()
    for _, ours, theirs in pairs:
        print(
            f"  {ours.label}: python -m {ours.module} {ours.handler}  |  "
            f"{theirs.label}: python -m {theirs.module} {theirs.handler}"
        )
    print(f"  observability section took {elapsed_s:.0f} s; runtime logs in out/bench-logs/")
    return {
        "setups": {
            label: {"module": s.module, "handler": s.handler, "env": s.env}
            for _, *sides in pairs
            for s in sides
            for label in [s.label]
        },
        "table": [r.as_dict() for r in rows],
        "init_ms": {
            label: {
                "median": round(init_ms(label), 2),
                "all": [round(x / 1e6, 2) for x in values],
            }
            for label, values in init_ns.items()
        },
        "invoke": {label: result.summary() for label, result in cpu.items()},
        "elapsed_s": round(elapsed_s, 1),
    }
