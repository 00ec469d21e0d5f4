"""--debug-port: a real DAP client attaches to the environment and stops at a breakpoint."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from emulator_support import MARK, MARK_VAR, OutputWatch

APP = """\
import time


def handler(event, context):
    total = event["a"] + event["b"]
    if event.get("sleep"):
        print("holding the slot", flush=True)
        time.sleep(event["sleep"])
    return {"total": total, "left_ms": context.get_remaining_time_in_millis()}
"""
BREAK_LINE = 5  # total = event["a"] + event["b"]


class DapClient:
    """The Debug Adapter Protocol over a socket, as much as an IDE's attach needs."""

    def __init__(self, port: int, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.sock = socket.create_connection(("127.0.0.1", port), timeout=1)
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        self.sock.settimeout(timeout)
        self.buffer = b""
        self.seq = 0
        self.messages: list[dict[str, Any]] = []

    def send(self, command: str, **arguments: Any) -> int:
        self.seq += 1
        body = json.dumps(
            {"seq": self.seq, "type": "request", "command": command, "arguments": arguments}
        ).encode()
        self.sock.sendall(b"Content-Length: %d\r\n\r\n" % len(body) + body)
        return self.seq

    def _read(self) -> dict[str, Any]:
        while b"\r\n\r\n" not in self.buffer:
            self._fill()
        head, _, rest = self.buffer.partition(b"\r\n\r\n")
        length = next(
            int(line.split(b":", 1)[1])
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"content-length:")
        )
        while len(rest) < length:
            self.buffer = head + b"\r\n\r\n" + rest
            self._fill()
            head, _, rest = self.buffer.partition(b"\r\n\r\n")
        self.buffer = rest[length:]
        message: dict[str, Any] = json.loads(rest[:length])
        return message

    def _fill(self) -> None:
        data = self.sock.recv(65536)
        if not data:
            raise ConnectionError("the debug adapter closed the connection")
        self.buffer += data

    def wait(self, kind: str, name: str, seq: int | None = None) -> dict[str, Any]:
        """The first ``event`` or ``response`` called ``name`` (to request ``seq``)."""
        key = "event" if kind == "event" else "command"
        for i, message in enumerate(self.messages):
            if message["type"] == kind and message.get(key) == name and (
                seq is None or message.get("request_seq") == seq
            ):
                return self.messages.pop(i)
        while True:
            message = self._read()
            if message["type"] == kind and message.get(key) == name and (
                seq is None or message.get("request_seq") == seq
            ):
                return message
            self.messages.append(message)

    def request(self, command: str, **arguments: Any) -> dict[str, Any]:
        response = self.wait("response", command, self.send(command, **arguments))
        assert response["success"], response
        return response

    def close(self) -> None:
        self.sock.close()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def function_dir(tmp_path: Path) -> Path:
    (tmp_path / "app.py").write_text(APP)
    return tmp_path


def test_a_dap_client_hits_a_breakpoint_in_the_handler(
    lambda_emulator: Any, function_dir: Path
) -> None:
    port = _free_port()
    output = OutputWatch()
    fn = lambda_emulator(
        "app.handler",
        task_root=function_dir,
        debug_port=port,
        debug_wait=True,
        timeout=1,
        echo=output,
        env={MARK_VAR: MARK},
    )
    outcome: dict[str, Any] = {}
    invoker = threading.Thread(target=lambda: outcome.update(result=fn.invoke({"a": 2, "b": 3})))
    invoker.start()
    client = DapClient(port)
    try:
        client.request(
            "initialize", clientID="pytest", adapterID="debugpy", pathFormat="path",
            linesStartAt1=True, columnsStartAt1=True,
        )
        attach = client.send("attach", justMyCode=False)
        client.wait("event", "initialized")
        response = client.request(
            "setBreakpoints",
            source={"path": str(function_dir / "app.py")},
            breakpoints=[{"line": BREAK_LINE}],
        )
        assert response["body"]["breakpoints"][0]["verified"]
        client.request("configurationDone")
        client.wait("response", "attach", attach)

        stopped = client.wait("event", "stopped")
        assert stopped["body"]["reason"] == "breakpoint"
        thread_id = stopped["body"]["threadId"]
        frames = client.request("stackTrace", threadId=thread_id)["body"]["stackFrames"]
        assert frames[0]["line"] == BREAK_LINE
        assert Path(frames[0]["source"]["path"]).resolve() == (function_dir / "app.py").resolve()
        # Paused longer than the function's 1 s timeout: the timeout is suspended.
        time.sleep(1.5)
        assert not outcome
        client.request("continue", threadId=thread_id)
        invoker.join(timeout=20)
    finally:
        client.close()
    result = outcome["result"]
    assert result.ok, result.payload
    assert result.payload["total"] == 5
    # The deadline the handler sees is far beyond any real Lambda timeout (15 min).
    assert result.payload["left_ms"] > 900_000
    output.wait_for(b"Timeout: suspended (debugger)")
    assert f"debugpy listening on 127.0.0.1:{port}".encode() in output.getvalue()


def test_debugging_runs_one_invoke_at_a_time(lambda_emulator: Any, function_dir: Path) -> None:
    output = OutputWatch()
    fn = lambda_emulator(
        "app.handler", task_root=function_dir, debug_port=_free_port(), concurrency=5,
        echo=output, env={MARK_VAR: MARK},
    )
    outcome: dict[str, Any] = {}
    slow = threading.Thread(
        target=lambda: outcome.update(result=fn.invoke({"a": 1, "b": 1, "sleep": 1.5}))
    )
    slow.start()
    # Only once the slow invoke holds the one slot: an invoke sent sooner may take it first
    # (and the slow one would be the one refused).
    output.wait_for(b"holding the slot", timeout=20)
    second = fn.invoke({"a": 1, "b": 2})
    slow.join(timeout=20)
    assert second.status_code == 429, second
    result = outcome["result"]
    assert result.ok, result.payload
    assert result.payload["total"] == 2


def test_without_debugpy_the_error_names_the_extra(function_dir: Path) -> None:
    script = (
        "import sys; sys.modules['debugpy'] = None\n"
        "from runtime.emulator.cli import main\n"
        "sys.exit(main(['invoke', 'app.handler', '--debug-port', '5678']))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", script], cwd=function_dir, capture_output=True, text=True,
        timeout=60, check=False,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "lambda-runtime invoke: --debug-port needs debugpy: pip install 'lambda-runtime[debug]'"
    ]
