"""PostgreSQL's binary format for the few types the group-commit write sends and reads.

`ledger.pg_batch_write` talks to libpq directly: its parameters (a position, the batch's
columns as arrays) are encoded here, and the values of its answer read back. An array is
its header (dimensions, a null flag, the element type's oid, then length and lower bound)
followed by each element as its length and its bytes; integers are big-endian.
"""

from __future__ import annotations

import struct
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from typing import Any
from uuid import UUID

INT8_OID, TEXT_OID, BYTEA_OID, UUID_OID = 20, 25, 17, 2950
ZERO_INT4, TWO_INT4 = struct.pack("!i", 0), struct.pack("!i", 2)

_INT4 = struct.Struct("!i")
_INT8 = struct.Struct("!q")
_ONE_DIMENSION = struct.Struct("!iiiii")  # dimensions, has nulls, element oid, length, lower
_NO_DIMENSIONS = struct.Struct("!iii")  # the empty array: no dimensions, no nulls, its oid


def int8(value: int) -> bytes:
    return _INT8.pack(value)


def read_int8(data: bytes) -> int:
    value: int = _INT8.unpack(data)[0]
    return value


def array(oid: int, elements: Collection[bytes]) -> bytes:
    """A one-dimensional array without nulls of already encoded elements."""
    if not elements:
        return _NO_DIMENSIONS.pack(0, 0, oid)
    parts = [_ONE_DIMENSION.pack(1, 0, oid, len(elements), 1)]
    pack = _INT4.pack
    for element in elements:
        parts.append(pack(len(element)))
        parts.append(element)
    return b"".join(parts)


def int8_array(values: Collection[int]) -> bytes:
    eight, pack = _INT4.pack(8), _INT8.pack
    return _fixed(INT8_OID, [eight + pack(value) for value in values])


def text_array(values: Iterable[str]) -> bytes:
    return array(TEXT_OID, [value.encode() for value in values])


def bytea_array(values: Iterable[bytes]) -> bytes:
    return array(BYTEA_OID, list(values))


def _fixed(oid: int, framed: list[bytes]) -> bytes:
    """An array of elements already framed with their lengths."""
    if not framed:
        return array(oid, framed)
    return _ONE_DIMENSION.pack(1, 0, oid, len(framed), 1) + b"".join(framed)


@dataclass(frozen=True)
class Ids:
    """Aggregate ids as the store's `originator_id` column holds them: uuid or text."""

    oid: int

    def array(self, ids: Iterable[UUID | str]) -> bytes:
        if self.oid == UUID_OID:
            sixteen = _INT4.pack(16)
            return _fixed(UUID_OID, [sixteen + _uuid(aggregate_id).bytes
                                     for aggregate_id in ids])
        return array(TEXT_OID, [str(aggregate_id).encode() for aggregate_id in ids])

    def read(self, data: bytes) -> Any:
        if self.oid == UUID_OID:
            return UUID(bytes=bytes(data))
        return bytes(data).decode()


def ids_of(column_type: str) -> Ids:
    """How ids go to and come from an `originator_id` column of this type."""
    return Ids(UUID_OID if column_type == "uuid" else TEXT_OID)


def _uuid(value: Any) -> UUID:
    return value if isinstance(value, UUID) else UUID(str(value))
