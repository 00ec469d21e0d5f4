"""Small layers around the handler, the way the Rust ``lambda_runtime`` crate stacks services.

A layer wraps the call of the handler (``wrap``) and gets a moment after the invoke's response
or error has been posted, before the next ``/next`` (``after_invoke``): the place to flush what
must not be lost when the sandbox freezes, without making the caller wait for it. Observability
(tracing, metrics, log buffering) plugs in here; the lifecycle only knows this interface.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from runtime.context import LambdaContext

Call = Callable[[Any, LambdaContext], Any]


@dataclass(frozen=True, slots=True)
class InitInfo:
    """What init measured, for layers that report it (e.g. an init span)."""

    started_ns: int  # time.time_ns() when the runtime began init
    handler_loaded_ns: int  # time.time_ns() when the handler was ready
    handler_import_ns: int  # how long importing the handler's module took


class Layer(Protocol):
    def wrap(self, call: Call) -> Call:
        """Return a call that does this layer's work around ``call`` (and re-raises errors)."""
        ...

    def after_invoke(self) -> None:
        """Runs after the response or error was posted; must be bounded in time."""
        ...


def compose(call: Call, layers: Sequence[Layer]) -> Call:
    """The first layer is the outermost."""
    for layer in reversed(layers):
        call = layer.wrap(call)
    return call
