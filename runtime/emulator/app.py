"""The emulator as one asyncio object: Invoke API server, scheduler, environments, layers.

Used by the CLI (on the main thread's loop) and by the Python API (on a background thread).
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections import OrderedDict
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import runtime

from .config import ConfigError, EmulatorConfig
from .devloop import DevLoop
from .environment import Environment
from .function_url import HttpFront
from .functions import Function, FunctionRegistry, function_configs
from .invocation import Invocation
from .invoke_api import InvokeApi
from .layers import LayerRoot
from .lifecycle import Lifecycle, Placement
from .output import Console, TaggedConsole, stderr_stream
from .runtime_api import RuntimeApi
from .scheduler import Scheduler
from .server import HttpServer, invoke_server_limits

if TYPE_CHECKING:
    from .otel import SpanConsole
    from .routes import HttpRoutes
    from .template import Template

T = TypeVar("T")

# Dummy credentials: well-formed so SDKs start, useless against AWS.
DUMMY_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "ASIAEMULATORDUMMYKEY",
    "AWS_SECRET_ACCESS_KEY": "emulator/dummy/secret/access/key/000000",
    "AWS_SESSION_TOKEN": "emulator-dummy-session-token",
}


def build_runtime_env(config: EmulatorConfig, layer_root: Path) -> dict[str, str]:
    """The environment a runtime process sees (facts section 4), minus the per-environment
    ``AWS_LAMBDA_RUNTIME_API`` and ``AWS_LAMBDA_LOG_STREAM_NAME``.

    It is built from scratch rather than inherited, as on Lambda, so nothing from the host
    (credentials above all) leaks in; only ``PATH`` and ``LD_LIBRARY_PATH`` are carried over so
    the runtime's interpreter and libraries can be found.
    """
    host_path = os.environ.get("PATH", "/usr/local/bin:/usr/bin/:/bin")
    env = {
        "PATH": f"{host_path}:{layer_root / 'bin'}",
        "LD_LIBRARY_PATH": ":".join(
            p for p in (os.environ.get("LD_LIBRARY_PATH", ""), str(layer_root / "lib")) if p
        ),
        "LANG": "en_US.UTF-8",
        "TZ": ":UTC",
        # Without it Python block-buffers a pipe, and print() output would not reach the
        # invoke it belongs to.
        "PYTHONUNBUFFERED": "1",
        "_HANDLER": config.handler,
        "LAMBDA_TASK_ROOT": str(config.task_root),
        "LAMBDA_RUNTIME_DIR": str(Path(runtime.__file__).resolve().parent.parent),
        "LAMBDA_RUNTIME_LAYER_ROOT": str(layer_root),
        "AWS_REGION": config.region,
        "AWS_DEFAULT_REGION": config.region,
        "AWS_LAMBDA_FUNCTION_NAME": config.function_name,
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(config.memory),
        "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{config.function_name}",
        "AWS_LAMBDA_INITIALIZATION_TYPE": "on-demand",
        **DUMMY_CREDENTIALS,
    }
    if config.runtime_cmd is None:
        # Our runtime must import the same `runtime` package as this emulator, installed or not.
        # It finds the layers itself (LAMBDA_RUNTIME_LAYER_ROOT).
        env["PYTHONPATH"] = env["LAMBDA_RUNTIME_DIR"]
    elif config.layers:
        # Another runtime (awslambdaric, ...) knows nothing of LAMBDA_RUNTIME_LAYER_ROOT: give it
        # the layer paths the managed Python runtime puts on sys.path, for this Python version.
        version = f"python{sys.version_info.major}.{sys.version_info.minor}"
        env["PYTHONPATH"] = (
            f"{layer_root / 'python'}:{layer_root / 'python' / 'lib' / version / 'site-packages'}"
        )
    if config.log_format == "JSON":
        env["AWS_LAMBDA_LOG_FORMAT"] = "JSON"
    if config.max_concurrency:
        env["AWS_LAMBDA_MAX_CONCURRENCY"] = str(config.max_concurrency)
        env["AWS_LAMBDA_INITIALIZATION_TYPE"] = "lambda-managed-instances"
    for key, value in config.env.items():
        if key == "PYTHONPATH" and "PYTHONPATH" in env:
            env[key] = f"{value}:{env[key]}"
        else:
            env[key] = value
    if config.otel_console:
        # The console takes over where spans go (each environment gets its endpoint, see
        # Lifecycle.runtime_env); an --env pointing them elsewhere, or switching tracing off,
        # would leave it empty.
        for key in OTEL_TAKEN_OVER:
            env.pop(key, None)
        env["OTEL_TRACES_EXPORTER"] = "otlp"
        env["OTEL_EXPORTER_OTLP_PROTOCOL"] = "http/protobuf"
    return env


# Trace export settings --otel-console replaces.
OTEL_TAKEN_OVER = (
    "OTEL_SDK_DISABLED",
    "OTEL_TRACES_EXPORTER",
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    "OTEL_EXPORTER_OTLP_PROTOCOL",
    "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
)


def new_event_loop() -> asyncio.AbstractEventLoop:
    """uvloop when it is installed (it roughly halves the emulator's CPU per invoke), else
    asyncio's own loop; ``LAMBDA_EMULATOR_LOOP=asyncio`` forces the latter."""
    if os.environ.get("LAMBDA_EMULATOR_LOOP", "auto") != "asyncio":
        try:
            import uvloop  # type: ignore[import-not-found, unused-ignore]
        except ImportError:
            pass
        else:
            loop: asyncio.AbstractEventLoop = uvloop.new_event_loop()
            return loop
    return asyncio.new_event_loop()


def run(coro: Coroutine[Any, Any, T]) -> T:
    """``asyncio.run`` on the loop :func:`new_event_loop` picks."""
    loop = new_event_loop()
    try:
        asyncio.set_event_loop(loop)
        return loop.run_until_complete(coro)
    finally:
        try:
            loop.run_until_complete(loop.shutdown_asyncgens())
        finally:
            asyncio.set_event_loop(None)
            loop.close()


class EmulatorCore:
    def __init__(
        self,
        config: EmulatorConfig,
        console: Console,
        *,
        keep_records: int = 0,
        on_record: Callable[[Invocation], None] | None = None,
        on_event_done: Callable[[Invocation], None] | None = None,
        on_ended: Callable[[Invocation], None] | None = None,
    ) -> None:
        self.on_event_done = on_event_done
        self.on_ended = on_ended
        self.span_output: Console | None = None
        self.config = config
        self.console = console
        self.keep_records = keep_records
        self.on_record = on_record
        self.records: OrderedDict[str, Invocation] = OrderedDict()
        self.invoke_server: HttpServer | None = None
        self.http_server: HttpServer | None = None
        self.external: Environment | None = None
        self.template: Template | None = None
        self.functions = self._registry(config)
        # What the --http-port front serves (made now, so a bad route fails before the start).
        self.http_routes = self._http_routes(config) if config.http_port is not None else None
        self.devloop = DevLoop(self.functions, build_runtime_env, self._say)
        # Set by start(): what every function's environments share.
        self._spans: SpanConsole | None = None
        self._on_finished: Callable[[Invocation], None] | None = None

    def _registry(self, config: EmulatorConfig) -> FunctionRegistry:
        """The functions served: the template's (resolved now, so a bad template fails before
        anything starts), or the one the options describe."""
        if config.template is None:
            return FunctionRegistry([Function(config)], region=config.region, rie_alias=True)
        from .template import load_template

        assert isinstance(config.parameter_overrides, dict)
        self.template = load_template(
            config.template,
            parameter_overrides=config.parameter_overrides,
            region=config.region,
            env_overrides=config.env,
        )
        return FunctionRegistry(
            function_configs(config, self.template),
            region=config.region,
            unsupported=self.template.unsupported,
            rie_alias=len(self.template.functions) == 1,
        )

    def _http_routes(self, config: EmulatorConfig) -> HttpRoutes:
        """The template's routes and function URLs, or a catch-all route to the one function."""
        from .routes import HttpRoutes

        if self.template is None:
            return HttpRoutes.single(config.function_name, config.http_payload)
        try:
            return HttpRoutes.from_template(self.template)
        except ValueError as exc:
            raise ConfigError(f"{self.template.path.name}: {exc}") from None

    @property
    def scheduler(self) -> Scheduler | None:
        """The first function's scheduler (the only one without a template), once made."""
        return self.functions.default.scheduler

    @property
    def layers(self) -> LayerRoot | None:
        return self.functions.default.layers

    @property
    def url(self) -> str:
        assert self.invoke_server is not None
        return f"http://{self.invoke_server.host}:{self.invoke_server.port}"

    @property
    def http_url(self) -> str | None:
        """Base URL of the function-URL front (``http_port``), or None without one."""
        server = self.http_server
        return None if server is None else f"http://{server.host}:{server.port}"

    @property
    def runtime_api_address(self) -> str | None:
        return self.external.address if self.external is not None else None

    def _record(self, inv: Invocation) -> None:
        if self.keep_records:
            records = self.records
            records[inv.request_id] = inv
            if len(records) > self.keep_records:
                records.popitem(last=False)
        if self.on_record is not None:
            self.on_record(inv)

    def _make_scheduler(self, fn: Function) -> Scheduler:
        """A function's scheduler, with its layer folder and environment (on first use)."""
        config = self.devloop.run_config(fn)
        fn.layers = LayerRoot(config.layers)
        base_env = self.devloop.runtime_env(fn, config, fn.layers.path)

        def make_runtime_server(env: Environment) -> HttpServer:
            assert fn.scheduler is not None
            return HttpServer(RuntimeApi(fn.scheduler.lifecycle, env, config))

        # Several functions share the console: each line says whose it is.
        console = self.console if self.template is None else TaggedConsole(self.console, fn.name)

        def make_lifecycle(placement: Placement) -> Lifecycle:
            lifecycle = Lifecycle(
                config,
                console,
                base_env,
                make_runtime_server,
                placement,
                on_finished=self._on_finished,
                spans=self._spans,
            )
            self.devloop.lifecycle_made(lifecycle, config)
            return lifecycle

        return Scheduler(
            config, make_lifecycle, on_event_done=self.on_event_done, on_ended=self.on_ended
        )

    async def start(self) -> None:
        config = self.config
        self.console.loop = asyncio.get_running_loop()
        try:
            if config.otel_console:
                from .otel import SpanConsole

                # Trees go where the log goes; without a log on screen, to stderr anyway.
                output = self.console if self.console.enabled else Console(stderr_stream)
                output.loop = self.console.loop
                self.span_output = output
                self._spans = SpanConsole(output.line)
            self._on_finished = self._record if (self.keep_records or self.on_record) else None
            self.functions.bind(self._make_scheduler)
            if self.template is None:
                # One function: its layers are checked (and unpacked) before serving.
                self.functions.scheduler(self.functions.default)
            # Descriptors held back for every environment any function may start.
            slots = sum(fn.config.concurrency for fn in self.functions)
            self.invoke_server = HttpServer(
                InvokeApi(config, self._get_scheduler, functions=self.functions),
                **invoke_server_limits(slots),
            )
            await self.invoke_server.listen(config.host, config.port)
            if self.http_routes is not None and config.http_port is not None:
                self.http_server = HttpServer(HttpFront(self.http_routes, self.functions))
                await self.http_server.listen("127.0.0.1", config.http_port)
            if config.watch:
                self.devloop.start_watching(asyncio.get_running_loop())
            if config.no_spawn:
                await self._start_external()
        except BaseException:
            await self.stop()
            raise

    def _say(self, line: str) -> None:
        """An emulator line (e.g. what --watch reloaded), where the function's log goes."""
        if self.console.enabled:
            self.console.line(line.encode())

    def _get_scheduler(self) -> Scheduler:
        return self.functions.scheduler(self.functions.default)

    async def _start_external(self) -> None:
        sched = self._get_scheduler()
        env = Environment(0, external=True)
        server = HttpServer(RuntimeApi(sched.lifecycle, env, self.config))
        host, port = self.config.runtime_api_address()
        await server.listen(host, port)
        env.server = server
        env.address = f"{server.host}:{server.port}"
        sched.attach_external(env)
        self.external = env

    def external_env_vars(self) -> dict[str, str]:
        """What to export before starting a runtime by hand with --no-spawn."""
        assert self.scheduler is not None and self.external is not None
        env = self.scheduler.lifecycle.runtime_env(self.external)
        # PATH / LD_LIBRARY_PATH of the shell that starts the runtime are the right ones.
        for key in ("PATH", "LD_LIBRARY_PATH"):
            env.pop(key, None)
        return env

    async def stop(self) -> None:
        if self.invoke_server is not None:
            self.invoke_server.stop_listening()
        if self.http_server is not None:
            self.http_server.stop_listening()
        schedulers = self.functions.close()
        if schedulers:
            # Answers every invoke still open (503) before the connections go.
            await asyncio.gather(*(scheduler.close() for scheduler in schedulers))
        if self.invoke_server is not None:
            await asyncio.sleep(0)
            self.invoke_server.close()
            await self.invoke_server.wait_closed()
        if self.http_server is not None:
            self.http_server.close()
            await self.http_server.wait_closed()
        if self.external is not None and self.external.server is not None:
            self.external.server.close()
        for fn in self.functions:
            if fn.layers is not None:
                fn.layers.cleanup()
                fn.layers = None
        self.devloop.close()
        # (Bounded: a stderr nobody reads must not keep the emulator from stopping.)
        self.console.close()
        if self.span_output is not None:
            self.span_output.close()
