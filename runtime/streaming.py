"""Streamed responses: generator handlers, the HTTP-integration prelude, the chunked post.

A handler streams when it is a generator function or an async generator function, or when it
returns a generator, an async generator or any other (async) *iterator* of chunks. Plain values
(``str``, ``bytes``, ``dict``, ``list``, numbers, ``None``...) are buffered results as before:
an iterable that is not an iterator (a list, a tuple) is a JSON value, not a stream.

Chunks are ``bytes``, ``bytearray``, ``memoryview`` or ``str`` (sent as UTF-8). Each one is
written to the Runtime API as soon as it is produced; nothing is collected first.

The first item may instead describe the response (and only the first: later ones are errors):

* ``HttpResponse(status_code=200, headers={...}, cookies=[...])`` for function URLs and API
  Gateway: the post's content type is ``application/vnd.awslambda.http-integration-response``
  and the body starts with the JSON prelude and 8 NUL bytes. The *client's* content type is an
  ordinary header there (``headers={"content-type": "text/event-stream"}``).
* ``StreamResponse(content_type="text/plain")`` for a stream without HTTP integration (a direct
  ``InvokeWithResponseStream``): only the content type of the post changes. Without either, it
  is ``application/octet-stream``.

Failure rules: an exception (or an invalid first item) before anything was sent propagates from
:func:`post_stream` so that the caller posts a normal ``/error``. The request goes out when the
first item is there, so once an ``HttpResponse`` has been yielded the status line is on its way:
a later exception is reported in the two trailers (error type; base64 of the error JSON). So is
an invalid chunk type and a stream over the 200 MiB limit. A ``/response`` answered 413, or a
connection closed mid-stream (Lambda cut the stream off), is returned in :class:`StreamOutcome`
for the caller to log; it is not fatal.

This module is on the cold-start path of every function that imports ``runtime``: it imports
only the standard library's cheapest modules, orjson and :mod:`runtime.protocol`.
"""

from __future__ import annotations

import orjson

from runtime import protocol as p

TYPE_CHECKING = False
if TYPE_CHECKING:
    import asyncio
    from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
    from typing import Any

    from runtime.http import Connection, Response

    Chunk = bytes | bytearray | memoryview
    ErrorDescriber = Callable[[BaseException], tuple[str, bytes]]

__all__ = [
    "HttpResponse",
    "StreamOutcome",
    "StreamResponse",
    "StreamTooLarge",
    "encode_prelude",
    "is_stream_result",
    "is_streaming_handler",
    "normalize_chunk",
    "post_stream",
]

# Code flags (Include/cpython/code.h), read directly: ``inspect`` costs milliseconds to import.
_CO_GENERATOR = 0x20
_CO_ASYNC_GENERATOR = 0x200
_STREAMING_FLAGS = _CO_GENERATOR | _CO_ASYNC_GENERATOR
# The common buffered results, answered without looking for ``__next__``.
_PLAIN_TYPES = frozenset(
    (dict, list, str, bytes, bytearray, memoryview, int, float, bool, tuple, type(None))
)
_CHUNK_TYPES = (bytes, bytearray, memoryview)
# "No item (yet)": None is a value a handler may yield by mistake, and must be told about.
_END = object()


class HttpResponse:
    """The status, headers and cookies of a streamed HTTP response (function URL, API Gateway).

    Yield it first; the body chunks follow. ``headers`` values are strings (several values of
    one header: comma-joined); ``cookies`` are ``Set-Cookie`` values.
    """

    __slots__ = ("cookies", "headers", "status_code")

    def __init__(
        self,
        status_code: int = 200,
        headers: Mapping[str, str] | None = None,
        cookies: Sequence[str] | None = None,
    ) -> None:
        if type(status_code) is not int or not 100 <= status_code <= 599:
            raise ValueError(
                f"HttpResponse status_code must be an int in 100-599, not {status_code!r}"
            )
        fields = dict(headers) if headers is not None else {}
        for name, value in fields.items():
            if not isinstance(name, str) or not isinstance(value, str):
                raise TypeError(
                    f"HttpResponse headers must map str to str; got {name!r}: {value!r}"
                )
        if isinstance(cookies, str):
            raise TypeError("HttpResponse cookies must be a list of Set-Cookie strings, not a str")
        jar = list(cookies) if cookies is not None else []
        for cookie in jar:
            if not isinstance(cookie, str):
                raise TypeError(f"HttpResponse cookies must be strings; got {cookie!r}")
        self.status_code = status_code
        self.headers = fields
        self.cookies = jar

    def __repr__(self) -> str:
        return (
            f"HttpResponse(status_code={self.status_code}, headers={self.headers!r}, "
            f"cookies={self.cookies!r})"
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, HttpResponse):
            return NotImplemented
        return (self.status_code, self.headers, self.cookies) == (
            other.status_code,
            other.headers,
            other.cookies,
        )

    __hash__ = None  # type: ignore[assignment]


