"""lambda-runtime: a fast, pure-Python runtime interface client for AWS Lambda.

What users may import is listed in ``__all__``; every other module is private.
"""

from runtime.context import Client, ClientContext, CognitoIdentity, LambdaContext
from runtime.shutdown import on_shutdown

__version__ = "0.1.0"

__all__ = [
    "Client",
    "ClientContext",
    "CognitoIdentity",
    "LambdaContext",
    "__version__",
    "on_shutdown",
]
