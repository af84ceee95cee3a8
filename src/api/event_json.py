"""Domain events as JSON: every field of the event, decimals as strings."""

from __future__ import annotations

from dataclasses import asdict, is_dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

LIBRARY_FIELDS = frozenset({"originator_id", "originator_version", "timestamp",
                            "originator_topic"})


def jsonable(value: Any) -> Any:
    """A JSON-ready copy of a field value (no float ever appears)."""
    if isinstance(value, Decimal | UUID):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat()
    if is_dataclass(value) and not isinstance(value, type):
        return jsonable(asdict(value))
    if isinstance(value, dict):
        return {str(key): jsonable(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(item) for item in value]
    return value


def event_data(event: Any) -> dict[str, Any]:
    """The event's own fields (the library's id, version and timestamp are reported apart)."""
    return {name: jsonable(value) for name, value in sorted(vars(event).items())
            if name not in LIBRARY_FIELDS}
