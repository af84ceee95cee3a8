"""`Periods`: how far the books are closed. One per ledger.

Closing a period through a date refuses, from then on, every command whose
`effective_at` falls on or before that date (UTC): a correction is posted in the open
period instead. Periods only ever close forward.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

from eventsourcing.domain import Aggregate

from ledger.domain.identity import periods_id
from ledger.errors import InvalidInput


class Periods(Aggregate):
    TOPIC = "ledger:Periods"

    class Event(Aggregate.Event):
        TOPIC = "ledger:Periods.Event"

    class Opened(Aggregate.Created):
        TOPIC = "ledger:Periods.Opened"

    class Closed(Event):
        TOPIC = "ledger:Periods.Closed"
        until: str  # an ISO date: closed through the end of that day (UTC)
        reason: str | None
        actor: str

        def apply(self, periods: Periods) -> None:
            periods.closed_until = date.fromisoformat(self.until)
            periods.closes.append({"until": self.until, "reason": self.reason,
                                   "actor": self.actor,
                                   "closed_at": self.timestamp.isoformat()})

    def __init__(self) -> None:
        self.closed_until: date | None = None
        self.closes: list[dict[str, str | None]] = []

    @classmethod
    def open(cls, at: datetime) -> Periods:
        return cls._create(cls.Opened, id=periods_id(), timestamp=at)

    @property
    def open_from(self) -> datetime | None:
        """The first instant of the open period (None: nothing was ever closed)."""
        if self.closed_until is None:
            return None
        return datetime.combine(self.closed_until + timedelta(days=1), time(), tzinfo=UTC)

    def close(self, until: date, reason: str | None, actor: str, today: date) -> None:
        if until >= today:
            raise InvalidInput(f"A period can be closed through yesterday ({today}) at the "
                               "latest.", "until")
        if self.closed_until is not None and until <= self.closed_until:
            raise InvalidInput(f"The books are already closed through {self.closed_until}.",
                               "until")
        self.trigger_event(self.Closed, until=until.isoformat(), reason=reason, actor=actor)
