"""Period close (结账) on the `Ledger` application (a mixin): close the books through a date."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import TYPE_CHECKING, Any, TypeVar
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError, Repository

from ledger.commands import checked_text
from ledger.domain.context import CommandMeta, MovementContext
from ledger.domain.identity import periods_id
from ledger.domain.periods import Periods
from ledger.errors import PeriodClosed
from ledger.workspace import Workspace

if TYPE_CHECKING:
    from ledger.application import CommandResult, Decide

CommandT = TypeVar("CommandT")


@dataclass(frozen=True, kw_only=True)
class ClosePeriod:
    until: date
    reason: str | None = None
    reference: str | None = None
    note: str | None = None
    effective_at: datetime | None = None


def decide_close(command: ClosePeriod, workspace: Workspace,
                 context: MovementContext) -> dict[str, Any]:
    periods = workspace.periods()
    periods.close(command.until, command.reason, context.actor, context.recorded_at.date())
    return {"closed_until": command.until.isoformat(), "open_from": periods.open_from}


class PeriodClose:
    """Close periods, and refuse commands dated in a closed one."""

    if TYPE_CHECKING:
        repository: Repository[UUID]

        def _execute(self, kind: str, command: CommandT, meta: CommandMeta,
                     decide: Decide[CommandT]) -> CommandResult: ...

    def close_period(self, command: ClosePeriod, meta: CommandMeta) -> CommandResult:
        checked = ClosePeriod(until=command.until,
                              reason=checked_text(command.reason, "reason"))
        return self._execute("period_close", checked, meta, decide_close)

    def periods(self) -> Periods | None:
        try:
            found: object = self.repository.get(periods_id())
        except AggregateNotFoundError:
            return None
        assert isinstance(found, Periods)
        return found

    def check_open(self, effective_at: datetime | None) -> None:
        """Refuse a business time in a closed period (a time without an offset is refused
        later, as invalid input, like any other bad time)."""
        if effective_at is None or effective_at.utcoffset() is None:
            return
        periods = self.periods()
        open_from = None if periods is None else periods.open_from
        if open_from is not None and effective_at < open_from:
            raise PeriodClosed(effective_at, periods.closed_until if periods else None)
