"""Small layers around the handler, the way the Rust ``lambda_runtime`` crate stacks services.

A layer wraps the call of the handler (``wrap``) and gets a moment after the invoke's response
or error has been posted, before the next ``/next`` (``after_invoke``): the place to flush what
must not be lost when the sandbox freezes, without making the caller wait for it. Observability
(tracing, metrics, log buffering) plugs in here; the lifecycle only knows this interface.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

# typing (and dataclass machinery) cost milliseconds of cold start; the interface below is only
# needed by the type checker.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Protocol

    from runtime.context import LambdaContext

    Call = Callable[[Any, LambdaContext], Any]
else:
    Protocol = object


class InitInfo:
    """What init measured, for layers that report it (e.g. an init span)."""

    __slots__ = ("handler_import_ns", "handler_loaded_ns", "started_ns")

    def __init__(self, started_ns: int, handler_loaded_ns: int, handler_import_ns: int) -> None:
        self.started_ns = started_ns  # time.time_ns() when the runtime began init
        self.handler_loaded_ns = handler_loaded_ns  # time.time_ns() when the handler was ready
        self.handler_import_ns = handler_import_ns  # how long importing the handler took

    def __repr__(self) -> str:
        return (
            f"InitInfo(started_ns={self.started_ns}, handler_loaded_ns={self.handler_loaded_ns}, "
            f"handler_import_ns={self.handler_import_ns})"
        )


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
