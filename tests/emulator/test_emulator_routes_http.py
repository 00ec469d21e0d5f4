"""The HTTP front of ``serve --template ... --http-port``: the template's HTTP API, REST API and
function URL routes over plain HTTP, as API Gateway and function URLs answer them."""

from __future__ import annotations

import re
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from emulator_support import MARK, MARK_VAR, serve_process

from runtime.emulator import ConfigError, Emulator

APP = Path(__file__).parent / "template_app"
TEMPLATE = APP / "template.yaml"
ORIGIN = "https://app.example.com"  # the one Globals.HttpApi.CorsConfiguration allows


@pytest.fixture
def app(lambda_emulator: Callable[..., Emulator]) -> Callable[..., Emulator]:
    def start(**options: Any) -> Emulator:
        options.setdefault("template", TEMPLATE)
        options.setdefault("http_port", 0)
        options.setdefault("env", {MARK_VAR: MARK})
        return lambda_emulator(**options)

    return start


def _event(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 200, response.text
    event: dict[str, Any] = response.json()["event"]
    return event


def test_http_api_routes_get_payload_2_0_events_with_their_route(app):
    emu = app()
    with httpx.Client(base_url=emu.http_url, timeout=20) as http:
        r = http.get("/hello?name=Ada")
        assert r.json()["function"] == "hello-dev"
        event = _event(r)
        assert event["version"] == "2.0"
        assert (event["rawPath"], event["rawQueryString"]) == ("/hello", "name=Ada")
        assert event["routeKey"] == event["requestContext"]["routeKey"] == "GET /hello"
        assert event["requestContext"]["stage"] == "$default"
        assert event["requestContext"]["requestId"] == r.headers["x-amzn-requestid"]
        assert "pathParameters" not in event and "stageVariables" not in event

        greedy = _event(http.post("/files/a/b%20c/d.txt", content=b"x"))
        assert greedy["routeKey"] == "ANY /files/{proxy+}"
        assert greedy["pathParameters"] == {"proxy": "a/b c/d.txt"}
        assert greedy["requestContext"]["http"]["method"] == "POST"

        # Nothing matches (a path, or a method of a known path): the HTTP API's 404.
        for method, path in (("GET", "/nowhere"), ("DELETE", "/hello"), ("GET", "/files")):
            missing = http.request(method, path)
            assert missing.status_code == 404, (method, path)
            assert missing.json() == {"message": "Not Found"}
    # Nothing was invoked for the 404s.
    assert emu.stats("HelloFunction")["started"] == 1


def test_rest_api_routes_get_payload_1_0_events_with_path_parameters(app):
    emu = app()
    with httpx.Client(base_url=emu.http_url, timeout=20) as http:
        r = http.get("/users/ada?x=1&x=2")
        assert r.headers["x-user"] == "ada"
        assert r.json()["user"] == "ADA!"  # through the template's layer
        event = _event(r)
        assert event["resource"] == "/users/{id}"
        assert event["path"] == "/users/ada" and event["httpMethod"] == "GET"
        assert event["pathParameters"] == {"id": "ada"}
        assert event["stageVariables"] is None
        assert event["multiValueQueryStringParameters"] == {"x": ["1", "2"]}
        context = event["requestContext"]
        assert (context["resourcePath"], context["stage"], context["path"]) == (
            "/users/{id}",
            "Prod",
            "/Prod/users/ada",
        )


def test_function_errors_answer_as_each_api_does(app):
    emu = app()
    with httpx.Client(base_url=emu.http_url, timeout=20) as http:
        rest = http.get("/users/boom")
        assert rest.status_code == 502
        assert rest.json() == {"message": "Internal server error"}
        assert rest.headers["x-amzn-errortype"] == "InternalServerErrorException"
        http_api = http.get("/hello?fail=1")
        assert http_api.status_code == 500
        assert http_api.json() == {"message": "Internal Server Error"}
        # The functions live on: the next request is served.
        assert http.get("/users/ada").status_code == 200


def test_cors_preflight_and_response_headers_come_from_the_api(app):
    emu = app()
    with httpx.Client(base_url=emu.http_url, timeout=20) as http:
        preflight = http.options(
            "/hello",
            headers={
                "Origin": ORIGIN,
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "Content-Type",
            },
        )
        assert preflight.status_code == 204
        assert preflight.headers["access-control-allow-origin"] == ORIGIN
        assert preflight.headers["access-control-allow-methods"] == "GET,POST"
        assert preflight.headers["access-control-allow-headers"] == "content-type"
        assert preflight.headers["access-control-max-age"] == "600"
        # A method the API does not allow: no CORS headers, the browser blocks the request.
        refused = http.options(
            "/hello", headers={"Origin": ORIGIN, "Access-Control-Request-Method": "DELETE"}
        )
        assert "access-control-allow-origin" not in refused.headers

        # A real response: the API's headers, not the function's ("*").
        allowed = http.get("/hello", headers={"Origin": ORIGIN})
        assert allowed.headers.get_list("access-control-allow-origin") == [ORIGIN]
        other = http.get("/hello", headers={"Origin": "https://evil.example"})
        assert other.status_code == 200
        assert "access-control-allow-origin" not in other.headers
    # Preflights never reach the function.
    assert emu.stats("HelloFunction")["started"] == 1


def test_a_function_url_streams_through_its_route(app):
    emu = app()
    host = {"Host": "StreamFunction.lambda-url.localhost"}
    with httpx.Client(base_url=emu.http_url, timeout=20) as http:
        with http.stream("GET", "/any/path", headers=host) as r:
            assert r.status_code == 200
            assert r.headers["transfer-encoding"] == "chunked"
            assert r.headers["x-amzn-requestid"]
            body = b"".join(r.iter_raw())
        assert body == b"onetwothree"
        # Without its host name the function URL is not reached: the APIs' 404.
        assert http.get("/any/path").status_code == 404


def test_a_rest_only_template_answers_403_when_nothing_matches(tmp_path, lambda_emulator):
    path = tmp_path / "template.yaml"
    path.write_text(
        textwrap.dedent(
            f"""\
            Transform: AWS::Serverless-2016-10-31
            Resources:
              Users:
                Type: AWS::Serverless::Function
                Properties:
                  CodeUri: {APP / "src"}
                  Handler: users.handler
                  Events:
                    Get:
                      Type: Api
                      Properties:
                        Path: /users/{{id}}
                        Method: get
            """
        )
    )
    emu = lambda_emulator(template=path, http_port=0, env={MARK_VAR: MARK})
    with httpx.Client(base_url=emu.http_url, timeout=20) as http:
        for method, target in (("GET", "/"), ("GET", "/users"), ("POST", "/users/ada")):
            r = http.request(method, target)
            assert r.status_code == 403, (method, target)
            assert r.json() == {"message": "Missing Authentication Token"}
            assert r.headers["x-amzn-errortype"] == "MissingAuthenticationTokenException"
    assert emu.stats()["started"] == 0


def test_http_payload_is_refused_with_a_template():
    with pytest.raises(ConfigError, match="--template and --http-payload"):
        Emulator(template=TEMPLATE, http_port=0, http_payload="1.0")


def test_serve_template_prints_the_routes_and_serves_them():
    args = ("--template", str(TEMPLATE), "--port", "0", "--http-port", "0")
    with serve_process(*args, until="lambda-url") as banner:
        found = re.search(r"HTTP routes on (http://127\.0\.0\.1:(\d+)):", banner)
        assert found, banner
        base, port = found.groups()
        assert "  GET /users/{id} -> UsersFunction (REST API, payload 1.0)\n" in banner
        assert "  ANY /files/{proxy+} -> HelloFunction (HTTP API, payload 2.0)\n" in banner
        assert f"http://StreamFunction.lambda-url.localhost:{port}/" in banner
        r = httpx.get(base + "/users/cli", timeout=20)
        assert r.status_code == 200 and r.json()["user"] == "CLI!"
