"""Event decoding and result encoding: what a handler receives and what the caller gets back."""

from __future__ import annotations

import dataclasses
import datetime
import decimal
import enum
import json
import uuid
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from runtime.errors import LambdaError
from runtime.marshal import MAX_RESPONSE_BYTES, decode_event, encode_result

MIB = 1024 * 1024


def encoded_json(result: Any) -> Any:
    body, content_type = encode_result(result)
    assert content_type == "application/json"
    return json.loads(bytes(body))


def marshal_error(result: Any) -> LambdaError:
    with pytest.raises(LambdaError) as info:
        encode_result(result)
    assert info.value.error_type == "Runtime.MarshalError"
    return info.value


# --- decode_event ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "content_type",
    [
        None,
        "",
        "application/json",
        "application/json; charset=utf-8",
        "Application/JSON",
        "application/vnd.api+json",
        "application/problem+json; charset=utf-8",
    ],
)
def test_json_events_are_decoded(content_type: str | None) -> None:
    body = '{"order": 7, "items": ["é", null, 1.5], "ok": true}'.encode()
    assert decode_event(body, content_type) == {"order": 7, "items": ["é", None, 1.5], "ok": True}


@pytest.mark.parametrize(
    "content_type", ["text/plain", "application/octet-stream", "image/png", "application/jsonx"]
)
def test_other_content_types_are_passed_as_the_same_bytes(content_type: str) -> None:
    body = b'{"not": "decoded"}\xff\x00'
    event = decode_event(body, content_type)
    assert isinstance(event, bytes)
    assert event == body


def test_json_scalars_are_events_too() -> None:
    assert decode_event(b'"hello"', "application/json") == "hello"
    assert decode_event(b"7", None) == 7
    assert decode_event(b"null", None) is None


def test_empty_json_body_is_none() -> None:
    assert decode_event(b"", "application/json") is None
    assert decode_event(b"", None) is None


def test_empty_binary_body_stays_bytes() -> None:
    assert decode_event(b"", "application/octet-stream") == b""


@pytest.mark.parametrize("body", [b"{", b"{'single': 'quotes'}", b"\xff\xfe", b"[1,]", b"1 2"])
def test_invalid_json_is_an_unmarshal_error(body: bytes) -> None:
    with pytest.raises(LambdaError) as info:
        decode_event(body, "application/json")
    assert info.value.error_type == "Runtime.UnmarshalError"
    assert info.value.message


# --- encode_result: raw and plain JSON --------------------------------------------------------


@pytest.mark.parametrize(
    "result",
    [b"\x00\x01binary\xff", bytearray(b"\x00ba\xff"), memoryview(b"\x00mv\xff")],
    ids=["bytes", "bytearray", "memoryview"],
)
def test_binary_results_are_sent_raw(result: bytes | bytearray | memoryview) -> None:
    body, content_type = encode_result(result)
    assert content_type == "application/octet-stream"
    assert bytes(body) == bytes(result)


@pytest.mark.parametrize(
    "result",
    [
        "hello",
        "üñíçødé ☃ 😀",
        0,
        -17,
        1.5,
        True,
        None,
        [],
        {},
        [1, "two", None, 3.25],
        {"a": {"b": [1, {"c": None}]}},
        2**63 - 1,
        -(2**63),
        2**64 - 1,
    ],
)
def test_plain_values_round_trip_through_json(result: Any) -> None:
    assert encoded_json(result) == result


def test_tuples_become_lists() -> None:
    assert encoded_json({"pair": (1, "a"), "nested": ((1, 2), ())}) == {
        "pair": [1, "a"],
        "nested": [[1, 2], []],
    }


def test_non_string_keys_become_strings_like_json_dumps_makes_them() -> None:
    result = {1: "int", 2.5: "float", None: "none", False: "bool"}
    assert encoded_json(result) == json.loads(json.dumps(result))


