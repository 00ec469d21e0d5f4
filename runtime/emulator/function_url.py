"""The HTTP front (``serve --http-port PORT``): plain HTTP in, API Gateway / function URL
events out.

Every request is resolved through :class:`.routes.HttpRoutes`: the routes of a template's
``HttpApi`` and ``Api`` events and its functions' ``FunctionUrlConfig``, or for a single function
a catch-all route to it (its function URL, or with ``--http-payload 1.0`` a REST API's
``/{proxy+}``). One code path serves both.

* No route, or a CORS preflight: the answer :mod:`.routes` gives (API Gateway's 404 or 403, the
  preflight's headers), without invoking anything.
* A route: one invoke of its function, whose event is built for the route's payload format
  (:mod:`.http_front`, then :func:`.routes.apply_route`). The answer:

  * a streamed HTTP-integration response (the function yielded ``HttpResponse`` first): the
    prelude's status, headers and ``Set-Cookie``s, then the body chunk by chunk as the runtime
    sends it;
  * another streamed response: 200 with the content type the runtime posted, body streamed;
  * a buffered result: mapped per payload format (:func:`.http_front.map_result`);
  * a function error (also a timeout or a crash) before anything was sent: what the front would
    answer on AWS: a function URL's and a REST API's 502, an HTTP API's 500. After the head
    went out, an error can only end the body early, as on AWS.

  With CORS settings (an HTTP API's or a function URL's), the function's own
  ``Access-Control-*`` headers are dropped and the configured ones added, as AWS does; a REST
  API's responses are the function's own.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import orjson

from runtime import protocol

from .config import DEFAULT_ACCOUNT
from .functions import ShuttingDown
from .http_front import (
    FORMAT_1_0,
    JSON_TYPE,
    HttpReply,
    HttpRequest,
    PreludeError,
    PreludeReader,
    api_gateway_event,
    error_reply,
    function_url_event,
    map_result,
    split_target,
)
from .invocation import Invocation
from .invoke_api import make_trace_id
from .routes import FUNCTION_URL, HTTP_API, REST_API, RouteMatch, apply_route
from .server import Headers, HttpConnection, Request

if TYPE_CHECKING:
    from .functions import FunctionRegistry
    from .routes import HttpRoutes

# Framing is the server's business: such headers from a function would corrupt the response.
_HOP_BY_HOP = frozenset(
    ("content-length", "transfer-encoding", "connection", "keep-alive", "upgrade", "trailer")
)
_INTEGRATION = protocol.HTTP_INTEGRATION_CONTENT_TYPE.encode()
_LOCAL_API_IDS = {HTTP_API: "localhttpapi", REST_API: "localrestapi"}


def _encode_headers(pairs: list[tuple[str, str]]) -> Headers:
    return [
        (name.encode("latin-1", "replace"), value.encode("utf-8", "replace"))
        for name, value in pairs
        if name.lower() not in _HOP_BY_HOP
    ]


def _message(req: Request, status: int, message: str) -> None:
    body = orjson.dumps({"Message": message})
    req.respond(status, [(b"content-type", b"application/json")], body)


def failure_reply(kind: str, status: int | None = None) -> HttpReply:
    """What the front answers when the function fails (or, with ``status``, when Lambda turned
    the invoke down): a REST API says ``Internal server error`` with a 502 for a function
    error (500 for a refused invoke), an HTTP API ``Internal Server Error`` with a 500, a
    function URL ``Internal Server Error`` with a 502."""
    if kind == REST_API:
        return HttpReply(
            status or 502,
            [("content-type", JSON_TYPE), ("x-amzn-ErrorType", "InternalServerErrorException")],
            b'{"message": "Internal server error"}',
        )
    if kind == HTTP_API:
        return error_reply(status or 500)
    return error_reply(status or 502)


def route_event(request: HttpRequest, match: RouteMatch, request_id: str) -> dict[str, object]:
    """The event ``match``'s function gets for ``request``."""
    kind = match.route.kind
    if match.payload_format == FORMAT_1_0:
        event = api_gateway_event(
            request, request_id=request_id, api_id=_LOCAL_API_IDS[REST_API], stage=match.stage
        )
    elif kind == FUNCTION_URL:
        event = function_url_event(request, request_id=request_id)
    else:
        event = function_url_event(
            request,
            request_id=request_id,
            account_id=DEFAULT_ACCOUNT,
            api_id=_LOCAL_API_IDS.get(kind, "localhttpapi"),
        )
    return apply_route(event, match)