class StreamResponse:
    """The content type of a stream that is not an HTTP-integration response. Yield it first."""

    __slots__ = ("content_type",)

    def __init__(self, content_type: str = p.STREAM_DEFAULT_CONTENT_TYPE) -> None:
        if not isinstance(content_type, str) or not content_type.strip():
            raise ValueError(
                f"StreamResponse content_type must be a non-empty str, not {content_type!r}"
            )
        self.content_type = content_type

    def __repr__(self) -> str:
        return f"StreamResponse(content_type={self.content_type!r})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, StreamResponse):
            return NotImplemented
        return self.content_type == other.content_type

    __hash__ = None  # type: ignore[assignment]


class StreamTooLarge(Exception):
    """The stream went over Lambda's limit for a streamed response (reported in the trailers)."""

    error_type = "Function.ResponseSizeTooLarge"

    def __init__(self, sent: int, limit: int) -> None:
        super().__init__(
            f"Streamed response size ({sent} bytes and counting) exceeded the maximum allowed "
            f"size for a streamed response ({limit} bytes)."
        )
        self.sent = sent
        self.limit = limit


class StreamOutcome:
    """How a stream that was started ended. ``bytes_sent``: body bytes handed to the socket
    (prelude included). ``error``: the exception reported in the trailers (the handler's, an
    invalid chunk, :class:`StreamTooLarge`; also ``SystemExit``/``KeyboardInterrupt``, which the
    caller may want to re-raise). ``response``: the Runtime API's answer (``None`` if the
    connection closed first). ``problem``: a sentence for the log when the post was not
    accepted (413, 410, closed mid-stream, another status); ``None`` when it was."""

    __slots__ = ("bytes_sent", "error", "problem", "response")

    def __init__(
        self,
        bytes_sent: int,
        error: BaseException | None,
        response: Response | None,
        problem: str | None,
    ) -> None:
        self.bytes_sent = bytes_sent
        self.error = error
        self.response = response
        self.problem = problem

    @property
    def fatal(self) -> bool:
        """The Runtime API answered 500: as after a buffered post, the runtime must exit."""
        return self.response is not None and self.response.status == p.STATUS_FATAL

    def __repr__(self) -> str:
        status = self.response.status if self.response is not None else None
        return (
            f"<StreamOutcome {self.bytes_sent} bytes, status={status}, "
            f"error={self.error!r}, problem={self.problem!r}>"
        )


def _code_flags(function: Any) -> int:
    # Bound methods and functools.partial wrap the function whose code decides.
    for _ in range(16):
        inner = getattr(function, "__func__", None) or getattr(function, "func", None)
        if inner is None:
            break
        function = inner
    code = getattr(function, "__code__", None)
    if code is None and callable(function):
        code = getattr(type(function).__call__, "__code__", None)
    return code.co_flags if code is not None else 0


def is_streaming_handler(function: Any) -> bool:
    """Whether calling ``function`` gives a stream by construction: a generator function or an
    async generator function (also behind a bound method, ``functools.partial`` or a callable
    object's ``__call__``). A plain function may still *return* a stream: :func:`is_stream_result`.
    """
    return bool(_code_flags(function) & _STREAMING_FLAGS)


def is_stream_result(value: object) -> bool:
    """Whether a handler's return value is a stream: an (async) iterator, generators included.

    str, bytes, dict, list and other iterables that are not iterators are buffered results.
    """
    kind = type(value)
    if kind in _PLAIN_TYPES:
        return False
    return hasattr(kind, "__next__") or hasattr(kind, "__anext__")


