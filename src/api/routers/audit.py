"""Auditors: the event stream in log order, one event, and the hash chain's digests."""

from __future__ import annotations

from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Path, Query, Request
from pydantic import AwareDatetime

from api import cursors
from api.deps import LedgerDep, Reader, ReadModelsDep
from api.event_json import event_data
from api.problems import ApiProblem, responses
from api.requests import LedgerRoute
from api.routers.stock import Cursor, Limit, MinPosition, check_instant, wait_seconds
from api.schemas import DigestOut, EventOut, EventPage
from ledger.application import Ledger
from ledger.domain.identity import event_id
from projections import queries

router = APIRouter(route_class=LedgerRoute, tags=["audit"])
PROBLEMS = responses(401, 403, 404, 422, 503)
Position = Annotated[int, Path(ge=1, le=2**62)]
TOPIC_PATTERN = r"^[A-Za-z0-9_.:]{1,200}$"


def _event_out(ledger: Ledger, row: dict[str, Any]) -> EventOut:
    stored = ledger.stored_event(row["position"])
    if stored is None:
        raise ApiProblem(409, "event_missing",
                         f"The audit log lists position {row['position']} but the store has no "
                         "event there: run `ledger verify`.", position=row["position"])
    event = ledger.mapper.to_domain_event(stored)
    return EventOut(
        position=row["position"], event_id=str(event_id(UUID(row["aggregate_id"]),
                                                        row["aggregate_version"])),
        aggregate_id=row["aggregate_id"], aggregate_version=row["aggregate_version"],
        type=row["topic"], recorded_at=row["recorded_at"], effective_at=row["effective_at"],
        actor=row["actor"], link=row["link"], data=event_data(event))


@router.get("/events", response_model=EventPage, responses=PROBLEMS)
def get_events(request: Request, read_models: ReadModelsDep, ledger: LedgerDep, _: Reader,
               after: Annotated[int, Query(ge=0, le=2**62)] = 0,
               type: Annotated[str | None, Query(pattern=TOPIC_PATTERN)] = None,
               aggregate_id: UUID | None = None,
               start: Annotated[AwareDatetime | None, Query(alias="from")] = None,
               end: Annotated[AwareDatetime | None, Query(alias="to")] = None,
               min_position: MinPosition = 0, limit: Limit = 50,
               cursor: Cursor = None) -> EventPage:
    """The global event stream in log order (record time for `from`/`to`)."""
    check_instant(start, "from")
    check_instant(end, "to")
    if start is not None and end is not None and end < start:
        raise ApiProblem(422, "validation_error", "`to` is earlier than `from`.", field="to")
    key = cursors.decode(cursor, (int,))
    topic = None if type is None else (type if ":" in type else f"ledger:{type}")
    with read_models.reading(["audit_log"], min_position,
                             wait_seconds(request)) as (connection, states):
        page = queries.audit_events(
            connection, read_models.by_name["audit_log"], states["audit_log"].generation,
            after=max(after, key[0] if key else 0), limit=limit, topic=topic,
            aggregate_id=None if aggregate_id is None else str(aggregate_id),
            start=start, end=end)
    next_cursor = (cursors.encode([page.last["position"]])
                   if page.has_more and page.last else None)
    return EventPage(items=[_event_out(ledger, row) for row in page.rows],
                     position=states["audit_log"].position, next_cursor=next_cursor)


@router.get("/events/{position}", response_model=EventOut, responses=PROBLEMS)
def get_event(request: Request, position: Position, read_models: ReadModelsDep,
              ledger: LedgerDep, _: Reader, min_position: MinPosition = 0) -> EventOut:
    """One event by its log position."""
    with read_models.reading(["audit_log"], min_position,
                             wait_seconds(request)) as (connection, states):
        row = queries.audit_entry(connection, read_models.by_name["audit_log"],
                                  states["audit_log"].generation, position)
    if row is None:
        raise ApiProblem(404, "unknown_event", f"No event at position {position}.",
                         position=position)
    return _event_out(ledger, row)


@router.get("/audit/digest", response_model=DigestOut, responses=PROBLEMS)
def get_digest(request: Request, read_models: ReadModelsDep, ledger: LedgerDep, _: Reader,
               position: Annotated[int | None, Query(ge=1, le=2**62)] = None,
               min_position: MinPosition = 0) -> DigestOut:
    """The chain's head (position, hash), or its link at `position`: keep it outside."""
    if position is not None and position > ledger.head_position():
        raise ApiProblem(404, "unknown_event", f"No event at position {position}.",
                         position=position)
    with read_models.reading(["audit_log"], max(min_position, position or 0),
                             wait_seconds(request)) as (connection, states):
        row = queries.audit_entry(connection, read_models.by_name["audit_log"],
                                  states["audit_log"].generation, position)
    if row is None:
        if position is None:
            return DigestOut(position=0, hash="0" * 64)
        raise ApiProblem(404, "unknown_event", f"No event at position {position}.",
                         position=position)
    return DigestOut(position=row["position"], hash=row["link"])
