"""Testing a function with the `lambda_emulator` pytest fixture (from the lambda-runtime plugin).

Run: pytest examples/emulator/test_app.py
"""

import json
from pathlib import Path

HERE = Path(__file__).parent


def test_greets(lambda_emulator):
    fn = lambda_emulator("app.handler", task_root=HERE, timeout=3)
    result = fn.invoke({"name": "Ada"})
    assert result.ok
    assert json.loads(result.payload["body"])["message"] == "Hello, Ada!"
    assert "greeting Ada" in result.log  # the function's own log lines
    assert result.report.max_memory_used_mb > 0  # REPORT line, with real memory use


def test_missing_name_is_a_function_error(lambda_emulator):
    fn = lambda_emulator("app.handler", task_root=HERE)
    result = fn.invoke({})
    assert result.function_error == "Unhandled"
    assert result.error["errorType"] == "ValueError"
