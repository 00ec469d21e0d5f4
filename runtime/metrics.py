"""CloudWatch metrics in Embedded Metric Format (EMF): one log line per invoke, opt-in.

With ``LAMBDA_RUNTIME_METRICS=emf`` the runtime writes, after each invoke's response has been
posted, one JSON line that CloudWatch turns into metrics, in the namespace
``LAMBDA_RUNTIME_METRICS_NAMESPACE`` (default ``lambda-runtime``), dimensioned by
``FunctionName``::

    {"_aws": {"Timestamp": 1764218887123, "CloudWatchMetrics": [{"Namespace": "lambda-runtime",
      "Dimensions": [["FunctionName"]], "Metrics": [{"Name": "Duration", "Unit": "Milliseconds"},
      ...]}]}, "FunctionName": "orders", "Duration": 12.3, "ColdStart": 1,
      "InitDuration": 160.2, "Errors": 0, "requestId": "..."}

Built in: ``Duration`` (handler, ms), ``ColdStart`` (0/1), ``InitDuration`` (ms, cold invokes
only) and ``Errors`` (0/1). Handlers add their own to the same line::

    from runtime import add_metric, add_property

    add_metric("OrdersPlaced", 1, "Count")
    add_metric("BasketValue", 42.5, "None")
    add_property("orderId", order_id)  # searchable in Logs Insights, not a metric

Outside an invoke, or when metrics are off, both calls check their arguments and do nothing
else, so the same code runs with metrics on or off.
"""

from __future__ import annotations

import contextlib
import math
import sys

from runtime.context import invoke_context
from runtime.observability import InvokeState, current_invoke, to_json

# typing costs milliseconds of cold start; it is only needed by the type checker.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from runtime.config import Config
    from runtime.layers import InitInfo

# CloudWatch's StandardUnit values.
UNITS = frozenset(
    {
        "Seconds", "Microseconds", "Milliseconds",
        "Bytes", "Kilobytes", "Megabytes", "Gigabytes", "Terabytes",
        "Bits", "Kilobits", "Megabits", "Gigabits", "Terabits",
        "Percent", "Count",
        "Bytes/Second", "Kilobytes/Second", "Megabytes/Second", "Gigabytes/Second",
        "Terabytes/Second", "Bits/Second", "Kilobits/Second", "Megabits/Second",
        "Gigabits/Second", "Terabits/Second", "Count/Second",
        "None",
    }
)  # fmt: skip
BUILT_IN = ("Duration", "ColdStart", "InitDuration", "Errors")
DIMENSION = "FunctionName"
# Top-level keys of the line that user metrics and properties may not take.
RESERVED = frozenset({*BUILT_IN, DIMENSION, "_aws", "requestId"})
MAX_METRICS = 100  # per metric directive (EMF rule)
MAX_CUSTOM_METRICS = MAX_METRICS - len(BUILT_IN)
MAX_VALUES = 100  # values of one metric in one line (EMF rule)
MAX_NAME = 255


class _Metric:
    __slots__ = ("resolution", "unit", "values")

    def __init__(self, unit: str, resolution: int, value: float) -> None:
        self.unit = unit
        self.resolution = resolution
        self.values = [value]


class MetricSet:
    """The custom metrics and properties one invoke added."""

    __slots__ = ("dropped", "metrics", "properties")

    def __init__(self) -> None:
        self.metrics: dict[str, _Metric] = {}
        self.properties: dict[str, Any] = {}
        # Values over EMF's per-line limits: dropped (the invoke must not fail for them) and
        # reported once, with the line.
        self.dropped: list[str] = []


def _check_name(kind: str, name: object) -> str:
    if not isinstance(name, str) or not name.strip() or len(name) > MAX_NAME:
        raise ValueError(
            f"{kind} name must be a non-blank string of 1-{MAX_NAME} characters, got {name!r}"
        )
    if name in RESERVED:
        raise ValueError(
            f"{kind} name {name!r} is reserved by the runtime's metric line "
            f"({', '.join(sorted(RESERVED))})"
        )
    return name


