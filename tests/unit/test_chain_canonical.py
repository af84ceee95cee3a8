"""The import's fast canonical encoding equals the chain's own, for any record an export can hold.

`ledger import` links each export line from its base64 text without decoding and re-encoding
the state (ledger.chain.canonical_exported). What an auditor would notice if it drifted from
ledger.chain.canonical by a single byte: an honest export refused as tampered, or a link that
covers other bytes than the one `ledger verify` recomputes from the store.
"""

from __future__ import annotations

import base64
import json
import string
from uuid import UUID

from hypothesis import example, given
from hypothesis import strategies as st

from ledger.chain import Record, canonical, canonical_exported

BASE64_ALPHABET = string.ascii_uppercase + string.ascii_lowercase + string.digits + "+/"
VERSION_MAX = 2**63 - 1

uuids = st.uuids()
versions = st.integers(min_value=-VERSION_MAX - 1, max_value=VERSION_MAX)
# Any Unicode text, control characters, quotes, backslashes and astral characters included:
# json.dumps escapes all of them (ensure_ascii), and so must the fast encoding.
topics = st.one_of(st.text(), st.sampled_from([
    "ledger:StockBin.Received", 'quote"back\\slash', "tab\tnew\nline\x00\x1f\x7f",
    "caf\u00e9 \u2028\u2029 \U0001f4e6", "\ud800 lone surrogate"]))
states = st.binary(max_size=3000)


def reference(aggregate_id: UUID, version: int, topic: str, state: bytes) -> bytes:
    """The canonical bytes as first defined: compact `json.dumps` of the four fields."""
    return json.dumps([str(aggregate_id), version, topic, base64.b64encode(state).decode()],
                      separators=(",", ":")).encode()


def repadded(encoded: str, bits: int) -> str:
    """`encoded` with nonzero padding bits chosen by `bits` (still valid base64 that decodes to
    the same bytes)."""
    if not encoded.endswith("="):
        return encoded
    at = len(encoded.rstrip("=")) - 1
    width = 4 if encoded.endswith("==") else 2
    value = BASE64_ALPHABET.index(encoded[at]) | (1 + (bits - 1) % ((1 << width) - 1))
    return encoded[:at] + BASE64_ALPHABET[value] + encoded[at + 1:]


@given(uuids, versions, topics, states)
@example(UUID(int=0), 0, "", b"")
@example(UUID(int=2**128 - 1), 1, "\u00e9", b"\x00")
def test_the_fast_encoding_is_the_canonical_encoding(aggregate_id: UUID, version: int,
                                                     topic: str, state: bytes) -> None:
    encoded = base64.b64encode(state).decode()

    fast = canonical_exported(str(aggregate_id), version, topic, encoded)

    assert fast == canonical(Record(1, aggregate_id, version, topic, state))
    assert fast == reference(aggregate_id, version, topic, state)


@given(uuids, versions, topics, states.filter(lambda state: len(state) % 3 != 0),
       st.integers(min_value=1, max_value=15))
def test_base64_with_nonzero_padding_bits_encodes_as_the_bytes_it_decodes_to(
        aggregate_id: UUID, version: int, topic: str, state: bytes, bits: int) -> None:
    # b64decode(validate=True) accepts padding bits that are not zero; the link covers the
    # decoded bytes, so the fast encoding must not copy such text as it stands.
    encoded = repadded(base64.b64encode(state).decode(), bits)
    assert encoded != base64.b64encode(state).decode()
    assert base64.b64decode(encoded, validate=True) == state

    fast = canonical_exported(str(aggregate_id), version, topic, encoded)

    assert fast == canonical(Record(1, aggregate_id, version, topic, state))
    assert fast == reference(aggregate_id, version, topic, state)


def test_the_encoding_is_compact_json_with_an_escaped_topic() -> None:
    aggregate_id = UUID("6f1c9d0e-3a57-4a5b-9b0e-2f4a9f8e1c21")

    fast = canonical_exported(str(aggregate_id), 7, "caf\u00e9\n", "QQ==")

    assert fast == b'["6f1c9d0e-3a57-4a5b-9b0e-2f4a9f8e1c21",7,"caf\\u00e9\\n","QQ=="]'
    assert json.loads(fast) == [str(aggregate_id), 7, "caf\u00e9\n", "QQ=="]
