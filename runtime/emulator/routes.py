"""Which function an HTTP request goes to: the routes of a template's APIs, as API Gateway
matches them, as pure functions (no sockets; the HTTP front hands in method, path and headers).

Routes come from the ``HttpApi`` events (payload 2.0 unless the event says otherwise), the
``Api`` events (REST, payload 1.0) and ``FunctionUrlConfig`` of a template's functions
(:func:`RouteTable.from_template`, :func:`function_urls`).

Matching (:meth:`RouteTable.match`):

* a route path is made of literal segments, ``{param}`` (one segment) and a final
  ``{proxy+}`` (one or more segments); the most specific route wins, segment by segment (a
  literal over a parameter over a greedy parameter), then a method over ``ANY``;
* ``pathParameters`` holds the values (decoded), ``None`` without parameters; stage variables
  are empty (``None``);
* nothing matching goes to an HTTP API's ``$default`` route when there is one; else the answer
  is API Gateway's: ``404 {"message":"Not Found"}`` for HTTP APIs, ``403 {"message":"Missing
  Authentication Token"}`` when only REST APIs are served (also for a REST resource without
  that method);
* a CORS preflight (``OPTIONS`` with ``Origin`` and ``Access-Control-Request-Method``) is
  answered from the API's CORS settings (``CorsConfiguration`` of an HTTP API, ``Cors`` of a
  REST API, each falling back to ``Globals``), without invoking anything, when they exist.

Paths are served without a stage prefix (as ``sam local start-api`` does); the stage shows in
``requestContext.stage``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

if TYPE_CHECKING:
    from .template import Template

HTTP_API = "HttpApi"
REST_API = "Api"
FUNCTION_URL = "FunctionUrl"
DEFAULT_ROUTE = "$default"
ANY = "ANY"
# The stage names SAM gives its implicit APIs.
HTTP_API_STAGE = "$default"
REST_API_STAGE = "Prod"
# The stage of ``serve HANDLER --http-port --http-payload 1.0``'s REST API.
SINGLE_REST_STAGE = "local"

_LITERAL, _PARAM, _GREEDY = 0, 1, 2


@dataclass(frozen=True)
class Cors:
    """CORS settings, normalized from any of the template's three spellings."""

    allow_origins: tuple[str, ...] = ()
    allow_methods: tuple[str, ...] = ()
    allow_headers: tuple[str, ...] = ()
    expose_headers: tuple[str, ...] = ()
    max_age: int | None = None
    allow_credentials: bool = False

    @classmethod
    def from_config(cls, config: Mapping[str, Any] | bool | None) -> Cors | None:
        """``CorsConfiguration`` (HTTP API) or ``FunctionUrlConfig.Cors``: lists of values."""
        if not config:
            return None
        if not isinstance(config, Mapping):
            # (CorsConfiguration: true allows every origin.)
            return cls(allow_origins=("*",), allow_methods=("*",), allow_headers=("*",))

        def items(key: str) -> tuple[str, ...]:
            value = config.get(key) or ()
            return tuple(str(v) for v in ([value] if isinstance(value, str) else value))

        max_age = config.get("MaxAge")
        return cls(
            allow_origins=items("AllowOrigins"),
            allow_methods=tuple(m.upper() for m in items("AllowMethods")),
            allow_headers=items("AllowHeaders"),
            expose_headers=items("ExposeHeaders"),
            max_age=int(max_age) if max_age is not None else None,
            allow_credentials=bool(config.get("AllowCredentials", False)),
        )

    @classmethod
    def from_rest(cls, config: Any) -> Cors | None:
        """``Cors`` of a SAM REST API: a quoted origin (``"'*'"``) or a map of quoted,
        comma-separated header values."""
        if not config:
            return None
        if isinstance(config, str):
            config = {"AllowOrigin": config}

        def values(key: str) -> tuple[str, ...]:
            text = _unquote_header(config.get(key))
            return tuple(v.strip() for v in text.split(",") if v.strip()) if text else ()

        max_age = _unquote_header(config.get("MaxAge"))
        return cls(
            allow_origins=values("AllowOrigin"),
            allow_methods=tuple(m.upper() for m in values("AllowMethods")),
            allow_headers=values("AllowHeaders"),
            max_age=int(max_age) if max_age else None,
            allow_credentials=bool(config.get("AllowCredentials", False)),
        )

    def origin_allowed(self, origin: str) -> bool:
        return "*" in self.allow_origins or origin in self.allow_origins

    def response_headers(self, origin: str | None) -> list[tuple[str, str]]:
        """What an HTTP API or function URL adds to an actual (not preflight) response."""
        if origin is None or not self.origin_allowed(origin):
            return []
        headers = [("access-control-allow-origin", self._origin_value(origin))]
        if self.expose_headers:
            headers.append(("access-control-expose-headers", ",".join(self.expose_headers)))
        if self.allow_credentials:
            headers.append(("access-control-allow-credentials", "true"))
        return headers

    def _origin_value(self, origin: str) -> str:
        # With credentials a browser refuses "*": the origin itself is echoed.
        if "*" in self.allow_origins and not self.allow_credentials:
            return "*"
        return origin


