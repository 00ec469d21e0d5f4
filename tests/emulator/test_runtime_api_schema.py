"""Schema-driven tests of the emulator's Runtime API against the published OpenAPI description
(``../shared/spec/runtime-api.yaml`` beside the repository).

The emulator runs with ``no_spawn``: the test itself is the runtime. schemathesis generates the
requests of each operation (valid and invalid path parameters, headers and bodies); every answer
must be one the spec documents for that operation, match its schema, and never be a 5xx. For
``/response`` and ``/error`` half of the cases target the invoke actually outstanding, so the
accepting path is exercised as well as the refusals, and the caller of that invoke must get
exactly the answer the accepted post carried.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from runtime import protocol
from runtime.emulator import Emulator, InvokeResult

schemathesis = pytest.importorskip("schemathesis")
from schemathesis import GenerationMode  # noqa: E402
from schemathesis.checks import (  # noqa: E402
    content_type_conformance,
    not_a_server_error,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

REPO = Path(__file__).resolve().parents[2]
SPEC_RELATIVE = Path("shared", "spec", "runtime-api.yaml")
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]
CASES = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


def find_spec() -> Path | None:
    """``../shared`` beside the repository (as CI lays it out); a worktree nested deeper finds
    the same folder further up."""
    for folder in REPO.parents:
        if (folder / SPEC_RELATIVE).is_file():
            return folder / SPEC_RELATIVE
    return None


@pytest.fixture(scope="module")
def schema() -> Any:
    spec = find_spec()
    if spec is None:
        message = f"{Path('..') / SPEC_RELATIVE} not found beside {REPO}"
        if os.environ.get("CI") == "true":
            pytest.fail(message)  # CI copies shared/ there: its absence is a broken setup
        pytest.skip(message)
    return schemathesis.openapi.from_path(str(spec))


class Runtime:
    """The test as the runtime of a ``no_spawn`` emulator: it takes invokes from ``/next``."""

    def __init__(self, emulator: Emulator) -> None:
        self.emulator = emulator
        self.base = f"http://{emulator.runtime_api}/{protocol.RUNTIME_API_VERSION}"
        self.client = httpx.Client(base_url=f"http://{emulator.runtime_api}", timeout=10)
        self.callers = ThreadPoolExecutor(max_workers=2)
        self.count = 0

    def invoke(self) -> tuple[Future[InvokeResult], dict[str, Any]]:
        """Start an invoke from a caller's thread; returns its future and its event."""
        self.count += 1
        event = {"invoke": self.count}
        return self.callers.submit(self.emulator.invoke, event), event

    def next(self) -> str:
        """Take the next invoke (one must be on its way); returns its request id."""
        response = self.client.get(protocol.NEXT_PATH)
        assert response.status_code == 200, response.text
        return response.headers[protocol.REQUEST_ID_HEADER]

    def respond(self, request_id: str, body: bytes) -> None:
        response = self.client.post(protocol.response_path(request_id), content=body)
        assert response.status_code == 202, response.text

    def close(self) -> None:
        self.callers.shutdown(wait=True)
        self.client.close()


@pytest.fixture
def runtime(make: Callable[..., Emulator]) -> Iterator[Runtime]:
    # A long timeout: an invoke outstanding across a slow example must not time out (410 is
    # newer than the spec).
    rt = Runtime(make("", no_spawn=True, timeout=60))
    # Init ends with the first /next: take one invoke and answer it.
    future, _ = rt.invoke()
    rt.respond(rt.next(), b'"warm"')
    assert future.result(timeout=10).payload == "warm"
    yield rt
    rt.close()


def strategy(schema: Any, path: str, method: str) -> st.SearchStrategy[Any]:
    operation = schema[path][method]
    return st.one_of(
        operation.as_strategy(generation_mode=GenerationMode.POSITIVE),
        operation.as_strategy(generation_mode=GenerationMode.NEGATIVE),
    )


def call_and_check(case: Any, runtime: Runtime) -> Any:
    response = case.call(base_url=runtime.base, timeout=10)
    case.validate_response(response, checks=CHECKS)
    return response


def json_or_none(data: bytes) -> Any:
    try:
        return json.loads(data)
    except ValueError:
        return None


def test_next_hands_out_each_invoke(schema: Any, runtime: Runtime) -> None:
    @given(strategy(schema, "/runtime/invocation/next", "GET"))
    @CASES
    def check(case: Any) -> None:
        future, event = runtime.invoke()
        response = case.call(base_url=runtime.base, timeout=10)
        request_id = response.headers.get(protocol.REQUEST_ID_KEY, [""])[0]
        try:
            case.validate_response(response, checks=CHECKS)
            assert response.status_code == 200
            assert response.json() == event
        finally:
            # Answer it whatever went wrong, so the next example starts from a free environment.
            runtime.respond(request_id or runtime.next(), b'{"done": true}')
        result = future.result(timeout=10)
        assert result.request_id == request_id and result.payload == {"done": True}

    check()


@pytest.mark.parametrize("kind", ["response", "error"])
def test_answers_are_accepted_or_refused_as_documented(
    schema: Any, runtime: Runtime, kind: str
) -> None:
    @given(
        strategy(schema, f"/runtime/invocation/{{AwsRequestId}}/{kind}", "POST"),
        st.booleans(),
    )
    @CASES
    def check(case: Any, outstanding: bool) -> None:
        future = None
        if outstanding:
            future, _ = runtime.invoke()
            case.path_parameters["AwsRequestId"] = request_id = runtime.next()
        response = case.call(base_url=runtime.base, timeout=10)
        if future is None:
            case.validate_response(response, checks=CHECKS)
            # Nothing is outstanding: an id the emulator never handed out is refused.
            assert response.status_code == 400, response.content
            return
        try:
            case.validate_response(response, checks=CHECKS)
        finally:
            if response.status_code != 202:
                # Refused: the invoke is still outstanding; answer it for the next example.
                runtime.respond(request_id, b'"cleanup"')
        result = future.result(timeout=10)
        assert result.request_id == request_id
        body = response.request.body or b""
        sent = body.encode() if isinstance(body, str) else body
        if response.status_code != 202:
            assert result.payload == "cleanup"
        elif kind == "response":
            assert result.function_error is None
            assert result.raw == sent
        else:
            # An error object the runtime posted is passed on as it is; anything else is
            # replaced by an error object of the header's type, as Lambda does.
            assert result.function_error == "Unhandled"
            assert isinstance(result.payload, dict)
            if not isinstance(json_or_none(sent), dict):
                assert "errorType" in result.payload
            else:
                assert result.raw == sent

    check()


def test_init_error_after_init_is_refused(schema: Any, runtime: Runtime) -> None:
    @given(strategy(schema, "/runtime/init/error", "POST"))
    @settings(CASES, max_examples=25)
    def check(case: Any) -> None:
        response = call_and_check(case, runtime)
        assert response.status_code == 403, response.text

    check()
    # The environment still serves invokes.
    future, _ = runtime.invoke()
    runtime.respond(runtime.next(), b'{"after": "init errors"}')
    assert future.result(timeout=10).payload == {"after": "init errors"}