def test_uuid_and_datetime_keys_become_strings() -> None:
    key = uuid.UUID("12345678-1234-5678-1234-567812345678")
    day = datetime.date(2024, 2, 29)
    assert encoded_json({key: 1, day: 2}) == {str(key): 1, day.isoformat(): 2}


@dataclasses.dataclass
class Address:
    city: str
    zip_code: str


@dataclasses.dataclass
class Customer:
    id: uuid.UUID
    name: str
    since: datetime.date
    addresses: list[Address]


class Color(enum.Enum):
    RED = "red"
    BLUE = 2


def test_dataclasses_become_objects() -> None:
    customer_id = uuid.uuid4()
    customer = Customer(customer_id, "Ada", datetime.date(2020, 1, 31), [Address("Paris", "75001")])
    assert encoded_json({"customer": customer}) == {
        "customer": {
            "id": str(customer_id),
            "name": "Ada",
            "since": "2020-01-31",
            "addresses": [{"city": "Paris", "zip_code": "75001"}],
        }
    }


@pytest.mark.parametrize(
    "value",
    [
        datetime.datetime(2024, 1, 2, 3, 4, 5, tzinfo=datetime.timezone.utc),
        datetime.datetime(2024, 1, 2, 3, 4, 5, 123456,
                          tzinfo=datetime.timezone(datetime.timedelta(hours=-5))),
        datetime.datetime(2024, 1, 2, 3, 4, 5),
    ],
)
def test_datetimes_become_iso_strings(value: datetime.datetime) -> None:
    encoded = encoded_json({"when": value})["when"]
    assert datetime.datetime.fromisoformat(encoded) == value


def test_dates_times_and_uuids_become_strings() -> None:
    ident = uuid.uuid4()
    result = encoded_json([datetime.date(2024, 2, 29), datetime.time(13, 14, 15), ident])
    assert datetime.date.fromisoformat(result[0]) == datetime.date(2024, 2, 29)
    assert datetime.time.fromisoformat(result[1]) == datetime.time(13, 14, 15)
    assert uuid.UUID(result[2]) == ident


def test_enums_become_their_values() -> None:
    assert encoded_json([Color.RED, Color.BLUE]) == ["red", 2]


@pytest.mark.parametrize(
    "digits",
    ["19.990", "0.1", "-0.000001", "12345678901234567890.123456789012345678", "1E+2", "0", "-0"],
)
def test_decimals_keep_every_digit(digits: str) -> None:
    body, _ = encode_result({"price": decimal.Decimal(digits)})
    # parse_float/parse_int get the number's literal text: the exact digits that were sent.
    literal = json.loads(bytes(body), parse_float=str, parse_int=str)["price"]
    assert literal == digits
    assert decimal.Decimal(literal) == decimal.Decimal(digits)


@pytest.mark.parametrize("value", ["NaN", "sNaN", "Infinity", "-Infinity"])
def test_non_finite_decimals_are_a_marshal_error(value: str) -> None:
    error = marshal_error({"price": decimal.Decimal(value)})
    assert "Decimal" in error.message
    assert "result['price']" in error.message


# --- encode_result: what cannot be sent -------------------------------------------------------


class Widget:
    pass


@dataclasses.dataclass
class Order:
    id: int
    items: list[Any]


def test_unserialisable_object_names_its_type_and_path() -> None:
    result = {"items": [{"when": 1}, {"when": Widget()}], "ok": True}
    error = marshal_error(result)
    assert "Widget" in error.message
    assert "result['items'][1]['when']" in error.message


def test_unserialisable_object_inside_a_dataclass_names_the_field_path() -> None:
    error = marshal_error({"order": Order(1, ["fine", Widget()])})
    assert "Widget" in error.message
    assert "result['order'].items[1]" in error.message


def test_unserialisable_top_level_result() -> None:
    error = marshal_error(Widget())
    assert "Widget" in error.message
    assert "result" in error.message


def test_sets_are_a_marshal_error_naming_set() -> None:
    error = marshal_error({"tags": {"a", "b"}})
    assert "set" in error.message
    assert "result['tags']" in error.message


