"""Benchmark handlers: as small as possible, so the numbers measure the runtime, not user code.

Both runtimes load this same file with LAMBDA_TASK_ROOT pointing at this folder.
"""

from typing import Any


def echo(event: Any, context: Any) -> Any:
    return event
