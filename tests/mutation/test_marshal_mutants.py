"""Event and result promises (docs/handlers.md, "Events and results") that `make mutate` showed
no test held (see tests/mutation/README.md)."""

from __future__ import annotations

import dataclasses
import enum
import json
from decimal import Decimal

import pytest

from runtime.errors import LambdaError
from runtime.marshal import decode_event, encode_result


def test_nan_deep_inside_an_event_is_refused() -> None:
    """Catches ``_decode_deep`` built with ``parse_constant=None``: an event nested past
    orjson's 1,024 levels takes the deep decoder, which must still refuse ``NaN``."""
    body = ("[" * 2000 + "NaN" + "]" * 2000).encode()
    with pytest.raises(LambdaError) as caught:
        decode_event(body, "application/json")
    assert caught.value.error_type == "Runtime.UnmarshalError"


def test_a_class_merely_named_decimal_is_not_sent_as_a_number() -> None:
    """Catches ``or`` for ``and`` in ``_default``'s Decimal test: a user's own class called
    ``Decimal`` is not JSON, so the result is a ``Runtime.MarshalError`` naming where it sits,
    not its ``str()`` pasted into the body as a raw number."""

    class Decimal:
        def is_finite(self) -> bool:
            return True

        def __str__(self) -> str:
            return "1"

    with pytest.raises(LambdaError) as caught:
        encode_result({"x": Decimal()})
    assert caught.value.error_type == "Runtime.MarshalError"
    assert "result['x']" in str(caught.value)


@dataclasses.dataclass
class _Order:
    id: int
    lines: list[int]


def test_a_dataclass_holding_an_int_beyond_64_bits_is_sent_exactly() -> None:
    """Catches ``_big_ints_as_fragments`` not recursing into dataclasses (``is_dataclass =
    None``): integers beyond 64 bits are sent exactly wherever they sit, dataclass fields
    included, instead of failing with ``Runtime.MarshalError``."""
    big = 2**70 + 1
    body, _ = encode_result({"order": _Order(id=big, lines=[-(2**65)])})
    assert json.loads(bytes(body)) == {"order": {"id": big, "lines": [-(2**65)]}}


def _marshal_error(result: object) -> str:
    with pytest.raises(LambdaError) as caught:
        encode_result(result)
    assert caught.value.error_type == "Runtime.MarshalError"
    return str(caught.value)


def test_a_cycle_beside_a_big_int_is_named_where_it_closes() -> None:
    """Catches the cycle check of ``_big_ints_as_fragments`` being lost (``active.add(None)``,
    ``id(None) in active``), its message or error type dropped, and the path of a dict item
    lost (``None``): the ``Runtime.MarshalError`` says where the cycle closes."""
    result: dict[str, object] = {"n": 2**70}
    result["self"] = result
    assert "circular reference at result['self']" in _marshal_error(result)


def test_a_cycle_through_a_list_is_named_where_it_closes() -> None:
    """Catches the path of a list item lost (``None``) in ``_big_ints_as_fragments``."""
    items: list[object] = [2**70]
    items.append(items)
    assert "circular reference at result[1]" in _marshal_error(items)


@dataclasses.dataclass
class _Node:
    n: int
    next: object = None


def test_a_cycle_through_a_dataclass_is_named_where_it_closes() -> None:
    """Catches the path of a dataclass field lost (``None``) and the set of open containers not
    passed on (``None``) in ``_big_ints_as_fragments``."""
    node = _Node(n=2**70)
    node.next = node
    assert "circular reference at result.next" in _marshal_error(node)


def test_a_list_shared_twice_beside_a_big_int_is_not_a_cycle() -> None:
    """Catches a container never leaving the set of open ones (``active.discard(None)``,
    ``discard(id(None))``): the same list under two keys is sent twice, not refused as
    circular."""
    shared = [1, 2]
    body, _ = encode_result({"a": shared, "b": shared, "n": 2**70})
    assert json.loads(bytes(body)) == {"a": [1, 2], "b": [1, 2], "n": 2**70}


def test_an_unserializable_value_after_a_decimal_is_named_where_it_sits() -> None:
    """Catches ``find_unserializable`` stopping at a finite ``Decimal`` (``break`` for
    ``continue``): the set after it is still named, with its path."""
    from decimal import Decimal

    message = _marshal_error([Decimal("1.5"), {1, 2}])
    assert "Object of type set is not JSON serializable (at result[1])" in message


def _nested(depth: int, inner: object) -> object:
    value = inner
    for _ in range(depth):
        value = [value]
    return value


def test_a_result_deeper_than_orjson_allows_is_sent_compact_and_exact() -> None:
    """A result nested past orjson's 255 levels is the same compact UTF-8 JSON orjson writes
    for a shallow result: every Decimal digit, dates as ISO strings, no ASCII escapes."""
    import datetime
    from decimal import Decimal

    inner = {"name": "café", "price": Decimal("19.990"), "at": datetime.date(2024, 1, 2)}
    body, content_type = encode_result(_nested(260, inner))
    expected = "[" * 260 + '{"name":"café","price":19.990,"at":"2024-01-02"}' + "]" * 260
    assert bytes(body) == expected.encode()
    assert content_type == "application/json"