class HttpFront:
    """server.Handler for the ``--http-port`` listener."""

    def __init__(self, routes: HttpRoutes, functions: FunctionRegistry) -> None:
        self.routes = routes
        self.functions = functions

    def start(self, req: Request) -> None:
        req.max_body = protocol.MAX_SYNC_PAYLOAD

    def connection_lost(self, conn: HttpConnection) -> None:
        pass

    def finish(self, req: Request) -> None:
        if req.too_large:
            return _message(req, 413, "Request Entity Too Large")
        peer = req.conn.transport.get_extra_info("peername") if req.conn.transport else None
        request = HttpRequest(
            method=req.method.decode("latin-1"),
            target=req.target.decode("latin-1"),
            headers=[
                (name.decode("latin-1"), value.decode("utf-8", "replace"))
                for name, value in req.headers.items()
            ],
            body=req.body,
            source_ip=str(peer[0]) if peer else "127.0.0.1",
        )
        path = split_target(request.target)[0]
        found = self.routes.resolve(request.method, path, request.headers)
        if not isinstance(found, RouteMatch):
            req.respond(found.status, _encode_headers(found.headers), found.body)
            return None
        kind = found.route.kind
        fn = self.functions.get(found.function)
        if fn is None:
            # Routes only name served functions; this is a template the front cannot serve.
            return _reply(req, failure_reply(kind))
        try:
            scheduler = self.functions.scheduler(fn)
        except ShuttingDown:
            return _message(req, 503, "Service Unavailable")
        inv = Invocation(b"", trace_id=make_trace_id())
        inv.event = orjson.dumps(route_event(request, found, inv.request_id))
        cors = found.route.cors
        if cors is not None and kind != REST_API:
            origin = next((v for k, v in request.headers if k.lower() == "origin"), None)
            cors_headers: list[tuple[str, str]] | None = cors.response_headers(origin)
        else:
            cors_headers = None
        sink = HttpSink(req, found.payload_format, kind, inv.request_id, cors_headers)
        inv.sink = sink
        inv.on_done = sink.done
        if not scheduler.submit(inv):
            if kind == FUNCTION_URL:
                return _message(req, 429, "Rate Exceeded.")
            # API Gateway turns Lambda's throttle into its own 500.
            sink.reply(failure_reply(kind, 500))
        return None


def _reply(req: Request, reply: HttpReply, *extra: tuple[bytes, bytes]) -> None:
    req.respond(reply.status, [*_encode_headers(reply.headers), *extra], reply.body)


class HttpSink:
    """Writes one invoke's answer as the HTTP response to the front's client."""

    __slots__ = ("cors", "failed", "kind", "prelude", "req", "request_id", "version")

    def __init__(
        self,
        req: Request,
        version: str,
        kind: str,
        request_id: str,
        cors: list[tuple[str, str]] | None = None,
    ) -> None:
        self.req = req
        self.version = version
        self.kind = kind
        # The CORS headers that replace the function's own; None: the function's are kept.
        self.cors = cors
        # Function URLs name the invoke in x-amzn-RequestId: the id in the function's log.
        self.request_id = (b"x-amzn-RequestId", request_id.encode())
        self.prelude: PreludeReader | None = None
        # The stream is unusable (bad prelude): the client got its error; the rest is dropped.
        self.failed = False

    def _headers(self, pairs: list[tuple[str, str]]) -> Headers:
        if self.cors is not None:
            pairs = [p for p in pairs if not p[0].lower().startswith("access-control-")]
            pairs += self.cors
        return [*_encode_headers(pairs), self.request_id]

    def reply(self, reply: HttpReply) -> None:
        self.req.respond(reply.status, self._headers(reply.headers), reply.body)

    def _failure(self) -> HttpReply:
        return failure_reply(self.kind)

    def stream_started(self, content_type: bytes) -> None:
        if content_type.split(b";")[0].strip().lower() == _INTEGRATION:
            self.prelude = PreludeReader()
        else:
            type_ = content_type.decode("latin-1")
            self.req.start_stream(200, self._headers([("content-type", type_)]))

    def stream_data(self, data: bytes) -> None:
        if self.failed:
            return
        prelude = self.prelude
        if prelude is not None and not self.req.responded:
            try:
                found = prelude.feed(data)
            except PreludeError:
                self.failed = True
                self.reply(self._failure())
                return
            if found is None:
                return
            head, data = found
            self.req.start_stream(head.status, self._headers(head.header_list()))
        self.req.send_chunk(data)

    def when_drained(self, callback: Callable[[], None]) -> bool:
        return self.req.streaming and self.req.conn.when_drained(callback)

    def done(self, inv: Invocation) -> None:
        req = self.req
        if req.streaming:
            # Ended, well or not: after the head, the client can only see the body end.
            req.end_stream()
            return
        if req.responded:
            return
        if inv.error_type == "ServiceException":
            return _message(req, 503, "Service Unavailable")
        if inv.function_error or inv.streaming:
            # A failure, or a stream that never got through its prelude.
            return self.reply(self._failure())
        self.reply(map_result(inv.payload, version=self.version, error=self._failure))
