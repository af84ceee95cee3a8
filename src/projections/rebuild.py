"""Rebuilding read models from position zero into fresh tables, then switching over.

Set-based: the log is read once, in pages; each page's events are decoded once and
handed to every projection's in-memory fold (`projections.bulk`), which writes with
COPY (PostgreSQL) or multi-row INSERTs into the next generation's tables, created
without their secondary indexes (built once, at the end). The live generation keeps
serving queries meanwhile. The switch locks the projections' state rows, applies
whatever arrived during the rebuild page by page, and moves every generation and
position in one transaction. The generation before the live one is kept until the next
rebuild, so a query that began just before a switch still finds its tables.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from eventsourcing.persistence import ApplicationRecorder, Mapper, Notification
from sqlalchemy import Connection, Index

from ledger.gc_pause import gc_paused
from projections import state
from projections.base import Envelope, Projection
from projections.bulk import BulkFold, fold_for
from projections.database import ReadDatabase
from projections.rebuild_helpers import Helpers, Started
from projections.runner import apply_notifications

REBUILD_PAGE_SIZE = 10_000


class RebuildRunning(RuntimeError):
    """Another rebuild of one of these projections is under way on these read models."""

    def __init__(self, name: str) -> None:
        super().__init__(f"a rebuild of {name} is already running on these read models; "
                         "nothing was changed")
        self.name = name


def rebuild(database: ReadDatabase, recorder: ApplicationRecorder, mapper: Mapper[Any],
            projections: Sequence[Projection],
            page_size: int = REBUILD_PAGE_SIZE,
            helpers: Helpers | None = None) -> dict[str, state.State]:
    """Rebuild the projections together; returns the states they switched to.

    Raises RebuildRunning, before touching anything, while another rebuild of any of them
    runs on the same PostgreSQL read models: both would fill, and one switch to, the same
    next generation's tables."""
    with _alone(database, [projection.name for projection in projections]), gc_paused():
        return _rebuild(database, recorder, mapper, projections, page_size, helpers)


@contextmanager
def _alone(database: ReadDatabase, names: Sequence[str]) -> Iterator[None]:
    """Hold a session advisory lock per projection (PostgreSQL) for the rebuild's length;
    the locks go with the connection if this process dies."""
    if database.dialect != "postgresql":
        yield
        return
    keys = {name: rebuild_lock_key(name, database.place) for name in names}
    with database.writer.connect() as connection:
        held: list[int] = []
        try:
            for name, key in keys.items():
                if not connection.exec_driver_sql(
                        "SELECT pg_try_advisory_lock(%(key)s)", {"key": key}).scalar():
                    raise RebuildRunning(name)
                held.append(key)
            connection.commit()
            yield
        finally:
            connection.rollback()
            for key in held:
                connection.exec_driver_sql("SELECT pg_advisory_unlock(%(key)s)", {"key": key})
            connection.commit()


def rebuild_lock_key(name: str, place: tuple[str, ...]) -> int:
    """A stable signed 64-bit advisory-lock key for rebuilding one projection of one set of
    read models."""
    digest = hashlib.sha256(f"ledger-rebuild:{':'.join(place)}:{name}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def _rebuild(database: ReadDatabase, recorder: ApplicationRecorder, mapper: Mapper[Any],
             projections: Sequence[Projection], page_size: int,
             helpers: Helpers | None) -> dict[str, state.State]:
    names = [projection.name for projection in projections]
    with database.writer.begin() as connection:
        state.ensure(connection, projections)
        live = state.read(connection, names)
        fresh = {p.name: _fresh_tables(connection, p, live[p.name]) for p in projections}
    generations = {name: current.generation for name, current in fresh.items()}
    with database.writer.begin() as connection:
        for index in _indexes(projections, generations):
            index.drop(connection)
    head = recorder.max_notification_id() or 0
    _fill_shared(database, recorder, mapper, projections, (generations, head, page_size),
                 helpers)
    with database.writer.begin() as connection:
        state.read(connection, names, for_update=True)
        fresh = {name: state.State(current.generation, head) for name, current in fresh.items()}
        _fill_within(connection, recorder, mapper, projections, fresh, page_size)
        for name, current in fresh.items():
            state.write(connection, name, current)
    return fresh


def _fresh_tables(connection: Connection, projection: Projection,
                  live: state.State) -> state.State:
    """Empty tables for the generation after `live` (and the one before it dropped)."""
    fresh = state.State(live.generation + 1, 0)
    state.drop_tables(connection, projection, live.generation - 1)
    state.drop_tables(connection, projection, fresh.generation)
    state.create_tables(connection, projection, fresh.generation)
    return fresh


