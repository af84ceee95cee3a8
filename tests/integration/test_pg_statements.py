"""The recorder's insert-path statements rendered once (ledger.pg_statements): the same SQL.

The ledger renders the library's `Composed` statements to bytes when it starts. The bytes
must be exactly what psycopg renders from the library's own statements on every execute,
and a save must still lock the table, notify listeners and insert (nothing else changed).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import psycopg
import pytest
from eventsourcing.application import Application
from eventsourcing.persistence import StoredEvent
from eventsourcing.postgres import PostgresApplicationRecorder

from ledger.application import Ledger
from ledger.config import store_environment
from ledger.pg_statements import render_statements

pytestmark = pytest.mark.postgres


@pytest.fixture
def ledger(fresh_postgres_url: str) -> Iterator[Ledger]:
    app = Ledger(store_environment(fresh_postgres_url))
    yield app
    app.close()


class Plain(Application[uuid.UUID]):
    """The library's application on the same tables (its statements left composed)."""

    name = "ledger"


def test_the_rendered_statements_are_what_psycopg_renders_each_time(
        ledger: Ledger, fresh_postgres_url: str) -> None:
    app = Plain(store_environment(fresh_postgres_url))
    try:
        plain = app.recorder
        assert isinstance(plain, PostgresApplicationRecorder)
        with plain.datastore.get_connection() as connection:
            expected_locks = [statement.as_bytes(connection)  # type: ignore[union-attr]
                              for statement in plain.lock_table_statements]
            expected_insert = plain.insert_events_statement.as_bytes(connection)
    finally:
        app.close()
    rendered = ledger.recorder
    assert rendered.lock_table_statements == expected_locks  # type: ignore[attr-defined]
    assert rendered.insert_events_statement == expected_insert  # type: ignore[attr-defined]
    assert b"LOCK TABLE" in expected_locks[1] and b"lock_timeout" in expected_locks[0]
    assert expected_insert.startswith(b"    INSERT INTO ")


def test_a_sqlite_recorder_is_left_alone(sqlite_url: str) -> None:
    app = Ledger(store_environment(sqlite_url))
    try:
        assert render_statements(app.recorder) is False
    finally:
        app.close()


def test_a_save_still_notifies_listeners_and_inserts(ledger: Ledger,
                                                     fresh_postgres_url: str) -> None:
    channel = ledger.recorder.channel_name  # type: ignore[attr-defined]
    schema = fresh_postgres_url.split("schema=", 1)[1].split("&", 1)[0]
    plain_url = fresh_postgres_url.split("?", 1)[0]
    with psycopg.connect(plain_url, autocommit=True) as listener:
        listener.execute(f'LISTEN "{channel}"')
        event = StoredEvent(uuid.uuid4(), 1, "ledger:Test.Happened", b"{}")
        ledger.recorder.insert_events([event])
        heard = [note.channel for note in listener.notifies(timeout=5, stop_after=1)]
        (stored,) = ledger.recorder.select_events(event.originator_id)
        rows = listener.execute(f'SELECT count(*) FROM "{schema}".ledger_events').fetchone()
    assert heard == [channel]
    assert stored == event
    assert rows is not None and rows[0] == 1
