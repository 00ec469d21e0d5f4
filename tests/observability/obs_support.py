"""Helpers shared by the observability tests and the end-to-end ones: an OTLP/HTTP receiver
on 127.0.0.1 that decodes with the official protos, and a checker of EMF's rules."""

from __future__ import annotations

import json
import math
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from runtime.observability.metrics import UNITS

REQUEST_ID = "0b4b5d2f-9a3e-4c5e-8f43-1c2d3e4f5a6b"
XRAY = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1"

NAMESPACE_CHARS = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-_/#: ")


def validate_emf(line: str) -> dict[str, Any]:
    """Every rule of the EMF specification that a single line can break; returns the document."""
    assert line.endswith("\n") and line.count("\n") == 1, "one log line"
    doc = json.loads(line)
    assert isinstance(doc, dict)
    aws = doc["_aws"]
    assert isinstance(aws, dict)
    assert isinstance(aws["Timestamp"], int) and aws["Timestamp"] >= 0
    directives = aws["CloudWatchMetrics"]
    assert isinstance(directives, list) and directives
    for directive in directives:
        namespace = directive["Namespace"]
        assert isinstance(namespace, str) and 1 <= len(namespace) <= 255
        assert set(namespace) <= NAMESPACE_CHARS and namespace.strip()
        dimension_sets = directive["Dimensions"]
        assert isinstance(dimension_sets, list)
        for dimension_set in dimension_sets:
            assert isinstance(dimension_set, list) and 1 <= len(dimension_set) <= 30
            for name in dimension_set:
                value = doc[name]  # a dimension must be a top-level member...
                assert isinstance(value, str) and 1 <= len(value) <= 1024  # ...holding a string
        metrics = directive["Metrics"]
        assert isinstance(metrics, list) and 1 <= len(metrics) <= 100
        names = [m["Name"] for m in metrics]
        assert len(names) == len(set(names))
        for metric in metrics:
            assert set(metric) <= {"Name", "Unit", "StorageResolution"}
            name = metric["Name"]
            assert isinstance(name, str) and 1 <= len(name) <= 255
            if "Unit" in metric:
                assert metric["Unit"] in UNITS
            if "StorageResolution" in metric:
                assert metric["StorageResolution"] in (1, 60)
            value = doc[name]
            values = value if isinstance(value, list) else [value]
            assert 1 <= len(values) <= 100
            for v in values:
                assert isinstance(v, (int, float)) and not isinstance(v, bool)
                assert math.isfinite(v)
    return dict(doc)



class Collector:
    """An OTLP/HTTP receiver on 127.0.0.1 that decodes what it gets with the official protos."""

    def __init__(self, status: int = 200, delay: float = 0.0, port: int = 0) -> None:
        self.requests: list[tuple[dict[str, str], ExportTraceServiceRequest]] = []
        self.paths: list[str] = []  # the request target of each request, query included
        self.status = status
        self.delay = delay
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                if self.headers.get("Content-Encoding") == "gzip":
                    import gzip

                    body = gzip.decompress(body)
                message = ExportTraceServiceRequest()
                message.ParseFromString(body)
                outer.requests.append((dict(self.headers.items()), message))
                outer.paths.append(self.path)
                time.sleep(outer.delay)
                self.send_response(outer.status)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/v1/traces"

    def spans(self) -> list[Any]:
        return [
            span
            for _, message in self.requests
            for rs in message.resource_spans
            for ss in rs.scope_spans
            for span in ss.spans
        ]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
