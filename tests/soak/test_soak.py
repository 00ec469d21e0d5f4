"""The soak's short version, in CI: 400 invokes at 8 connections through the real emulator
(``make soak`` runs 10,000)."""

from __future__ import annotations

from soak import run_soak


def test_short_soak_loses_nothing_and_leaks_nothing() -> None:
    result = run_soak(invokes=400, connections=8)
    print(result.summary())
    assert result.ok, result.summary()
    kinds = {o.kind for o in result.outcomes}
    assert kinds == {"ok", "error", "crash", "timeout"}, kinds
    assert len(result.outcomes) == 400
