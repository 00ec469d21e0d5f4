"""What the emulator's command line shows: no secret in the --no-spawn banner, a warning when
the Invoke API listens beyond loopback."""

from __future__ import annotations

import signal

from emulator_support import HANDLERS, MARK, MARK_VAR
from test_emulator_cli import _serve

from runtime.emulator.cli import main

SECRETS = {
    "DATABASE_URL": "postgres://app:hunter2pw@db.internal:5432/app",
    "WEBHOOK": "https://hooks.example.com/x?sig=s3cr3tsig&v=1",
    "GITHUB_PAT": "ghp_patvalue123",
    "SERVICE_AUTH": "authvalue456",
    "STRIPE_KEY": "sk_live_keyvalue789",
    "MY_TOKEN_V2": "tokenvalue000",
}


def test_no_spawn_banner_shows_no_secret():
    env_args = [arg for key, value in SECRETS.items() for arg in ("--env", f"{key}={value}")]
    proc, banner = _serve(
        "app.echo",
        "--task-root",
        str(HANDLERS),
        "--env",
        f"{MARK_VAR}={MARK}",
        "--env",
        "PLAIN_URL=https://example.com/path",
        "--env",
        "AUTHOR=Ada",
        *env_args,
        "--no-spawn",
        "--runtime-api",
        "127.0.0.1:0",
        "--port",
        "0",
    )
    try:
        for secret in ("hunter2pw", "s3cr3tsig", "patvalue", "authvalue", "keyvalue", "tokenvalue"):
            assert secret not in banner, banner
        # What is not secret stays usable; what is redacted still says where it points.
        assert "export PLAIN_URL=https://example.com/path" in banner
        assert "export AUTHOR=Ada" in banner
        assert "# DATABASE_URL=postgres://***@db.internal:5432/app" in banner
        assert "# WEBHOOK=https://hooks.example.com/x?sig=***&v=***" in banner
        assert "# GITHUB_PAT: from --env, not shown" in banner
        assert "export _HANDLER=app.echo" in banner
    finally:
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=20)
    assert proc.returncode == 0


def test_host_beyond_loopback_is_warned_about(capfd):
    # 192.0.2.1 (TEST-NET-1) is on no interface here: the warning comes first, then the bind
    # fails, so nothing is exposed by this test.
    args = ["invoke", "app.echo", "--task-root", str(HANDLERS), "--quiet"]
    assert main([*args, "--host", "192.0.2.1"]) == 2
    err = capfd.readouterr().err
    assert "warning: --host 192.0.2.1: the Invoke API listens on 192.0.2.1" in err
    assert "without authentication" in err
    assert main([*args, "--host", "127.0.0.1", "--env", f"{MARK_VAR}={MARK}"]) == 0
    assert "warning" not in capfd.readouterr().err
