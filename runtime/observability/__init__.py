"""Opt-in observability: the JSON log format, the per-invoke DEBUG buffer, structlog routing,
OpenTelemetry traces and CloudWatch metrics (EMF).

Nothing here is imported on the default path (Text logs, nothing switched on). The lifecycle
(:mod:`runtime.bootstrap`) calls the two builders below when the configuration asks for
something; each imports only the modules its configuration needs.

Dependencies point one way, downwards (``tests/test_architecture.py`` checks it)::

    __init__ (these builders)  ->  layer  ->  tracing -> otlp
                                          ->  metrics
                                          ->  structlog_bridge -> jsonlog -> state
    every module               ->  the runtime core (config, context, logs, loghandlers, http)
    state                      ->  nothing of the runtime

This package never imports the lifecycle, and the core never imports this package.
"""

from __future__ import annotations

# typing costs milliseconds of cold start; it is only needed by the type checker.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from runtime.config import Config
    from runtime.layers import InitInfo, Layer
    from runtime.logs import LogRouting, Output
    from runtime.observability.metrics import EmfWriter
    from runtime.observability.tracing import Tracing


def log_routing(config: Config, output: Output, level: int, as_json: bool) -> LogRouting:
    """The function log in the JSON format and/or with the DEBUG buffer (see
    :func:`runtime.observability.jsonlog.log_routing`)."""
    from runtime.observability.jsonlog import log_routing as routing

    return routing(config, output, level, as_json)


def build_layers(config: Config, init_info: InitInfo, structlog_loaded: bool) -> list[Layer]:
    """The observability layer this configuration asks for, or none at all.

    ``structlog_loaded``: user code imported structlog during init, so keys it binds with
    ``bind_contextvars`` must be reset after each invoke.
    """
    from runtime.config import ConfigError

    obs = config.observability
    tracing: Tracing | None = None
    if obs.tracing.exporters:
        from runtime.observability.tracing import Tracing

        try:
            tracing = Tracing.from_config(config, init_info)
        except ValueError as exc:
            # Same outcome as any other bad configuration read at init.
            raise ConfigError(f"tracing configuration: {exc}") from None
    emf: EmfWriter | None = None
    if obs.metrics == "emf":
        from runtime.observability.metrics import EmfWriter

        emf = EmfWriter(config, init_info)
    if tracing is None and emf is None and not obs.log_buffer and not structlog_loaded:
        return []
    from runtime.observability.layer import Observability

    return [
        Observability(
            tracing=tracing,
            emf=emf,
            buffer_size=obs.log_buffer_size if obs.log_buffer else 0,
            restore_structlog=structlog_loaded,
            cold_start=config.initialization_type != "provisioned-concurrency",
        )
    ]
