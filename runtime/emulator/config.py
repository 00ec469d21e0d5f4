"""The emulator's settings, validated once, shared by the CLI and the Python API."""

from __future__ import annotations

import difflib
import ipaddress
import os
import re
import shlex
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import MISSING, dataclass, field, fields
from pathlib import Path
from typing import Any

from runtime.config import SNAP_START

DEFAULT_ACCOUNT = "123456789012"
# The wrapper our runtime is started through (runtime/emulator/_boot/).
BOOT_MODULE = "_lambda_emulator_boot"

# Set by the emulator from its own options; an --env for them is a mistake worth reporting.
_EMULATOR_OWNED = {
    "_HANDLER": "the HANDLER argument",
    "AWS_LAMBDA_RUNTIME_API": "--runtime-api (with --no-spawn)",
    "LAMBDA_TASK_ROOT": "--task-root",
    "AWS_LAMBDA_FUNCTION_NAME": "--function-name",
    "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "--memory",
    "LAMBDA_RUNTIME_LAYER_ROOT": "--layer",
    "AWS_LAMBDA_MAX_CONCURRENCY": "--max-concurrency",
}
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_FUNCTION_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_REGION = re.compile(r"^[a-z]{2}(-[a-z]+)+-\d+$")


class ConfigError(ValueError):
    """A setting is invalid; the message names the option and what is wrong."""


SERVE = "serve"
INVOKE = "invoke"
_BOTH = (SERVE, INVOKE)


@dataclass(frozen=True)
class Option:
    """One emulator setting, defined once: the Config field of that name, the Python API's
    keyword argument of that name, and (when ``flag`` is set) the command-line flag."""

    name: str
    default: Any
    help: str
    # "--task-root" and so on; None: only the Python API has it.
    flag: str | None = None
    metavar: str | None = None
    # The commands whose parser offers the flag.
    commands: tuple[str, ...] = _BOTH
    choices: tuple[str, ...] | None = None
    # How the default reads in --help (None: from ``default``; "": not shown).
    default_text: str | None = None
    # A per-command default that differs from the Config's (invoke listens on any free port).
    command_defaults: Mapping[str, Any] = field(default_factory=dict)
    check: Callable[[Any], bool] | None = None
    # How the CLI converts the flag's text when the default does not tell (a None default).
    value_type: Callable[[str], Any] | None = None
    # What is wrong when ``check`` fails; ``{value}`` is the value given.
    problem: str = ""
    # "+": a list option whose flag takes several values at once (and may be repeated).
    nargs: str | None = None

    @property
    def label(self) -> str:
        """How error messages name it: its flag, else its keyword."""
        return self.flag or self.name

    def help_text(self, command: str | None = None) -> str:
        default = self.command_defaults.get(command, self.default) if command else self.default
        shown = self.default_text
        if shown is None:
            if default is None or isinstance(default, bool) or default in ((), [], {}):
                shown = ""
            elif isinstance(default, float):
                shown = f"{default:g}"
            else:
                shown = str(default)
        return f"{self.help} (default {shown})" if shown else self.help


def _opt(
    default: Any = MISSING,
    *,
    help: str,
    default_factory: Callable[[], Any] | None = None,
    **spec: Any,
) -> Any:
    """A Config field that is also an :class:`Option` (see :data:`OPTIONS`)."""
    meta = {"option": (help, spec)}
    if default_factory is not None:
        return field(default_factory=default_factory, metadata=meta)
    return field(default=default, metadata=meta)


_POSITIVE: dict[str, Any] = {"check": lambda v: v > 0, "problem": "{value} must be positive"}


