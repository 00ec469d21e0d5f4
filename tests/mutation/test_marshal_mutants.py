"""Event and result promises (docs/handlers.md, "Events and results") that `make mutate` showed
no test held (see tests/mutation/README.md)."""

from __future__ import annotations

import dataclasses
import json

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