def test_unserialisable_key_is_named() -> None:
    error = marshal_error({(1, 2): "tuple key"})
    assert "tuple" in error.message


def test_functions_and_generators_are_a_marshal_error() -> None:
    assert "function" in marshal_error({"f": json_string_of_size}).message
    assert "generator" in marshal_error([1, (x for x in "ab")]).message


def test_lone_surrogate_string_is_a_marshal_error() -> None:
    marshal_error({"name": b"caf\xe9".decode("utf-8", "surrogateescape")})


def test_cyclic_list_is_a_marshal_error() -> None:
    cycle: list[Any] = [1]
    cycle.append(cycle)
    marshal_error({"cycle": cycle})


def test_cyclic_dict_is_a_marshal_error() -> None:
    cycle: dict[str, Any] = {}
    cycle["self"] = cycle
    marshal_error(cycle)


def test_cyclic_dataclass_is_a_marshal_error() -> None:
    order = Order(1, [])
    order.items.append(order)
    marshal_error({"order": order})


def test_shared_but_acyclic_values_are_fine() -> None:
    shared = {"k": [1, 2]}
    assert encoded_json({"a": shared, "b": [shared, shared]}) == {
        "a": {"k": [1, 2]},
        "b": [{"k": [1, 2]}, {"k": [1, 2]}],
    }


def test_deep_but_finite_nesting_is_encoded() -> None:
    deep: Any = "leaf"
    for _ in range(300):
        deep = [deep]
    decoded = encoded_json(deep)
    for _ in range(300):
        decoded = decoded[0]
    assert decoded == "leaf"


# --- big integers (orjson refuses them; the slow path must not) -------------------------------


@pytest.mark.parametrize("value", [2**64, -(2**63) - 1, 10**40, -(10**40)])
def test_integers_over_64_bits_are_encoded_exactly(value: int) -> None:
    assert encoded_json({"n": value, "list": [value, 1]}) == {"n": value, "list": [value, 1]}


def test_big_integer_alongside_other_supported_types() -> None:
    when = datetime.datetime(2024, 1, 2, 3, 4, 5, tzinfo=datetime.timezone.utc)
    ident = uuid.uuid4()
    result = encoded_json(
        {"n": 2**70, "when": when, "id": ident, "addr": Address("Oslo", "0150"), "c": Color.RED}
    )
    assert result["n"] == 2**70
    assert datetime.datetime.fromisoformat(result["when"]) == when
    assert uuid.UUID(result["id"]) == ident
    assert result["addr"] == {"city": "Oslo", "zip_code": "0150"}
    assert result["c"] == "red"


def test_big_integer_with_an_unserialisable_object_still_names_it() -> None:
    error = marshal_error({"n": 2**70, "x": [Widget()]})
    assert "Widget" in error.message
    assert "result['x'][0]" in error.message


def test_big_integer_does_not_cost_decimals_their_digits() -> None:
    body, _ = encode_result({"n": 2**70, "price": decimal.Decimal("19.990")})
    assert json.loads(bytes(body), parse_float=str)["price"] == "19.990"


class Money(decimal.Decimal):
    pass


def test_decimal_subclass_keeps_every_digit() -> None:
    body, _ = encode_result({"price": Money("19.990")})
    assert json.loads(bytes(body), parse_float=str)["price"] == "19.990"


def test_big_integer_does_not_break_uuid_keys() -> None:
    key = uuid.UUID("12345678-1234-5678-1234-567812345678")
    assert encoded_json({key: 2**70}) == {str(key): 2**70}


# --- response size limit ----------------------------------------------------------------------


def test_the_limit_is_lambdas_6_mib_plus_a_small_allowance() -> None:
    assert 6 * MIB <= MAX_RESPONSE_BYTES < 6 * MIB + 1024


def json_string_of_size(size: int) -> str:
    return "a" * (size - 2)  # plus the two quotes


