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

import hashlib
from typing import Any

from psycopg.sql import SQL, Composable, Identifier

# PostgreSQL truncates identifiers, channel names included, to 63 bytes.
IDENTIFIER_BYTES_MAX = 63


def name_channel_by_schema(recorder: Any) -> bool:
    """Name a PostgreSQL recorder's NOTIFY channel after its schema as well as its table;
    False (nothing changed) for any other recorder, or one in the default schema.

    The library names the channel after the events table alone (`ledger_events`), and
    NOTIFY reaches every session of the database that listens on that name: ledgers in two
    schemas of one database woke each other's projection workers on every commit (each
    then ran an empty page: a transaction, two reads and a write, for nothing). Every
    process that opens the store names it the same way: the writers that notify and the
    workers that listen (`projections.waiting.PostgresListener`) take the name from here.
    """
    datastore = getattr(recorder, "datastore", None)
    schema = getattr(datastore, "schema", "")
    channel = getattr(recorder, "channel_name", None)
    if not isinstance(channel, str) or not isinstance(schema, str) \
            or schema in ("", "public") or getattr(datastore, "enable_db_functions", False):
        return False  # (the library's insert function NOTIFYs the name it was built with)
    named = f"{schema}_{channel}"  # as the library names a table given with its schema
    if len(named.encode()) > IDENTIFIER_BYTES_MAX:  # distinct still, once cut to length
        digest = hashlib.sha256(schema.encode()).hexdigest()[:16]
        named = f"{digest}_{channel}".encode()[:IDENTIFIER_BYTES_MAX].decode(errors="ignore")
    recorder.channel_name = named
    return True


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
