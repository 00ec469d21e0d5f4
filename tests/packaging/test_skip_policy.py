"""A packaging test this machine cannot run is skipped locally and fails in CI."""

from __future__ import annotations

import pytest
from packaging_support import cannot_run_here


def test_a_missing_capability_is_a_skip_locally(monkeypatch: pytest.MonkeyPatch) -> None:
    """Catches: a local run failing (instead of skipping) where buildah or debootstrap cannot
    work."""
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="no mirror"):
        cannot_run_here("no mirror")


@pytest.mark.parametrize("value", ["true", "TRUE"])
def test_a_missing_capability_fails_in_ci(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    """Catches: CI=true runs where a Debian mirror outage or a broken buildah turns the
    container tests into green skips."""
    monkeypatch.setenv("CI", value)
    with pytest.raises(pytest.fail.Exception, match=r"CI=true, so this fails .*: no mirror"):
        cannot_run_here("no mirror")