def test_result_of_exactly_the_limit_is_sent() -> None:
    body, _ = encode_result(json_string_of_size(MAX_RESPONSE_BYTES))
    assert len(body) == MAX_RESPONSE_BYTES
    raw, _ = encode_result(b"x" * MAX_RESPONSE_BYTES)
    assert len(raw) == MAX_RESPONSE_BYTES


@pytest.mark.parametrize(
    "result",
    [
        json_string_of_size(MAX_RESPONSE_BYTES + 1),
        b"x" * (MAX_RESPONSE_BYTES + 1),
        memoryview(bytearray(MAX_RESPONSE_BYTES + 1)),
        {"rows": ["r" * 1000] * (7 * 1024)},
    ],
    ids=["json-str", "bytes", "memoryview", "dict"],
)
def test_result_over_the_limit_is_an_error_with_size_and_limit(result: Any) -> None:
    if isinstance(result, dict):
        size = len(json.dumps(result, separators=(",", ":")))
    elif isinstance(result, str):
        size = len(result) + 2
    else:
        size = len(result)
    with pytest.raises(LambdaError) as info:
        encode_result(result)
    assert info.value.error_type == "Function.ResponseSizeTooLarge"
    assert str(size) in info.value.message
    assert str(MAX_RESPONSE_BYTES) in info.value.message


def test_size_counts_bytes_not_characters() -> None:
    # "é" is 2 bytes in UTF-8: this result is under the limit in characters, over it in bytes.
    with pytest.raises(LambdaError) as info:
        encode_result("é" * (MAX_RESPONSE_BYTES // 2))
    assert info.value.error_type == "Function.ResponseSizeTooLarge"


# --- events decode exactly as json.loads decodes them -----------------------------------------


@pytest.mark.parametrize(
    "raw",
    [
        b'{"id": 12345678901234567890123}',
        b"[18446744073709551616, -9223372036854775809]",
        b"[18446744073709551615, -9223372036854775808]",  # orjson's own range edges
        b'{"n": -' + b"7" * 400 + b"}",
        b'{"ns": 1545082649183000000, "s": "12345678901234567890123"}',
    ],
)
def test_integers_of_any_size_reach_the_handler_exactly(raw: bytes) -> None:
    event = decode_event(raw, "application/json")
    assert event == json.loads(raw)
    assert repr(event) == repr(json.loads(raw))  # ints stay ints, not floats that compare equal


def test_big_integer_in_a_string_only_is_decoded_too() -> None:
    assert decode_event(b'{"card": "123456789012345678901234"}', None) == {
        "card": "123456789012345678901234"
    }


@pytest.mark.parametrize(
    "raw",
    [
        b'["\\ud800"]',
        b'{"\\udfff": "x\\ud83d"}',
        b"1e400",
        b"[-1E999]",
    ],
)
def test_valid_json_orjson_refuses_decodes_as_the_stdlib_does(raw: bytes) -> None:
    assert decode_event(raw, None) == json.loads(raw)


def test_nesting_deeper_than_orjson_allows_is_decoded() -> None:
    event = decode_event(b"[" * 3000 + b'{"deep": [1, 2]}' + b"]" * 3000, None)
    for _ in range(3000):  # unwrapped in a loop: == on it would recurse too deep
        assert isinstance(event, list) and len(event) == 1
        event = event[0]
    assert event == {"deep": [1, 2]}


@pytest.mark.parametrize(
    "raw",
    [b"NaN", b"[Infinity]", b"[1,]", b'["\xff"]', b"\xef\xbb\xbf{}", b'["\\ud800"', b"[" * 20_000],
)
def test_invalid_json_stays_an_unmarshal_error_on_the_exact_path(raw: bytes) -> None:
    with pytest.raises(LambdaError) as info:
        decode_event(raw, None)
    assert info.value.error_type == "Runtime.UnmarshalError"
    assert str(info.value).startswith("Unable to unmarshal input: ")


def test_nesting_past_the_bound_is_refused_with_a_clear_message() -> None:
    raw = b"[" * 30_000 + b"]" * 30_000
    with pytest.raises(LambdaError, match="nested deeper than 10000 levels"):
        decode_event(raw, None)


def test_exact_decoding_leaves_the_recursion_limit_alone() -> None:
    import sys

    before = sys.getrecursionlimit()
    decode_event(b"[" * 3000 + b"]" * 3000, None)
    assert sys.getrecursionlimit() == before


def test_big_integer_keys_are_encoded_as_json_dumps_writes_them() -> None:
    assert encoded_json({2**70: 2**70, 1: -(2**65)}) == json.loads(
        json.dumps({2**70: 2**70, 1: -(2**65)})
    )


_json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**200), max_value=2**200)
    | st.floats(allow_nan=False, allow_infinity=False)
    # Lone surrogates included: json.dumps writes them as \udXXX escapes, which orjson refuses.
    | st.text(st.characters(exclude_categories=()))
    | st.from_regex(r"\A[0-9]{15,30}\Z")  # digit runs inside strings: the big-int check's bait
)
_json_values = st.recursive(
    _json_scalars,
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(), inner, max_size=5),
    max_leaves=30,
)


