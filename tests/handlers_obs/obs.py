"""Handlers for the observability end-to-end tests. Each name says what it does."""

from __future__ import annotations

import logging
import sys
from typing import Any

log = logging.getLogger("app.orders")


def echo(event: Any, context: Any) -> Any:
    return event


def loaded_modules(event: Any, context: Any) -> dict[str, list[str]]:
    """Which observability libraries the process has imported by the time it is invoked."""
    prefixes = ("structlog", "opentelemetry", "runtime.observability")
    return {p: sorted(m for m in sys.modules if m == p or m.startswith(p + ".")) for p in prefixes}


def stdlib_records(event: Any, context: Any) -> str:
    log.debug("debug record")
    log.info("order %s accepted", 7, extra={"orderId": "o-7", "amount": 12.5})
    log.warning("stock low\nsecond line")
    logging.getLogger().error("from the root logger: ünïcödé 💡")
    try:
        dict[str, int]()["missing"]
    except KeyError:
        log.exception("lookup failed")
    log.critical("on fire")
    print("printed line")
    return "ok"


def info_once(event: Any, context: Any) -> Any:
    log.info("handled", extra={"n": event.get("n") if isinstance(event, dict) else None})
    return event


def debug_then_fail(event: Any, context: Any) -> None:
    for i in range(int(event.get("records", 3))):
        log.debug("step %d", i)
    log.info("about to fail")
    if event.get("fail", True):
        raise RuntimeError("failed after debugging")


def adds_root_handler(event: Any, context: Any) -> str:
    # What a library or a copy-pasted snippet does: a second root handler on stderr/stdout.
    logging.getLogger().addHandler(logging.StreamHandler(sys.stderr))
    logging.basicConfig(level=logging.INFO)
    log.warning("written once")
    return "ok"


def fail(event: Any, context: Any) -> None:
    raise ValueError("something went wrong")


def logs_from_a_thread(event: Any, context: Any) -> str:
    """Records from a thread the handler starts (a pool worker, say), which has no context."""
    import threading

    worker = threading.Thread(target=lambda: log.warning("from a worker thread"))
    worker.start()
    worker.join(10)
    return "ok"
