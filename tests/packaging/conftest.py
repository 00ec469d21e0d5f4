"""Fixtures for the packaging tests: tools, the cached Debian base image, background processes.

Helpers shared by these tests live in packaging_support.py (importable because pytest puts this
folder on sys.path).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from packaging_support import (
    BASE_IMAGE,
    CONTAINERS,
    OUT,
    Buildah,
    Proc,
    cannot_run_here,
    ensure_tools,
    lock,
    make_base_image,
)


@pytest.fixture(scope="session")
def buildah() -> Buildah:
    ensure_tools("buildah")
    if os.geteuid() != 0:
        cannot_run_here("buildah with vfs storage and chroot isolation needs root here "
                        "(no rootless user-namespace setup on this machine)")
    tool = Buildah(CONTAINERS / "storage", Path(tempfile.gettempdir()) / "lambda-runtime-buildah")
    probe = tool("info", check=False, timeout=120)
    if probe.returncode != 0:
        cannot_run_here(f"buildah cannot work in this environment: {probe.stderr.strip()[-600:]}")
    return tool


@pytest.fixture(scope="session")
def base_image(buildah: Buildah) -> str:
    """A local Debian base with python3, cached in out/containers between runs."""
    with lock(OUT / "cache" / "base-image.lock"):
        if not buildah.has_image(BASE_IMAGE):
            make_base_image(buildah)
    return BASE_IMAGE


@pytest.fixture
def processes() -> Iterator[list[Proc]]:
    """Processes started by a test; all stopped afterwards, whatever happened."""
    started: list[Proc] = []
    yield started
    for proc in reversed(started):
        proc.stop()
