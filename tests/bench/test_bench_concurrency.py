"""bench.section_concurrency: the memory it reports is the summed PSS of a real process tree."""

from __future__ import annotations

import os
import subprocess
import sys
import time

from bench.section_concurrency import PssSampler, pss_kib, tree_pids


def test_the_tree_holds_children_and_their_memory_is_summed() -> None:
    child = subprocess.Popen(
        [sys.executable, "-c", "import time; x = bytearray(64 << 20); time.sleep(30)"]
    )
    try:
        deadline = time.monotonic() + 10
        while pss_kib(child.pid) < 60 << 10 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert child.pid in tree_pids(os.getpid())
        with PssSampler(os.getpid()) as sampler:
            time.sleep(0.1)
        # Our own PSS plus the child's 64 MiB buffer.
        assert sampler.peak_kib >= pss_kib(os.getpid()) + (60 << 10)
        assert sampler.processes >= 2
    finally:
        child.kill()
        child.wait()