@dataclass
class EmulatorConfig:
    """Every emulator option, with its default, help and check: the table the CLI flags
    (:mod:`.cli`) and the Python API's keyword arguments (:mod:`.api`) are made from."""

    handler: str = _opt("", help="the function's handler, e.g. app.handler", metavar="HANDLER")
    # (Resolved against the working folder when the config is made.)
    task_root: Path = _opt(  # noqa: RUF009
        Path("."),
        help="folder holding the function code",
        flag="--task-root",
        metavar="DIR",
        default_text="current folder",
    )
    layers: Sequence[Path] = _opt(
        (),
        help="a layer folder or zip; repeat to stack layers in order",
        flag="--layer",
        metavar="DIR_OR_ZIP",
    )
    timeout: float = _opt(
        3.0,
        help="function timeout",
        flag="--timeout",
        metavar="SECONDS",
        check=lambda v: 0 < v <= 900,
        problem="{value} is not between 0 and 900 seconds",
    )
    memory: int = _opt(
        128,
        help="memory size; an environment over it is killed",
        flag="--memory",
        metavar="MB",
        check=lambda v: 128 <= v <= 10240,
        problem="{value} MB is not between 128 and 10240",
    )
    concurrency: int = _opt(
        10,
        help="maximum environments / invokes in flight",
        flag="--concurrency",
        metavar="N",
        check=lambda v: v >= 1,
        problem="{value} must be at least 1",
    )
    max_concurrency: int = _opt(
        0,
        help="invokes in flight in one environment (Lambda Managed Instances: sets "
        "AWS_LAMBDA_MAX_CONCURRENCY, JSON logs); --concurrency then counts environments; "
        "0: one invoke per environment",
        flag="--max-concurrency",
        metavar="N",
        check=lambda v: 0 <= v <= 1024,
        problem="{value} is not between 0 and 1024",
    )
    # (On the command line: --env KEY=VALUE and --env-file, see cli.py.)
    env: Mapping[str, str] = _opt(
        help="environment variables for the function", default_factory=dict
    )
    host: str = _opt("127.0.0.1", help="address of the Invoke API", flag="--host")
    port: int = _opt(
        9000,
        help="port of the Invoke API (0: any free port)",
        flag="--port",
        command_defaults={INVOKE: 0},
        check=lambda v: 0 <= v <= 65535,
        problem="{value} is not a TCP port",
    )
    function_name: str = _opt(
        "function",
        help="function name in the Invoke API path and the environment (function is the name "
        "RIE uses)",
        flag="--function-name",
        metavar="NAME",
        check=lambda v: bool(_FUNCTION_NAME.match(v)),
        problem="{value!r} must be 1-64 letters, digits, - or _",
    )
    region: str = _opt(
        "us-east-1",
        help="AWS_REGION",
        flag="--region",
        check=lambda v: bool(_REGION.match(v)),
        problem="{value!r} is not a region name like us-east-1",
    )
    # None: our runtime (`python -m runtime HANDLER`); else the command to run instead (a
    # string is split like a shell would).
    runtime_cmd: Sequence[str] | str | None = _opt(
        None,
        help="run this runtime instead of ours, e.g. 'python -m awslambdaric' (HANDLER is "
        "appended unless the command contains {handler})",
        flag="--runtime-cmd",
        metavar="COMMAND",
    )
    no_spawn: bool = _opt(
        False,
        help="start no runtime: serve the Runtime API on --runtime-api for a runtime you start "
        "yourself (e.g. in a debugger)",
        flag="--no-spawn",
        commands=(SERVE,),
    )
    # HOST:PORT of the Runtime API with no_spawn (port 0: any free port).
    runtime_api: str | None = _opt(
        None,
        help="Runtime API address with --no-spawn",
        flag="--runtime-api",
        metavar="HOST:PORT",
        commands=(SERVE,),
        default_text="127.0.0.1:9001",
    )
    init_timeout: float = _opt(
        10.0,
        help="init limit, as on Lambda",
        flag="--init-timeout",
        metavar="SECONDS",
        **_POSITIVE,
    )
    idle_timeout: float = _opt(
        300.0,
        help="shut down environments idle this long",
        flag="--idle-timeout",
        metavar="SECONDS",
        **_POSITIVE,
    )
    shutdown_grace: float = _opt(
        0.5,
        help="SIGTERM-to-SIGKILL delay for runtimes that registered an extension",
        flag="--shutdown-grace",
        metavar="SECONDS",
        check=lambda v: v >= 0,
        problem="{value} must not be negative",
    )
    memory_poll_interval: float = _opt(
        0.01,
        help="seconds between two samples of a busy environment's memory",
        **_POSITIVE,
    )
    event_retries: int = _opt(
        2,
        help="retries of a failed Event invoke (0-2)",
        flag="--event-retries",
        metavar="N",
        check=lambda v: 0 <= v <= 2,
        problem="{value} must be 0, 1 or 2 (as on Lambda)",
    )
    event_retry_delays: tuple[float, float] = _opt(
        (1.0, 2.0), help="seconds before the first and the second retry of an Event invoke"
    )
    log_format: str | None = _opt(
        None,
        help="AWS_LAMBDA_LOG_FORMAT for the function and the platform lines",
        flag="--log-format",
        choices=("Text", "JSON"),
        default_text="Text, or AWS_LAMBDA_LOG_FORMAT from --env",
    )
    # Receive the runtimes' spans (OTLP/HTTP) and print them as a tree per invoke.
    otel_console: bool = _opt(
        False,
        help="receive the function's OpenTelemetry spans (sets OTEL_EXPORTER_OTLP_ENDPOINT) and "
        "print each invoke's spans as a tree on stderr, after its REPORT",
        flag="--otel-console",
    )
    # SnapStart (AWS_LAMBDA_INITIALIZATION_TYPE=snap-start): init and the before-snapshot hooks,
    # a simulated snapshot and restore, the after-restore hooks, then the invoke.
    snap_start: bool = _opt(
        False,
        help="run the function as a SnapStart version: init and its before-snapshot hooks, a "
        "simulated snapshot and restore, its after-restore hooks; the first invoke's REPORT "
        "shows Restore Duration",
        flag="--snap-start",
    )

    # Serve every function of a SAM / CloudFormation template (see template.py).
    template: Path | None = _opt(  # noqa: RUF009
        None,
        help="serve every function of this SAM or CloudFormation template (YAML or JSON) under "
        "its logical id and its FunctionName",
        flag="--template",
        metavar="FILE",
        commands=(SERVE,),
    )
    # Key=Value items (SAM's form); a mapping in the Python API. A dict once validated.
    parameter_overrides: Sequence[str] | Mapping[str, str] = _opt(
        (),
        help="template parameter values, SAM style: Key=Value ... (or "
        "ParameterKey=Key,ParameterValue=Value)",
        flag="--parameter-overrides",
        metavar="KEY=VALUE",
        commands=(SERVE,),
        nargs="+",
    )

    stream_throttle: bool = _opt(
        True,
        help="apply Lambda's bandwidth rule to streamed responses (the first 6 MB at full speed, "
        "then 2 MiB/s); --no-stream-throttle lifts it",
        flag="--no-stream-throttle",
    )
    # Serve a function URL (plain HTTP) on this port (0: any free port; None: none).
    http_port: int | None = _opt(
        None,
        help="also serve the function as a function URL: plain HTTP requests on "
        "127.0.0.1:PORT become function URL events (0: any free port); with --template, the "
        "template's HttpApi and Api routes and function URLs",
        flag="--http-port",
        metavar="PORT",
        commands=(SERVE,),
        value_type=int,
        check=lambda v: v is None or 0 <= v <= 65535,
        problem="{value} is not a TCP port",
    )
    http_payload: str = _opt(
        "2.0",
        help="event format of the --http-port front: 2.0 (function URL) or 1.0 (API Gateway "
        "REST proxy)",
        flag="--http-payload",
        choices=("2.0", "1.0"),
        commands=(SERVE,),
    )

    # The inner loop (watch.py, debug.py, isolation.py).
    watch: bool = _opt(
        False,
        help="reload on code changes: after a change to the function's or its layers' Python "
        "files, the next invoke starts a fresh environment (invokes in flight finish on the old "
        "one)",
        flag="--watch",
        commands=(SERVE,),
    )
    debug_port: int | None = _opt(
        None,
        help="start environments under debugpy, listening on 127.0.0.1:PORT (needs the debug "
        "extra); the function timeout is suspended and concurrency becomes 1",
        flag="--debug-port",
        metavar="PORT",
        check=lambda v: v is None or (str(v).isdigit() and 1 <= int(v) <= 65535),
        problem="{value!r} is not a TCP port (1-65535)",
    )
    debug_wait: bool = _opt(
        False,
        help="with --debug-port: each environment waits for the debugger to attach before init",
        flag="--debug-wait",
    )
    strict_imports: bool = _opt(
        False,
        help="a module the function takes from your virtual environment (not from the task "
        "root, a layer, the runtime or the standard library) fails to import, as on Lambda",
        flag="--strict-imports",
    )
    isolated: bool = _opt(
        False,
        help="run only what would be deployed: a Python without site-packages, with the task "
        "root, the layers and the runtime core (with orjson) on sys.path",
        flag="--isolated",
    )
    package: Path | None = _opt(  # noqa: RUF009
        None,
        help="run the zips `lambda-runtime package` wrote into DIR (function.zip, "
        "runtime-layer.zip), unpacked as on Lambda, isolated",
        flag="--package",
        metavar="DIR",
    )

    def __post_init__(self) -> None:
        self._check_template()
        self.task_root = Path(self.task_root).resolve()
        if not self.task_root.is_dir():
            raise ConfigError(f"--task-root: {self.task_root} is not a folder")
        self.layers = [Path(p).resolve() for p in self.layers]
        for layer in self.layers:
            if not layer.exists():
                raise ConfigError(f"--layer: {layer} does not exist")
            if layer.is_file() and layer.suffix.lower() != ".zip":
                raise ConfigError(f"--layer: {layer} is neither a folder nor a .zip file")
        if not self.no_spawn and not self.handler and self.template is None:
            raise ConfigError("HANDLER is required (for example app.handler)")
        for option in OPTIONS:
            value = getattr(self, option.name)
            if option.check is not None and not option.check(value):
                raise ConfigError(f"{option.label}: {option.problem.format(value=value)}")
        self.env = dict(self.env or {})
        if isinstance(self.runtime_cmd, str):
            self.runtime_cmd = split_command(self.runtime_cmd)
        for key in self.env:
            if not _ENV_NAME.match(key):
                raise ConfigError(f"--env: {key!r} is not a valid environment variable name")
            if key in _EMULATOR_OWNED:
                raise ConfigError(
                    f"--env: {key} is set by the emulator; use {_EMULATOR_OWNED[key]}"
                )
        if self.no_spawn and self.max_concurrency:
            raise ConfigError("--max-concurrency and --no-spawn exclude each other")
        if self.no_spawn:
            if self.runtime_cmd is not None:
                raise ConfigError("--runtime-cmd and --no-spawn exclude each other")
            self.runtime_api_address()
        if self.env.get("AWS_LAMBDA_INITIALIZATION_TYPE") == SNAP_START:
            # The runtime will ask for /restore/next: serve it.
            self.snap_start = True
        # Lambda Managed Instances write JSON logs.
        default_format = "JSON" if self.max_concurrency else "Text"
        fmt = self.log_format or self.env.get("AWS_LAMBDA_LOG_FORMAT") or default_format
        if fmt not in ("Text", "JSON"):
            raise ConfigError(f"log format {fmt!r} must be Text or JSON")
        self.log_format = fmt
        self._check_devloop()

    def _check_devloop(self) -> None:
        """--watch, --debug-port and the isolation modes: combinations that cannot work."""
        import importlib.util

        if self.package is not None:
            self.package = Path(self.package).resolve()
        isolating = self.isolated or self.strict_imports or self.package is not None
        if isolating and self.runtime_cmd is not None:
            flag = "--package" if self.package is not None else (
                "--isolated" if self.isolated else "--strict-imports")
            raise ConfigError(f"{flag} applies to our runtime only, not with --runtime-cmd")
        if self.package is not None:
            from runtime.packaging.package import FUNCTION_ZIP, LAYER_ZIP

            if self.watch:
                raise ConfigError(
                    "--package and --watch exclude each other (the zips do not change)"
                )
            missing = [n for n in (FUNCTION_ZIP, LAYER_ZIP) if not (self.package / n).is_file()]
            if missing:
                raise ConfigError(
                    f"--package: {self.package} has no {' and no '.join(missing)} (build them "
                    f"with `lambda-runtime package FUNCTION_DIR --output {self.package}`)"
                )
            if self.template is not None:
                raise ConfigError("--package and --template exclude each other")
        if self.debug_port is None:
            if self.debug_wait:
                raise ConfigError("--debug-wait only applies with --debug-port")
            return
        self.debug_port = int(self.debug_port)
        if self.no_spawn:
            raise ConfigError(
                "--debug-port and --no-spawn exclude each other (with --no-spawn, start the "
                "runtime under your debugger yourself)"
            )
        if self.runtime_cmd is not None:
            raise ConfigError("--debug-port applies to our runtime only, not with --runtime-cmd")
        if importlib.util.find_spec("debugpy") is None:
            raise ConfigError("--debug-port needs debugpy: pip install 'lambda-runtime[debug]'")

    def _check_template(self) -> None:
        self.parameter_overrides = parse_parameter_overrides(self.parameter_overrides or ())
        if self.template is None:
            if self.parameter_overrides:
                raise ConfigError("--parameter-overrides only applies with --template")
            return
        self.template = Path(self.template).resolve()
        if not self.template.is_file():
            raise ConfigError(f"--template: {self.template} is not a file")
        # The template gives each function these; a value here would be silently ignored.
        clashes = {
            "HANDLER": bool(self.handler),
            "--layer": bool(self.layers),
            "--function-name": self.function_name != "function",
            "--no-spawn": self.no_spawn,
            # Each route's event format comes from its event (HttpApi 2.0, Api 1.0).
            "--http-payload": self.http_payload != "2.0",
        }
        for label, given in clashes.items():
            if given:
                raise ConfigError(
                    f"--template and {label} exclude each other (the template defines each "
                    "function)"
                )

    @property
    def function_arn(self) -> str:
        return f"arn:aws:lambda:{self.region}:{DEFAULT_ACCOUNT}:function:{self.function_name}"

    @property
    def slots(self) -> int:
        """Invokes one environment takes at once."""
        return self.max_concurrency or 1

    def runtime_api_address(self) -> tuple[str, int]:
        text = self.runtime_api or "127.0.0.1:9001"
        host, sep, port = text.rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
            raise ConfigError(f"--runtime-api: {text!r} is not HOST:PORT")
        host = host.strip("[]")
        try:
            loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
        except ValueError:
            loopback = False
        if not loopback:
            # The Runtime API hands out every event and takes any answer: keep it on this host.
            raise ConfigError(f"--runtime-api: {host} is not a loopback address (127.0.0.1, ::1)")
        return host, int(port)

    def python_flags(self) -> list[str]:
        """Interpreter flags: no user site, no ``site`` at all when isolated (no site-packages
        and no ``.pth`` files: only what ``PYTHONPATH`` and the runtime put on ``sys.path``);
        all modules from source when debugging."""
        flags = ["-s", "-S"] if self.isolated or self.package is not None else []
        if self.debug_port is not None:
            # debugpy cannot set breakpoints in frozen standard modules (and says so at start).
            flags += ["-X", "frozen_modules=off"]
        return flags

    def command(self) -> list[str]:
        """The runtime's argv: HANDLER is appended (like a container image's CMD after its
        ENTRYPOINT) unless the command places it itself with ``{handler}``."""
        if self.runtime_cmd is None:
            # Through the emulator's wrapper (_boot/): it watches the function's imports and
            # starts debugpy, then runs `python -m runtime`.
            return [sys.executable, *self.python_flags(), "-m", BOOT_MODULE, self.handler]
        cmd = list(self.runtime_cmd)
        if any("{handler}" in part for part in cmd):
            return [part.replace("{handler}", self.handler) for part in cmd]
        return [*cmd, self.handler] if self.handler else cmd


