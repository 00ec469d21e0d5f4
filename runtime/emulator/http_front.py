"""The function-URL front's pure parts: HTTP request -> event, function result -> HTTP response.

No sockets here: the server hands in a request (method, target, header list, body bytes) and
writes out what these functions return, so every rule can be tested on its own.

Events:

* payload format 2.0 (function URLs, API Gateway HTTP APIs): ``version``, ``routeKey``
  ``$default``, ``rawPath``, ``rawQueryString``, ``headers`` (lower-case names, repeated
  headers comma-joined), ``cookies`` (from the ``Cookie`` headers, which do not appear in
  ``headers``), ``queryStringParameters`` (decoded, repeats comma-joined; absent without a
  query), ``requestContext`` (``http``: method, path, protocol, sourceIp, userAgent), ``body``
  and ``isBase64Encoded`` (text bodies as they are, others base64; no ``body`` when empty);
* payload format 1.0 (API Gateway REST proxy integration, resource ``/{proxy+}``): ``headers``
  and ``queryStringParameters`` with the last value, ``multiValueHeaders`` and
  ``multiValueQueryStringParameters`` with all, ``null`` where there is nothing.

Responses, as function URLs map them: a JSON object with ``statusCode`` is an HTTP response
description (``headers``, ``cookies``, ``body``, ``isBase64Encoded``; 1.0 also
``multiValueHeaders``); any other JSON value is a 200 ``application/json`` response whose body
is that JSON (a JSON string: its text). API Gateway REST (1.0) accepts only the former: anything
else is its 502. A streamed HTTP-integration response starts with the JSON prelude and 8 NULs:
:class:`PreludeReader` splits it off.
"""

from __future__ import annotations

import base64
import binascii
import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, urlsplit

from runtime.protocol import HTTP_PRELUDE_SEPARATOR

__all__ = [
    "FORMAT_1_0",
    "FORMAT_2_0",
    "HttpReply",
    "HttpRequest",
    "PreludeError",
    "PreludeReader",
    "StreamHead",
    "api_gateway_event",
    "error_reply",
    "function_url_event",
    "map_result",
    "parse_prelude",
    "split_target",
]

FORMAT_1_0 = "1.0"
FORMAT_2_0 = "2.0"
JSON_TYPE = "application/json"
# Largest prelude accepted before its separator: status and headers, not a body.
MAX_PRELUDE = 64 * 1024
_TEXT_SUFFIXES = ("+json", "+xml", "/json", "/xml", "/javascript", "/x-www-form-urlencoded")
_DEFAULT_ACCOUNT = "123456789012"
_DEFAULT_API_ID = "localfunctionurl"


@dataclass(frozen=True)
class HttpRequest:
    """One HTTP request as the front received it. ``target`` is the request target
    (``/path?query``); ``headers`` keeps the order, case and repeats of the request."""

    method: str
    target: str
    headers: Sequence[tuple[str, str]] = ()
    body: bytes = b""
    source_ip: str = "127.0.0.1"
    protocol: str = "HTTP/1.1"


@dataclass
class HttpReply:
    """An HTTP response to write: ``headers`` in order, one ``set-cookie`` entry per cookie."""

    status: int
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""


@dataclass(frozen=True)
class StreamHead:
    """Status, headers and cookies from a streamed response's prelude."""

    status: int
    headers: dict[str, str]
    cookies: list[str]

    def header_list(self) -> list[tuple[str, str]]:
        return [*self.headers.items(), *(("set-cookie", c) for c in self.cookies)]


class PreludeError(ValueError):
    """A streamed HTTP-integration response did not start with a valid prelude."""


# --- requests -> events ------------------------------------------------------------------


def split_target(target: str) -> tuple[str, str]:
    """``(path, query)`` of a request target (origin or absolute form)."""
    if target.startswith(("http://", "https://")):  # absolute form (a proxy-style request)
        parts = urlsplit(target)
        return parts.path or "/", parts.query
    path, _, query = target.partition("?")
    return path or "/", query


def _is_text(content_type: str | None) -> bool:
    if not content_type:
        return False
    kind = content_type.split(";", 1)[0].strip().lower()
    return kind.startswith("text/") or kind.endswith(_TEXT_SUFFIXES)


def _encode_body(body: bytes, content_type: str | None) -> tuple[str, bool]:
    if _is_text(content_type):
        try:
            return body.decode("utf-8"), False
        except UnicodeDecodeError:
            pass
    return base64.b64encode(body).decode("ascii"), True


def _grouped(pairs: Sequence[tuple[str, str]], *, lower: bool) -> dict[str, list[str]]:
    grouped: dict[str, list[str]] = {}
    for name, value in pairs:
        grouped.setdefault(name.lower() if lower else name, []).append(value)
    return grouped


def _first(headers: Sequence[tuple[str, str]], name: str) -> str | None:
    for key, value in headers:
        if key.lower() == name:
            return value
    return None


_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def _clf_time(now: float) -> str:
    # Common Log Format in English whatever the locale (strftime's %b is not): 12/Mar/2020:...
    t = time.gmtime(now)
    clock = f"{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d}"
    return f"{t.tm_mday:02d}/{_MONTHS[t.tm_mon - 1]}/{t.tm_year}:{clock} +0000"


