"""Who did what, why and when: the metadata every movement event carries."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID


@dataclass(frozen=True)
class CommandMeta:
    """What the caller says about a command besides its payload."""

    actor: str
    idempotency_key: str | None = None
    correlation_id: str | None = None


@dataclass(frozen=True)
class MovementContext:
    """Metadata decided once per command and stamped on each of its events."""

    document_id: UUID
    actor: str
    effective_at: datetime
    recorded_at: datetime
    reference: str | None = None
    note: str | None = None
    reason: str | None = None
    idempotency_key: str | None = None
    correlation_id: str | None = None
    effective_at_given: bool = False
    order_id: UUID | None = None

    def event_fields(self, line_number: int, order_line: int | None = None) -> dict[str, Any]:
        """The metadata fields of a movement event for one document line."""
        return {
            "document_id": self.document_id,
            "line_number": line_number,
            "order_id": self.order_id,
            "order_line": order_line,
            "actor": self.actor,
            "reference": self.reference,
            "note": self.note,
            "reason": self.reason,
            "idempotency_key": self.idempotency_key,
            "correlation_id": self.correlation_id,
            "timestamp": self.recorded_at,
        }
