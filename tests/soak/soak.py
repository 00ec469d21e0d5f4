"""Soak: many invokes through the real emulator (``lambda-runtime serve``, our runtime) at a few
connections, mixing successes, errors, timeouts and crashes.

Every invoke carries a unique id; each must get exactly one answer, the one its kind calls for
(its own id back, or the expected error), under a unique request id. The emulator's open
descriptors, child processes and RSS are measured after a warm-up and at the end, and may not
grow beyond the bounds below; after the emulator stops, none of its processes may be left.

Loopback only, bounded in count and time. ``make soak`` runs 10,000 invokes;
``tests/soak/test_soak.py`` runs a short version in CI::

    python tests/soak/soak.py [--invokes N] [--connections C] [--seed S]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import re
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import httpx

HERE = Path(__file__).resolve().parent
HANDLERS = HERE / "handlers"
FUNCTION_TIMEOUT_S = 1.0
# Share of each kind of invoke (the rest succeed). Timeouts and crashes each cost a new
# environment (a cold start), timeouts also their full second.
MIX = {"error": 0.05, "crash": 0.02, "timeout": 0.01}

# Growth allowed between the warm-up (every environment started) and the end. An environment
# holds about 4 of the emulator's descriptors (its Runtime API listener, connection and output
# pipes): the end may show two more environments' worth than the start (replacements of crashed
# ones still being set up), never a number that grows with the invokes served. Measured over
# 10,000 invokes: descriptors 46 -> 30, RSS 28.1 -> 28.6 MiB.
FD_GROWTH = 8
RSS_GROWTH_MIB = 16
# The end's children: at most one runtime per environment.
EXTRA_CHILDREN = 0
ANSWER_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class Usage:
    fds: int
    children: int
    rss_kib: int

    def __str__(self) -> str:
        return f"fds {self.fds}, child processes {self.children}, RSS {self.rss_kib / 1024:.1f} MiB"


@dataclass
class Outcome:
    kind: str
    uid: str
    ok: bool
    latency_s: float
    request_id: str = ""
    problem: str = ""


@dataclass
class SoakResult:
    invokes: int
    connections: int
    elapsed_s: float
    outcomes: list[Outcome]
    start: Usage
    end: Usage
    left_running: list[int]
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def summary(self) -> str:
        counts = Counter((o.kind, "as expected" if o.ok else "WRONG") for o in self.outcomes)
        latencies = sorted(o.latency_s for o in self.outcomes)
        lines = [
            f"soak: {self.invokes} invokes at {self.connections} connections in "
            f"{self.elapsed_s:.1f} s ({self.invokes / self.elapsed_s:.0f}/s)",
            "outcomes: "
            + ", ".join(f"{kind} {how}: {n}" for (kind, how), n in sorted(counts.items())),
            f"latency: p50 {percentile(latencies, 50) * 1000:.1f} ms, "
            f"p99 {percentile(latencies, 99) * 1000:.1f} ms, "
            f"max {latencies[-1] * 1000:.1f} ms"
            if latencies
            else "latency: no answers",
        ]
        for kind in sorted({o.kind for o in self.outcomes}):
            own = sorted(o.latency_s for o in self.outcomes if o.kind == kind)
            lines.append(
                f"  {kind}: p50 {percentile(own, 50) * 1000:.1f} ms, "
                f"p99 {percentile(own, 99) * 1000:.1f} ms"
            )
        lines += [
            f"emulator after warm-up: {self.start}",
            f"emulator at the end:    {self.end}",
            f"bounds: fds +{FD_GROWTH}, RSS +{RSS_GROWTH_MIB} MiB, child processes <= "
            f"{self.connections + EXTRA_CHILDREN}; none left after stop",
        ]
        if self.problems:
            lines.append(f"FAILED ({len(self.problems)} problems):")
            lines += [f"  {p}" for p in self.problems[:20]]
        else:
            lines.append("OK: every invoke answered exactly once, as expected; no growth")
        return "\n".join(lines)


def percentile(sorted_values: list[float], pct: float) -> float:
    if not sorted_values:
        return 0.0
    index = min(len(sorted_values) - 1, round(pct / 100 * (len(sorted_values) - 1)))
    return sorted_values[index]


# --- the emulator process and what it holds --------------------------------------------------


def _state_and_parent(pid: int | str) -> tuple[bytes, int] | None:
    """A process's state letter and parent pid from /proc (None once it is gone)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return None
    # The command name (in parentheses) may hold spaces: fields start after its last ')'.
    fields = stat[stat.rfind(b")") + 2 :].split()
    return fields[0], int(fields[1])