def function_url_event(
    request: HttpRequest,
    *,
    request_id: str,
    now: float | None = None,
    account_id: str = "anonymous",
    api_id: str = _DEFAULT_API_ID,
) -> dict[str, object]:
    """The payload format 2.0 event for ``request`` (what a function URL sends)."""
    now = time.time() if now is None else now
    path, query = split_target(request.target)
    cookies: list[str] = []
    headers: dict[str, str] = {}
    for name, values in _grouped(request.headers, lower=True).items():
        if name == "cookie":
            cookies.extend(c.strip() for v in values for c in v.split(";") if c.strip())
        else:
            headers[name] = ",".join(values)
    domain = headers.get("host", f"{api_id}.lambda-url.localhost")
    event: dict[str, object] = {
        "version": FORMAT_2_0,
        "routeKey": "$default",
        "rawPath": path,
        "rawQueryString": query,
    }
    if cookies:
        event["cookies"] = cookies
    event["headers"] = headers
    if query:
        params = {
            name: ",".join(values)
            for name, values in _grouped(
                parse_qsl(query, keep_blank_values=True), lower=False
            ).items()
        }
        event["queryStringParameters"] = params
    event["requestContext"] = {
        "accountId": account_id,
        "apiId": api_id,
        "domainName": domain,
        "domainPrefix": domain.split(".", 1)[0],
        "http": {
            "method": request.method,
            "path": path,
            "protocol": request.protocol,
            "sourceIp": request.source_ip,
            "userAgent": headers.get("user-agent", ""),
        },
        "requestId": request_id,
        "routeKey": "$default",
        "stage": "$default",
        "time": _clf_time(now),
        "timeEpoch": int(now * 1000),
    }
    if request.body:
        body, encoded = _encode_body(request.body, headers.get("content-type"))
        event["body"] = body
        event["isBase64Encoded"] = encoded
    else:
        event["isBase64Encoded"] = False
    return event


def api_gateway_event(
    request: HttpRequest,
    *,
    request_id: str,
    now: float | None = None,
    account_id: str = _DEFAULT_ACCOUNT,
    api_id: str = "localrestapi",
    stage: str = "local",
) -> dict[str, object]:
    """The payload format 1.0 event for ``request`` (API Gateway REST, ``ANY /{proxy+}``)."""
    now = time.time() if now is None else now
    path, query = split_target(request.target)
    multi_headers = _grouped(request.headers, lower=False)
    pairs = parse_qsl(query, keep_blank_values=True) if query else []
    multi_query = _grouped(pairs, lower=False)
    user_agent = _first(request.headers, "user-agent")
    domain = _first(request.headers, "host") or f"{api_id}.execute-api.localhost"
    body: str | None = None
    encoded = False
    if request.body:
        body, encoded = _encode_body(request.body, _first(request.headers, "content-type"))
    proxy = path.lstrip("/")
    return {
        "resource": "/{proxy+}",
        "path": path,
        "httpMethod": request.method,
        "headers": {k: v[-1] for k, v in multi_headers.items()} or None,
        "multiValueHeaders": multi_headers or None,
        "queryStringParameters": {k: v[-1] for k, v in multi_query.items()} or None,
        "multiValueQueryStringParameters": multi_query or None,
        "pathParameters": {"proxy": proxy} if proxy else None,
        "stageVariables": None,
        "requestContext": {
            "accountId": account_id,
            "apiId": api_id,
            "domainName": domain,
            "domainPrefix": domain.split(".", 1)[0],
            "extendedRequestId": request_id,
            "httpMethod": request.method,
            "identity": {
                "accessKey": None,
                "accountId": None,
                "caller": None,
                "cognitoAuthenticationProvider": None,
                "cognitoAuthenticationType": None,
                "cognitoIdentityId": None,
                "cognitoIdentityPoolId": None,
                "principalOrgId": None,
                "sourceIp": request.source_ip,
                "user": None,
                "userAgent": user_agent,
                "userArn": None,
            },
            "path": f"/{stage}{path}",
            "protocol": request.protocol,
            "requestId": request_id,
            "requestTime": _clf_time(now),
            "requestTimeEpoch": int(now * 1000),
            "resourceId": "proxy",
            "resourcePath": "/{proxy+}",
            "stage": stage,
        },
        "body": body,
        "isBase64Encoded": encoded,
    }


# --- results -> responses ---------------------------------------------------------------


def error_reply(status: int = 502) -> HttpReply:
    """What the client gets for a function error or a malformed result."""
    body = b'{"message":"Internal Server Error"}'
    return HttpReply(status, [("content-type", JSON_TYPE)], body)


def _header_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (str, int, float)):
        return str(value)
    raise TypeError(f"header value {value!r} is not a string or number")