@settings(max_examples=300, deadline=None)
@given(_json_values, st.booleans(), st.booleans())
def test_decode_event_matches_json_loads(value: Any, compact: bool, ascii_only: bool) -> None:
    text = json.dumps(value, separators=(",", ":") if compact else None, ensure_ascii=ascii_only)
    try:
        raw = text.encode()
    except UnicodeEncodeError:  # a lone surrogate has no UTF-8 form unless escaped
        raw = json.dumps(value).encode()
    decoded = decode_event(raw, "application/json")
    expected = json.loads(raw)
    assert decoded == expected
    assert repr(decoded) == repr(expected)


def test_a_long_digit_run_inside_a_string_keeps_the_fast_path(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A hex id such as "31533077878597799728fb77..." holds 20 digits in a row: it is not a
    number, so the event must not be decoded a second time (a 1 MB event took 4x as long).
    Break caught: the big-int check looking at digit runs without their context."""
    import runtime.marshal as marshal

    def slow_path(*args: object) -> object:
        raise AssertionError("decoded again with json.loads")

    monkeypatch.setattr(marshal, "_decode_exact", slow_path)
    body = (
        b'{"id": "31533077878597799728fb77633efb", "n": [1, 2.5], '
        b'"s": "a 12345678901234567890x"}'
    )
    assert decode_event(body, "application/json")["id"] == "31533077878597799728fb77633efb"
    assert decode_event(b'{"f": 12345678901234567890.5}', None) == {"f": 12345678901234567890.5}


@pytest.mark.parametrize(
    "text",
    [
        "12345678901234567890123",
        "[-12345678901234567890123]",
        '{"a":12345678901234567890123}',
        '{"a": 1, "b" : 99999999999999999999 }',
        "[1,\n123456789012345678901234567890\n]",
    ],
)
def test_every_big_int_position_is_decoded_exactly(text: str) -> None:
    assert decode_event(text.encode(), None) == json.loads(text)


# --- results nested deeper than orjson's 255 levels -------------------------------------------


def nested_in_lists(depth: int, inner: Any) -> Any:
    for _ in range(depth):
        inner = [inner]
    return inner


class BigEnum(enum.Enum):
    HUGE = 2**70


class BigIntEnum(enum.IntEnum):
    HUGE = -(2**70)


@dataclasses.dataclass
class WithPrivate:
    shown: int
    _hidden: str = "private"


DEEP_LEAVES = {
    "decimal": decimal.Decimal("19.990"),
    "decimal-exponent": [decimal.Decimal("1E+2"), decimal.Decimal("-0.000001")],
    "big-ints": [2**70, -(2**65), 10**40],
    "nan-and-infinity": [float("nan"), float("inf"), float("-inf")],
    "keys": {uuid.UUID(int=1): 1, datetime.date(2024, 2, 29): 2, Color.RED: 3, 2**70: 4},
    "enums": [Color.RED, Color.BLUE, BigEnum.HUGE, BigIntEnum.HUGE],
    "dataclass": WithPrivate(2**70),
    "datetime": datetime.datetime(2024, 1, 2, 3, 4, 5, 6, tzinfo=datetime.timezone.utc),
    "text": "café ☃ \"quoted\" \\ \n",
}


@pytest.mark.parametrize("depth", [254, 300, 1000, 5000])
@pytest.mark.parametrize("leaf", DEEP_LEAVES.values(), ids=DEEP_LEAVES.keys())
def test_a_deep_result_is_written_exactly_as_a_shallow_one(leaf: Any, depth: int) -> None:
    """The body of a result nested past orjson's 255 levels is the body of the same value at the
    top, wrapped: every Decimal digit kept, NaN as null, keys as strings, big ints exact. Breaks
    caught: the old stdlib fallback sent Decimal("19.990") as 19.99 and NaN as the invalid
    JSON `NaN`, and refused UUID, date and Enum keys."""
    shallow, _ = encode_result(leaf)
    body, content_type = encode_result(nested_in_lists(depth, leaf))
    assert content_type == "application/json"
    assert bytes(body) == b"[" * depth + bytes(shallow) + b"]" * depth


def test_a_decimal_deep_in_a_result_keeps_every_digit() -> None:
    """docs/handlers.md: `Decimal("19.990")` is sent as `19.990`, however deep it sits."""
    body, _ = encode_result(nested_in_lists(300, {"price": decimal.Decimal("19.990")}))
    assert bytes(body) == b"[" * 300 + b'{"price":19.990}' + b"]" * 300


def test_big_integers_deep_in_a_result_are_exact() -> None:
    body, _ = encode_result(nested_in_lists(600, [2**70, -(2**64)]))
    assert bytes(body) == (
        b"[" * 600 + b"[1180591620717411303424,-18446744073709551616]" + b"]" * 600
    )


def test_a_result_nested_to_the_limit_is_sent_and_one_level_more_is_refused() -> None:
    from runtime.marshal import MAX_RESULT_DEPTH

    body, _ = encode_result(nested_in_lists(MAX_RESULT_DEPTH - 1, []))
    assert bytes(body) == b"[" * MAX_RESULT_DEPTH + b"]" * MAX_RESULT_DEPTH
    error = marshal_error(nested_in_lists(MAX_RESULT_DEPTH, []))
    assert error.message == (
        f"Unable to marshal response: result nested deeper than {MAX_RESULT_DEPTH} levels"
    )


def test_a_cycle_deep_in_a_result_is_named_where_it_closes() -> None:
    inner: list[Any] = [1]
    inner.append(inner)
    error = marshal_error(nested_in_lists(300, {"loop": inner}))
    assert error.message == (
        "Unable to marshal response: circular reference at result" + "[0]" * 300 + "['loop'][1]"
    )


# --- Enum members and dataclasses beside big integers -----------------------------------------


@pytest.mark.parametrize(
    ("result", "expected"),
    [
        ({"a": BigEnum.HUGE}, b'{"a":1180591620717411303424}'),
        ({"a": BigIntEnum.HUGE}, b'{"a":-1180591620717411303424}'),
        ({BigEnum.HUGE: 1}, b'{"1180591620717411303424":1}'),
        ({BigIntEnum.HUGE: 1}, b'{"-1180591620717411303424":1}'),
        (
            [Color.RED, BigEnum.HUGE, {Color.RED: Color.BLUE}],
            b'["red",1180591620717411303424,{"red":2}]',
        ),
    ],
)
def test_an_enum_whose_value_is_beyond_64_bits_is_sent_exactly(
    result: Any, expected: bytes
) -> None:
    """An Enum member is sent as its value, so one beyond 64 bits is sent exactly like such an
    int (it was a `Runtime.MarshalError`: "Integer exceeds 64-bit range")."""
    body, _ = encode_result(result)
    assert bytes(body) == expected


@dataclasses.dataclass
class Holder:
    kind: BigEnum
    keyed: dict[BigEnum, int]


def test_an_enum_beyond_64_bits_inside_a_dataclass_is_sent_exactly() -> None:
    body, _ = encode_result(Holder(BigEnum.HUGE, {BigEnum.HUGE: 1}))
    assert bytes(body) == (
        b'{"kind":1180591620717411303424,"keyed":{"1180591620717411303424":1}}'
    )


def test_a_big_integer_does_not_reveal_private_dataclass_fields() -> None:
    """orjson leaves out a dataclass's attributes named "_...", and so must the path that writes
    big integers: the same dataclass is sent the same way beside one. (It was sent with its
    private field.)"""
    plain, _ = encode_result({"n": 1, "d": WithPrivate(1)})
    body, _ = encode_result({"n": 2**70, "d": WithPrivate(1)})
    assert bytes(plain) == b'{"n":1,"d":{"shown":1}}'
    assert bytes(body) == b'{"n":1180591620717411303424,"d":{"shown":1}}'


def test_an_unserialisable_private_dataclass_field_is_not_looked_at() -> None:
    """A private field is not sent, so what it holds cannot fail the invoke, big integer or not."""
    body, _ = encode_result({"n": 2**70, "d": WithPrivate(1, Widget())})  # type: ignore[arg-type]
    assert bytes(body) == b'{"n":1180591620717411303424,"d":{"shown":1}}'


@pytest.mark.parametrize(
    "script",
    [
        # Nested past 255 levels: the deep path once cut the copy every 200 levels, so a
        # fragment was closed by 199 brackets.
        "for n in range(3300, 3700):\n"
        "    value = 'x' * n\n"
        "    for _ in range(300):\n"
        "        value = [value]\n"
        "    encode_result(value)\n",
        # A Decimal of thousands of digits 100 levels down, which orjson writes itself.
        "from decimal import Decimal\n"
        "for n in range(3600, 4000):\n"
        "    value = Decimal('1' * n)\n"
        "    for _ in range(100):\n"
        "        value = [value]\n"
        "    encode_result(value)\n",
    ],
    ids=["deep", "long-decimal"],
)
def test_results_never_make_orjson_write_past_its_buffer(script: str) -> None:
    """orjson writes the brackets that close after a raw fragment without reserving room for
    them: with about 70 of them right at the end of its buffer it writes past it (a heap
    corruption, which may crash the runtime later). Each result here has its size stepped byte
    by byte across a buffer size. Python's debug allocator checks the bytes around each block,
    so an overrun aborts the child."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    import runtime

    root = str(Path(runtime.__file__).resolve().parent.parent)
    env = {**os.environ, "PYTHONMALLOC": "malloc_debug", "PYTHONPATH": root}
    done = subprocess.run(
        [sys.executable, "-c", "from runtime.marshal import encode_result\n" + script],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr[-2000:]


@pytest.mark.parametrize("depth", [0, 100, 300])
def test_a_decimal_of_thousands_of_digits_keeps_every_digit(depth: int) -> None:
    digits = "1234567890" * 400 + ".5"
    body, _ = encode_result(nested_in_lists(depth, {"d": decimal.Decimal(digits)}))
    assert bytes(body) == b"[" * depth + b'{"d":' + digits.encode() + b"}" + b"]" * depth


def test_an_integer_too_long_for_python_to_write_is_a_marshal_error() -> None:
    """Python refuses to turn an int of more than 4,300 digits into text (unless the function
    raises the limit): the invoke fails with `Runtime.MarshalError` and Python's advice, not
    with a bare ValueError that looks like the handler's own."""
    error = marshal_error({"n": 10**5000})
    assert error.message.startswith(
        "Unable to marshal response: Exceeds the limit (4300 digits) for integer string"
    )
