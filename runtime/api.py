"""The Runtime API client: one method per call, one keep-alive connection, Lambda's status rules.

Status handling (see the facts file): 500 on any call means the sandbox is broken and the
runtime must exit promptly (RuntimeAPIFatal); 410 on a post means the invoke already timed out,
413 on /response means Lambda refused the payload: both are logged and the loop goes on; any
other unexpected status is logged with its body and the loop goes on.
"""

from __future__ import annotations

import sys
from collections.abc import Callable

from runtime import __version__
from runtime import protocol as p
from runtime.http import Connection, HTTPError, RequestError, Response

TYPE_CHECKING = False
if TYPE_CHECKING:
    import asyncio
    from typing import Any

    from runtime.streaming import StreamOutcome


class RuntimeAPIFatal(Exception):
    """The Runtime API told us (or showed us) that this environment is done: exit now."""


class Invocation:
    """One event handed out by ``/next``, with every header Lambda sent along."""

    __slots__ = (
        "body",
        "client_context",
        "cognito_identity",
        "content_type",
        "deadline_ms",
        "function_arn",
        "headers",
        "invocation_id",
        "request_id",
        "tenant_id",
        "trace_id",
    )

    def __init__(self, headers: dict[str, str], body: bytes) -> None:
        self.headers = headers
        self.body = body
        self.request_id = headers.get(p.REQUEST_ID_KEY, "")
        try:
            self.deadline_ms = int(headers.get(p.DEADLINE_KEY, "0"))
        except ValueError:
            self.deadline_ms = 0
        self.function_arn = headers.get(p.FUNCTION_ARN_KEY, "")
        self.trace_id = headers.get(p.TRACE_ID_KEY)
        self.client_context = headers.get(p.CLIENT_CONTEXT_KEY)
        self.cognito_identity = headers.get(p.COGNITO_IDENTITY_KEY)
        self.tenant_id = headers.get(p.TENANT_ID_KEY)
        self.invocation_id = headers.get(p.INVOCATION_ID_KEY)
        self.content_type = headers.get("content-type")


def user_agent() -> str:
    """``lambda-runtime/<version> python/<major.minor>``, as the official clients identify
    themselves to the Runtime API (and our OTLP exporter to a collector)."""
    major, minor = sys.version_info[:2]
    return f"lambda-runtime/{__version__} python/{major}.{minor}"


class RuntimeClient:
    def __init__(self, host: str, port: int, warn: Callable[[str], None]) -> None:
        # Built once: the connection puts it into every request head it caches.
        self._conn = Connection(host, port, user_agent=user_agent())
        self._address = f"{host}:{port}"
        self._warn = warn

    def next_invocation(self) -> Invocation:
        return invocation_of(self._call("GET", p.NEXT_PATH, (), b""))

    def post_response(
        self,
        invocation: Invocation,
        body: bytes | bytearray | memoryview,
        content_type: str,
        *,
        then_next: bool = False,
    ) -> None:
        """Post the result. With ``then_next``, ``GET /next`` goes out in the same send, right
        behind the post (the next :meth:`next_invocation` reads its answer): for a runtime with
        nothing to do between invokes, one round trip and two context switches fewer."""
        target, headers = response_request(invocation, content_type)
        self._post(target, headers, body, then=("GET", p.NEXT_PATH) if then_next else None)

    def post_error(
        self, invocation: Invocation, error_type: str, body: bytes, xray_cause: bytes | None
    ) -> None:
        self._post(*error_request(invocation, error_type, xray_cause), body)

    def post_stream(
        self,
        invocation: Invocation,
        stream: Any,
        loop: asyncio.AbstractEventLoop | None,
        describe_error: Callable[[BaseException], tuple[str, bytes]],
    ) -> StreamOutcome:
        """Post ``stream`` as the streamed response (see :func:`runtime.streaming.post_stream`:
        an error before the first chunk propagates). A broken Runtime API is fatal, as for
        every other call."""
        from runtime.streaming import post_stream

        try:
            return post_stream(
                self._conn,
                invocation.request_id,
                stream,
                invocation_id=invocation.invocation_id or "",
                loop=loop,
                describe_error=describe_error,
            )
        except RequestError:
            raise
        except HTTPError as exc:
            raise RuntimeAPIFatal(f"Runtime API at {self._address} failed: {exc}") from exc

    def post_init_error(self, error_type: str, body: bytes, xray_cause: bytes | None) -> None:
        headers = _error_headers(error_type, xray_cause)
        self._post(p.INIT_ERROR_PATH, headers, body)

    def restore_next(self) -> None:
        """SnapStart: tell Lambda init is done and wait, across the snapshot, for the restore.
        No timeout: the answer comes in the restored environment, whenever that is."""
        response = self._call("GET", p.RESTORE_NEXT_PATH, (), b"")
        if response.status != p.STATUS_OK:
            raise RuntimeAPIFatal(
                f"/restore/next answered {response.status}: {_excerpt(response.body)}"
            )

    def post_restore_error(self, error_type: str, body: bytes, xray_cause: bytes | None) -> None:
        """SnapStart: an after-restore hook failed (the runtime exits afterwards)."""
        self._post(p.RESTORE_ERROR_PATH, _error_headers(error_type, xray_cause), body)

    def register_extension(self, name: str) -> str:
        """Register an internal extension with no events, so Lambda sends SIGTERM at shutdown."""
        response = self._call(
            "POST",
            p.EXTENSION_REGISTER_PATH,
            [(p.EXTENSION_NAME_HEADER, name), ("Content-Type", "application/json")],
            b'{"events":[]}',
        )
        if response.status != p.STATUS_OK:
            raise RuntimeAPIFatal(
                f"extension registration answered {response.status}: {_excerpt(response.body)}"
            )
        return response.headers.get(p.EXTENSION_ID_HEADER.lower(), "")

    def close(self) -> None:
        self._conn.close()

    def _call(
        self,
        method: str,
        target: str,
        headers: list[tuple[str, str]] | tuple[()],
        body: bytes | bytearray | memoryview,
        then: tuple[str, str] | None = None,
    ) -> Response:
        try:
            response = self._conn.request(method, target, headers, body, then=then)
        except RequestError:
            raise
        except HTTPError as exc:
            raise RuntimeAPIFatal(f"Runtime API at {self._address} failed: {exc}") from exc
        if response.status == p.STATUS_FATAL:
            raise fatal_answer(method, target, response)
        return response

    def _post(
        self,
        target: str,
        headers: list[tuple[str, str]],
        body: bytes | bytearray | memoryview,
        then: tuple[str, str] | None = None,
    ) -> None:
        try:
            response = self._call("POST", target, headers, body, then)
        except RequestError as exc:
            # Nothing was sent and the connection is intact: this post cannot be made (e.g. a
            # request id that is not a valid URL path), but the environment is fine.
            self._warn(f"could not post to {target!r}: {exc}")
            return
        if response.status != p.STATUS_ACCEPTED:
            report_post(target, response, self._warn)


