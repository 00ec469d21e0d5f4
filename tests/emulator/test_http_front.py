"""HTTP requests to events and function results to HTTP responses, as function URLs do it."""

from __future__ import annotations

import base64
import json

import pytest

from runtime.emulator.http_front import (
    FORMAT_1_0,
    HttpReply,
    HttpRequest,
    PreludeError,
    PreludeReader,
    StreamHead,
    api_gateway_event,
    error_reply,
    function_url_event,
    map_result,
    parse_prelude,
)
from runtime.streaming import HttpResponse, encode_prelude

NOW = 1583348638.390  # 2020-03-04T19:03:58.390Z

REQUEST = HttpRequest(
    "POST",
    "/my/path?parameter1=value1&parameter1=value2&parameter2=a%20b&empty=",
    [
        ("Host", "127.0.0.1:9000"),
        ("User-Agent", "agent/1.0"),
        ("Header2", "value1"),
        ("header2", "value2"),
        ("Cookie", "cookie1=a; cookie2=b"),
        ("Cookie", "cookie3=c"),
        ("Content-Type", "application/json; charset=utf-8"),
    ],
    b'{"hello": "client"}',
    source_ip="10.0.0.7",
)


def test_function_url_event_has_the_2_0_shape() -> None:
    event = function_url_event(REQUEST, request_id="rid-1", now=NOW)
    assert event == {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": "/my/path",
        "rawQueryString": "parameter1=value1&parameter1=value2&parameter2=a%20b&empty=",
        "cookies": ["cookie1=a", "cookie2=b", "cookie3=c"],
        "headers": {
            "host": "127.0.0.1:9000",
            "user-agent": "agent/1.0",
            "header2": "value1,value2",
            "content-type": "application/json; charset=utf-8",
        },
        "queryStringParameters": {
            "parameter1": "value1,value2",
            "parameter2": "a b",
            "empty": "",
        },
        "requestContext": {
            "accountId": "anonymous",
            "apiId": "localfunctionurl",
            "domainName": "127.0.0.1:9000",
            "domainPrefix": "127",
            "http": {
                "method": "POST",
                "path": "/my/path",
                "protocol": "HTTP/1.1",
                "sourceIp": "10.0.0.7",
                "userAgent": "agent/1.0",
            },
            "requestId": "rid-1",
            "routeKey": "$default",
            "stage": "$default",
            "time": "04/Mar/2020:19:03:58 +0000",
            "timeEpoch": 1583348638390,
        },
        "body": '{"hello": "client"}',
        "isBase64Encoded": False,
    }


def test_function_url_event_without_query_body_or_cookies() -> None:
    event = function_url_event(HttpRequest("GET", "/"), request_id="r", now=NOW)
    assert event["rawPath"] == "/" and event["rawQueryString"] == ""
    for absent in ("queryStringParameters", "cookies", "body"):
        assert absent not in event
    assert event["isBase64Encoded"] is False
    assert event["headers"] == {}


@pytest.mark.parametrize(
    ("content_type", "body", "expected", "encoded"),
    [
        ("text/plain", "héllo".encode(), "héllo", False),
        ("application/vnd.api+json", b"{}", "{}", False),
        ("application/x-www-form-urlencoded", b"a=1", "a=1", False),
        ("image/png", b"\x89PNG", base64.b64encode(b"\x89PNG").decode(), True),
        (None, b"raw", base64.b64encode(b"raw").decode(), True),
        # Declared text but not UTF-8: sent as base64 rather than mangled.
        ("text/plain", b"\xff\xfe", base64.b64encode(b"\xff\xfe").decode(), True),
    ],
)
def test_bodies_are_text_or_base64(
    content_type: str | None, body: bytes, expected: str, encoded: bool
) -> None:
    headers = [("Content-Type", content_type)] if content_type else []
    event = function_url_event(HttpRequest("PUT", "/u", headers, body), request_id="r", now=NOW)
    assert (event["body"], event["isBase64Encoded"]) == (expected, encoded)
    rest = api_gateway_event(HttpRequest("PUT", "/u", headers, body), request_id="r", now=NOW)
    assert (rest["body"], rest["isBase64Encoded"]) == (expected, encoded)


