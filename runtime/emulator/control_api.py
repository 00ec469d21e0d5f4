"""Control-plane reads on the Invoke API's port: ``GetFunction``, ``GetFunctionConfiguration``
and ``ListFunctions``, answered from the emulator's configuration in Lambda's JSON shapes (the
``FunctionConfiguration`` structure of botocore's lambda service model), so tools that look a
function up before invoking it work against the emulator.

* ``GET /2015-03-31/functions/`` (``MaxItems``, ``Marker``): ``{"Functions": [...],
  "NextMarker": ...}``
* ``GET /2015-03-31/functions/{name}``: ``{"Configuration", "Code", "Tags"}``
* ``GET /2015-03-31/functions/{name}/configuration``: the configuration alone

``{name}`` takes every form Invoke takes (name, logical id, ARN, ``$LATEST``).
"""

from __future__ import annotations

import sys
import time
import uuid
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, unquote

import orjson

from runtime import protocol

from .config import DEFAULT_ACCOUNT

if TYPE_CHECKING:
    from .functions import Function, FunctionRegistry
    from .server import Request

_FUNCTIONS = protocol.FUNCTIONS_PREFIX.encode()
_CONFIGURATION = b"/configuration"
# ListFunctions returns at most 50 per page, whatever MaxItems says.
_PAGE_MAX = 50
_ROLE = f"arn:aws:iam::{DEFAULT_ACCOUNT}:role/lambda-emulator"
# One LastModified and RevisionId for the emulator's life: the configuration does not change.
_STARTED = time.strftime("%Y-%m-%dT%H:%M:%S.000+0000", time.gmtime())
_REVISION = str(uuid.uuid4())


def function_configuration(fn: Function) -> dict[str, Any]:
    """``FunctionConfiguration`` of ``fn``."""
    config = fn.config
    spec = fn.spec
    host_python = f"python{sys.version_info.major}.{sys.version_info.minor}"
    runtime = spec.runtime if spec is not None and spec.runtime else host_python
    architectures = list(spec.architectures) if spec is not None else ["x86_64"]
    result: dict[str, Any] = {
        "FunctionName": config.function_name,
        "FunctionArn": config.function_arn,
        "Runtime": runtime,
        "Role": _ROLE,
        "Handler": config.handler,
        "CodeSize": 0,
        "Description": spec.description if spec is not None else "",
        "Timeout": int(config.timeout) if float(config.timeout).is_integer() else config.timeout,
        "MemorySize": config.memory,
        "LastModified": _STARTED,
        "CodeSha256": "",
        "Version": "$LATEST",
        "Environment": {"Variables": dict(config.env)},
        "TracingConfig": {"Mode": "PassThrough"},
        "RevisionId": _REVISION,
        "Layers": [
            {
                "Arn": f"arn:aws:lambda:{config.region}:{DEFAULT_ACCOUNT}:layer:"
                f"{_layer_name(str(layer))}:1",
                "CodeSize": 0,
            }
            for layer in config.layers
        ],
        "State": "Active",
        "LastUpdateStatus": "Successful",
        "PackageType": "Zip",
        "Architectures": architectures,
        "EphemeralStorage": {"Size": 512},
        "SnapStart": {"ApplyOn": "None", "OptimizationStatus": "Off"},
        "LoggingConfig": {
            "LogFormat": config.log_format or "Text",
            "LogGroup": f"/aws/lambda/{config.function_name}",
        },
    }
    if not result["Layers"]:
        del result["Layers"]
    return result


def _layer_name(path: str) -> str:
    name = path.rstrip("/").rsplit("/", 1)[-1].removesuffix(".zip")
    cleaned = "".join(c if c.isalnum() or c in "-_" else "-" for c in name)
    return cleaned or "layer"


def get_function(fn: Function) -> dict[str, Any]:
    """``GetFunctionResponse`` of ``fn``; ``Code.Location`` is its local folder."""
    return {
        "Configuration": function_configuration(fn),
        "Code": {"RepositoryType": "S3", "Location": fn.config.task_root.as_uri()},
        "Tags": {},
    }


def list_functions(functions: FunctionRegistry, query: Mapping[str, list[str]]) -> dict[str, Any]:
    """``ListFunctionsResponse``: one page, ``Marker`` being the position to go on from."""
    try:
        start = int(query.get("Marker", ["0"])[0])
        size = int(query.get("MaxItems", [str(_PAGE_MAX)])[0])
    except ValueError:
        raise ValueError("Marker and MaxItems must be numbers") from None
    if start < 0 or not 1 <= size <= 10000:
        raise ValueError("MaxItems must be between 1 and 10000")
    size = min(size, _PAGE_MAX)
    every = list(functions)
    page = every[start : start + size]
    result: dict[str, Any] = {"Functions": [function_configuration(fn) for fn in page]}
    if start + size < len(every):
        result["NextMarker"] = str(start + size)
    return result


def answer_read(
    req: Request,
    path: bytes,
    query: bytes,
    functions: FunctionRegistry,
    api_error_response: Callable[[Request, int, str, str], None],
) -> None:
    """Answer a GET under ``/2015-03-31/functions``; errors go through ``api_error_response``
    (the Invoke API's, so every error of the port has one shape)."""
    params = parse_qs(query.decode("latin-1"))
    rest = path[len(_FUNCTIONS) :] if path.startswith(_FUNCTIONS) else b""
    if not rest:
        try:
            body = list_functions(functions, params)
        except ValueError as exc:
            return api_error_response(req, 400, "InvalidParameterValueException", str(exc))
        return _json(req, body)
    configuration_only = rest.endswith(_CONFIGURATION)
    if configuration_only:
        rest = rest[: -len(_CONFIGURATION)]
    name = unquote(rest.decode("latin-1"))
    if not name or "/" in name:
        return api_error_response(
            req, 404, "UnknownOperationException", f"unknown operation GET {path.decode()}"
        )
    qualifier = params.get("Qualifier", [None])[0]
    fn = functions.lookup(name, qualifier)
    if isinstance(fn, str):
        return api_error_response(req, 404, "ResourceNotFoundException", fn)
    return _json(req, function_configuration(fn) if configuration_only else get_function(fn))


def _json(req: Request, body: Mapping[str, Any]) -> None:
    req.respond(
        200,
        [
            (b"Content-Type", b"application/json"),
            (protocol.AMZN_REQUEST_ID_HEADER.encode(), str(uuid.uuid4()).encode()),
        ],
        orjson.dumps(body),
    )
