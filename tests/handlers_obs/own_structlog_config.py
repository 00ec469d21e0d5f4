"""A handler module that configures structlog itself: its configuration must win."""

from __future__ import annotations

from typing import Any

import structlog

structlog.configure(processors=[structlog.processors.KeyValueRenderer()])
log = structlog.get_logger()


def handler(event: Any, context: Any) -> str:
    log.info("own config", k="v")
    return "ok"