def _described(result: Mapping[str, object], version: str) -> HttpReply:
    status = result["statusCode"]
    if isinstance(status, str) and status.isdigit():
        status = int(status)
    if type(status) is not int or not 100 <= status <= 599:
        raise ValueError(f"statusCode {status!r} is not an HTTP status")
    headers: list[tuple[str, str]] = []
    names: set[str] = set()
    given = result.get("headers") or {}
    if not isinstance(given, Mapping):
        raise ValueError("headers is not an object")
    for name, value in given.items():
        headers.append((str(name), _header_value(value)))
        names.add(str(name).lower())
    if version == FORMAT_1_0:
        multi = result.get("multiValueHeaders") or {}
        if not isinstance(multi, Mapping):
            raise ValueError("multiValueHeaders is not an object")
        for name, values in multi.items():
            if not isinstance(values, list):
                raise ValueError(f"multiValueHeaders[{name!r}] is not a list")
            # A name in both: API Gateway sends the multi-value set (it includes the single one).
            headers = [(n, v) for n, v in headers if n.lower() != str(name).lower()]
            headers.extend((str(name), _header_value(v)) for v in values)
            names.add(str(name).lower())
    else:
        cookies = result.get("cookies") or []
        if not isinstance(cookies, list) or not all(isinstance(c, str) for c in cookies):
            raise ValueError("cookies is not a list of strings")
        headers.extend(("set-cookie", c) for c in cookies)
    body = result.get("body")
    if body is None:
        raw = b""
    elif isinstance(body, str):
        if result.get("isBase64Encoded") is True:
            try:
                raw = base64.b64decode(body, validate=True)
            except binascii.Error as exc:
                raise ValueError(f"body is not valid base64: {exc}") from None
        else:
            raw = body.encode("utf-8")
    else:
        raise ValueError("body is not a string")
    if raw and version == FORMAT_2_0 and "content-type" not in names:
        headers.append(("content-type", JSON_TYPE))
    return HttpReply(status, headers, raw)


def map_result(
    payload: bytes, *, version: str = FORMAT_2_0, error: Callable[[], HttpReply] = error_reply
) -> HttpReply:
    """The HTTP response for a buffered function result (its JSON ``payload``).

    A result that cannot be mapped (bad JSON, a malformed response description, and for 1.0
    anything but a description) is the front's error (``error()``: a function URL's 502
    unless told otherwise), as on AWS.
    """
    try:
        result = json.loads(payload) if payload.strip() else None
    except ValueError:
        return error()
    if isinstance(result, dict) and "statusCode" in result:
        try:
            return _described(result, version)
        except (TypeError, ValueError):
            return error()
    if version == FORMAT_1_0:
        return error()
    # Function URLs infer the rest: a 200 JSON response; a JSON string's text is the body.
    body = result.encode("utf-8") if isinstance(result, str) else payload
    return HttpReply(200, [("content-type", JSON_TYPE)], body)


class PreludeReader:
    """Splits the prelude off a streamed HTTP-integration response, chunk by chunk.

    :meth:`feed` returns ``None`` until the 8 NUL bytes have arrived, then the head and the
    body bytes that came with it; after that it is not to be used. :class:`PreludeError` when
    the prelude is not valid JSON of the expected shape or grows beyond :data:`MAX_PRELUDE`.
    """

    __slots__ = ("_buffer", "_done")

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._done = False

    def feed(self, chunk: bytes) -> tuple[StreamHead, bytes] | None:
        if self._done:
            raise RuntimeError("the prelude was already read")
        start = max(0, len(self._buffer) - len(HTTP_PRELUDE_SEPARATOR) + 1)
        self._buffer += chunk
        end = self._buffer.find(HTTP_PRELUDE_SEPARATOR, start)
        if end < 0:
            if len(self._buffer) > MAX_PRELUDE:
                raise PreludeError(
                    f"no prelude separator (8 NUL bytes) in the first {MAX_PRELUDE} bytes"
                )
            return None
        self._done = True
        head = parse_prelude(bytes(self._buffer[:end]))
        return head, bytes(self._buffer[end + len(HTTP_PRELUDE_SEPARATOR) :])


def parse_prelude(data: bytes) -> StreamHead:
    """The status, headers and cookies of a prelude's JSON (without the separator)."""
    try:
        prelude = json.loads(data) if data.strip() else {}
    except ValueError as exc:
        raise PreludeError(f"the prelude is not valid JSON: {exc}") from None
    if not isinstance(prelude, dict):
        raise PreludeError(f"the prelude is not a JSON object: {data[:80]!r}")
    status = prelude.get("statusCode", 200)
    if type(status) is not int or not 100 <= status <= 599:
        raise PreludeError(f"prelude statusCode {status!r} is not an HTTP status")
    headers = prelude.get("headers") or {}
    cookies = prelude.get("cookies") or []
    if not isinstance(headers, dict):
        raise PreludeError("prelude headers is not an object")
    if not isinstance(cookies, list) or not all(isinstance(c, str) for c in cookies):
        raise PreludeError("prelude cookies is not a list of strings")
    try:
        fields = {str(k): _header_value(v) for k, v in headers.items()}
    except TypeError as exc:
        raise PreludeError(f"prelude {exc}") from None
    return StreamHead(status, fields, cookies)