def normalize_chunk(item: object) -> Chunk:
    """A yielded item as bytes-like, ``str`` as UTF-8; anything else is a TypeError."""
    if isinstance(item, _CHUNK_TYPES):
        return item
    if isinstance(item, str):
        return item.encode()
    if isinstance(item, (HttpResponse, StreamResponse)):
        raise TypeError(
            f"a streaming handler yielded {type(item).__name__} after the stream had started; "
            "it must be the first item"
        )
    raise TypeError(
        f"a streaming handler yielded {type(item).__name__}; each chunk must be bytes, "
        "bytearray, memoryview or str"
    )


def encode_prelude(response: HttpResponse) -> bytes:
    """The HTTP-integration prelude: the JSON status/headers/cookies and the 8 NUL bytes."""
    body = orjson.dumps(
        {
            "statusCode": response.status_code,
            "headers": response.headers,
            "cookies": response.cookies,
        }
    )
    return body + p.HTTP_PRELUDE_SEPARATOR


def _default_describe(exc: BaseException) -> tuple[str, bytes]:
    from runtime.errors import encode_error, error_body

    body = error_body(exc)
    if isinstance(exc, StreamTooLarge):
        body["errorType"] = exc.error_type
    return str(body["errorType"]), encode_error(body)


async def _await(awaitable: Any) -> Any:
    return await awaitable


class _Source:
    """Pulls items from a sync or async iterator, one at a time, on demand."""

    __slots__ = ("_async", "_context", "_iterator", "_loop")

    def __init__(self, stream: object, loop: asyncio.AbstractEventLoop | None) -> None:
        kind = type(stream)
        self._context: Any = None
        if hasattr(kind, "__anext__"):
            if loop is None:
                raise ValueError("an async stream needs the event loop to run it on")
            self._async = True
            self._iterator: Any = stream
            import sys

            if sys.version_info >= (3, 11):
                import contextvars

                # Every step runs as its own task, and a task works on a copy of the context:
                # without one shared context, a ContextVar set in the generator (a span, a
                # logging field) would be gone after its next yield. A sync generator simply
                # runs in the caller's context; this gives an async one the same continuity.
                self._context = contextvars.copy_context()
        elif hasattr(kind, "__next__"):
            self._async = False
            self._iterator = stream
        else:
            raise TypeError(f"{kind.__name__} is not an iterator of chunks")
        self._loop = loop

    def _run(self, awaitable: Any) -> Any:
        loop: Any = self._loop
        if self._context is None:
            return loop.run_until_complete(awaitable)
        return loop.run_until_complete(loop.create_task(_await(awaitable), context=self._context))

    def next(self) -> object:
        """The next item; raises StopIteration at the end (for async streams too)."""
        if self._async:
            try:
                return self._run(self._iterator.__anext__())
            except StopAsyncIteration:
                raise StopIteration from None
        return next(self._iterator)

    def close(self) -> None:
        """Run the stream's ``finally`` blocks when it will not be iterated to its end."""
        iterator = self._iterator
        try:
            if self._async:
                aclose = getattr(iterator, "aclose", None)
                if aclose is not None:
                    self._run(aclose())
            else:
                close = getattr(iterator, "close", None)
                if close is not None:
                    close()
        except Exception:
            # Closing a stream that already failed or was cut off: what counts was reported.
            pass


def _body(
    first: Chunk | None, source: _Source, start: int, limit: int, sent: list[int]
) -> Iterator[Chunk]:
    """The chunks to post, counted in ``sent[0]``, with the limit enforced before sending."""
    total = start
    item: object = first if first is not None else _END
    while True:
        if item is not _END:
            chunk = item if type(item) is bytes else normalize_chunk(item)
            size = chunk.nbytes if isinstance(chunk, memoryview) else len(chunk)
            if total + size > limit:
                raise StreamTooLarge(total + size, limit)
            total += size
            sent[0] = total
            yield chunk
        try:
            item = source.next()
        except StopIteration:
            return