def _alive(pid: int) -> bool:
    found = _state_and_parent(pid)
    return found is not None and found[0] != b"Z"


def descendants(pid: int) -> list[int]:
    """Live (not zombie) descendants of ``pid``."""
    children: dict[int, list[int]] = {}
    for name in filter(str.isdigit, os.listdir("/proc")):
        found = _state_and_parent(name)
        if found is not None and found[0] != b"Z":
            children.setdefault(found[1], []).append(int(name))
    result: list[int] = []
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            result.append(child)
            todo.append(child)
    return result


def usage(pid: int) -> Usage:
    rss = 0
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1])
    return Usage(len(os.listdir(f"/proc/{pid}/fd")), len(descendants(pid)), rss)


class EmulatorProcess:
    """``lambda-runtime serve`` on a free loopback port, its stderr drained by a thread."""

    def __init__(self, connections: int) -> None:
        command = [
            sys.executable,
            "-m",
            "runtime.cli",
            "serve",
            "soak_app.handler",
            "--task-root",
            str(HANDLERS),
            "--host",
            "127.0.0.1",
            "--port",
            "0",
            "--timeout",
            str(FUNCTION_TIMEOUT_S),
            "--concurrency",
            str(connections),
            "--quiet",
        ]
        self.proc = subprocess.Popen(command, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
        self.tail: list[str] = []
        self.url = self._read_url()
        # Never leave the emulator's stderr undrained: a full pipe would block it.
        self._drain = threading.Thread(target=self._read_rest, daemon=True)
        self._drain.start()

    def _read_url(self) -> str:
        assert self.proc.stderr is not None
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            line = self.proc.stderr.readline().decode("utf-8", "replace")
            if not line:
                break
            self.tail.append(line)
            found = re.search(r"Invoke API: (http://[^/\s]+)(/\S+)", line)
            if found:
                self.path = found.group(2)
                return found.group(1)
        self.stop()
        raise RuntimeError("the emulator did not start:\n" + "".join(self.tail))

    def _read_rest(self) -> None:
        assert self.proc.stderr is not None
        for raw in self.proc.stderr:
            self.tail = [*self.tail[-50:], raw.decode("utf-8", "replace")]

    def stop(self) -> list[int]:
        """SIGTERM, wait; returns the pids of its processes still alive a moment later."""
        watched = descendants(self.proc.pid)
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        deadline = time.monotonic() + 5
        alive = watched
        while alive and time.monotonic() < deadline:
            alive = [p for p in watched if _alive(p)]
            time.sleep(0.05)
        for pid in alive:  # do not leave them to the next run; still reported
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        return alive


# --- the load ---------------------------------------------------------------------------------


def plan(invokes: int, seed: int) -> list[tuple[str, str]]:
    """(kind, unique id) for each invoke, shuffled by ``seed``."""
    rng = random.Random(seed)
    kinds: list[str] = []
    for kind, share in MIX.items():
        kinds += [kind] * max(1, round(invokes * share))
    kinds += ["ok"] * (invokes - len(kinds))
    rng.shuffle(kinds)
    return [(kind, f"{i}-{uuid.UUID(int=rng.getrandbits(128))}") for i, kind in enumerate(kinds)]


def check(kind: str, uid: str, response: httpx.Response) -> str:
    """What is wrong with this answer for an invoke of ``kind`` with ``uid`` ('' if nothing)."""
    if response.status_code != 200:
        return f"status {response.status_code}: {response.text[:200]}"
    error = response.headers.get("x-amz-function-error")
    try:
        body = response.json()
    except ValueError:
        return f"not JSON: {response.text[:200]}"
    if kind == "ok":
        if error or body.get("id") != uid:
            return f"expected its own id back, got {response.text[:200]}"
        return ""
    expected_type = {
        "error": "ValueError",
        "crash": "Runtime.ExitError",
        "timeout": "Sandbox.Timedout",
    }[kind]
    if error != "Unhandled" or not isinstance(body, dict):
        return f"expected an Unhandled error, got {error!r}: {response.text[:200]}"
    if body.get("errorType") != expected_type:
        return f"expected {expected_type}, got {response.text[:200]}"
    if kind == "error" and uid not in str(body.get("errorMessage")):
        return f"error message of another invoke: {response.text[:200]}"
    return ""


async def drive(
    base_url: str, path: str, work: list[tuple[str, str]], connections: int
) -> list[Outcome]:
    queue: asyncio.Queue[tuple[str, str]] = asyncio.Queue()
    for item in work:
        queue.put_nowait(item)
    outcomes: list[Outcome] = []
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    async with httpx.AsyncClient(
        base_url=base_url, limits=limits, timeout=ANSWER_TIMEOUT_S
    ) as client:

        async def worker() -> None:
            while not queue.empty():
                kind, uid = queue.get_nowait()
                started = time.perf_counter()
                try:
                    response = await client.post(path, json={"id": uid, "do": kind})
                except httpx.HTTPError as exc:
                    outcomes.append(
                        Outcome(kind, uid, False, time.perf_counter() - started, "", repr(exc))
                    )
                    continue
                problem = check(kind, uid, response)
                outcomes.append(
                    Outcome(
                        kind,
                        uid,
                        not problem,
                        time.perf_counter() - started,
                        response.headers.get("x-amzn-requestid", ""),
                        problem,
                    )
                )

        await asyncio.gather(*(worker() for _ in range(connections)))
    return outcomes


def run_soak(invokes: int, connections: int = 8, seed: int = 12) -> SoakResult:
    emulator = EmulatorProcess(connections)
    try:
        # Warm-up: as many environments as connections, so the start counts hold them.
        warm = [("ok", f"warm-{i}") for i in range(connections * 4)]
        warm_outcomes = asyncio.run(drive(emulator.url, emulator.path, warm, connections))
        time.sleep(0.2)
        start = usage(emulator.proc.pid)
        work = plan(invokes, seed)
        began = time.perf_counter()
        outcomes = asyncio.run(drive(emulator.url, emulator.path, work, connections))
        elapsed = time.perf_counter() - began
        time.sleep(0.5)  # let environments replaced at the very end settle
        end = usage(emulator.proc.pid)
    finally:
        left = emulator.stop()
    result = SoakResult(invokes, connections, elapsed, outcomes, start, end, left)
    problems = result.problems
    problems += [f"warm-up: {o.problem}" for o in warm_outcomes if not o.ok]
    answered = Counter(o.uid for o in outcomes)
    missing = [uid for _, uid in work if answered[uid] == 0]
    doubled = [uid for uid, n in answered.items() if n > 1]
    if missing:
        problems.append(f"{len(missing)} invokes never answered, e.g. {missing[:3]}")
    if doubled:
        problems.append(f"{len(doubled)} invokes answered more than once, e.g. {doubled[:3]}")
    request_ids = Counter(o.request_id for o in outcomes if o.request_id)
    reused = [rid for rid, n in request_ids.items() if n > 1]
    if reused:
        problems.append(f"{len(reused)} request ids answered twice, e.g. {reused[:3]}")
    problems += [f"{o.kind} {o.uid}: {o.problem}" for o in outcomes if not o.ok]
    if end.fds > start.fds + FD_GROWTH:
        problems.append(f"descriptors grew from {start.fds} to {end.fds}")
    if end.rss_kib > start.rss_kib + RSS_GROWTH_MIB * 1024:
        problems.append(f"RSS grew from {start.rss_kib} KiB to {end.rss_kib} KiB")
    if end.children > connections + EXTRA_CHILDREN:
        problems.append(f"{end.children} child processes for {connections} environments")
    if left:
        problems.append(f"processes left running after the emulator stopped: {left}")
    if problems:
        problems.append("emulator's last stderr lines:\n" + "".join(emulator.tail[-20:]))
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--invokes", type=int, default=10_000)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--seed", type=int, default=12)
    args = parser.parse_args(argv)
    if not 1 <= args.invokes <= 100_000 or not 1 <= args.connections <= 64:
        parser.error("--invokes must be 1..100000 and --connections 1..64 (a bounded soak)")
    result = run_soak(args.invokes, args.connections, args.seed)
    print(result.summary())
    return 0 if result.ok else 1


if __name__ == "__main__":
    sys.exit(main())
