"""Section "streaming" (issue 10): the cost and the latency of streamed responses.

- yield -> first byte: a handler yields chunks stamped with time.monotonic_ns() (the clock is
  system-wide on Linux); a bare Runtime API server in this process notes when each stamp's
  bytes come out of recv(). Target: 1 ms at the median.
- CPU of a 6 MB response streamed in 64 KiB chunks against the same 6 MB returned buffered,
  on the runtime process (kernel on-CPU time while it is parked in /next), against the
  benchmark's Runtime API server process. Target: at most 1.2x.
- yield -> first byte at a client of the emulator, through the InvokeWithResponseStream
  endpoint and through the function-URL front. Target: 5 ms.
"""

from __future__ import annotations

import argparse
import re
import socket
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import orjson

from bench import procstats
from bench.runtimes import REPO_ROOT, BenchError, Runtime, RuntimeSpec, Server, runtime_env
from runtime import protocol

TASK_ROOT = Path(__file__).resolve().parent / "task_root"
STAMP = re.compile(rb"T(\d+);")
# 6 MB of JSON: a string, so that both handlers echo it as the server expects.
BIG_EVENT = b'"' + b"x" * (6_000_000 - 2) + b'"'
SETTLE_S = 0.005


def add_arguments(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("streaming section")
    g.add_argument(
        "--stream-rounds", type=int, default=5, help="measured batches per case (CPU comparison)"
    )
    g.add_argument(
        "--stream-batch", type=int, default=20, help="6 MB invokes per batch (CPU comparison)"
    )
    g.add_argument("--stream-chunks", type=int, default=50, help="stamped chunks per latency run")


def run(args: argparse.Namespace) -> dict[str, Any]:
    log_dir = REPO_ROOT / "out" / "bench-logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    yield_ms = _yield_to_runtime_api(log_dir, args.stream_chunks)
    print(f"  yield -> Runtime API: median {statistics.median(yield_ms):.3f} ms", flush=True)
    cpu = _cpu_comparison(log_dir, args.stream_rounds, args.stream_batch)
    ratio = statistics.median(cpu["streamed"]) / statistics.median(cpu["buffered"])
    print(f"  CPU streamed / buffered 6 MB: {ratio:.2f}x", flush=True)
    front = _through_emulator(args.stream_chunks)
    lines = [
        ("yield -> Runtime API, median ms", statistics.median(yield_ms), 1.0),
        ("CPU ms per 6 MB invoke, buffered", statistics.median(cpu["buffered"]), None),
        ("CPU ms per 6 MB invoke, 64 KiB chunks", statistics.median(cpu["streamed"]), None),
        ("CPU streamed / buffered", ratio, 1.2),
        ("CPU ms per 6 MB invoke, 65,000 B chunks", statistics.median(cpu["streamed_65000"]), None),
        *(
            (f"  of which {name}, ms", statistics.median(cpu[name]), None)
            for name in ("buffered user", "buffered sys", "streamed user", "streamed sys")
        ),
        *(
            (f"yield -> client ({name}), median ms", statistics.median(values), 5.0)
            for name, values in front.items()
        ),
    ]
    for label, value, target in lines:
        verdict = (
            ""
            if target is None
            else f"  target <= {target:g}: " + ("met" if value <= target else "NOT MET")
        )
        print(f"  {label:<48} {value:9.3f}{verdict}")
    return {
        "yield_to_runtime_api_ms": _summary(yield_ms),
        "cpu_ms_per_6mb": {k: _summary(v) for k, v in cpu.items()},
        "cpu_ratio_streamed_to_buffered": round(ratio, 3),
        "yield_to_client_ms": {k: _summary(v) for k, v in front.items()},
    }


def _summary(values: list[float]) -> dict[str, float]:
    return {
        "median": round(statistics.median(values), 3),
        "min": round(min(values), 3),
        "max": round(max(values), 3),
        "n": len(values),
    }


def _stamps(data: bytes, now_ns: int, out: list[float]) -> None:
    out.extend((now_ns - int(m.group(1))) / 1e6 for m in STAMP.finditer(data))


# --- yield -> Runtime API ------------------------------------------------------------------


def _yield_to_runtime_api(log_dir: Path, chunks: int) -> list[float]:
    """One invoke of the stamped handler against a bare server that times every recv()."""
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    latencies: list[float] = []
    errors: list[str] = []
    event = orjson.dumps({"chunks": chunks, "pause": 0.005})

    def serve() -> None:
        try:
            sock, _ = listener.accept()
            with sock:
                _serve_one(sock, event, latencies)
        except (OSError, BenchError) as exc:
            errors.append(str(exc))

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    env = runtime_env(port)
    env.update(_HANDLER="streaming_handlers.stamped", LAMBDA_TASK_ROOT=str(TASK_ROOT))
    with open(log_dir / "streaming-yield.log", "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "runtime", "streaming_handlers.stamped"],
            cwd=TASK_ROOT,
            env=env,
            stdout=log,
            stderr=log,
        )
    try:
        thread.join(60)
    finally:
        proc.kill()
        proc.wait()
        listener.close()
    if errors or len(latencies) != chunks:
        raise BenchError(f"stamped stream: {len(latencies)} of {chunks} chunks; {errors}")
    return latencies


def _serve_one(sock: socket.socket, event: bytes, latencies: list[float]) -> None:
    """Answer one /next, then read the streamed /response, noting when each stamp arrives."""
    buf = b""
    while b"\r\n\r\n" not in buf:
        data = sock.recv(65536)
        if not data:
            raise BenchError("the runtime closed before asking for an event")
        buf += data
    head = (
        f"HTTP/1.1 200 OK\r\n{protocol.REQUEST_ID_HEADER}: bench-1\r\n"
        f"{protocol.DEADLINE_HEADER}: {int(time.time() * 1000) + 60_000}\r\n"
        f"{protocol.FUNCTION_ARN_HEADER}: arn:aws:lambda:us-east-1:1:function:f\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(event)}\r\n\r\n"
    )
    sock.sendall(head.encode() + event)
    while True:
        data = sock.recv(65536)
        now = time.monotonic_ns()
        if not data:
            return
        _stamps(data, now, latencies)
        if b"\r\n0\r\n" in data or data.startswith(b"0\r\n"):
            sock.sendall(b"HTTP/1.1 202 Accepted\r\nContent-Length: 0\r\n\r\n")
            return


# --- CPU: streamed against buffered ---------------------------------------------------------


def _cpu_comparison(log_dir: Path, rounds: int, batch: int) -> dict[str, list[float]]:
    """CPU ms per 6 MB invoke of each handler, in alternating batches."""
    ours = RuntimeSpec("ours", "runtime")
    server = Server(None)
    results: dict[str, list[float]] = {"buffered": [], "streamed": [], "streamed_65000": []}
    # Where the time goes: user space (Python) and the kernel (the socket writes).
    split: dict[str, list[float]] = {
        f"{case} {part}": [] for case in results for part in ("user", "sys")
    }
    runtimes: dict[str, Runtime] = {}
    try:
        server.load("6mb", BIG_EVENT)
        for case in results:
            log = log_dir / f"streaming-{case}.log"
            log.write_bytes(b"")
            runtimes[case] = Runtime(
                ours, server, log, handler=f"streaming_handlers.{case}", task_root=TASK_ROOT
            )
        for r in range(rounds + 1):
            for case in list(results) if r % 2 == 0 else list(results)[::-1]:
                rt = runtimes[case]
                server.reset()
                rt.start()
                rt.wait_idle(30.0)
                time.sleep(SETTLE_S)
                cpu0, _ = procstats.cpu_ns(rt.pid)
                user0, sys0 = procstats.user_sys_ns(rt.pid)
                server.start_batch("6mb", batch)
                _, stats = rt.wait_idle(120.0)
                time.sleep(SETTLE_S)
                cpu1, _ = procstats.cpu_ns(rt.pid)
                user1, sys1 = procstats.user_sys_ns(rt.pid)
                rt.stop()
                if stats.responses != batch or stats.errors:
                    raise BenchError(f"{case}: {stats.responses} of {batch}: {stats.first_error}")
                if r:  # the first round warms caches
                    results[case].append((cpu1 - cpu0) / batch / 1e6)
                    split[f"{case} user"].append((user1 - user0) / batch / 1e6)
                    split[f"{case} sys"].append((sys1 - sys0) / batch / 1e6)
    finally:
        for rt in runtimes.values():
            rt.stop()
        server.stop()
    return {**results, **split}


# --- through the emulator -------------------------------------------------------------------


def _through_emulator(chunks: int) -> dict[str, list[float]]:
    from runtime.emulator import Emulator

    event = orjson.dumps({"chunks": chunks, "pause": 0.005})
    with Emulator("streaming_handlers.stamped", task_root=TASK_ROOT, http_port=0, timeout=30) as fn:
        fn.invoke({"chunks": 1})  # the cold start is not what is measured
        host, port = fn.url.removeprefix("http://").split(":")
        stream_head = (
            f"POST {protocol.stream_invoke_path(fn.function_name)} HTTP/1.1\r\n"
            f"Host: {host}\r\nContent-Length: {len(event)}\r\n\r\n"
        ).encode() + event
        via_stream = _client_latencies(host, int(port), stream_head, chunks)
        front_host, front_port = fn.http_url.removeprefix("http://").split(":")
        query = f"chunks={chunks}"
        front_head = f"GET /?{query} HTTP/1.1\r\nHost: {front_host}\r\n\r\n".encode()
        # The function-URL event carries the query, not the body: the handler reads both.
        via_front = _client_latencies(front_host, int(front_port), front_head, None)
    return {"InvokeWithResponseStream": via_stream, "function URL": via_front}


def _client_latencies(host: str, port: int, request: bytes, chunks: int | None) -> list[float]:
    latencies: list[float] = []
    with socket.create_connection((host, port), timeout=30) as sock:
        sock.sendall(request)
        while True:
            data = sock.recv(65536)
            now = time.monotonic_ns()
            if not data:
                break
            _stamps(data, now, latencies)
            if b"InvokeComplete" in data or data.endswith(b"0\r\n\r\n"):
                break
    if not latencies or (chunks is not None and len(latencies) != chunks):
        raise BenchError(f"emulator stream: {len(latencies)} stamps, expected {chunks}")
    return latencies