def _unquote_header(value: Any) -> str:
    if value is None:
        return ""
    text = str(value).strip()
    if len(text) >= 2 and text[0] == text[-1] == "'":
        return text[1:-1]
    return text


@dataclass(frozen=True)
class Route:
    """One route: which function a method and path pattern go to."""

    function: str  # logical id
    kind: str  # HTTP_API, REST_API
    method: str  # upper case, ANY
    path: str | None  # None: the $default route
    payload_format: str = "2.0"
    api_id: str | None = None  # logical id of the API; None: the implicit one
    stage: str = HTTP_API_STAGE
    cors: Cors | None = None
    segments: tuple[tuple[int, str], ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "segments", _pattern(self.path) if self.path else ())

    @property
    def route_key(self) -> str:
        return DEFAULT_ROUTE if self.path is None else f"{self.method} {self.path}"


def _pattern(path: str) -> tuple[tuple[int, str], ...]:
    parts = _split(path)
    result = []
    for index, part in enumerate(parts):
        if part.startswith("{") and part.endswith("+}"):
            if index != len(parts) - 1:
                raise ValueError(f"route {path}: a greedy {part} must be the last segment")
            result.append((_GREEDY, part[1:-2]))
        elif part.startswith("{") and part.endswith("}"):
            result.append((_PARAM, part[1:-1]))
        else:
            result.append((_LITERAL, part))
    return tuple(result)


def _split(path: str) -> list[str]:
    trimmed = path.strip("/")
    return trimmed.split("/") if trimmed else []


def _bind(route: Route, parts: Sequence[str]) -> dict[str, str] | None:
    """The path parameters when ``parts`` (raw segments) fit the route's pattern, else None."""
    params: dict[str, str] = {}
    pattern = route.segments
    for index, (kind, text) in enumerate(pattern):
        if kind == _GREEDY:
            rest = parts[index:]
            if not rest:
                return None
            params[text] = unquote("/".join(rest))
            return params
        if index >= len(parts):
            return None
        if kind == _LITERAL:
            if parts[index] != text:
                return None
        else:
            if not parts[index]:
                return None
            params[text] = unquote(parts[index])
    return params if len(parts) == len(pattern) else None


@dataclass(frozen=True)
class RouteMatch:
    """The route a request goes to, and what the event says of it."""

    route: Route
    path_parameters: dict[str, str] | None
    stage_variables: None = None

    @property
    def function(self) -> str:
        return self.route.function

    @property
    def route_key(self) -> str:
        return self.route.route_key

    @property
    def resource(self) -> str:
        """REST (1.0) ``resource`` / ``requestContext.resourcePath``: the route's path."""
        return self.route.path or "/"

    @property
    def payload_format(self) -> str:
        return self.route.payload_format

    @property
    def stage(self) -> str:
        return self.route.stage


@dataclass(frozen=True)
class Reply:
    """An answer given without invoking a function (no route, or a CORS preflight)."""

    status: int
    headers: list[tuple[str, str]]
    body: bytes = b""


NOT_FOUND = Reply(404, [("content-type", "application/json")], b'{"message":"Not Found"}')
MISSING_TOKEN = Reply(
    403,
    [
        ("content-type", "application/json"),
        ("x-amzn-errortype", "MissingAuthenticationTokenException"),
    ],
    b'{"message":"Missing Authentication Token"}',
)


