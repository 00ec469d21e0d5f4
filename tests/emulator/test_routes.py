"""Route matching as API Gateway does it: specificity, parameters, ANY, $default, the 404/403
answers and CORS preflights, from a template's events."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from runtime.emulator.routes import (
    HTTP_API,
    MISSING_TOKEN,
    NOT_FOUND,
    REST_API,
    Cors,
    Reply,
    Route,
    RouteMatch,
    RouteTable,
    function_urls,
    url_function,
)
from runtime.emulator.template import load_template

APP_TEMPLATE = Path(__file__).parent / "template_app" / "template.yaml"


def _match(table: RouteTable, method: str, path: str, **headers: str) -> RouteMatch:
    result = table.match(method, path, [(k.replace("_", "-"), v) for k, v in headers.items()])
    assert isinstance(result, RouteMatch), result
    return result


def _http(method: str, path: str | None, function: str = "Fn") -> Route:
    return Route(function, HTTP_API, method, path)


def test_the_most_specific_route_wins() -> None:
    table = RouteTable(
        [
            _http("ANY", "/{proxy+}", "Proxy"),
            _http("GET", "/users/{id}", "GetUser"),
            _http("GET", "/users/me", "Me"),
            _http("ANY", "/users/{id}", "AnyUser"),
            _http("GET", "/users/{id}/{rest+}", "UserRest"),
        ]
    )
    assert _match(table, "GET", "/users/me").function == "Me"
    found = _match(table, "GET", "/users/42")
    assert (found.function, found.path_parameters) == ("GetUser", {"id": "42"})
    assert found.route_key == "GET /users/{id}"
    assert _match(table, "DELETE", "/users/42").function == "AnyUser"
    deep = _match(table, "GET", "/users/42/posts/7")
    assert deep.function == "UserRest"
    assert deep.path_parameters == {"id": "42", "rest": "posts/7"}
    proxy = _match(table, "POST", "/anything/else?x=1")
    assert (proxy.function, proxy.path_parameters) == ("Proxy", {"proxy": "anything/else"})
    assert proxy.stage_variables is None


def test_parameters_are_decoded_and_never_empty() -> None:
    table = RouteTable([_http("GET", "/files/{name}")])
    assert _match(table, "GET", "/files/a%20b.txt").path_parameters == {"name": "a b.txt"}
    assert table.match("GET", "/files/") is NOT_FOUND
    assert table.match("GET", "/files/a/b") is NOT_FOUND


def test_greedy_parameter_needs_a_segment_and_must_be_last() -> None:
    table = RouteTable([_http("ANY", "/{proxy+}")])
    assert table.match("GET", "/") is NOT_FOUND
    with pytest.raises(ValueError, match="must be the last segment"):
        _http("GET", "/{proxy+}/x")


def test_no_parameters_gives_none() -> None:
    table = RouteTable([_http("GET", "/hello")])
    assert _match(table, "GET", "/hello").path_parameters is None


def test_http_api_default_route_and_not_found() -> None:
    table = RouteTable([_http("GET", "/hello", "Hello"), _http("ANY", None, "Default")])
    assert _match(table, "GET", "/hello").function == "Hello"
    fallback = _match(table, "POST", "/hello")
    assert (fallback.function, fallback.route_key) == ("Default", "$default")
    without = RouteTable([_http("GET", "/hello")])
    answer = without.match("POST", "/hello")
    assert isinstance(answer, Reply)
    assert (answer.status, json.loads(answer.body)) == (404, {"message": "Not Found"})


def test_rest_api_answers_403_missing_authentication_token() -> None:
    table = RouteTable([Route("Users", REST_API, "GET", "/users/{id}", payload_format="1.0")])
    for method, path in (("GET", "/nope"), ("POST", "/users/1"), ("GET", "/users")):
        answer = table.match(method, path)
        assert answer is MISSING_TOKEN
        assert answer.status == 403
        assert json.loads(answer.body) == {"message": "Missing Authentication Token"}
    found = _match(table, "GET", "/users/7")
    assert (found.resource, found.payload_format) == ("/users/{id}", "1.0")


def test_http_api_preflight() -> None:
    cors = Cors.from_config(
        {
            "AllowOrigins": ["https://app.example.com"],
            "AllowMethods": ["GET", "POST"],
            "AllowHeaders": ["Content-Type"],
            "MaxAge": 600,
            "AllowCredentials": True,
        }
    )
    table = RouteTable([Route("Fn", HTTP_API, "GET", "/items", cors=cors)])
    answer = table.match(
        "OPTIONS",
        "/items",
        [
            ("Origin", "https://app.example.com"),
            ("Access-Control-Request-Method", "POST"),
            ("Access-Control-Request-Headers", "content-type"),
        ],
    )
    assert isinstance(answer, Reply) and answer.status == 204
    assert dict(answer.headers) == {
        "access-control-allow-origin": "https://app.example.com",
        "access-control-allow-methods": "GET,POST",
        "access-control-allow-headers": "Content-Type",
        "access-control-max-age": "600",
        "access-control-allow-credentials": "true",
    }
    refused = table.match(
        "OPTIONS",
        "/items",
        [("Origin", "https://evil.example"), ("Access-Control-Request-Method", "GET")],
    )
    assert isinstance(refused, Reply) and (refused.status, refused.headers) == (204, [])
    # Not a preflight (no Origin): an OPTIONS request is routed like any other.
    assert table.match("OPTIONS", "/items") is NOT_FOUND
    assert cors is not None
    assert cors.response_headers("https://app.example.com") == [
        ("access-control-allow-origin", "https://app.example.com"),
        ("access-control-allow-credentials", "true"),
    ]
    assert cors.response_headers("https://evil.example") == []


def test_rest_preflight_from_sam_cors() -> None:
    cors = Cors.from_rest({"AllowOrigin": "'*'", "AllowHeaders": "'Content-Type,X-Api-Key'"})
    table = RouteTable(
        [
            Route("Get", REST_API, "GET", "/users/{id}", payload_format="1.0", cors=cors),
            Route("Put", REST_API, "PUT", "/users/{id}", payload_format="1.0", cors=cors),
        ]
    )
    answer = table.match(
        "OPTIONS", "/users/1", [("origin", "http://x"), ("access-control-request-method", "PUT")]
    )
    assert isinstance(answer, Reply) and answer.status == 200
    headers = dict(answer.headers)
    assert headers["access-control-allow-origin"] == "*"
    assert headers["access-control-allow-methods"] == "GET,OPTIONS,PUT"
    assert headers["access-control-allow-headers"] == "Content-Type,X-Api-Key"
    assert Cors.from_rest("'https://a.example'") == Cors(allow_origins=("https://a.example",))


def test_routes_of_the_template() -> None:
    template = load_template(APP_TEMPLATE)
    table = RouteTable.from_template(template)
    hello = _match(table, "GET", "/hello")
    assert (hello.function, hello.payload_format, hello.stage) == (
        "HelloFunction",
        "2.0",
        "$default",
    )
    user = _match(table, "GET", "/users/ada")
    assert (user.function, user.path_parameters) == ("UsersFunction", {"id": "ada"})
    assert (user.payload_format, user.stage, user.resource) == ("1.0", "Prod", "/users/{id}")
    assert table.match("GET", "/nowhere") is NOT_FOUND
    # The HTTP API's CORS (from Globals.HttpApi) answers preflights.
    answer = table.match(
        "OPTIONS",
        "/hello",
        [("Origin", "https://app.example.com"), ("Access-Control-Request-Method", "GET")],
    )
    assert isinstance(answer, Reply)
    assert ("access-control-max-age", "600") in answer.headers
    assert table.describe() == [
        "GET /hello -> HelloFunction (HTTP API, payload 2.0)",
        "ANY /files/{proxy+} -> HelloFunction (HTTP API, payload 2.0)",
        "GET /users/{id} -> UsersFunction (REST API, payload 1.0)",
    ]


def test_function_urls_of_a_template(tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    path = tmp_path / "template.yaml"
    path.write_text(
        textwrap.dedent(
            """\
            Resources:
              Web:
                Type: AWS::Serverless::Function
                Properties:
                  CodeUri: src/
                  Handler: app.handler
                  FunctionUrlConfig:
                    AuthType: NONE
                    Cors:
                      AllowOrigins: ["*"]
                      AllowMethods: ["*"]
                      ExposeHeaders: [x-request-id]
              Plain:
                Type: AWS::Serverless::Function
                Properties:
                  CodeUri: src/
                  Handler: app.handler
            """
        )
    )
    urls = function_urls(load_template(path))
    assert list(urls) == ["Web"]
    web = urls["Web"]
    found = web.match("DELETE", "/any/path")
    assert isinstance(found, RouteMatch)
    assert (found.function, found.route_key, found.payload_format) == ("Web", "$default", "2.0")
    preflight = web.match(
        "OPTIONS",
        "/x",
        [("Origin", "http://localhost:3000"), ("Access-Control-Request-Method", "PATCH")],
    )
    assert isinstance(preflight, Reply) and preflight.status == 200
    assert dict(preflight.headers)["access-control-allow-origin"] == "*"
    assert url_function("web.lambda-url.localhost:8080", urls) is web
    assert url_function("Plain.lambda-url.localhost", urls) is None
    assert url_function("localhost:8080", urls) is None


def test_events_carry_the_route() -> None:
    from runtime.emulator.http_front import HttpRequest, api_gateway_event, function_url_event
    from runtime.emulator.routes import apply_route

    table = RouteTable.from_template(load_template(APP_TEMPLATE))
    request = HttpRequest("GET", "/users/ada%20l?x=1", [("Host", "localhost:3000")])
    match = _match(table, "GET", request.target)
    event = apply_route(api_gateway_event(request, request_id="r1"), match)
    assert event["resource"] == "/users/{id}"
    assert event["pathParameters"] == {"id": "ada l"}
    assert event["stageVariables"] is None
    assert event["queryStringParameters"] == {"x": "1"}
    context = event["requestContext"]
    assert (context["resourcePath"], context["stage"], context["path"]) == (
        "/users/{id}",
        "Prod",
        "/Prod/users/ada%20l",
    )

    hello = HttpRequest("GET", "/hello", [("Host", "localhost:3000")])
    event2 = apply_route(function_url_event(hello, request_id="r2"), _match(table, "GET", "/hello"))
    assert event2["routeKey"] == "GET /hello"
    assert event2["requestContext"]["routeKey"] == "GET /hello"
    assert "pathParameters" not in event2 and "stageVariables" not in event2


def test_http_routes_pick_function_urls_by_host_then_api_routes() -> None:
    from runtime.emulator.routes import FunctionUrl, HttpRoutes

    table = RouteTable([_http("GET", "/hello", "Hello")])
    urls = {"Web": FunctionUrl("Web")}
    routes = HttpRoutes(table, urls)
    by_host = routes.resolve("POST", "/x", [("Host", "web.lambda-url.localhost:3000")])
    assert isinstance(by_host, RouteMatch) and by_host.function == "Web"
    assert _function(routes.resolve("GET", "/hello", [("Host", "localhost:3000")])) == "Hello"
    assert routes.resolve("GET", "/x", [("Host", "localhost:3000")]) is NOT_FOUND
    # A lone function URL and no API: it takes the whole port.
    only_url = HttpRoutes(RouteTable([]), urls)
    assert _function(only_url.resolve("GET", "/anything")) == "Web"
    assert not HttpRoutes(RouteTable([]), {})
    # The template's: StreamFunction's URL by host, the APIs otherwise.
    app = HttpRoutes.from_template(load_template(APP_TEMPLATE))
    host = [("Host", "streamfunction.lambda-url.localhost")]
    assert _function(app.resolve("GET", "/", host)) == "StreamFunction"
    assert app.urls["StreamFunction"].invoke_mode == "RESPONSE_STREAM"
    assert _function(app.resolve("GET", "/users/1")) == "UsersFunction"


def _function(result: RouteMatch | Reply) -> str:
    assert isinstance(result, RouteMatch), result
    return result.function


def test_a_single_function_is_a_catch_all_route() -> None:
    from runtime.emulator.routes import HttpRoutes

    url = HttpRoutes.single("fn")
    found = url.resolve("PATCH", "/a/b", [("Host", "localhost:3000")])
    assert isinstance(found, RouteMatch)
    assert (found.function, found.route.kind, found.route_key) == ("fn", "FunctionUrl", "$default")
    # Payload 1.0: a REST API's root and {proxy+} resources, as API Gateway's proxy setup.
    rest = HttpRoutes.single("fn", "1.0")
    root = rest.resolve("GET", "/")
    deep = rest.resolve("DELETE", "/a/b%2Fc")
    assert isinstance(root, RouteMatch) and isinstance(deep, RouteMatch)
    assert (root.resource, root.path_parameters, root.stage) == ("/", None, "local")
    assert (deep.resource, deep.path_parameters) == ("/{proxy+}", {"proxy": "a/b/c"})
