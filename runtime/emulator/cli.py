"""``lambda-runtime serve`` and ``lambda-runtime invoke``: argument parsing and the two commands.

Exit status of ``invoke``: 0 success, 1 function error (including init errors, crashes and
out-of-memory), 124 timeout, 2 bad usage or configuration.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from runtime import protocol

from .app import run
from .debug import invoke_wait
from .devloop import devloop_lines

if TYPE_CHECKING:
    from .app import EmulatorCore
from .config import (
    INVOKE,
    OPTIONS,
    SERVE,
    ConfigError,
    EmulatorConfig,
    parse_env_assignment,
    parse_env_file,
)

# Variable names whose values are secrets: *TOKEN*, *SECRET*, *PASSWORD*, *KEY*, *_PAT, *_AUTH...
_SECRET = re.compile(
    r"SECRET|TOKEN|PASSWORD|PASSWD|CREDENTIAL|PRIVATE|KEY|AUTHORIZATION|(^|_)(PAT|AUTH)(_|$)",
    re.IGNORECASE,
)
# A value holding a URL with credentials in it (user:password@ or a query string).
_URL_WITH_SECRETS = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://([^/?#]*@|[^?#]*\?)")

EXIT_OK = 0
EXIT_FUNCTION_ERROR = 1
EXIT_USAGE = 2
EXIT_TIMEOUT = 124


def _add_options(parser: argparse.ArgumentParser, command: str) -> None:
    """The flags of ``command``, made from the option table (config.OPTIONS)."""
    for option in OPTIONS:
        if option.name == "handler":
            parser.add_argument(
                "handler", metavar=option.metavar, nargs="?", default="", help=option.help
            )
            continue
        if option.name == "env":
            _add_env_flags(parser)
            continue
        if option.flag is None or command not in option.commands:
            continue
        kwargs: dict[str, Any] = {"dest": option.name, "help": option.help_text(command)}
        # Flags the user leaves out are left out of the Config call: the Config's defaults rule.
        kwargs["default"] = option.command_defaults.get(command, argparse.SUPPRESS)
        if isinstance(option.default, bool):
            # A flag switches an option away from its default (--no-stream-throttle).
            kwargs["action"] = "store_false" if option.default else "store_true"
        elif isinstance(option.default, (tuple, list)):
            kwargs.update(action="append", metavar=option.metavar)
            if option.nargs is not None:
                kwargs.update(action="extend", nargs=option.nargs)
        else:
            kwargs["metavar"] = option.metavar
            if option.choices is not None:
                kwargs["choices"] = option.choices
            elif option.value_type is not None:
                kwargs["type"] = option.value_type
            elif isinstance(option.default, (int, float)):
                kwargs["type"] = type(option.default)
        parser.add_argument(option.flag, **kwargs)


def _add_env_flags(parser: argparse.ArgumentParser) -> None:
    # The env option takes two command-line forms, merged by _config.
    parser.add_argument(
        "--env",
        metavar="KEY=VALUE",
        action="append",
        default=[],
        dest="env_items",
        help="environment variable for the function (KEY alone copies it from "
        "this shell); repeatable",
    )
    parser.add_argument(
        "--env-file",
        metavar="FILE",
        action="append",
        default=[],
        help="file of KEY=VALUE lines (dotenv style); repeatable",
    )


def _parser(command: str) -> argparse.ArgumentParser:
    if command == SERVE:
        parser = argparse.ArgumentParser(
            prog="lambda-runtime serve",
            description="Run a local Lambda: the Invoke API on --host:--port, and one real "
            "runtime process per execution environment.",
        )
    else:
        parser = argparse.ArgumentParser(
            prog="lambda-runtime invoke",
            description="Invoke HANDLER once through the emulator: the response goes to stdout, "
            "the function's log to stderr. Exit status: 0 success, 1 function error, "
            "124 timeout.",
        )
    _add_options(parser, command)
    # What only the command line has: where output goes, and invoke's event.
    parser.add_argument(
        "--quiet",
        action="store_true",
        help="do not copy function output and platform lines to stderr",
    )
    if command == INVOKE:
        parser.add_argument(
            "--event",
            metavar="FILE|-|JSON",
            default="{}",
            help="the event: a JSON file, - for stdin, or JSON text (default {})",
        )
        parser.add_argument(
            "--tail",
            action="store_true",
            help="print only the invoke's last 4 KB of log, as Tail returns it",
        )
    return parser


_CLI_ONLY = frozenset(("env_items", "env_file", "quiet", "event", "tail"))


def _config(args: argparse.Namespace) -> EmulatorConfig:
    env: dict[str, str] = {}
    for path in args.env_file:
        env.update(parse_env_file(Path(path)))
    for item in args.env_items:
        key, value = parse_env_assignment(item)
        env[key] = value
    options = {k: v for k, v in vars(args).items() if k not in _CLI_ONLY}
    return EmulatorConfig(env=env, **options)


def main(argv: list[str]) -> int:
    """Entry point used by ``runtime.cli``: ``argv[0]`` is ``serve`` or ``invoke``."""
    if not argv or argv[0] not in (SERVE, INVOKE):
        sys.stderr.write("usage: lambda-runtime serve|invoke HANDLER [options]\n")
        return EXIT_USAGE
    command = argv[0]
    parser = _parser(command)
    try:
        args = parser.parse_args(argv[1:])
    except SystemExit as exc:
        return int(exc.code) if isinstance(exc.code, int) else EXIT_USAGE
    try:
        if command == SERVE:
            if getattr(args, "runtime_api", None) and not getattr(args, "no_spawn", False):
                raise ConfigError("--runtime-api only applies with --no-spawn")
            config = _config(args)
            _warn_exposure(config.host)
            return run(_serve(config, quiet=args.quiet))
        if not args.handler:
            raise ConfigError("HANDLER is required (for example app.handler)")
        event = _read_event(args.event)
        config = _config(args)
        _warn_exposure(config.host)
        return run(_invoke(config, event, quiet=args.quiet, tail=args.tail))
    except ConfigError as exc:
        sys.stderr.write(f"lambda-runtime {command}: {exc}\n")
        return EXIT_USAGE
    except OSError as exc:
        sys.stderr.write(f"lambda-runtime {command}: {exc}\n")
        return EXIT_USAGE


def _warn_exposure(host: str) -> None:
    warning = _exposure_warning(host)
    if warning is not None:
        sys.stderr.write(warning)
        sys.stderr.flush()


def _read_event(value: str) -> bytes:
    if value == "-":
        data = sys.stdin.buffer.read()
        source = "stdin"
    elif os.path.isfile(value):
        data = Path(value).read_bytes()
        source = value
    else:
        data = value.encode()
        source = "--event"
    from runtime.errors import LambdaError
    from runtime.marshal import decode_event

    try:
        decode_event(data, None)  # what json.loads accepts, as the Invoke API does
    except LambdaError as exc:
        hint = "" if source != "--event" else " (not a file, - or valid JSON)"
        raise ConfigError(f"--event: {source} is not valid JSON{hint}: {exc.message}") from None
    return data


async def _serve(config: EmulatorConfig, *, quiet: bool) -> int:
    from .app import EmulatorCore
    from .output import Console, stderr_stream

    console = Console(None if quiet else stderr_stream)
    core = EmulatorCore(config, console)
    await core.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    name = config.function_name
    if core.template is not None:
        sys.stderr.write("\n".join(_template_lines(core)) + "\n")
        sys.stderr.flush()
        return await _serve_until_stopped(core, stop)
    lines = [
        f"lambda-runtime emulator: {name} ({config.handler or 'no handler'}), timeout "
        f"{config.timeout:g} s, memory {config.memory} MB, concurrency "
        f"{1 if config.no_spawn or config.debug_port is not None else config.concurrency}"
        + (
            f" environments x {config.max_concurrency} invokes each"
            if config.max_concurrency
            else ""
        ),
        f"Invoke API: {core.url}{protocol.invoke_path(name)}",
    ]
    if core.http_url is not None:
        lines.append(f"Function URL (payload {config.http_payload}): {core.http_url}/")
    lines.extend(devloop_lines(config))
    if config.otel_console:
        lines.append(
            "OpenTelemetry: spans are received on each environment's Runtime API port "
            "(POST /v1/traces) and printed as a tree after each invoke's REPORT"
        )
    if config.no_spawn:
        lines.append(
            f"Runtime API: {core.runtime_api_address} (--no-spawn: start the runtime "
            "yourself with this environment)"
        )
        lines.extend(_export_lines(core.external_env_vars(), frozenset(config.env)))
    sys.stderr.write("\n".join(lines) + "\n")
    sys.stderr.flush()
    return await _serve_until_stopped(core, stop)


async def _serve_until_stopped(core: EmulatorCore, stop: asyncio.Event) -> int:
    try:
        await stop.wait()
    finally:
        if core.console.enabled:
            # Through the console: a plain write would block on a stderr nobody reads.
            core.console.line(b"lambda-runtime emulator: stopping")
        else:
            sys.stderr.write("lambda-runtime emulator: stopping\n")
        await core.stop()
    return EXIT_OK


def _template_lines(core: EmulatorCore) -> list[str]:
    """What ``serve --template`` says at start: each function, its invoke path, the notes."""
    template = core.template
    assert template is not None
    lines = [
        f"lambda-runtime emulator: {len(core.functions)} functions of {template.path.name}, "
        f"Invoke API {core.url} (environments start on first invoke)"
    ]
    for fn in core.functions:
        config = fn.config
        alias = f" ({fn.logical_id})" if fn.logical_id not in (None, fn.name) else ""
        lines.append(
            f"  {fn.name}{alias}: {config.handler}, timeout {config.timeout:g} s, memory "
            f"{config.memory} MB -> {protocol.invoke_path(fn.name)}"
        )
    for logical_id, reason in template.unsupported.items():
        lines.append(f"  {logical_id}: not served: {reason}")
    if core.http_routes is not None and core.http_url is not None:
        lines.append(f"HTTP routes on {core.http_url}:")
        lines.extend(core.http_routes.describe(core.http_url))
    lines.extend(devloop_lines(core.config, [fn.name for fn in core.functions]))
    lines.extend(f"note: {note}" for note in template.notes)
    return lines


def _export_lines(variables: dict[str, str], user_keys: frozenset[str]) -> list[str]:
    """The ``export`` lines of the --no-spawn banner. Secrets the user passed stay out of the
    terminal (and of CI logs): a value under a secret-sounding name is not shown at all, a URL
    with credentials is shown redacted and commented out (it would not work as shown)."""
    from runtime.config import redact_url

    lines = []
    for key, value in sorted(variables.items()):
        if key in user_keys and _SECRET.search(key):
            lines.append(f"  # {key}: from --env, not shown")
        elif _URL_WITH_SECRETS.match(value.strip()):
            lines.append(f"  # {key}={redact_url(value)} (from --env, credentials not shown)")
        else:
            lines.append(f"  export {key}={_shell_quote(value)}")
    return lines


def _exposure_warning(host: str) -> str | None:
    """A warning when the Invoke API listens beyond this machine, else None."""
    import ipaddress

    name = host.strip("[]")
    try:
        loopback = name == "localhost" or ipaddress.ip_address(name).is_loopback
    except ValueError:
        loopback = False
    if loopback:
        return None
    where = "every network interface" if name in ("", "0.0.0.0", "::") else name
    return (
        f"lambda-runtime: warning: --host {host}: the Invoke API listens on {where}, without "
        "authentication: anyone who can reach this port can invoke the function, with its "
        "environment variables and --env secrets (use 127.0.0.1 unless you mean it)\n"
    )


def _shell_quote(value: str) -> str:
    import shlex

    return shlex.quote(value)


async def _invoke(config: EmulatorConfig, event: bytes, *, quiet: bool, tail: bool) -> int:
    import httpx

    from .app import EmulatorCore
    from .output import Console, stderr_stream

    ended = asyncio.Event()
    core = EmulatorCore(
        config,
        Console(None if (quiet or tail) else stderr_stream),
        on_ended=lambda inv: ended.set(),
    )
    await core.start()
    try:
        headers = {protocol.INVOCATION_TYPE_HEADER: protocol.INVOCATION_TYPE_REQUEST_RESPONSE}
        if tail:
            headers[protocol.LOG_TYPE_HEADER] = protocol.LOG_TYPE_TAIL
        timeout = invoke_wait(config) + 30
        async with httpx.AsyncClient(base_url=core.url, timeout=timeout) as client:
            response = await client.post(
                protocol.invoke_path(config.function_name),
                content=event,
                headers=headers,
            )
        if response.status_code == 200:
            # The whole log, up to REPORT and the spans, before stopping: the invoke ends when
            # the runtime asks for the next one, a moment after the response (at the latest at
            # its deadline).
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(ended.wait(), config.timeout + 5)
    finally:
        await core.stop()
    if tail and protocol.LOG_RESULT_HEADER in response.headers:
        import base64

        sys.stderr.buffer.write(base64.b64decode(response.headers[protocol.LOG_RESULT_HEADER]))
        sys.stderr.flush()
    body = response.content
    sys.stdout.buffer.write(body if body.endswith(b"\n") else body + b"\n")
    sys.stdout.flush()
    if response.status_code >= 300:
        return EXIT_FUNCTION_ERROR
    if response.headers.get(protocol.FUNCTION_ERROR_HEADER):
        try:
            error_type = json.loads(body).get("errorType")
        except (ValueError, AttributeError):
            error_type = None
        return EXIT_TIMEOUT if error_type == "Sandbox.Timedout" else EXIT_FUNCTION_ERROR
    return EXIT_OK
