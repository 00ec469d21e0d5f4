"""The SSE function through the emulator's function-URL front, read as a browser would.

Run: pytest examples/streaming/test_sse.py
"""

import json
import time
from pathlib import Path

import httpx

HERE = Path(__file__).parent


def test_events_arrive_one_by_one(lambda_emulator):
    fn = lambda_emulator("app.handler", task_root=HERE, http_port=0, timeout=5)
    url = fn.http_url + "/countdown?from=3&pause=0.3"
    with httpx.Client(timeout=10) as client, client.stream("GET", url) as response:
        assert response.status_code == 200
        assert response.headers["content-type"] == "text/event-stream"
        assert response.cookies["last-countdown"] == "3"
        events = []
        for line in response.iter_lines():
            if line.startswith("data: ") and line != "data: {}":
                events.append((time.time(), json.loads(line[6:])))
    assert [e["remaining"] for _, e in events] == [3, 2, 1]
    # Each event reached the client right after it was produced, not all at the end.
    for arrived, event in events:
        assert arrived - event["at"] < 0.2


def test_bad_parameters_get_a_400(lambda_emulator):
    fn = lambda_emulator("app.handler", task_root=HERE, http_port=0)
    response = httpx.get(fn.http_url + "/countdown?from=many", timeout=10)
    assert response.status_code == 400
    assert "from must be an integer" in response.json()["message"]