def test_a_result_deeper_than_the_limit_is_a_marshal_error() -> None:
    """A result nested deeper than events may be (10,000 levels) is refused with a clear error,
    not a crash."""
    message = _marshal_error(_nested(200_000, 1))
    assert message == "Unable to marshal response: result nested deeper than 10000 levels"


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        # A 20-digit integer within orjson's 64 bits (a uint64 hash, say).
        (b'{"id": 12345678901234567890}', {"id": 12345678901234567890}),
        # 24 digits in a string, between spaces and letters: not a number.
        (b'{"s": "a 123456789012345678901234x"}', {"s": "a 123456789012345678901234x"}),
        (b'{"s": "x123456789012345678901234 b"}', {"s": "x123456789012345678901234 b"}),
        # Runs of zeros in a string: 1 and -1, well within 64 bits.
        (b'{"s": "a 000000000000000000000001 b"}', {"s": "a 000000000000000000000001 b"}),
        (b'{"s": "a -000000000000000000000001 b"}', {"s": "a -000000000000000000000001 b"}),
        # 24 digits before a fraction: a float, which orjson decodes as json.loads does.
        (b"[123456789012345678901234.5]", [123456789012345678901234.5]),
    ],
)
def test_numbers_orjson_decodes_right_are_decoded_once(
    body: bytes, expected: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Catches ``_has_big_int`` taking a digit run as an integer beyond 64 bits when it is not
    one: ``or`` for ``and`` between what stands before and after the run (mutmut_26), ``>= 20``
    for ``> 20`` digits (mutmut_45), leading zeros or a minus sign counted as digits
    (mutmut_38, _40, _41). The event would be decoded a second time by ``json.loads``
    (same value, several times slower for a large event; docs/handlers.md: "orjson decodes the
    common case")."""
    import runtime.marshal as marshal

    def decoded_again(*args: object) -> object:
        raise AssertionError("decoded a second time by json.loads")

    monkeypatch.setattr(marshal, "_decode_exact", decoded_again)
    event = decode_event(body, "application/json")
    assert event == expected
    assert repr(event) == repr(json.loads(body))


def test_a_huge_digit_run_in_a_string_is_decoded_as_a_string() -> None:
    """Catches ``_has_big_int`` stripping trailing instead of leading zeros (mutmut_39): a run
    of 5,001 digits in a string ("1" and 5,000 zeros, between spaces) would reach ``int()``,
    which refuses more than 4,300 digits: a bare ValueError instead of the event."""
    text = "a 1" + "0" * 5000 + " b"
    body = json.dumps({"s": text}).encode()
    assert decode_event(body, "application/json") == {"s": text}


@pytest.mark.parametrize("body", [b"[1,]", b'{"a" 1}', b"[1 2]", b"{"])
def test_invalid_json_is_refused_with_orjsons_message(body: bytes) -> None:
    """Catches ``_decode_exact`` reporting the stdlib decoder's message instead of orjson's for
    an event orjson refused (mutmut_12: ``or True``, mutmut_14: ``is not None``). The
    ``Runtime.UnmarshalError`` the caller gets says what orjson found and where."""
    import orjson

    with pytest.raises(orjson.JSONDecodeError) as refused:
        orjson.loads(body)
    with pytest.raises(LambdaError) as caught:
        decode_event(body, "application/json")
    assert caught.value.error_type == "Runtime.UnmarshalError"
    assert str(caught.value) == f"Unable to unmarshal input: {refused.value}"


@pytest.mark.parametrize("value", ["NaN", "-Infinity", "sNaN"])
def test_a_decimal_with_no_json_form_is_named_with_its_value(value: str) -> None:
    """Catches ``_encode_slow`` losing its ``Decimal`` message (mutmut_5, _7, _8): the caller
    reads which Decimal could not be sent and where, not the generic "Object of type Decimal
    is not JSON serializable"."""
    from decimal import Decimal

    message = _marshal_error({"price": [1, Decimal(value)]})
    assert message == (
        f"Unable to marshal response: Decimal({value!r}) has no JSON form (at result['price'][1])"
    )


@dataclasses.dataclass
class _Invoice:
    net: int
    _internal: str = "x"

    def __post_init__(self) -> None:
        self.gross = self.net + 1  # not a field: orjson writes it all the same


@dataclasses.dataclass(slots=True)
class _Slotted:
    a: int
    _b: int = 2


def test_dataclasses_beside_a_big_int_are_sent_as_orjson_sends_them() -> None:
    """Catches ``_dataclass_items`` misreading a dataclass (mutmut_1, _5, _6: the ``__dict__``
    test; mutmut_10 to _15: the fields of a slotted one). A dataclass is sent the same way
    whether or not an int beyond 64 bits sits beside it: orjson writes the attributes of its
    ``__dict__`` (or a slotted one's fields), without those named "_..."."""
    value = [_Invoice(1), _Slotted(3)]
    plain, _ = encode_result({"n": 1, "v": value})
    body, _ = encode_result({"n": 2**70, "v": value})
    assert bytes(plain) == b'{"n":1,"v":[{"net":1,"gross":2},{"a":3}]}'
    assert bytes(body) == b'{"n":1180591620717411303424,"v":[{"net":1,"gross":2},{"a":3}]}'


class _Opaque:
    pass


class _Color(enum.Enum):
    RED = "red"


@pytest.mark.parametrize(
    ("result", "path"),
    [
        ([_Color.RED, _Opaque()], "result[1]"),
        ({"a": [1], "b": None, "c": _Opaque()}, "result['c']"),
        ([_Opaque(), 1], "result[0]"),
    ],
    ids=["after-an-enum", "after-a-shared-list", "first-of-two"],
)
def test_an_unserializable_value_is_named_after_enums_and_shared_values(
    result: object, path: str
) -> None:
    """Catches ``find_unserializable`` stopping at an Enum member (mutmut_11) or at a value
    it has seen already (mutmut_14), or looking at every other item of a list (mutmut_32):
    the value that cannot be sent is still named with its path, not reported by orjson's terse
    "Type is not JSON serializable"."""
    if isinstance(result, dict):
        result["b"] = result["a"]  # the same list twice: seen already the second time
    message = _marshal_error(result)
    assert message == (
        f"Unable to marshal response: Object of type _Opaque is not JSON serializable (at {path})"
    )


class ndarray:  # named as numpy's own array type is
    """Stands in for a numpy array (numpy is not a dependency here): orjson writes real ones
    (``OPT_SERIALIZE_NUMPY``), so ``find_unserializable`` lets anything from numpy through."""


ndarray.__module__ = "numpy"


def test_a_numpy_value_is_not_named_as_what_cannot_be_sent() -> None:
    """Catches ``find_unserializable`` not recognising numpy values (mutmut_40, _42, _43) or
    stopping at one (mutmut_44): the value named is the one orjson cannot write either."""
    message = _marshal_error({"array": ndarray(), "x": _Opaque()})
    assert message == (
        "Unable to marshal response: Object of type _Opaque is not JSON serializable "
        "(at result['x'])"
    )


def test_results_orjson_can_write_are_encoded_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """Catches ``encode_result`` calling orjson without the result, its ``default`` (for
    Decimal) or its options (non-string keys) (mutmut_5 to _9): the slow path would then
    write the same body, after a walk and a copy of the whole result on every invoke."""
    import datetime
    import uuid
    from decimal import Decimal

    import runtime.marshal as marshal

    def slow_path(*args: object) -> object:
        raise AssertionError("encoded by the slow path")

    monkeypatch.setattr(marshal, "_encode_slow", slow_path)
    result = {
        "price": Decimal("19.990"),
        1: "int key",
        uuid.UUID(int=1): datetime.date(2024, 1, 2),
        "order": _Order(id=7, lines=[1, 2]),
    }
    body, content_type = encode_result(result)
    assert bytes(body) == (
        b'{"price":19.990,"1":"int key","00000000-0000-0000-0000-000000000001":"2024-01-02",'
        b'"order":{"id":7,"lines":[1,2]}}'
    )
    assert content_type == "application/json"


def test_a_memoryview_is_measured_in_bytes() -> None:
    """Catches ``encode_result`` measuring a memoryview with ``len`` (mutmut_14), which counts
    items: a view of 4-byte ints over Lambda's limit in bytes but not in items would be sent,
    and Lambda would refuse it."""
    import array

    from runtime.protocol import MAX_RESPONSE_BYTES

    view = memoryview(array.array("I", bytes(MAX_RESPONSE_BYTES + 4)))
    assert len(view) < MAX_RESPONSE_BYTES < view.nbytes
    with pytest.raises(LambdaError) as caught:
        encode_result(view)
    assert caught.value.error_type == "Function.ResponseSizeTooLarge"
    assert f"({view.nbytes} bytes)" in str(caught.value)


class _Price(enum.Enum):
    LOW = Decimal("1.50")


class _Alias(enum.Enum):
    CHEAP = _Price.LOW  # a member whose value is a member of another Enum


@pytest.mark.parametrize("depth", [0, 20], ids=["top", "past-a-cut"])
def test_an_enum_of_an_enum_of_a_decimal_is_sent_beside_a_big_int(depth: int) -> None:
    """Catches the slow path calling orjson without ``default`` (``_encode_slow`` mutmut_15,
    _18 for the result; ``_encodable`` mutmut_28, _31 for a part cut 16 levels down): an Enum
    member is sent as its value, here a Decimal reached through a second Enum, which only
    ``default`` writes, big int beside it or not."""
    body, _ = encode_result(_nested(depth, {"p": _Alias.CHEAP, "n": 2**70}))
    assert bytes(body) == (
        b"[" * depth + b'{"p":1.50,"n":1180591620717411303424}' + b"]" * depth
    )
