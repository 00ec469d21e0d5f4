"""The functions one emulator serves: each with its own settings, scheduler and layers.

A single-function emulator (``serve HANDLER``) is a registry of one; ``serve --template`` makes
one entry per function of the template. Callers name a function the ways Lambda accepts (its
name, its template logical id, a full or partial ARN, optionally qualified with ``$LATEST``);
:meth:`FunctionRegistry.lookup` turns that into the entry or the message of a 404. A function's
scheduler (and with it its layer folder) is made on its first invoke, so a large template does
not slow the start.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING

from runtime import protocol

from .config import DEFAULT_ACCOUNT, ConfigError, EmulatorConfig

if TYPE_CHECKING:
    from .layers import LayerRoot
    from .scheduler import Scheduler
    from .template import FunctionSpec, Template


class ShuttingDown(Exception):
    """A function's scheduler was asked for while the emulator stops."""


class Function:
    """One served function: its configuration, its template entry, its scheduler once made."""

    def __init__(self, config: EmulatorConfig, spec: FunctionSpec | None = None) -> None:
        self.config = config
        self.spec = spec
        self.scheduler: Scheduler | None = None
        self.layers: LayerRoot | None = None

    @property
    def name(self) -> str:
        return self.config.function_name

    @property
    def logical_id(self) -> str | None:
        return self.spec.logical_id if self.spec is not None else None

    @property
    def arn(self) -> str:
        return self.config.function_arn

    def __repr__(self) -> str:
        return f"Function({self.name!r})"


def split_function_ref(
    ref: str, qualifier: str | None
) -> tuple[str, str | None, str | None, str | None]:
    """``(name, qualifier, region, account)`` of what a caller put in the path: a name,
    ``name:QUAL``, ``ACCOUNT:function:NAME[:QUAL]`` or
    ``arn:aws:lambda:REGION:ACCOUNT:function:NAME[:QUAL]``. Raises ValueError for a malformed
    ARN."""
    region = account = None
    if ref.startswith("arn:"):
        parts = ref.split(":")
        if len(parts) not in (7, 8) or parts[2] != "lambda" or parts[5] != "function":
            raise ValueError(ref)
        region, account, name = parts[3], parts[4], parts[6]
        if len(parts) == 8:
            qualifier = parts[7]
    elif ref.count(":") >= 2:
        parts = ref.split(":")
        if parts[1] != "function" or len(parts) > 4:
            raise ValueError(ref)
        account, name = parts[0], parts[2]
        if len(parts) == 4:
            qualifier = parts[3]
    elif ":" in ref:
        name, qualifier = ref.split(":", 1)
    else:
        name = ref
    return name, qualifier, region, account


class FunctionRegistry:
    """Every function of the emulator by name, logical id and ARN."""

    def __init__(
        self,
        functions: Sequence[Function],
        *,
        region: str,
        unsupported: Mapping[str, str] | None = None,
        rie_alias: bool = False,
    ) -> None:
        if not functions:
            raise ConfigError("no function to serve")
        self.functions = list(functions)
        self.region = region
        # Functions of the template that cannot run here, with the reason (said on invoke).
        self.unsupported = dict(unsupported or {})
        self._by_name: dict[str, Function] = {}
        for fn in self.functions:
            self._by_name[fn.name] = fn
            if fn.logical_id is not None:
                self._by_name.setdefault(fn.logical_id, fn)
        if rie_alias:
            # RIE's path, /2015-03-31/functions/function/invocations, reaches the one function.
            self._by_name.setdefault(protocol.RIE_FUNCTION_NAME, self.functions[0])
        self._make_scheduler: Callable[[Function], Scheduler] | None = None
        self.closing = False

    def __iter__(self) -> Iterator[Function]:
        return iter(self.functions)

    def __len__(self) -> int:
        return len(self.functions)

    @property
    def default(self) -> Function:
        """The first function (the only one without a template)."""
        return self.functions[0]

    def get(self, name: str) -> Function | None:
        return self._by_name.get(name)

    def lookup(self, ref: str, qualifier: str | None = None) -> Function | str:
        """The function ``ref`` names, or the message of the 404 to answer."""
        try:
            name, qualifier, region, account = split_function_ref(ref, qualifier)
        except ValueError:
            return f"Function not found: {ref}"
        fn = self._by_name.get(name)
        # Lambda's message names the function as asked: its region, account and qualifier.
        arn = (
            f"arn:aws:lambda:{region or self.region}:{account or DEFAULT_ACCOUNT}:function:"
            f"{fn.name if fn is not None else name}" + (f":{qualifier}" if qualifier else "")
        )
        elsewhere = region not in (None, self.region) or account not in (None, DEFAULT_ACCOUNT)
        if fn is None or elsewhere:
            reason = self.unsupported.get(name)
            if reason is not None:
                return f"Function not found: {arn} ({name} is not served: {reason})"
            return f"Function not found: {arn}"
        if qualifier not in (None, "$LATEST"):
            return f"Function not found: {arn}"
        return fn

    # -- schedulers

    def bind(self, make_scheduler: Callable[[Function], Scheduler]) -> None:
        """How a function's scheduler is made (on the emulator's loop, on first use)."""
        self._make_scheduler = make_scheduler

    def scheduler(self, fn: Function) -> Scheduler:
        """``fn``'s scheduler, made now if it has none (ShuttingDown once :meth:`close` began:
        a scheduler made then would never be stopped)."""
        if fn.scheduler is None:
            if self.closing:
                raise ShuttingDown(fn.name)
            assert self._make_scheduler is not None, "FunctionRegistry.bind() first"
            fn.scheduler = self._make_scheduler(fn)
        return fn.scheduler

    def close(self) -> list[Scheduler]:
        """No new schedulers from now on; the ones made so far, to stop."""
        self.closing = True
        return [fn.scheduler for fn in self.functions if fn.scheduler is not None]


def function_configs(base: EmulatorConfig, template: Template) -> list[Function]:
    """One configuration per function of ``template``: the template's settings, the emulator's
    options (concurrency, region, log format, ...) for the rest; ``--env`` wins over the
    template's variables, as it is how local values are given."""
    result = []
    for spec in template.functions:
        try:
            config = dataclasses.replace(
                base,
                template=None,
                parameter_overrides={},
                handler=spec.handler,
                task_root=spec.code_uri,
                layers=list(spec.layers),
                timeout=float(spec.timeout),
                memory=spec.memory,
                env={**spec.environment, **base.env},
                function_name=spec.function_name,
            )
        except ConfigError as exc:
            raise ConfigError(f"{template.path.name}: Resources.{spec.logical_id}: {exc}") from None
        result.append(Function(config, spec))
    return result
