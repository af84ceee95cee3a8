"""Rebuilding read models from position zero into fresh tables, then switching over.

The next generation's tables are filled page by page while the live generation
keeps serving queries. The switch locks the projection's state row, applies
whatever arrived meanwhile, and moves generation and position in one transaction.
The generation before the live one is kept until the next rebuild, so a query
that began just before a switch still finds its tables.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from eventsourcing.persistence import ApplicationRecorder, Mapper

from projections import state
from projections.base import Projection
from projections.database import ReadDatabase
from projections.runner import apply_notifications

REBUILD_PAGE_SIZE = 5000


def rebuild(database: ReadDatabase, recorder: ApplicationRecorder, mapper: Mapper[Any],
            projections: Sequence[Projection],
            page_size: int = REBUILD_PAGE_SIZE) -> dict[str, state.State]:
    """Rebuild each projection; returns the states they switched to."""
    with database.writer.begin() as connection:
        state.ensure(connection, projections)
    return {p.name: _rebuild_one(database, recorder, mapper, p, page_size) for p in projections}


def _rebuild_one(database: ReadDatabase, recorder: ApplicationRecorder, mapper: Mapper[Any],
                 projection: Projection, page_size: int) -> state.State:
    with database.writer.begin() as connection:
        live = state.read(connection, [projection.name])[projection.name]
        fresh = state.State(live.generation + 1, 0)
        state.drop_tables(connection, projection, live.generation - 1)
        state.drop_tables(connection, projection, fresh.generation)
        state.create_tables(connection, projection, fresh.generation)
    fresh = _fill(database, recorder, mapper, projection, fresh, page_size,
                  topics=sorted(projection.topics or ()))
    with database.writer.begin() as connection:
        state.read(connection, [projection.name], for_update=True)
        fresh = _fill_within(connection, recorder, mapper, projection, fresh, page_size)
        state.write(connection, projection.name, fresh)
    return fresh


def _fill(database: ReadDatabase, recorder: ApplicationRecorder, mapper: Mapper[Any],
          projection: Projection, current: state.State, page_size: int,
          topics: Sequence[str]) -> state.State:
    """Apply the projection's own events up to the head, a page per transaction.

    The head is read first; once no event of ours remains at or below it, the position
    moves to the head itself, so the switch transaction only reads what came after.
    """
    head = recorder.max_notification_id() or 0
    while True:
        notifications = recorder.select_notifications(
            start=current.position, limit=page_size, stop=head, topics=topics,
            inclusive_of_start=False)
        if not notifications:
            return state.State(current.generation, max(current.position, head))
        with database.writer.begin() as connection:
            states = {projection.name: current}
            apply_notifications(connection, mapper, [projection], states, notifications,
                                write_state=False)
        current = state.State(current.generation, notifications[-1].id)


def _fill_within(connection: Any, recorder: ApplicationRecorder, mapper: Mapper[Any],
                 projection: Projection, current: state.State, page_size: int) -> state.State:
    """Apply everything after `current` up to the head, in the caller's transaction."""
    while True:
        notifications = recorder.select_notifications(
            start=current.position, limit=page_size, inclusive_of_start=False)
        if not notifications:
            return current
        apply_notifications(connection, mapper, [projection], {projection.name: current},
                            notifications, write_state=False)
        current = state.State(current.generation, notifications[-1].id)
