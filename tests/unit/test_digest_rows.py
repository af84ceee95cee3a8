"""A read-model row as a digest covers it: the fast encoding gives json.dumps's bytes."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from projections.base import _plain_row, canonical_row

VALUES = st.one_of(st.none(), st.integers(min_value=-(2**70), max_value=2**70),
                   st.text(), st.text(alphabet=st.characters(max_codepoint=0x7F)))


@given(st.lists(VALUES, max_size=24))
def test_a_plain_row_is_written_as_json_dumps_writes_it(row: list[Any]) -> None:
    expected = json.dumps(row, separators=(",", ":")).encode() + b"\n"
    assert canonical_row(row) == expected
    assert _plain_row(tuple(row)) == expected


def test_the_characters_orjson_leaves_alone_are_escaped() -> None:
    for text in ("caf\u00e9", "\u5185\u90e8\u9886\u7528", "a\x7fb", "\u2028", "\U0001f600"):
        assert _plain_row((1, text, None)) == json.dumps(
            [1, text, None], separators=(",", ":")).encode() + b"\n"