def _indexes(projections: Sequence[Projection], generations: dict[str, int]) -> list[Index]:
    """The secondary indexes of the projections' tables of the given generations."""
    return [index for projection in projections
            for table in projection.tables(generations[projection.name]).values()
            for index in table.indexes]


def _create(connection: Connection, indexes: Sequence[Index]) -> None:
    for index in indexes:
        index.create(connection)


def _fill_shared(database: ReadDatabase, recorder: ApplicationRecorder, mapper: Mapper[Any],
                 projections: Sequence[Projection], arguments: tuple[dict[str, int], int, int],
                 helpers: Helpers | None) -> None:
    """`fill` every projection: here alone, or with helper processes, each folding the
    events of a part of the aggregates (PostgreSQL, a log of at least
    `helpers.min_events`); then build the tables' secondary indexes."""
    generations, head, _ = arguments
    count = 1
    if helpers is not None and helpers.processes > 1 and database.dialect == "postgresql" \
            and head >= helpers.min_events:
        count = helpers.processes
    started = Started()
    try:
        for index in range(1, count):
            assert helpers is not None
            started.start(helpers, projections, fill, (*arguments, Part(index, count)))
        fill(database, recorder, mapper, projections, *arguments, Part(0, count))
        started.finish()
    except BaseException:
        started.stop()
        raise
    with database.writer.begin() as connection:
        _create(connection, _indexes(projections, generations))


@dataclass(frozen=True)
class Part:
    """The aggregates one process of a rebuild folds: those whose id modulo `count` is
    `index`. Every row of every read model comes from the events of one aggregate (a bin's
    stock level and cost layers, an item, an order, an event's journal lines and card row),
    so the parts' rows never meet; only the audit log's chain runs through them all."""

    index: int = 0
    count: int = 1

    def of(self, notifications: Sequence[Notification]) -> Sequence[Notification]:
        if self.count == 1:
            return notifications
        count, index = self.count, self.index
        return [n for n in notifications if _number(n.originator_id) % count == index]


def _number(originator_id: UUID | str) -> int:
    return (originator_id if isinstance(originator_id, UUID) else UUID(originator_id)).int


def fill(database: ReadDatabase, recorder: ApplicationRecorder, mapper: Mapper[Any],
         projections: Sequence[Projection], generations: dict[str, int], head: int,
         page_size: int, part: Part = Part()) -> None:
    """Fold the events of `part` of the aggregates, up to `head`, into the projections'
    tables of the given generations (created, empty, without secondary indexes).

    Each page is read whole (the audit log's chain runs through every event) and its part
    decoded once for all projections; a page's rows are written in one transaction, the
    keyed projections' rows in the last.
    """
    folds = [(projection, fold_for(projection), projection.tables(generations[projection.name]))
             for projection in projections]
    position = 0
    while True:
        notifications = recorder.select_notifications(
            start=position, limit=page_size, stop=head, inclusive_of_start=False)
        if not notifications:
            break
        envelopes = [Envelope(notification, mapper) for notification in part.of(notifications)]
        _fold_page(database, folds, notifications, envelopes, final=False)
        position = notifications[-1].id
    _fold_page(database, folds, [], [], final=True)


def _fold_page(database: ReadDatabase,
               folds: Sequence[tuple[Projection, BulkFold, dict[str, Any]]],
               log: Sequence[Notification], envelopes: Sequence[Envelope], *,
               final: bool) -> None:
    for projection, fold, _ in folds:
        mine = envelopes if projection.topics is None else [
            envelope for envelope in envelopes if envelope.topic in projection.topics]
        fold.add_page(log, mine)
    with database.writer.begin() as connection:
        for _, fold, tables in folds:
            fold.flush(connection, tables, final=final)


def _fill_within(connection: Connection, recorder: ApplicationRecorder, mapper: Mapper[Any],
                 projections: Sequence[Projection], fresh: dict[str, state.State],
                 page_size: int) -> None:
    """Apply everything after the head the fill read up to, in the switch's transaction;
    moves each state in `fresh` along."""
    while True:
        start = min(current.position for current in fresh.values())
        notifications = recorder.select_notifications(
            start=start, limit=page_size, inclusive_of_start=False)
        if not notifications:
            return
        apply_notifications(connection, mapper, projections, fresh, notifications,
                            write_state=False)
        last = notifications[-1].id
        for name, current in fresh.items():
            fresh[name] = state.State(current.generation, max(current.position, last))