def test_api_gateway_event_has_the_1_0_shape() -> None:
    event = api_gateway_event(REQUEST, request_id="rid-2", now=NOW)
    assert event["resource"] == "/{proxy+}"
    assert event["path"] == "/my/path"
    assert event["httpMethod"] == "POST"
    assert event["headers"] == {
        "Host": "127.0.0.1:9000",
        "User-Agent": "agent/1.0",
        "Header2": "value1",
        "header2": "value2",
        "Cookie": "cookie3=c",
        "Content-Type": "application/json; charset=utf-8",
    }
    assert event["multiValueHeaders"]["Cookie"] == ["cookie1=a; cookie2=b", "cookie3=c"]  # type: ignore[index]
    assert event["queryStringParameters"] == {
        "parameter1": "value2",
        "parameter2": "a b",
        "empty": "",
    }
    assert event["multiValueQueryStringParameters"] == {
        "parameter1": ["value1", "value2"],
        "parameter2": ["a b"],
        "empty": [""],
    }
    assert event["pathParameters"] == {"proxy": "my/path"}
    assert event["stageVariables"] is None
    context = event["requestContext"]
    assert isinstance(context, dict)
    assert context["httpMethod"] == "POST"
    assert context["path"] == "/local/my/path"
    assert context["resourcePath"] == "/{proxy+}"
    assert context["identity"]["sourceIp"] == "10.0.0.7"
    assert context["identity"]["userAgent"] == "agent/1.0"
    assert context["requestTimeEpoch"] == 1583348638390
    assert context["requestTime"] == "04/Mar/2020:19:03:58 +0000"
    assert event["body"] == '{"hello": "client"}'
    assert event["isBase64Encoded"] is False


def test_api_gateway_event_nulls_where_there_is_nothing() -> None:
    event = api_gateway_event(HttpRequest("GET", "/"), request_id="r", now=NOW)
    for key in (
        "headers",
        "multiValueHeaders",
        "queryStringParameters",
        "multiValueQueryStringParameters",
        "pathParameters",
        "body",
    ):
        assert event[key] is None, key


# --- results ---------------------------------------------------------------------------


def test_described_result_maps_to_status_headers_cookies_body() -> None:
    result = {
        "statusCode": 201,
        "headers": {"Content-Type": "text/plain", "X-Count": 3},
        "cookies": ["a=1; Secure", "b=2"],
        "body": "créé",
    }
    reply = map_result(json.dumps(result).encode())
    assert reply == HttpReply(
        201,
        [
            ("Content-Type", "text/plain"),
            ("X-Count", "3"),
            ("set-cookie", "a=1; Secure"),
            ("set-cookie", "b=2"),
        ],
        "créé".encode(),
    )


def test_base64_body_is_decoded() -> None:
    payload = {
        "statusCode": 200,
        "body": base64.b64encode(b"\x00\x01").decode(),
        "isBase64Encoded": True,
    }
    reply = map_result(json.dumps(payload).encode())
    assert reply.body == b"\x00\x01"
    assert ("content-type", "application/json") in reply.headers  # nothing said otherwise


def test_described_result_without_body_is_empty() -> None:
    assert map_result(b'{"statusCode": 204}') == HttpReply(204, [], b"")


@pytest.mark.parametrize(
    ("payload", "body"),
    [
        (b'{"message": "hi"}', b'{"message": "hi"}'),
        (b'"Hello (world)"', b"Hello (world)"),
        (b"[1, 2]", b"[1, 2]"),
        (b"42", b"42"),
        (b"null", b"null"),
    ],
)
def test_any_other_json_is_a_200_json_response(payload: bytes, body: bytes) -> None:
    assert map_result(payload) == HttpReply(200, [("content-type", "application/json")], body)