def post_stream(
    conn: Connection,
    request_id: str,
    stream: Iterator[object] | AsyncIterator[object],
    *,
    invocation_id: str = "",
    loop: asyncio.AbstractEventLoop | None = None,
    describe_error: ErrorDescriber | None = None,
    limit: int = p.MAX_STREAMED_RESPONSE,
) -> StreamOutcome:
    """Post ``stream`` as invoke ``request_id``'s streamed response over ``conn``.

    Pulls the first item before sending anything: if that raises (or the first item is not a
    chunk, an :class:`HttpResponse` or a :class:`StreamResponse`) the exception propagates and
    nothing was sent, so the caller reports it with a normal ``/error`` post. After that, every
    outcome is in the returned :class:`StreamOutcome`. ``describe_error(exc)`` gives the error
    type and the error JSON for the trailers (default: :mod:`runtime.errors` without a request
    id). ``loop`` runs an async stream (the environment's persistent loop). ``HTTPError``s other
    than a closed connection (e.g. a malformed answer) propagate, as for buffered posts.
    """
    from runtime.http import ConnectionClosed, StreamAborted

    source = _Source(stream, loop)
    content_type = p.STREAM_DEFAULT_CONTENT_TYPE
    first: Chunk | None = None
    prelude = b""
    try:
        item = source.next()
    except StopIteration:
        item = _END
    except BaseException:
        source.close()
        raise
    if isinstance(item, HttpResponse):
        content_type = p.HTTP_INTEGRATION_CONTENT_TYPE
        prelude = encode_prelude(item)
    elif isinstance(item, StreamResponse):
        content_type = item.content_type
    elif item is not _END:
        try:
            first = normalize_chunk(item)
        except TypeError:
            source.close()
            raise

    headers = [
        ("Content-Type", content_type),
        (p.RESPONSE_MODE_HEADER, p.RESPONSE_MODE_STREAMING),
        ("Trailer", p.STREAM_TRAILERS),
    ]
    if invocation_id:
        headers.append((p.INVOCATION_ID_HEADER, invocation_id))
    describe = describe_error if describe_error is not None else _default_describe
    sent = [len(prelude)]
    error: BaseException | None = None

    def chunks() -> Iterator[Chunk]:
        if prelude:
            # Alone, so that status and headers reach the client while the body is computed.
            yield prelude
        yield from _body(first, source, len(prelude), limit, sent)

    def trailers() -> list[tuple[str, str]]:
        import sys
        from base64 import b64encode

        exc = sys.exc_info()[1]
        if exc is None:
            return []
        nonlocal error
        error = exc
        try:
            error_type, body = describe(exc)
        except Exception as failure:
            # The stream must still end properly; a describer's bug is no reason to cut it.
            error_type = type(exc).__name__
            body = orjson.dumps(
                {
                    "errorMessage": f"{exc!s:.1000} (describing it failed: {failure!r:.200})",
                    "errorType": error_type,
                }
            )
        if isinstance(exc, StreamTooLarge):
            error_type = exc.error_type
        header_type = "".join(c for c in error_type if " " < c <= "~") or "Runtime.Unknown"
        return [
            (p.ERROR_TYPE_HEADER, header_type),
            (p.ERROR_BODY_TRAILER, b64encode(body).decode()),
        ]

    target = p.response_path(request_id)
    try:
        response = conn.request_chunked("POST", target, headers, chunks(), trailers)
    except StreamAborted as aborted:
        response = aborted.response
        error = aborted.error
    except ConnectionClosed as exc:
        return StreamOutcome(
            sent[0], error, None, f"the connection closed before the stream was answered: {exc}"
        )
    finally:
        # A limit or chunk-type error leaves the user's generator suspended: finish it now.
        source.close()
    status = response.status
    if status == p.STATUS_ACCEPTED:
        problem = None
    elif status == p.STATUS_TOO_LARGE:
        problem = (
            f"{target} answered 413: the streamed response is over Lambda's limit and was cut off"
        )
    elif status == p.STATUS_GONE:
        problem = f"{target} answered 410: the invoke had already timed out; the stream was dropped"
    else:
        problem = f"{target} answered unexpected status {status}"
    return StreamOutcome(sent[0], error, response, problem)
