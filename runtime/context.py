"""The context object handed to handlers, attribute-compatible with awslambdaric's LambdaContext."""

from __future__ import annotations

import sys
import time
from contextvars import ContextVar, Token

# typing costs milliseconds of cold start; it is only needed by the type checker.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


class CognitoIdentity:
    __slots__ = ("cognito_identity_id", "cognito_identity_pool_id")

    def __init__(self, identity_id: str | None = None, pool_id: str | None = None) -> None:
        self.cognito_identity_id = identity_id
        self.cognito_identity_pool_id = pool_id

    def __repr__(self) -> str:
        return (
            f"CognitoIdentity(cognito_identity_id={self.cognito_identity_id!r}, "
            f"cognito_identity_pool_id={self.cognito_identity_pool_id!r})"
        )


class Client:
    __slots__ = (
        "app_package_name",
        "app_title",
        "app_version_code",
        "app_version_name",
        "installation_id",
    )

    def __init__(self, fields: dict[str, Any]) -> None:
        self.installation_id = fields.get("installation_id")
        self.app_title = fields.get("app_title")
        self.app_version_name = fields.get("app_version_name")
        self.app_version_code = fields.get("app_version_code")
        self.app_package_name = fields.get("app_package_name")

    def __repr__(self) -> str:
        return (
            f"Client(installation_id={self.installation_id!r}, app_title={self.app_title!r}, "
            f"app_version_name={self.app_version_name!r}, "
            f"app_version_code={self.app_version_code!r}, "
            f"app_package_name={self.app_package_name!r})"
        )


class ClientContext:
    __slots__ = ("client", "custom", "env")

    def __init__(self, fields: dict[str, Any]) -> None:
        client = fields.get("client")
        self.client = Client(client) if isinstance(client, dict) else None
        self.custom = fields.get("custom")
        self.env = fields.get("env")

    def __repr__(self) -> str:
        return f"ClientContext(client={self.client!r}, custom={self.custom!r}, env={self.env!r})"


class LambdaContext:
    """Per-invoke facts: who called, which function, how much time is left."""

    __slots__ = (
        "_deadline_ms",
        "aws_request_id",
        "client_context",
        "function_name",
        "function_version",
        "identity",
        "invoked_function_arn",
        "log_group_name",
        "log_stream_name",
        "memory_limit_in_mb",
        "tenant_id",
        "xray_trace_id",
    )

    def __init__(
        self,
        *,
        aws_request_id: str,
        deadline_ms: int,
        invoked_function_arn: str,
        function_name: str,
        function_version: str,
        memory_limit_in_mb: str,
        log_group_name: str,
        log_stream_name: str,
        identity: CognitoIdentity | None = None,
        client_context: ClientContext | None = None,
        tenant_id: str | None = None,
        xray_trace_id: str | None = None,
    ) -> None:
        self.aws_request_id = aws_request_id
        self._deadline_ms = deadline_ms
        self.invoked_function_arn = invoked_function_arn
        self.function_name = function_name
        self.function_version = function_version
        # A string, as awslambdaric hands it over: code written for Lambda does
        # int(context.memory_limit_in_mb) or string formatting, and both must keep working.
        self.memory_limit_in_mb = memory_limit_in_mb
        self.log_group_name = log_group_name
        self.log_stream_name = log_stream_name
        self.identity = identity if identity is not None else CognitoIdentity()
        self.client_context = client_context
        self.tenant_id = tenant_id
        self.xray_trace_id = xray_trace_id

    def get_remaining_time_in_millis(self) -> int:
        remaining = self._deadline_ms - int(time.time() * 1000)
        return remaining if remaining > 0 else 0

    def log(self, msg: object) -> None:
        """Write ``msg`` to the function's log as is, like awslambdaric's ``context.log``."""
        sys.stdout.write(str(msg))
        sys.stdout.flush()

    def __repr__(self) -> str:
        return (
            f"LambdaContext(aws_request_id={self.aws_request_id!r}, "
            f"function_name={self.function_name!r}, function_version={self.function_version!r}, "
            f"invoked_function_arn={self.invoked_function_arn!r}, "
            f"memory_limit_in_mb={self.memory_limit_in_mb!r}, "
            f"remaining_time_in_millis={self.get_remaining_time_in_millis()}, "
            f"log_group_name={self.log_group_name!r}, log_stream_name={self.log_stream_name!r}, "
            f"identity={self.identity!r}, client_context={self.client_context!r}, "
            f"tenant_id={self.tenant_id!r}, xray_trace_id={self.xray_trace_id!r})"
        )


# The context of the invoke being handled, for code that has no context argument at hand
# (log records, helpers deep in user code). Unset outside an invoke.
current_context: ContextVar[LambdaContext | None] = ContextVar("lambda_context", default=None)


class _InProgress:
    """The invoke the runtime is handling, for threads the handler starts.

    A new thread starts with an empty context (Python copies no context variables into it), yet
    its log records belong to the invoke that started it, and awslambdaric gives them its
    request id. The runtime handles one invoke at a time, so that invoke is well defined: it is
    the one fallback next to the context variable, set and cleared with it.

    With several invokes in flight (:func:`isolate_threads`) there is no such invoke: the
    fallback is switched off and threads carry the context of the code that started them.
    """

    __slots__ = ("context", "shared")

    def __init__(self) -> None:
        self.context: LambdaContext | None = None
        self.shared = True


_in_progress = _InProgress()


def enter_invoke(context: LambdaContext) -> Token[LambdaContext | None]:
    if _in_progress.shared:
        _in_progress.context = context
    return current_context.set(context)


def leave_invoke(token: Token[LambdaContext | None]) -> None:
    current_context.reset(token)
    _in_progress.context = None


def invoke_context() -> LambdaContext | None:
    """The context of the invoke this code runs for: its task's or thread's own, else (a thread
    the handler started, one invoke at a time) the invoke in progress; None during init and
    between invokes."""
    context = current_context.get()
    return context if context is not None else _in_progress.context


def isolate_threads() -> None:
    """Several invokes in flight: a thread belongs to the invoke whose code started it.

    ``threading.Thread.start`` is patched to run the thread in a copy of the starter's context
    variables (the request id, the observability state, structlog's and OpenTelemetry's
    context), as ``asyncio.to_thread`` does for one call; ``ThreadPoolExecutor.submit`` runs each
    call in a copy of the submitter's context, because a pool's worker threads outlive the invoke
    that started them. The one-invoke fallback is switched off. Idempotent.
    """
    import contextvars
    import threading
    from concurrent.futures import thread as pool

    _in_progress.shared = False
    _in_progress.context = None
    thread_class: Any = threading.Thread
    if getattr(thread_class.start, "_lambda_isolated", False):
        return
    start = thread_class.start
    submit = pool.ThreadPoolExecutor.submit

    def start_in_context(self: threading.Thread) -> None:
        run = self.run
        copied = contextvars.copy_context()
        # An instance attribute: subclasses that override run() are covered too.
        self.run = lambda: copied.run(run)  # type: ignore[method-assign]
        start(self)

    def submit_in_context(self: Any, fn: Any, /, *args: Any, **kwargs: Any) -> Any:
        return submit(self, contextvars.copy_context().run, fn, *args, **kwargs)

    start_in_context._lambda_isolated = True  # type: ignore[attr-defined]
    thread_class.start = start_in_context
    pool.ThreadPoolExecutor.submit = submit_in_context  # type: ignore[method-assign]