# The status rules and request shapes, shared with the non-blocking client of
# runtime.concurrency: one place says what each answer means.


def invocation_of(response: Response) -> Invocation:
    """The event of a ``/next`` answer; any other answer ends the environment."""
    if response.status != p.STATUS_OK:
        # Without an event there is nothing to answer; looping would only spin.
        raise RuntimeAPIFatal(
            f"/invocation/next answered {response.status}: {_excerpt(response.body)}"
        )
    if not response.headers.get(p.REQUEST_ID_KEY):
        raise RuntimeAPIFatal("/invocation/next answered without Lambda-Runtime-Aws-Request-Id")
    return Invocation(response.headers, response.body)


def fatal_answer(method: str, target: str, response: Response) -> RuntimeAPIFatal:
    return RuntimeAPIFatal(
        f"{method} {target} answered 500 (container error): {_excerpt(response.body)}"
    )


def response_request(
    invocation: Invocation, content_type: str
) -> tuple[str, list[tuple[str, str]]]:
    """Target and headers of the post of ``invocation``'s result."""
    headers = [("Content-Type", content_type)]
    if invocation.invocation_id:
        headers.append((p.INVOCATION_ID_HEADER, invocation.invocation_id))
    return p.response_path(invocation.request_id), headers


def error_request(
    invocation: Invocation, error_type: str, xray_cause: bytes | None
) -> tuple[str, list[tuple[str, str]]]:
    """Target and headers of the post of ``invocation``'s error."""
    headers = _error_headers(error_type, xray_cause)
    if invocation.invocation_id:
        headers.append((p.INVOCATION_ID_HEADER, invocation.invocation_id))
    return p.error_path(invocation.request_id), headers


def report_post(target: str, response: Response, warn: Callable[[str], None]) -> None:
    """What a post answered other than 202 means: the invoke timed out, the payload was
    refused, or something unexpected; none of them ends the environment."""
    status = response.status
    if status == p.STATUS_GONE:
        warn(f"{target} answered 410: the invoke had already timed out; result dropped")
    elif status == p.STATUS_TOO_LARGE:
        warn(f"{target} answered 413: the payload is over Lambda's limit and was refused")
    else:
        warn(f"{target} answered unexpected status {status}: {_excerpt(response.body)}")


def _error_headers(error_type: str, xray_cause: bytes | None) -> list[tuple[str, str]]:
    # An exception class may be named anything; the header must stay one printable token.
    header_type = "".join(c for c in error_type if " " < c <= "~") or "Runtime.Unknown"
    headers = [("Content-Type", "application/json"), (p.ERROR_TYPE_HEADER, header_type)]
    if xray_cause is not None:
        headers.append((p.XRAY_CAUSE_HEADER, xray_cause.decode()))
    return headers


def _excerpt(body: bytes, limit: int = 500) -> str:
    text = body[:limit].decode("utf-8", "replace")
    return text + ("..." if len(body) > limit else "")
