"""The PostgreSQL recorder's fixed statements, rendered to bytes once instead of per execute.

`eventsourcing.postgres` keeps its statements as psycopg `Composed` objects (identifiers
and a literal formatted into SQL text), and psycopg renders a `Composed` again every time
it is executed: each identifier escaped by libpq, the lock timeout dumped as a literal
through the adapters. Every save executes four such statements (`SET LOCAL lock_timeout`,
`LOCK TABLE`, `NOTIFY`, the `INSERT`); py-spy put about 6% of the group-commit writer's
samples on rendering them under 16 clients (docs/architecture.md). They never change once
the recorder is built, so they are rendered once here, on one of the recorder's own
connections, into the very bytes psycopg would send; the library's methods run unchanged
around them.
"""

from __future__ import annotations

from typing import Any

from psycopg.sql import SQL, Composable, Identifier


def render_statements(recorder: Any) -> bool:
    """Render a PostgreSQL application recorder's insert-path statements once; False
    (nothing changed) for any other recorder."""
    datastore = getattr(recorder, "datastore", None)
    statements = getattr(recorder, "lock_table_statements", None)
    insert = getattr(recorder, "insert_events_statement", None)
    channel = getattr(recorder, "channel_name", None)
    if datastore is None or not hasattr(datastore, "get_connection") \
            or not isinstance(statements, list) or not isinstance(insert, Composable) \
            or not isinstance(channel, str) \
            or not all(isinstance(statement, Composable) for statement in statements):
        return False
    with datastore.get_connection() as connection:
        recorder.lock_table_statements = [statement.as_bytes(connection)
                                          for statement in statements]
        recorder.insert_events_statement = insert.as_bytes(connection)
        notify = SQL("NOTIFY {0}").format(Identifier(channel)).as_bytes(connection)

    def notify_channel(cursor: Any) -> None:  # the library's `_notify_channel`, rendered
        cursor.execute(notify)

    recorder._notify_channel = notify_channel
    return True
