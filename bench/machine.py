"""A description of the machine and interpreter, printed with every benchmark result."""

from __future__ import annotations

import os
import platform
import sys
from typing import Any


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _mem_total_mib() -> int | None:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) // 1024
    except OSError:
        pass
    return None


def describe() -> dict[str, Any]:
    try:
        load = list(os.getloadavg())
    except OSError:
        load = []
    return {
        "python": sys.version.split()[0],
        "python_implementation": platform.python_implementation(),
        "executable": sys.executable,
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpu_model": _cpu_model(),
        "cpus": os.cpu_count(),
        "mem_total_mib": _mem_total_mib(),
        "loadavg": load,
    }


def summary_lines(info: dict[str, Any]) -> list[str]:
    load = ", ".join(f"{x:.2f}" for x in info["loadavg"]) or "?"
    return [
        f"Python {info['python']} ({info['python_implementation']}) at {info['executable']}",
        f"{info['platform']}; {info['cpu_model']}, {info['cpus']} CPUs, "
        f"{info['mem_total_mib']} MiB RAM; load average {load}",
    ]
