"""`lambda-runtime invoke` and `lambda-runtime serve` as a user runs them."""

from __future__ import annotations

import io
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from emulator_support import HANDLERS, MARK, MARK_VAR

from runtime.emulator.cli import main

REPO = Path(__file__).resolve().parents[2]
COMMON = ["--task-root", str(HANDLERS), "--env", f"{MARK_VAR}={MARK}", "--timeout", "1"]


def test_invoke_prints_response_and_log(capfd):
    code = main(["invoke", "app.echo", *COMMON, "--event", '{"cli": true}'])
    out, err = capfd.readouterr()
    assert code == 0
    assert json.loads(out)["event"] == {"cli": True}
    assert "echo got {'cli': True}" in err
    assert re.search(r"^REPORT RequestId: [0-9a-f-]{36}\tDuration: ", err, re.MULTILINE)


def test_invoke_event_from_file_and_stdin(capfd, tmp_path, monkeypatch):
    event = tmp_path / "event.json"
    event.write_text('{"from": "file"}')
    assert main(["invoke", "app.echo", *COMMON, "--quiet", "--event", str(event)]) == 0
    assert json.loads(capfd.readouterr().out)["event"] == {"from": "file"}
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b'{"from": "stdin"}')))
    assert main(["invoke", "app.echo", *COMMON, "--quiet", "--event", "-"]) == 0
    assert json.loads(capfd.readouterr().out)["event"] == {"from": "stdin"}


def test_invoke_exit_status_on_errors(capfd):
    assert main(["invoke", "app.fail", *COMMON, "--quiet"]) == 1
    assert json.loads(capfd.readouterr().out)["errorType"] == "ValueError"
    assert main(["invoke", "app.sleep", *COMMON, "--quiet", "--event", '{"seconds": 5}']) == 124
    assert json.loads(capfd.readouterr().out)["errorType"] == "Sandbox.Timedout"


def test_invoke_tail_prints_only_the_tail(capfd):
    assert main(["invoke", "app.printer", *COMMON, "--tail", "--event", '{"lines": 2}']) == 0
    out, err = capfd.readouterr()
    assert json.loads(out) == "printed"
    assert err.startswith("INIT_START") or err.startswith("START")
    assert "line 1" in err and "REPORT RequestId" in err


@pytest.mark.parametrize(
    "args, message",
    [
        (["--event", "{nope"], "not valid JSON"),
        (["--memory", "64"], "--memory: 64 MB is not between 128 and 10240"),
        (["--env", "BAD-NAME=1"], "is not KEY=VALUE"),
        (["--env", "_HANDLER=x"], "_HANDLER is set by the emulator"),
        (["--env", "DEFINITELY_NOT_SET_ANYWHERE_42"], "not set in this environment"),
        (["--task-root", "/nonexistent/dir"], "is not a folder"),
        (["--runtime-cmd", "'unterminated"], "--runtime-cmd"),
    ],
)
def test_bad_options_exit_2_with_a_clear_message(capfd, args, message):
    assert main(["invoke", "app.echo", *args]) == 2
    assert message in capfd.readouterr().err


def test_env_file(capfd, tmp_path):
    env_file = tmp_path / ".env"
    env_file.write_text("# settings\nexport CUSTOM_VAR='from file'\n\n")
    args = ["invoke", "app.context_info", *COMMON, "--quiet", "--env-file", str(env_file)]
    assert main(args) == 0
    assert json.loads(capfd.readouterr().out)["env"]["CUSTOM_VAR"] == "from file"
    env_file.write_text("no equals sign here\n")
    assert main(["invoke", "app.echo", *COMMON, "--env-file", str(env_file)]) == 2
    assert ".env:1: expected KEY=VALUE" in capfd.readouterr().err


def _serve(*args: str) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys; from runtime.cli import main; sys.exit(main())",
            "serve",
            *args,
        ],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert proc.stderr is not None
    banner = ""
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        if not line:
            break
        banner += line
        if "Invoke API:" in line and "--no-spawn" not in args:
            break
        if "export _HANDLER" in line:
            break
    return proc, banner


def test_serve_answers_curl_style_requests_and_stops_cleanly():
    proc, banner = _serve("app.echo", *COMMON, "--port", "0", "--function-name", "svc")
    try:
        url = re.search(
            r"Invoke API: (http://127\.0\.0\.1:\d+)/2015-03-31/functions/svc/"
            r"invocations",
            banner,
        )
        assert url, banner
        with httpx.Client(base_url=url.group(1), timeout=20) as client:
            # The path scripts written for AWS's emulator use.
            r = client.post("/2015-03-31/functions/function/invocations", content=b'{"x": 1}')
            assert r.status_code == 200 and r.json()["event"] == {"x": 1}
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err
    assert "stopping" in err


def test_serve_no_spawn_prints_the_runtime_environment():
    proc, banner = _serve(
        "app.echo", *COMMON, "--no-spawn", "--runtime-api", "127.0.0.1:0", "--port", "0"
    )
    try:
        assert re.search(r"export AWS_LAMBDA_RUNTIME_API=127\.0\.0\.1:\d+", banner), banner
        assert "export _HANDLER=app.echo" in banner
    finally:
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=20)
    assert proc.returncode == 0


def test_runtime_api_must_stay_on_loopback(capfd):
    args = ["serve", "app.echo", "--no-spawn", "--runtime-api", "0.0.0.0:9001"]
    assert main(args) == 2
    assert "not a loopback address" in capfd.readouterr().err
    assert main(["serve", "app.echo", "--runtime-api", "127.0.0.1:9001"]) == 2
    assert "only applies with --no-spawn" in capfd.readouterr().err
