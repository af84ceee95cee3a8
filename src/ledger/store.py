"""Read-only questions about the event store that the library's API does not ask.

We never write to the event tables here (DESIGN decision 1; the one bulk writer is the
import of an export into an empty store, `ledger.export`); these queries
only read positions that the library's recorders assigned.
"""

from __future__ import annotations

from uuid import UUID

from eventsourcing.persistence import ApplicationRecorder
from eventsourcing.postgres import PostgresApplicationRecorder
from eventsourcing.sqlite import SQLiteApplicationRecorder
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

