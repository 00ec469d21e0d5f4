"""lambda-runtime: a fast, pure-Python runtime interface client for AWS Lambda.

What users may import is listed in ``__all__``; every other module is private.
"""

from runtime.context import Client, ClientContext, CognitoIdentity, LambdaContext
from runtime.shutdown import on_shutdown

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing
if TYPE_CHECKING:
    from runtime.observability.metrics import add_metric, add_property
    from runtime.snapstart import register_after_restore, register_before_snapshot
    from runtime.streaming import HttpResponse, StreamResponse

__version__ = "0.1.0"

__all__ = [
    "Client",
    "ClientContext",
    "CognitoIdentity",
    "HttpResponse",
    "LambdaContext",
    "StreamResponse",
    "__version__",
    "add_metric",
    "add_property",
    "on_shutdown",
    "register_after_restore",
    "register_before_snapshot",
]

# Imported on first use, so `import runtime` stays cheap for functions that do not use them.
_LAZY = {
    "add_metric": "runtime.observability.metrics",
    "add_property": "runtime.observability.metrics",
    "HttpResponse": "runtime.streaming",
    "StreamResponse": "runtime.streaming",
    "register_after_restore": "runtime.snapstart",
    "register_before_snapshot": "runtime.snapstart",
}


def __getattr__(name: str) -> object:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'runtime' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