@pytest.mark.parametrize(
    "payload",
    [
        b"not json",
        b'{"statusCode": "abc"}',
        b'{"statusCode": 99}',
        b'{"statusCode": 200, "body": {"nested": true}}',
        b'{"statusCode": 200, "body": "!!", "isBase64Encoded": true}',
        b'{"statusCode": 200, "cookies": "a=1"}',
        b'{"statusCode": 200, "headers": {"x": {"y": 1}}}',
    ],
)
def test_malformed_results_are_a_502(payload: bytes) -> None:
    assert map_result(payload) == error_reply()
    assert error_reply().status == 502


def test_rest_api_format_needs_a_description_and_merges_multi_value_headers() -> None:
    assert map_result(b'{"message": "hi"}', version=FORMAT_1_0).status == 502
    payload = {
        "statusCode": "200",
        "headers": {"X-One": "1", "Set-Cookie": "ignored"},
        "multiValueHeaders": {"Set-Cookie": ["a=1", "b=2"]},
        "body": "ok",
    }
    reply = map_result(json.dumps(payload).encode(), version=FORMAT_1_0)
    assert reply == HttpReply(
        200, [("X-One", "1"), ("Set-Cookie", "a=1"), ("Set-Cookie", "b=2")], b"ok"
    )


# --- streamed preludes -----------------------------------------------------------------


def test_prelude_round_trips_from_the_runtimes_encoder() -> None:
    head = HttpResponse(418, {"content-type": "text/event-stream"}, ["s=1", "t=2"])
    reader = PreludeReader()
    got = reader.feed(encode_prelude(head) + b"data: 1\n\n")
    assert got == (
        StreamHead(418, {"content-type": "text/event-stream"}, ["s=1", "t=2"]),
        b"data: 1\n\n",
    )
    assert got[0].header_list() == [
        ("content-type", "text/event-stream"),
        ("set-cookie", "s=1"),
        ("set-cookie", "t=2"),
    ]
    with pytest.raises(RuntimeError):
        reader.feed(b"more")


def test_prelude_split_byte_by_byte_even_inside_the_separator() -> None:
    prelude = encode_prelude(HttpResponse(200, {"a": "b"}))
    reader = PreludeReader()
    results = [reader.feed(prelude[i : i + 1]) for i in range(len(prelude))]
    assert all(r is None for r in results[:-1])
    assert results[-1] == (StreamHead(200, {"a": "b"}, []), b"")
    # Cut in the middle of the separator; the body's own leading NUL stays body.
    reader = PreludeReader()
    assert reader.feed(prelude[:-4]) is None
    assert reader.feed(prelude[-4:] + b"\x00body") == (StreamHead(200, {"a": "b"}, []), b"\x00body")


def test_prelude_defaults_and_errors() -> None:
    assert parse_prelude(b"{}") == StreamHead(200, {}, [])
    assert parse_prelude(b"") == StreamHead(200, {}, [])
    with pytest.raises(PreludeError, match="not valid JSON"):
        parse_prelude(b"{oops")
    with pytest.raises(PreludeError, match="not a JSON object"):
        parse_prelude(b"[1]")
    with pytest.raises(PreludeError, match="statusCode"):
        parse_prelude(b'{"statusCode": 700}')
    with pytest.raises(PreludeError, match="cookies"):
        parse_prelude(b'{"cookies": [1]}')
    with pytest.raises(PreludeError, match="no prelude separator"):
        PreludeReader().feed(b"x" * (64 * 1024 + 1))


def test_a_result_an_api_cannot_map_is_that_api_s_error() -> None:
    from runtime.emulator.function_url import failure_reply

    rest = map_result(b'{"not": "a response"}', version="1.0", error=lambda: failure_reply("Api"))
    assert (rest.status, rest.body) == (502, b'{"message": "Internal server error"}')
    http_api = map_result(b'{"statusCode": 99}', error=lambda: failure_reply("HttpApi"))
    assert (http_api.status, http_api.body) == (500, b'{"message":"Internal Server Error"}')
    assert map_result(b"{bad json").status == 502  # a function URL's