def _options() -> tuple[Option, ...]:
    options = []
    for f in fields(EmulatorConfig):
        help_, spec = f.metadata["option"]
        factory = f.default_factory
        default = factory() if callable(factory) else f.default
        options.append(Option(f.name, default, help_, **spec))
    return tuple(options)


# Every option, in the order of EmulatorConfig's fields.
OPTIONS: tuple[Option, ...] = _options()
OPTION_NAMES = frozenset(option.name for option in OPTIONS)


def unknown_options(names: Iterable[str]) -> None:
    """Raise a ConfigError naming the first of ``names`` that is no option (with the closest
    one, for a typo)."""
    for name in names:
        if name not in OPTION_NAMES:
            close = difflib.get_close_matches(name, sorted(OPTION_NAMES), n=1)
            hint = f" (did you mean {close[0]}?)" if close else ""
            raise ConfigError(f"{name!r} is not an emulator option{hint}")


def parse_env_assignment(text: str, *, inherit: Mapping[str, str] | None = None) -> tuple[str, str]:
    """``KEY=VALUE``; a bare ``KEY`` takes the value from the emulator's own environment."""
    key, sep, value = text.partition("=")
    key = key.strip()
    if not _ENV_NAME.match(key):
        raise ConfigError(f"--env: {text!r} is not KEY=VALUE")
    if not sep:
        source = os.environ if inherit is None else inherit
        if key not in source:
            raise ConfigError(f"--env: {key} has no value and is not set in this environment")
        return key, source[key]
    return key, value


