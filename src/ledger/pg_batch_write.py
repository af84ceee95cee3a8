"""A group-commit batch's check and save in one round trip to PostgreSQL.

The writer keeps the aggregates its last save left (`group_commit.AggregateCache`) and
must not decide on state another process has since changed. Without this module a batch
costs three round trips: reading what others stored since the cache was current, then
the library's save (lock, insert, sync; commit). Here one pipeline carries all of it:

    BEGIN; SET LOCAL lock_timeout; LOCK TABLE events
    one statement:
        INSERT the batch's events, unless an event stored after the cache's position
            belongs to an aggregate the batch looked up or wrote, RETURNING their positions
        NOTIFY (pg_notify), when anything was stored
        SELECT the events stored after that position                 -- others' events
    COMMIT

The lock (the library's own, which keeps positions in commit order) is taken before the
SELECT, so nothing can be stored between what the SELECT saw and the batch's own events:
a batch that finds none of its aggregates changed is written exactly as if it had been
decided after the check, and one that does find a change writes nothing (the writer
brings its cache forward with what the SELECT returned and decides the batch again).
A refusal is covered too: the aggregates a refused command looked up are in the batch's
set. Measured on this machine: a trivial round trip costs ~0.1 ms, the check's ~0.2 ms of
the writer's CPU (docs/architecture.md).

The batch's events go as four arrays, one per column, in binary (`unnest(ids, versions,
topics, states)`), not as the library's one array of its composite type in text: the
server then copies each state as it is, where parsing a composite's text costs it about
18 µs a row of 1 KB (32 rows: 1.29 → 0.73 ms a round trip, docs/architecture.md).

Everything else is the library's: the table, the lock statements and the channel
(`pg_statements`), and the errors (a duplicate version is still an IntegrityError,
raised by its `get_connection`). The check, the insert, the read and the NOTIFY were four
statements of the pipeline until session 12; as one, a batch of 16 costs the writer 0.32
instead of 0.35–0.37 ms of CPU (docs/architecture.md).
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from operator import attrgetter
from typing import Any
from uuid import UUID

from eventsourcing.persistence import (
    InterfaceError,
    Notification,
    OperationalError,
    StoredEvent,
)
from eventsourcing.utils import retry
from psycopg.sql import SQL, Identifier, Literal

_COLUMNS = "notification_id, originator_id, originator_version, topic, state"


@dataclass(frozen=True)
class BatchWrite:
    """What one round trip found and did."""

    foreign: list[Notification]  # stored after the position, by others, in log order
    positions: list[int] | None  # the batch's events' positions; None: not written


class BatchWriter:
    """The statements of one PostgreSQL application recorder, rendered once."""

    def __init__(self, recorder: Any) -> None:
        self.recorder = recorder
        datastore = recorder.datastore
        table = SQL("{0}.{1}").format(Identifier(datastore.schema),
                                       Identifier(recorder.events_table_name))
        with datastore.get_connection() as connection:
            self.lock = [bytes(statement) if isinstance(statement, bytes)
                         else statement.as_bytes(connection)
                         for statement in recorder.lock_table_statements]
            # One statement checks, inserts, reads others' events and notifies. The fence
            # (a materialised CTE) keeps the planner on the position index: by aggregate id
            # it could walk every event of a long-lived bin. Every part of a statement reads
            # one snapshot, so `later` and the last SELECT see others' events, never the
            # batch's own. The NOTIFY is the library's (`pg_notify` with an empty payload is
            # `NOTIFY channel`), sent once when anything was stored: a volatile function is
            # evaluated for each row it is selected in.
            self.insert = SQL(
                "WITH later AS MATERIALIZED (SELECT originator_id FROM {0} "
                "WHERE notification_id > %b), "
                "stored AS (INSERT INTO {0} (originator_id, originator_version, topic, state) "
                "SELECT * FROM unnest(%b::{1}[], %b::int8[], %b::text[], %b::bytea[]) "
                "WHERE NOT EXISTS (SELECT FROM later WHERE originator_id = ANY(%b::{1}[])) "
                "RETURNING notification_id) "
                "SELECT 0 AS part, notification_id, NULL::{1} AS originator_id, "
                "NULL::int8 AS originator_version, NULL::text AS topic, NULL::bytea AS state "
                "FROM stored "
                "UNION ALL SELECT 1, NULL, NULL, NULL, pg_notify({2}, '')::text, NULL "
                "FROM (SELECT FROM stored LIMIT 1) AS any_stored "
                "UNION ALL (SELECT 2, " + _COLUMNS + " FROM {0} WHERE notification_id > %b "
                "ORDER BY notification_id LIMIT %b)").format(
                    table, Identifier(datastore.originator_id_type),
                    Literal(recorder.channel_name)).as_bytes(connection)

    @classmethod
    def for_recorder(cls, recorder: Any) -> BatchWriter | None:
        """A writer for the library's PostgreSQL application recorder; None for any other."""
        needed = ("datastore", "lock_table_statements", "events_table_name", "channel_name")
        if not all(hasattr(recorder, name) for name in needed) \
                or not hasattr(recorder.datastore, "get_connection"):
            return None
        return cls(recorder)

    def read_after(self, position: int, limit: int) -> list[Notification]:
        """The events stored after `position` (at most `limit`), in log order: the
        recorder's own read (on the ledger's recorder, `ledger.pg_reads`)."""
        return list(self.recorder.select_notifications(
            start=position, limit=limit, inclusive_of_start=False))

    @retry((InterfaceError, OperationalError), max_attempts=10, wait=0.2)
    def write(self, stored_events: Sequence[StoredEvent], position: int,
              watched: Collection[UUID], limit: int) -> BatchWrite:
        """Store `stored_events` unless an event after `position` belongs to an aggregate in
        `watched`; with the events others stored after `position` (at most `limit`)."""
        columns = (list(map(_id, stored_events)), list(map(_version, stored_events)),
                   list(map(_topic, stored_events)), list(map(_state, stored_events)))
        # The pipeline's exit sends the one Sync and reads every result: the one round trip
        # (a `sync()` before it would cost a second, empty one). An error (a duplicate
        # version) is raised there; the pool's connection context then rolls the aborted
        # transaction back before the connection is reused.
        with self.recorder.datastore.get_connection() as connection, \
                connection.cursor() as control, connection.cursor() as stored:
            with connection.pipeline():
                control.execute(b"BEGIN")
                for statement in self.lock:
                    control.execute(statement, prepare=True)
                stored.execute(self.insert, (position, *columns, list(watched), position, limit),
                               prepare=True, binary=True)
                control.execute(b"COMMIT")
            rows = stored.fetchall()
        positions = [row["notification_id"] for row in rows if row["part"] == 0]
        foreign = [_notification(row) for row in rows if row["part"] == 2]
        if stored_events and not positions:
            return BatchWrite(foreign, None)
        assert len(positions) == len(stored_events), "every event stored, or none"
        return BatchWrite(foreign, positions)


_id = attrgetter("originator_id")
_version = attrgetter("originator_version")
_topic = attrgetter("topic")
_state = attrgetter("state")


def _notification(row: Any) -> Notification:
    return Notification(id=row["notification_id"], originator_id=row["originator_id"],
                        originator_version=row["originator_version"], topic=row["topic"],
                        state=bytes(row["state"]))
