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

import orjson

from runtime import protocol

from .app import run
from .config import ConfigError, EmulatorConfig, parse_env_assignment, parse_env_file, split_command

_SECRET = re.compile(r"SECRET|TOKEN|PASSWORD|PASSWD|CREDENTIAL|PRIVATE|_KEY", re.IGNORECASE)

EXIT_OK = 0
EXIT_FUNCTION_ERROR = 1
EXIT_USAGE = 2
EXIT_TIMEOUT = 124


def _add_common(parser: argparse.ArgumentParser, *, default_port: int) -> None:
    parser.add_argument(
        "handler",
        metavar="HANDLER",
        nargs="?",
        default="",
        help="the function's handler, e.g. app.handler",
    )
    parser.add_argument(
        "--task-root",
        metavar="DIR",
        default=".",
        help="folder holding the function code (default: current folder)",
    )
    parser.add_argument(
        "--layer",
        metavar="DIR_OR_ZIP",
        action="append",
        default=[],
        help="a layer folder or zip; repeat to stack layers in order",
    )
    parser.add_argument(
        "--timeout", metavar="SECONDS", type=float, default=3.0, help="function timeout (default 3)"
    )
    parser.add_argument(
        "--memory",
        metavar="MB",
        type=int,
        default=128,
        help="memory size; an environment over it is killed (default 128)",
    )
    parser.add_argument(
        "--concurrency",
        metavar="N",
        type=int,
        default=10,
        help="maximum environments / invokes in flight (default 10)",
    )
    parser.add_argument(
        "--env",
        metavar="KEY=VALUE",
        action="append",
        default=[],
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
    parser.add_argument(
        "--host", default="127.0.0.1", help="address of the Invoke API (default 127.0.0.1)"
    )
    parser.add_argument(
        "--port",
        type=int,
        default=default_port,
        help=f"port of the Invoke API (default {default_port}"
        + (", any free port" if default_port == 0 else "")
        + ")",
    )
    parser.add_argument(
        "--function-name",
        default="function",
        help="function name in the Invoke API path and the environment "
        "(default: function, the name RIE uses)",
    )
    parser.add_argument("--region", default="us-east-1", help="AWS_REGION (default us-east-1)")
    parser.add_argument(
        "--runtime-cmd",
        metavar="COMMAND",
        help="run this runtime instead of ours, e.g. "
        "'python -m awslambdaric' (HANDLER is appended unless the command "
        "contains {handler})",
    )
    parser.add_argument(
        "--init-timeout",
        metavar="SECONDS",
        type=float,
        default=10.0,
        help="init limit (default 10, as on Lambda)",
    )
    parser.add_argument(
        "--idle-timeout",
        metavar="SECONDS",
        type=float,
        default=300.0,
        help="shut down environments idle this long (default 300)",
    )
    parser.add_argument(
        "--shutdown-grace",
        metavar="SECONDS",
        type=float,
        default=0.5,
        help="SIGTERM-to-SIGKILL delay for runtimes that registered an extension (default 0.5)",
    )
    parser.add_argument(
        "--log-format",
        choices=("Text", "JSON"),
        help="AWS_LAMBDA_LOG_FORMAT for the function and the platform lines",
    )
    parser.add_argument(
        "--event-retries",
        type=int,
        default=2,
        help="retries of a failed Event invoke (0-2, default 2)",
    )
    parser.add_argument(
        "--quiet",
        action="store_true",
        help="do not copy function output and platform lines to stderr",
    )
    parser.add_argument(
        "--otel-console",
        action="store_true",
        help="receive the function's OpenTelemetry spans (sets OTEL_EXPORTER_OTLP_ENDPOINT) "
        "and print each invoke's spans as a tree on stderr, after its REPORT",
    )


def _parser(command: str) -> argparse.ArgumentParser:
    if command == "serve":
        parser = argparse.ArgumentParser(
            prog="lambda-runtime serve",
            description="Run a local Lambda: the Invoke API on --host:--port, and one real "
            "runtime process per execution environment.",
        )
        _add_common(parser, default_port=9000)
        parser.add_argument(
            "--no-spawn",
            action="store_true",
            help="start no runtime: serve the Runtime API on --runtime-api for a "
            "runtime you start yourself (e.g. in a debugger)",
        )
        parser.add_argument(
            "--runtime-api",
            metavar="HOST:PORT",
            help="Runtime API address with --no-spawn (default 127.0.0.1:9001)",
        )
    else:
        parser = argparse.ArgumentParser(
            prog="lambda-runtime invoke",
            description="Invoke HANDLER once through the emulator: the response goes to stdout, "
            "the function's log to stderr. Exit status: 0 success, 1 function error, "
            "124 timeout.",
        )
        _add_common(parser, default_port=0)
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


def _config(args: argparse.Namespace, *, no_spawn: bool = False) -> EmulatorConfig:
    env: dict[str, str] = {}
    for path in args.env_file:
        env.update(parse_env_file(Path(path)))
    for item in args.env:
        key, value = parse_env_assignment(item)
        env[key] = value
    return EmulatorConfig(
        handler=args.handler,
        task_root=Path(args.task_root),
        layers=[Path(p) for p in args.layer],
        timeout=args.timeout,
        memory=args.memory,
        concurrency=args.concurrency,
        env=env,
        host=args.host,
        port=args.port,
        function_name=args.function_name,
        region=args.region,
        runtime_cmd=split_command(args.runtime_cmd) if args.runtime_cmd else None,
        no_spawn=no_spawn,
        runtime_api=getattr(args, "runtime_api", None),
        init_timeout=args.init_timeout,
        idle_timeout=args.idle_timeout,
        shutdown_grace=args.shutdown_grace,
        event_retries=args.event_retries,
        log_format=args.log_format,
        otel_console=args.otel_console,
    )


def main(argv: list[str]) -> int:
    """Entry point used by ``runtime.cli``: ``argv[0]`` is ``serve`` or ``invoke``."""
    if not argv or argv[0] not in ("serve", "invoke"):
        sys.stderr.write("usage: lambda-runtime serve|invoke HANDLER [options]\n")
        return EXIT_USAGE
    command = argv[0]
    parser = _parser(command)
    try:
        args = parser.parse_args(argv[1:])
    except SystemExit as exc:
        return int(exc.code) if isinstance(exc.code, int) else EXIT_USAGE
    try:
        if command == "serve":
            if args.runtime_api and not args.no_spawn:
                raise ConfigError("--runtime-api only applies with --no-spawn")
            config = _config(args, no_spawn=args.no_spawn)
            return run(_serve(config, quiet=args.quiet))
        if not args.handler:
            raise ConfigError("HANDLER is required (for example app.handler)")
        event = _read_event(args.event)
        config = _config(args)
        return run(_invoke(config, event, quiet=args.quiet, tail=args.tail))
    except ConfigError as exc:
        sys.stderr.write(f"lambda-runtime {command}: {exc}\n")
        return EXIT_USAGE
    except OSError as exc:
        sys.stderr.write(f"lambda-runtime {command}: {exc}\n")
        return EXIT_USAGE


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
    try:
        orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        hint = "" if source != "--event" else " (not a file, - or valid JSON)"
        raise ConfigError(f"--event: {source} is not valid JSON{hint}: {exc}") from None
    return data


async def _serve(config: EmulatorConfig, *, quiet: bool) -> int:
    from .app import EmulatorCore
    from .output import Console, stderr_stream

    core = EmulatorCore(config, Console(None if quiet else stderr_stream))
    await core.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    name = config.function_name
    lines = [
        f"lambda-runtime emulator: {name} ({config.handler or 'no handler'}), timeout "
        f"{config.timeout:g} s, memory {config.memory} MB, concurrency "
        f"{1 if config.no_spawn else config.concurrency}",
        f"Invoke API: {core.url}{protocol.invoke_path(name)}",
    ]
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
        for key, value in sorted(core.external_env_vars().items()):
            if key in config.env and _SECRET.search(key):
                # Secrets the user passed stay out of the terminal (and of CI logs).
                lines.append(f"  # {key}: from --env, not shown")
            else:
                lines.append(f"  export {key}={_shell_quote(value)}")
    sys.stderr.write("\n".join(lines) + "\n")
    sys.stderr.flush()
    try:
        await stop.wait()
    finally:
        sys.stderr.write("lambda-runtime emulator: stopping\n")
        await core.stop()
    return EXIT_OK


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
        timeout = config.timeout + config.init_timeout * 2 + 30
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