def parse_env_file(path: Path) -> dict[str, str]:
    """A dotenv-style file: ``KEY=VALUE`` lines, ``#`` comments, optional quotes, ``export``."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"--env-file: cannot read {path}: {exc.strerror}") from None
    result: dict[str, str] = {}
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("export "):
            line = line[7:].lstrip()
        key, sep, value = line.partition("=")
        key = key.strip()
        if not sep or not _ENV_NAME.match(key):
            raise ConfigError(f"--env-file: {path}:{number}: expected KEY=VALUE, got {raw!r}")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            value = value[1:-1]
        result[key] = value
    return result


def split_command(text: str) -> list[str]:
    try:
        parts = shlex.split(text)
    except ValueError as exc:
        raise ConfigError(f"--runtime-cmd: {exc}") from None
    if not parts:
        raise ConfigError("--runtime-cmd is empty")
    return parts


def parse_parameter_overrides(items: Iterable[str] | Mapping[str, Any]) -> dict[str, str]:
    """SAM's ``--parameter-overrides``: ``Key=Value`` items (several per string, separated by
    spaces, quoted like a shell) or ``ParameterKey=Key,ParameterValue=Value``."""
    if isinstance(items, Mapping):
        return {str(k): _text(v) for k, v in items.items()}
    result: dict[str, str] = {}
    for item in items:
        try:
            words = shlex.split(item)
        except ValueError as exc:
            raise ConfigError(f"--parameter-overrides: {item!r}: {exc}") from None
        for word in words:
            match = re.fullmatch(r"ParameterKey=([^,]+),ParameterValue=(.*)", word)
            if match:
                key, value = match.group(1), match.group(2)
            else:
                key, sep, value = word.partition("=")
                if not sep or not key:
                    raise ConfigError(
                        f"--parameter-overrides: {word!r} is not Key=Value "
                        "(or ParameterKey=Key,ParameterValue=Value)"
                    )
            result[key] = value
    return result


def _text(value: Any) -> str:
    # CloudFormation's text of a YAML scalar: booleans in lower case.
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
