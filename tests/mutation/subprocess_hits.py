"""pytest plugin for `make mutate`: credit the tests whose runtime *subprocess* ran a function.

mutmut 3 decides which tests to run against a mutant from the functions each test reached
during its "stats" pass, and it only sees calls made inside the pytest process. The e2e tests
run ``python -m runtime`` in a child process, so without this the functions only they reach
(the loop, the lifecycle) would be "no tests" and never tried. The child loads
``tests/mutation/sitecustomize.py`` (copied next to the mutated ``runtime/``), which appends
each function it reaches to the file named here; this plugin adds those names to mutmut's
record for the test before mutmut reads it at teardown.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

HITS_ENV = "MUTMUT_SUBPROCESS_HITS"


def _collecting_stats() -> bool:
    return os.environ.get("MUTANT_UNDER_TEST") == "stats"


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item: pytest.Item) -> Iterator[None]:
    if not _collecting_stats():
        return (yield)
    fd, name = tempfile.mkstemp(prefix="mutmut-hits-", suffix=".txt")
    os.close(fd)
    os.environ[HITS_ENV] = name
    try:
        return (yield)
    finally:
        del os.environ[HITS_ENV]
        Path(name).unlink(missing_ok=True)


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_teardown(item: pytest.Item) -> None:
    # tryfirst: mutmut's own teardown hook moves the hits into its table and clears them.
    name = os.environ.get(HITS_ENV)
    if not name or not _collecting_stats():
        return
    from mutmut.state import state

    hits = Path(name).read_text(encoding="utf-8").split()
    state()._stats.update(hits)
