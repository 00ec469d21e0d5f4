"""A handler module that imports structlog at module level, as most structlog users do."""

from __future__ import annotations

from typing import Any

import structlog

log = structlog.get_logger("app.struct")
log.info("imported", phase="init")


def handler(event: Any, context: Any) -> str:
    structlog.contextvars.bind_contextvars(order="o-1")
    log.info("bound keys become fields", user="ana", count=3)
    log.warning("multi\nline")
    try:
        raise KeyError("missing")
    except KeyError:
        log.exception("lookup failed")
    return "ok"


def bound(event: Any, context: Any) -> dict[str, Any]:
    before = dict(structlog.contextvars.get_contextvars())
    structlog.contextvars.bind_contextvars(invoke=event.get("n"))
    log.info("seen")
    return before
