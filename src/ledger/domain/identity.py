"""Deterministic aggregate ids and the shape of codes (SKUs, location codes)."""

from __future__ import annotations

import re
from functools import lru_cache
from hashlib import sha1
from uuid import UUID, uuid5

from ledger.errors import InvalidInput

NAMESPACE = UUID("6f1d2c1e-3f0a-5b7e-9c4d-2a8b1e0f7c35")
CODE_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
# Ids are pure functions of codes; every command derives several (a SHA-1 each): remembered.
_REMEMBERED = 65_536


@lru_cache(maxsize=_REMEMBERED)
def item_id(sku: str) -> UUID:
    return uuid5(NAMESPACE, f"item\x00{sku}")


@lru_cache(maxsize=_REMEMBERED)
def location_id(code: str) -> UUID:
    return uuid5(NAMESPACE, f"location\x00{code}")


@lru_cache(maxsize=_REMEMBERED)
def bin_id(sku: str, location: str) -> UUID:
    return uuid5(NAMESPACE, f"bin\x00{sku}\x00{location}")


def command_record_id(actor: str, idempotency_key: str) -> UUID:
    return uuid5(NAMESPACE, f"command\x00{actor}\x00{idempotency_key}")


def check_code(value: str, field: str) -> str:
    """A SKU or location code: 1–64 letters, digits, '.', '_' or '-', not starting with a sign."""
    if not CODE_PATTERN.fullmatch(value):
        raise InvalidInput(
            f"{field} must be 1–64 characters of letters, digits, '.', '_' or '-', "
            f"starting with a letter or digit; got {value!r}.",
            field=field,
        )
    return value


def event_id(aggregate_id: UUID, version: int) -> UUID:
    """A stored event's id: derived from its aggregate and version, so exports keep it."""
    return uuid5(NAMESPACE, f"event\x00{aggregate_id}\x00{version}")


def event_id_text(aggregate_id: UUID, version: int) -> str:
    """`str(event_id(aggregate_id, version))`, written straight from the SHA-1 (what uuid5
    does, without building a UUID to turn back into text): the journal writes one per event."""
    digest = bytearray(sha1(NAMESPACE.bytes + f"event\x00{aggregate_id}\x00{version}".encode())
                       .digest()[:16])
    digest[6] = (digest[6] & 0x0F) | 0x50  # version 5
    digest[8] = (digest[8] & 0x3F) | 0x80  # the RFC 4122 variant
    text = digest.hex()
    return f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"


def party_id(code: str) -> UUID:
    return uuid5(NAMESPACE, f"party\x00{code}")


def customer_account_id(code: str) -> UUID:
    return uuid5(NAMESPACE, f"customer-account\x00{code}")


def periods_id() -> UUID:
    return uuid5(NAMESPACE, "periods")