def _header(headers: Iterable[tuple[str, str]], name: str) -> str | None:
    for key, value in headers:
        if key.lower() == name:
            return value
    return None


class RouteTable:
    """Every route of the served APIs."""

    def __init__(self, routes: Iterable[Route]) -> None:
        self.routes = [r for r in routes if r.path is not None]
        self.defaults = [r for r in routes if r.path is None]
        self.has_http_api = any(r.kind == HTTP_API for r in [*self.routes, *self.defaults])

    def __len__(self) -> int:
        return len(self.routes) + len(self.defaults)

    @classmethod
    def from_template(cls, template: Template) -> RouteTable:
        """The routes of the template's ``HttpApi`` and ``Api`` events."""
        globals_ = template.api_globals
        implicit_http = Cors.from_config((globals_.get(HTTP_API) or {}).get("CorsConfiguration"))
        implicit_rest = Cors.from_rest((globals_.get(REST_API) or {}).get("Cors"))
        routes = []
        for spec in template.functions:
            for event in spec.events:
                api = template.apis.get(event.api_id, {}) if event.api_id else {}
                if event.kind == HTTP_API:
                    cors = Cors.from_config(api.get("CorsConfiguration")) if api else None
                    stage = str(api.get("StageName", HTTP_API_STAGE))
                    cors = cors or implicit_http
                else:
                    cors = Cors.from_rest(api.get("Cors")) if api else None
                    stage = str(api.get("StageName", REST_API_STAGE))
                    cors = cors or implicit_rest
                routes.append(
                    Route(
                        function=spec.logical_id,
                        kind=event.kind,
                        method=event.method,
                        path=event.path,
                        payload_format=event.payload_format,
                        api_id=event.api_id,
                        stage=stage,
                        cors=cors,
                    )
                )
        return cls(routes)

    def candidates(self, path: str) -> list[tuple[Route, dict[str, str]]]:
        """Routes whose path fits, most specific first (any method)."""
        parts = _split(path.partition("?")[0])
        found = []
        for route in self.routes:
            params = _bind(route, parts)
            if params is not None:
                found.append((route, params))
        found.sort(key=lambda item: _specificity(item[0]))
        return found

    def match(
        self, method: str, path: str, headers: Iterable[tuple[str, str]] = ()
    ) -> RouteMatch | Reply:
        """The route for ``method path``, or the answer to give without invoking."""
        method = method.upper()
        headers = list(headers)
        candidates = self.candidates(path)
        if method == "OPTIONS":
            preflight = self._preflight(candidates, headers)
            if preflight is not None:
                return preflight
        for route, params in candidates:
            if route.method in (method, ANY):
                return RouteMatch(route, params or None)
        for route in self.defaults:
            return RouteMatch(route, None)
        return NOT_FOUND if self.has_http_api else MISSING_TOKEN

    def _preflight(
        self, candidates: list[tuple[Route, dict[str, str]]], headers: list[tuple[str, str]]
    ) -> Reply | None:
        origin = _header(headers, "origin")
        requested = _header(headers, "access-control-request-method")
        if origin is None or requested is None:
            return None
        # An HTTP API with CORS answers preflights for any path, routed or not.
        routes = (
            [route for route, _ in candidates]
            or self.defaults
            or [r for r in self.routes if r.kind == HTTP_API]
        )
        for route in routes:
            if route.method == "OPTIONS":
                # The API has its own OPTIONS route: it answers.
                return None
        for route in routes:
            if route.cors is None:
                continue
            if route.kind == REST_API:
                methods = sorted({r.method for r in routes if r.kind == REST_API} | {"OPTIONS"})
                return rest_preflight(route.cors, origin, methods)
            asked_headers = _header(headers, "access-control-request-headers")
            return preflight_reply(route.cors, origin, requested, asked_headers)
        return None

    def describe(self) -> list[str]:
        """One line per route, for the start of ``serve``."""
        lines = [f"{r.route_key} -> {r.function} ({_kind_text(r)})" for r in self.routes]
        lines += [f"$default -> {r.function} ({_kind_text(r)})" for r in self.defaults]
        return lines


