"""Read-only questions about the event store that the library's API does not ask.

We never write to the event tables here (DESIGN decision 1; the one bulk writer is the
import of an export into an empty store, `ledger.export`); these queries
only read positions that the library's recorders assigned.
"""

from __future__ import annotations

from collections.abc import Sequence
from uuid import UUID

from eventsourcing.persistence import ApplicationRecorder, StoredEvent
from eventsourcing.postgres import PostgresApplicationRecorder
from eventsourcing.sqlite import SQLiteApplicationRecorder
from psycopg.rows import tuple_row
from psycopg.sql import SQL, Identifier


def position_of(recorder: ApplicationRecorder, originator_id: UUID, version: int) -> int | None:
    """The notification id (log position) of one stored event, or None if absent."""
    if isinstance(recorder, SQLiteApplicationRecorder):
        return _sqlite_position_of(recorder, originator_id, version)
    if isinstance(recorder, PostgresApplicationRecorder):
        return _postgres_position_of(recorder, originator_id, version)
    raise TypeError(f"no position lookup for {type(recorder).__name__}")


def _sqlite_position_of(recorder: SQLiteApplicationRecorder, originator_id: UUID,
                        version: int) -> int | None:
    statement = (
        f"SELECT rowid FROM {recorder.events_table_name} "
        "WHERE originator_id=? AND originator_version=?"
    )
    with recorder.datastore.transaction(commit=False) as cursor:
        cursor.execute(statement, (originator_id.hex, version))
        row = cursor.fetchone()
    return None if row is None else int(row[0])


def _postgres_position_of(recorder: PostgresApplicationRecorder, originator_id: UUID,
                          version: int) -> int | None:
    statement = SQL(
        "SELECT notification_id FROM {schema}.{table} "
        "WHERE originator_id=%s AND originator_version=%s"
    ).format(schema=Identifier(recorder.datastore.schema),
             table=Identifier(recorder.events_table_name))
    with recorder.datastore.get_connection() as connection, connection.cursor() as cursor:
        cursor.execute(statement, (originator_id, version))
        row = cursor.fetchone()
    return None if row is None else int(row["notification_id"])



def stored_events(recorder: ApplicationRecorder, originator_id: UUID,
                  up_to_version: int) -> Sequence[StoredEvent]:
    """One aggregate's stored events up to a version, in order (the library's
    `select_events`, without building a dictionary per row: a snapshot after an import
    reads a hundred thousand of them)."""
    if isinstance(recorder, PostgresApplicationRecorder):
        statement = SQL(
            "SELECT originator_version, topic, state FROM {schema}.{table} "
            "WHERE originator_id=%s AND originator_version<=%s ORDER BY originator_version"
        ).format(schema=Identifier(recorder.datastore.schema),
                 table=Identifier(recorder.events_table_name))
        with recorder.datastore.get_connection() as connection, \
                connection.cursor(row_factory=tuple_row) as cursor:
            cursor.execute(statement, (originator_id, up_to_version), binary=True)
            return [StoredEvent(originator_id, version, topic, bytes(state))
                    for version, topic, state in cursor.fetchall()]
    return recorder.select_events(originator_id, lte=up_to_version)
