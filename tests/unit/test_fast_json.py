"""The orjson transcoder (ledger.fast_json) writes the library's bytes and reads them back alike.

Stored events must read the same whichever transcoder wrote them, and the chain hashes
the bytes: so the bytes must be exactly `JSONTranscoder`'s, for every shape an event's
state can take, and decoding must give equal values (the same types too).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any
from uuid import UUID

import pytest
from eventsourcing.persistence import (
    DatetimeAsISO,
    DecimalAsStr,
    JSONTranscoder,
    TranscodingNotRegisteredError,
    UUIDAsHex,
)
from hypothesis import given
from hypothesis import strategies as st

from ledger.application import Ledger
from ledger.costing import CostState, Layer
from ledger.fast_json import FastJSONTranscoder
from ledger.transcodings import CostStateAsDict, LayerAsDict


def transcoders() -> tuple[JSONTranscoder, FastJSONTranscoder]:
    """The library's transcoder and ours, with the ledger's transcodings."""
    library, fast = JSONTranscoder(), FastJSONTranscoder()
    for transcoder in (library, fast):
        for transcoding in (UUIDAsHex(), DecimalAsStr(), DatetimeAsISO(), LayerAsDict(),
                            CostStateAsDict()):
            transcoder.register(transcoding)
    return library, fast


LIBRARY, FAST = transcoders()

decimals = st.decimals(allow_nan=False, allow_infinity=False, places=None)
moments = st.datetimes(timezones=st.sampled_from(
    [UTC, timezone(timedelta(hours=8)), timezone(timedelta(hours=-3, minutes=-30))]))
layers = st.builds(Layer, decimals, decimals, decimals)
cost_states = st.builds(CostState, st.sampled_from(["fifo", "moving_average"]), decimals,
                        decimals, decimals, st.tuples(layers, layers))
texts = st.text()  # any code point but lone surrogates, control characters included
scalars = st.one_of(st.none(), st.booleans(), st.integers(-(2 ** 63), 2 ** 64 - 1), texts,
                    decimals, moments, st.uuids(), layers, cost_states)
values = st.recursive(scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.tuples(inner, inner),
    st.dictionaries(texts, inner, max_size=4)), max_leaves=20)
states = st.dictionaries(texts, values, max_size=8)


def same(left: Any, right: Any) -> bool:
    """Equal, and of the same types all the way down (Decimal('1') == 1 is not enough)."""
    if type(left) is not type(right):
        return False
    if isinstance(left, dict):
        return list(left) == list(right) and all(same(left[k], right[k]) for k in left)
    if isinstance(left, list):
        return len(left) == len(right) and all(map(same, left, right))
    return bool(left == right)


@given(states)
def test_the_bytes_are_the_librarys_and_read_back_alike(state: dict[str, Any]) -> None:
    written = FAST.encode(state)
    assert written == LIBRARY.encode(state)
    assert same(FAST.decode(written), LIBRARY.decode(written))


@given(values)
def test_any_value_at_the_top_reads_back_alike(value: Any) -> None:
    written = LIBRARY.encode(value)
    assert FAST.encode(value) == written
    assert same(FAST.decode(written), LIBRARY.decode(written))


@pytest.mark.parametrize("value", [
    {"a": 1.5}, {"a": 1e16}, {1: "int key"}, {"big": 2 ** 70}, {"neg": -(2 ** 70)},
    {"t": True, "n": None, "k": {"x": 0.1}},
])
def test_shapes_orjson_writes_differently_go_to_the_librarys_path(value: Any) -> None:
    assert FAST.encode(value) == LIBRARY.encode(value)


def test_an_unregistered_type_is_refused_as_the_library_refuses_it() -> None:
    with pytest.raises(TranscodingNotRegisteredError):
        FAST.encode({"x": object()})
    with pytest.raises(TranscodingNotRegisteredError):
        FAST.decode(b'{"x":{"_type_":"no_such","_data_":"1"}}')


def test_what_orjson_cannot_read_is_read_by_the_library() -> None:
    # NaN is JSON the standard library reads and orjson does not.
    assert str(FAST.decode(b'{"x":NaN}')["x"]) == "nan"
    with pytest.raises(UnicodeDecodeError):
        FAST.decode(b'{"x":"\xff"}')


def test_a_tagged_object_with_structured_data_decodes_bottom_up() -> None:
    layer = Layer(Decimal("2.000"), Decimal("1.500000"), Decimal("3.00"))
    state = {"added": (layer,), "at": datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC),
             "id": UUID(int=7)}
    written = FAST.encode(state)
    assert written == LIBRARY.encode(state)
    assert FAST.decode(written) == {"added": [layer], "at": state["at"], "id": UUID(int=7)}


def test_the_ledger_uses_it() -> None:
    ledger = Ledger({"PERSISTENCE_MODULE": "eventsourcing.popo"})
    try:
        assert isinstance(ledger.mapper.transcoder, FastJSONTranscoder)
        assert set(ledger.mapper.transcoder.names) >= {
            LayerAsDict.name, CostStateAsDict.name, "decimal_str", "datetime_iso", "uuid_hex"}
    finally:
        ledger.close()