def _kind_text(route: Route) -> str:
    api = "HTTP API" if route.kind == HTTP_API else "REST API"
    return f"{api}, payload {route.payload_format}"


def _specificity(route: Route) -> tuple[Any, ...]:
    # Segment by segment: literal < parameter < greedy; then longer paths; then a method
    # over ANY.
    kinds = tuple(kind for kind, _ in route.segments)
    return ((*kinds, 3), -len(kinds), route.method == ANY)


def preflight_reply(
    cors: Cors, origin: str, method: str, request_headers: str | None, *, status: int = 204
) -> Reply:
    """An HTTP API's (204) or a function URL's (200) answer to a preflight: the CORS headers
    when the origin, method and headers are allowed, none otherwise (the browser then blocks
    the request)."""
    if not cors.origin_allowed(origin):
        return Reply(status, [])
    allowed_methods = cors.allow_methods
    if allowed_methods and "*" not in allowed_methods and method.upper() not in allowed_methods:
        return Reply(status, [])
    asked = [h.strip().lower() for h in (request_headers or "").split(",") if h.strip()]
    allowed_headers = {h.lower() for h in cors.allow_headers}
    if asked and "*" not in allowed_headers and not set(asked) <= allowed_headers:
        return Reply(status, [])
    headers = [("access-control-allow-origin", cors._origin_value(origin))]
    headers.append(("access-control-allow-methods", ",".join(allowed_methods or (method,))))
    if cors.allow_headers:
        headers.append(("access-control-allow-headers", ",".join(cors.allow_headers)))
    if cors.max_age is not None:
        headers.append(("access-control-max-age", str(cors.max_age)))
    if cors.allow_credentials:
        headers.append(("access-control-allow-credentials", "true"))
    return Reply(status, headers)


def rest_preflight(cors: Cors, origin: str, resource_methods: Sequence[str]) -> Reply:
    """What SAM's generated OPTIONS method of a REST API answers (a mock integration: 200 and
    the configured values, whatever the request asks)."""
    headers = [("content-type", "application/json")]
    if cors.allow_origins:
        headers.append(("access-control-allow-origin", ",".join(cors.allow_origins)))
    methods = cors.allow_methods or tuple(resource_methods)
    headers.append(("access-control-allow-methods", ",".join(methods)))
    if cors.allow_headers:
        headers.append(("access-control-allow-headers", ",".join(cors.allow_headers)))
    if cors.max_age is not None:
        headers.append(("access-control-max-age", str(cors.max_age)))
    if cors.allow_credentials:
        headers.append(("access-control-allow-credentials", "true"))
    return Reply(200, headers, b"{}")


# ---------------------------------------------------------------------- function URLs


@dataclass(frozen=True)
class FunctionUrl:
    """A function's URL: every method and path go to it (payload 2.0)."""

    function: str  # logical id
    auth_type: str = "NONE"
    invoke_mode: str = "BUFFERED"
    cors: Cors | None = None

    def match(
        self, method: str, path: str, headers: Iterable[tuple[str, str]] = ()
    ) -> RouteMatch | Reply:
        """The function, or the preflight answer (200, from ``FunctionUrlConfig.Cors``)."""
        headers = list(headers)
        origin = _header(headers, "origin")
        requested = _header(headers, "access-control-request-method")
        if method.upper() == "OPTIONS" and self.cors is not None and origin and requested:
            return preflight_reply(
                self.cors,
                origin,
                requested,
                _header(headers, "access-control-request-headers"),
                status=200,
            )
        route = Route(self.function, FUNCTION_URL, ANY, None, payload_format="2.0", cors=self.cors)
        return RouteMatch(route, None)


def function_urls(template: Template) -> dict[str, FunctionUrl]:
    """The functions with a ``FunctionUrlConfig``, by logical id."""
    result = {}
    for spec in template.functions:
        config = spec.function_url
        if config is None:
            continue
        result[spec.logical_id] = FunctionUrl(
            function=spec.logical_id,
            auth_type=str(config.get("AuthType", "NONE")),
            invoke_mode=str(config.get("InvokeMode", "BUFFERED")),
            cors=Cors.from_config(config.get("Cors")),
        )
    return result