def add_metric(name: str, value: float, unit: str = "None", *, resolution: int = 60) -> None:
    """Add ``value`` to metric ``name`` in this invoke's EMF line.

    ``unit`` is one of CloudWatch's units (``Count``, ``Milliseconds``, ``Bytes``, ...,
    ``None``); ``resolution`` 60 (standard) or 1 (high resolution). A name added several times
    in one invoke carries all its values (up to 100), with one unit and resolution.
    """
    _check_name("metric", name)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"metric {name!r}: value must be a number, got {type(value).__name__}")
    if not math.isfinite(value):
        raise ValueError(f"metric {name!r}: value must be finite, got {value!r}")
    if unit not in UNITS:
        raise ValueError(
            f"metric {name!r}: unit {unit!r} is not a CloudWatch unit; use one of "
            f"{', '.join(sorted(UNITS))}"
        )
    if resolution not in (1, 60):
        raise ValueError(f"metric {name!r}: resolution must be 60 or 1, got {resolution!r}")
    state = current_invoke.get()
    metrics = state.metrics if state is not None else None
    if metrics is None:
        return
    if name in metrics.properties:
        raise ValueError(f"metric {name!r}: already added as a property in this invoke")
    metric = metrics.metrics.get(name)
    if metric is None:
        if len(metrics.metrics) >= MAX_CUSTOM_METRICS:
            metrics.dropped.append(name)
            return
        metrics.metrics[name] = _Metric(unit, resolution, value)
        return
    if (metric.unit, metric.resolution) != (unit, resolution):
        raise ValueError(
            f"metric {name!r}: added with unit {metric.unit!r} and resolution "
            f"{metric.resolution} before, now {unit!r} and {resolution}"
        )
    if len(metric.values) >= MAX_VALUES:
        metrics.dropped.append(name)
        return
    metric.values.append(value)


def add_property(name: str, value: Any) -> None:
    """Add a field that is not a metric to this invoke's EMF line (Logs Insights can query it)."""
    _check_name("property", name)
    state = current_invoke.get()
    metrics = state.metrics if state is not None else None
    if metrics is None:
        return
    if name in metrics.metrics:
        raise ValueError(f"property {name!r}: already added as a metric in this invoke")
    metrics.properties[name] = value


class EmfWriter:
    """Renders and writes the line of one invoke."""

    def __init__(self, config: Config, init_info: InitInfo) -> None:
        self.namespace = config.observability.metrics_namespace
        # A dimension value must not be empty; outside Lambda the name may be unset.
        self.function_name = config.function_name or "unknown"
        self.init_duration_ms = round(
            (init_info.handler_loaded_ns - init_info.started_ns) / 1_000_000, 3
        )

    def line(self, state: InvokeState) -> str:
        definitions: list[dict[str, Any]] = [
            {"Name": "Duration", "Unit": "Milliseconds"},
            {"Name": "ColdStart", "Unit": "Count"},
        ]
        values: dict[str, Any] = {
            DIMENSION: self.function_name,
            "Duration": round(state.duration_ns / 1_000_000, 3),
            "ColdStart": 1 if state.cold_start else 0,
        }
        if state.cold_start:
            definitions.append({"Name": "InitDuration", "Unit": "Milliseconds"})
            values["InitDuration"] = self.init_duration_ms
        definitions.append({"Name": "Errors", "Unit": "Count"})
        values["Errors"] = 1 if state.failed else 0
        custom = state.metrics
        if custom is not None:
            for name, metric in custom.metrics.items():
                definition: dict[str, Any] = {"Name": name, "Unit": metric.unit}
                if metric.resolution == 1:
                    definition["StorageResolution"] = 1
                definitions.append(definition)
                values[name] = metric.values[0] if len(metric.values) == 1 else metric.values
        ctx = invoke_context()
        if ctx is not None:
            values["requestId"] = ctx.aws_request_id
        if custom is not None:
            values.update(custom.properties)
        document = {
            "_aws": {
                "Timestamp": state.started_ms,
                "CloudWatchMetrics": [
                    {
                        "Namespace": self.namespace,
                        "Dimensions": [[DIMENSION]],
                        "Metrics": definitions,
                    }
                ],
            },
            **values,
        }
        return to_json(document) + "\n"

    def emit(self, state: InvokeState) -> None:
        # stdout, like every EMF library: Lambda sends it to CloudWatch Logs, which extracts
        # the metrics whatever else the log holds.
        stream = sys.stdout
        with contextlib.suppress(OSError, ValueError):
            stream.write(self.line(state))
            stream.flush()
        custom = state.metrics
        if custom is not None and custom.dropped:
            import logging

            names = ", ".join(sorted(set(custom.dropped)))
            logging.getLogger("runtime.metrics").warning(
                "dropped %d metric value(s) over EMF's limits (%d custom metrics, %d values "
                "each, per invoke): %s",
                len(custom.dropped), MAX_CUSTOM_METRICS, MAX_VALUES, names,
            )
