"""The events the benchmark sends, generated deterministically so every run sends the same bytes."""

from __future__ import annotations

import json
import random
from typing import Any

from runtime.protocol import MIB

SMALL_EVENT = b'{"a":1}'
LARGE_EVENT_MIN_BYTES = MIB

_WORDS = [
    "order",
    "shipped",
    "pending",
    "refund",
    "customer",
    "invoice",
    "warehouse",
    "lambda",
    "queue",
    "batch",
    "retry",
    "priority",
    "express",
    "standard",
    "café",
    "naïve",
    "résumé",
    "Zürich",
    "東京",
    "São",
    "Paulo",
    "München",
]
_STATUSES = ("PENDING", "PAID", "SHIPPED", "DELIVERED", "CANCELLED")


def _record(rng: random.Random, i: int) -> dict[str, Any]:
    """One order-like record: nested dicts and lists, strings, ints, floats, bools, nulls."""
    return {
        "id": f"{rng.getrandbits(128):032x}",
        "seq": i,
        "createdAt": f"2024-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}T"
        f"{rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}:{rng.randint(0, 59):02d}Z",
        "status": rng.choice(_STATUSES),
        "customer": {
            "name": " ".join(rng.choice(_WORDS).title() for _ in range(2)),
            "email": f"user{rng.randint(1, 10**6)}@example.com",
            "age": rng.randint(18, 90),
            "vip": rng.random() < 0.1,
            "referrer": None if rng.random() < 0.7 else f"ref-{rng.randint(1, 999)}",
        },
        "items": [
            {
                "sku": f"SKU-{rng.randint(10000, 99999)}",
                "qty": rng.randint(1, 5),
                "price": round(rng.uniform(0.5, 500.0), 2),
            }
            for _ in range(rng.randint(1, 4))
        ],
        "total": round(rng.uniform(1.0, 2000.0), 2),
        "tags": rng.sample(_WORDS, 3),
        "note": " ".join(rng.choice(_WORDS) for _ in range(rng.randint(0, 12))),
    }


def large_event(min_bytes: int = LARGE_EVENT_MIN_BYTES) -> bytes:
    """A realistic JSON document of at least `min_bytes` bytes, compact UTF-8 like Lambda's."""
    rng = random.Random(20240601)
    records: list[dict[str, Any]] = []
    size = len('{"Records":[]}')
    while size < min_bytes:
        rec = _record(rng, len(records))
        records.append(rec)
        size += len(json.dumps(rec, separators=(",", ":"), ensure_ascii=False).encode()) + 1
    return json.dumps({"Records": records}, separators=(",", ":"), ensure_ascii=False).encode()