def url_function(host: str | None, urls: Mapping[str, FunctionUrl]) -> FunctionUrl | None:
    """The function URL a ``Host`` header names: ``<logical id>.lambda-url.<anything>``
    (case-insensitive, like host names), the local form of ``<url-id>.lambda-url.<region>.on.aws``.
    """
    if not host:
        return None
    label, _, rest = host.partition(".")
    if not rest.lower().startswith("lambda-url."):
        return None
    for logical_id, url in urls.items():
        if logical_id.lower() == label.lower():
            return url
    return None


# ---------------------------------------------------------------------- events


def apply_route(event: dict[str, Any], match: RouteMatch) -> dict[str, Any]:
    """Adjust an event made for a request (``http_front.function_url_event`` for payload 2.0,
    ``http_front.api_gateway_event`` for 1.0) to the route it matched: route key, resource,
    stage, path parameters; stage variables stay empty. Returns ``event``, changed in place."""
    context = event.setdefault("requestContext", {})
    if match.payload_format == "2.0":
        event["routeKey"] = match.route_key
        context["routeKey"] = match.route_key
        context["stage"] = match.stage
        if match.path_parameters:
            event["pathParameters"] = dict(match.path_parameters)
        else:
            event.pop("pathParameters", None)
        # Payload 2.0 leaves out what is empty.
        event.pop("stageVariables", None)
        return event
    event["resource"] = match.resource
    event["pathParameters"] = dict(match.path_parameters) if match.path_parameters else None
    event["stageVariables"] = None
    context["resourcePath"] = match.resource
    context["stage"] = match.stage
    path = event.get("path")
    if isinstance(path, str):
        context["path"] = f"/{match.stage}{path}"
    return event


# ---------------------------------------------------------------------- one entry point


class HttpRoutes:
    """Everything the HTTP front of ``serve --template`` routes: function URLs by ``Host``
    (:func:`url_function`), then the APIs' routes. With no API route and a single function URL,
    that URL also takes every request on the port (so ``curl localhost:PORT/`` reaches it)."""

    def __init__(self, table: RouteTable, urls: Mapping[str, FunctionUrl]) -> None:
        self.table = table
        self.urls = dict(urls)

    @classmethod
    def from_template(cls, template: Template) -> HttpRoutes:
        return cls(RouteTable.from_template(template), function_urls(template))

    @classmethod
    def single(cls, function: str, payload_format: str = "2.0") -> HttpRoutes:
        """Every request to one function (``serve HANDLER --http-port``): its function URL, or
        with payload 1.0 a REST API's root and ``/{proxy+}`` resources (stage ``local``)."""
        if payload_format == "1.0":
            routes = [
                Route(function, REST_API, ANY, path, "1.0", stage=SINGLE_REST_STAGE)
                for path in ("/", "/{proxy+}")
            ]
            return cls(RouteTable(routes), {})
        return cls(RouteTable([]), {function: FunctionUrl(function)})

    def describe(self, base_url: str) -> list[str]:
        """What ``serve`` says at start: each route, then each function URL's address."""
        lines = [f"  {line}" for line in self.table.describe()]
        scheme, _, authority = base_url.partition("://")
        port = authority.rpartition(":")[2]
        for url in self.urls.values():
            whole_port = not len(self.table) and len(self.urls) == 1
            also = f" (and {base_url}/)" if whole_port else ""
            mode = "" if url.invoke_mode == "BUFFERED" else f", {url.invoke_mode}"
            lines.append(
                f"  function URL -> {url.function} (payload 2.0{mode}): "
                f"{scheme}://{url.function}.lambda-url.localhost:{port}/{also}"
            )
        if not lines:
            lines.append(
                "  (no HttpApi or Api event and no FunctionUrlConfig: every request gets 403)"
            )
        return lines

    def __bool__(self) -> bool:
        return bool(len(self.table) or self.urls)

    def resolve(
        self, method: str, target: str, headers: Iterable[tuple[str, str]] = ()
    ) -> RouteMatch | Reply:
        headers = list(headers)
        url = url_function(_header(headers, "host"), self.urls)
        if url is None and not len(self.table) and len(self.urls) == 1:
            (url,) = self.urls.values()
        if url is not None:
            return url.match(method, target, headers)
        return self.table.match(method, target, headers)
