"""Opaque page cursors: base64url JSON of the last row's sort key."""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from api.problems import ApiProblem

CURSOR_LENGTH_MAX = 400


def encode(key: list[Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(key, separators=(",", ":")).encode()).decode()


def _fits(part: object, kind: type) -> bool:
    if type(part) is not kind:
        return False
    if isinstance(part, int):
        return 0 <= part < 2**63
    return isinstance(part, str) and len(part) <= 200 and "\x00" not in part


def decode(cursor: str | None, kinds: tuple[type, ...]) -> tuple[Any, ...] | None:
    """The sort key in a cursor, checked against the expected kinds; 422 when malformed."""
    if cursor is None:
        return None
    try:
        key = json.loads(base64.urlsafe_b64decode(cursor.encode()))
    except (binascii.Error, ValueError, UnicodeDecodeError):
        key = None
    if (not isinstance(key, list) or len(key) != len(kinds)
            or not all(_fits(part, kind) for part, kind in zip(key, kinds, strict=True))):
        raise ApiProblem(422, "validation_error", "The cursor is not one this API gave out.",
                         field="cursor")
    return tuple(key)
