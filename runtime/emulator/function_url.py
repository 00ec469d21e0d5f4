"""The function-URL front (``serve --http-port PORT``): plain HTTP in, function URL events out.

Each request becomes one invoke whose event is built by :mod:`.http_front` (payload format 2.0,
or API Gateway REST's 1.0 with ``--http-payload 1.0``). The answer:

* a streamed HTTP-integration response (the function yielded ``HttpResponse`` first): the
  prelude's status, headers and ``Set-Cookie``s, then the body chunk by chunk as the runtime
  sends it;
* another streamed response: 200 with the content type the runtime posted, body streamed;
* a buffered result: mapped as function URLs map it (:func:`.http_front.map_result`);
* a function error (also a timeout or a crash) before anything was sent: 502. After the head
  went out, an error can only end the body early, as on AWS.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import orjson

from runtime import protocol

from .http_front import (
    FORMAT_1_0,
    HttpReply,
    HttpRequest,
    PreludeError,
    PreludeReader,
    api_gateway_event,
    error_reply,
    function_url_event,
    map_result,
)
from .invocation import Invocation
from .invoke_api import make_trace_id
from .server import Headers, HttpConnection, Request

if TYPE_CHECKING:
    from .config import EmulatorConfig
    from .scheduler import Scheduler

# Framing is the server's business: such headers from a function would corrupt the response.
_HOP_BY_HOP = frozenset(
    ("content-length", "transfer-encoding", "connection", "keep-alive", "upgrade", "trailer")
)
_INTEGRATION = protocol.HTTP_INTEGRATION_CONTENT_TYPE.encode()


def _encode_headers(pairs: list[tuple[str, str]]) -> Headers:
    return [
        (name.encode("latin-1", "replace"), value.encode("utf-8", "replace"))
        for name, value in pairs
        if name.lower() not in _HOP_BY_HOP
    ]


def _reply(req: Request, reply: HttpReply, *extra: tuple[bytes, bytes]) -> None:
    req.respond(reply.status, [*_encode_headers(reply.headers), *extra], reply.body)


def _message(req: Request, status: int, message: str) -> None:
    body = orjson.dumps({"Message": message})
    req.respond(status, [(b"content-type", b"application/json")], body)


class FunctionUrlFront:
    """server.Handler for the ``--http-port`` listener."""

    def __init__(self, config: EmulatorConfig, scheduler: Callable[[], Scheduler]) -> None:
        self.config = config
        self._scheduler = scheduler

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
        inv = Invocation(b"", trace_id=make_trace_id())
        if self.config.http_payload == FORMAT_1_0:
            event = api_gateway_event(request, request_id=inv.request_id)
        else:
            event = function_url_event(request, request_id=inv.request_id)
        inv.event = orjson.dumps(event)
        sink = HttpSink(req, self.config.http_payload, inv.request_id)
        inv.sink = sink
        inv.on_done = sink.done
        if not self._scheduler().submit(inv):
            _message(req, 429, "Rate Exceeded.")


class HttpSink:
    """Writes one invoke's answer as the HTTP response to the function URL's client."""

    __slots__ = ("failed", "prelude", "req", "request_id", "version")

    def __init__(self, req: Request, version: str, request_id: str) -> None:
        self.req = req
        self.version = version
        # Function URLs name the invoke in x-amzn-RequestId: the id in the function's log.
        self.request_id = (b"x-amzn-RequestId", request_id.encode())
        self.prelude: PreludeReader | None = None
        # The stream is unusable (bad prelude): the client got its 502; the rest is dropped.
        self.failed = False

    def stream_started(self, content_type: bytes) -> None:
        if content_type.split(b";")[0].strip().lower() == _INTEGRATION:
            self.prelude = PreludeReader()
        else:
            self.req.start_stream(200, [(b"content-type", content_type), self.request_id])

    def stream_data(self, data: bytes) -> None:
        if self.failed:
            return
        prelude = self.prelude
        if prelude is not None and not self.req.responded:
            try:
                found = prelude.feed(data)
            except PreludeError:
                self.failed = True
                _reply(self.req, error_reply())
                return
            if found is None:
                return
            head, data = found
            headers = _encode_headers(head.header_list())
            self.req.start_stream(head.status, [*headers, self.request_id])
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
            return _reply(req, error_reply(), self.request_id)
        _reply(req, map_result(inv.payload, version=self.version), self.request_id)
