"""The emulator's options are one table (config.OPTIONS): the CLI, the Python API and the
Config must offer the same options, with the same defaults, help and checks."""

from __future__ import annotations

import inspect

import pytest
from emulator_support import HANDLERS

from runtime.emulator import ConfigError, Emulator
from runtime.emulator.cli import _config, _parser, main
from runtime.emulator.config import INVOKE, OPTIONS, SERVE, EmulatorConfig

# Non-default values for every option a flag sets, as typed on the command line and as parsed.
NON_DEFAULTS = {
    "layers": (["--layer", str(HANDLERS)], [HANDLERS]),
    "timeout": (["--timeout", "7.5"], 7.5),
    "memory": (["--memory", "512"], 512),
    "concurrency": (["--concurrency", "3"], 3),
    "max_concurrency": (["--max-concurrency", "16"], 16),
    "host": (["--host", "127.0.0.2"], "127.0.0.2"),
    "port": (["--port", "9123"], 9123),
    "function_name": (["--function-name", "svc"], "svc"),
    "region": (["--region", "eu-west-1"], "eu-west-1"),
    "runtime_cmd": (["--runtime-cmd", "python -m awslambdaric"], ["python", "-m", "awslambdaric"]),
    "init_timeout": (["--init-timeout", "4"], 4.0),
    "idle_timeout": (["--idle-timeout", "60"], 60.0),
    "shutdown_grace": (["--shutdown-grace", "0"], 0.0),
    "event_retries": (["--event-retries", "1"], 1),
    "log_format": (["--log-format", "JSON"], "JSON"),
    "otel_console": (["--otel-console"], True),
    "stream_throttle": (["--no-stream-throttle"], False),
    "snap_start": (["--snap-start"], True),
    "debug_port": (["--debug-port", "5678"], 5678),
    "debug_wait": (["--debug-port", "5679", "--debug-wait"], True),
    "strict_imports": (["--strict-imports"], True),
    "isolated": (["--isolated"], True),
}
SERVE_ONLY = {
    "no_spawn": (["--no-spawn", "--runtime-api", "127.0.0.1:9555"], True),
    "http_port": (["--http-port", "8123"], 8123),
    "http_payload": (["--http-payload", "1.0"], "1.0"),
    "watch": (["--watch"], True),
}
# (flag and value, the message both the CLI and the API give)
BAD_VALUES = [
    ("timeout", "0", "--timeout: 0"),
    ("memory", "64", "--memory: 64 MB is not between 128 and 10240"),
    ("concurrency", "0", "--concurrency: 0 must be at least 1"),
    ("max_concurrency", "2000", "--max-concurrency: 2000 is not between 0 and 1024"),
    ("port", "70000", "--port: 70000 is not a TCP port"),
    ("function_name", "no spaces", "--function-name: 'no spaces' must be 1-64"),
    ("region", "moon", "--region: 'moon' is not a region name"),
    ("idle_timeout", "0", "--idle-timeout: 0"),
    ("shutdown_grace", "-1", "--shutdown-grace: -1"),
    ("event_retries", "3", "--event-retries: 3 must be 0, 1 or 2"),
]
FLAGGED = {option.name: option for option in OPTIONS if option.flag is not None}


def test_every_flag_is_in_the_help_of_its_commands_with_its_default(capsys):
    for command in (SERVE, INVOKE):
        # (Without whitespace: argparse wraps lines, also after a hyphen.)
        help_text = _squeeze(_parser(command).format_help())
        for option in FLAGGED.values():
            if command in option.commands:
                assert option.flag in help_text, (command, option.flag)
                assert _squeeze(option.help_text(command)) in help_text
            else:
                assert option.flag not in help_text, (command, option.flag)
    assert "(default0)" in _squeeze(_parser(INVOKE).format_help())
    assert not {"memory_poll_interval", "event_retry_delays"} & set(FLAGGED)


def test_every_flag_reaches_the_config():
    # (--template and --parameter-overrides exclude HANDLER: see test_emulator_template.py.)
    # (--package needs zips: see test_emulator_isolation.py.)
    others = {"task_root", "runtime_api", "template", "parameter_overrides", "package"}
    assert set(FLAGGED) == set(NON_DEFAULTS) | set(SERVE_ONLY) | others
    for name, (argv, expected) in {**NON_DEFAULTS, **SERVE_ONLY}.items():
        args = _parser(SERVE).parse_args(["app.echo", "--task-root", str(HANDLERS), *argv])
        if name == "no_spawn":
            args.runtime_cmd = None
        config = _config(args)
        assert getattr(config, name) == expected, name
        assert config.task_root == HANDLERS
    # Flags left out get the Config's defaults.
    args = _parser(SERVE).parse_args(["app.echo", "--task-root", str(HANDLERS)])
    assert _config(args) == EmulatorConfig("app.echo", task_root=HANDLERS)


def test_the_python_api_takes_every_option_with_the_same_defaults():
    params = inspect.signature(Emulator).parameters
    assert set(params) == {option.name for option in OPTIONS} | {"echo"}
    for option in OPTIONS:
        expected = 0 if option.name == "port" else option.default
        assert params[option.name].default == expected, option.name
    fn = Emulator("app.echo", task_root=HANDLERS)
    assert fn.config == EmulatorConfig("app.echo", task_root=HANDLERS, port=0)


@pytest.mark.parametrize(("name", "value", "message"), BAD_VALUES)
def test_a_bad_value_gets_the_same_message_from_cli_and_api(capfd, name, value, message):
    flag = FLAGGED[name].flag
    assert flag is not None
    assert main(["invoke", "app.echo", "--task-root", str(HANDLERS), flag, value]) == 2
    assert message in capfd.readouterr().err
    parsed = type(FLAGGED[name].default)(value)
    with pytest.raises(ConfigError) as caught:
        EmulatorConfig(handler="app.echo", task_root=HANDLERS, **{name: parsed})
    assert message in str(caught.value)


def test_a_misspelt_api_option_is_named_with_the_closest_one():
    with pytest.raises(
        ConfigError, match=r"'timout' is not an emulator option \(did you mean timeout\?\)"
    ):
        Emulator("app.echo", task_root=HANDLERS, timout=3)


def _squeeze(text: str) -> str:
    return "".join(text.split())
