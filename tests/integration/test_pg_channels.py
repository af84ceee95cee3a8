"""Each schema's ledger NOTIFYs a channel of its own (`ledger.pg_statements`).

NOTIFY reaches every listening session of the database, and the library names the channel
after the events table alone: ledgers in two schemas of one database woke each other's
projection workers on every commit. The channel is now named after the schema as well, by
every process that opens the store, writers and listeners alike.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest
from eventsourcing.persistence import StoredEvent
from psycopg import sql

from ledger.application import Ledger
from ledger.config import store_environment
from ledger.pg_statements import IDENTIFIER_BYTES_MAX, name_channel_by_schema
from projections.waiting import PostgresListener

pytestmark = pytest.mark.postgres
WAIT_SECONDS = 10.0


@pytest.fixture
def two_ledgers(fresh_postgres_url: str, postgres_server: Any) -> Iterator[tuple[Ledger, Ledger]]:
    """A ledger in the test's fresh schema, and one in a second schema of the same database."""
    other = f"t_{uuid.uuid4().hex[:12]}"
    plain = postgres_server.database_url()
    with psycopg.connect(plain, autocommit=True) as connection:
        connection.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(other)))
    first = Ledger(store_environment(fresh_postgres_url))
    second = Ledger(store_environment(postgres_server.database_url(other)))
    try:
        yield first, second
    finally:
        first.close()
        second.close()
        with contextlib.suppress(psycopg.Error), \
                psycopg.connect(plain, autocommit=True) as connection:
            connection.execute(
                sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(other)))


def stored(aggregate_id: uuid.UUID, version: int) -> StoredEvent:
    return StoredEvent(aggregate_id, version, "test:Event", b'{"n":1}')


def test_a_listener_hears_its_own_schemas_commits_and_not_another_schemas(
        two_ledgers: tuple[Ledger, Ledger], fresh_postgres_url: str) -> None:
    mine, theirs = two_ledgers
    assert mine.recorder.channel_name != theirs.recorder.channel_name
    parts = urlsplit(fresh_postgres_url)
    channel = mine.recorder.channel_name
    with psycopg.connect(urlunsplit((*parts[:3], "", "")), autocommit=True) as listener:
        listener.execute(sql.SQL("LISTEN {}").format(sql.Identifier(channel)))
        # The other schema commits both ways a ledger writes: the group commit's batch
        # statement and the library's own save.
        assert theirs.batch_writer is not None and mine.batch_writer is not None
        assert theirs.batch_writer.write([stored(uuid.uuid4(), 1)], 0, [], 10).positions
        theirs.recorder.insert_events([stored(uuid.uuid4(), 1)])
        mine.recorder.insert_events([stored(uuid.uuid4(), 1)])
        assert mine.batch_writer.write([stored(uuid.uuid4(), 1)], 1, [], 10).positions
        listener.execute("SELECT pg_notify(%s, 'marker')", (channel,))
        heard = []
        for notify in listener.notifies(timeout=WAIT_SECONDS):
            if notify.payload == "marker":
                break
            heard.append(notify.payload)
        else:
            raise AssertionError(f"no marker within {WAIT_SECONDS} s: {heard}")
    assert heard == ["", ""]  # my two commits, none of theirs


def test_a_projection_worker_listens_on_the_channel_its_ledger_notifies(
        two_ledgers: tuple[Ledger, Ledger]) -> None:
    mine, _ = two_ledgers
    listener = PostgresListener(mine.recorder)  # type: ignore[arg-type]
    try:
        assert listener._channel == mine.recorder.channel_name
        assert mine.recorder.datastore.schema in listener._channel  # type: ignore[attr-defined]
    finally:
        listener.close()


class _Datastore:
    def __init__(self, schema: str, enable_db_functions: bool = False) -> None:
        self.schema = schema
        self.enable_db_functions = enable_db_functions


class _Recorder:
    def __init__(self, schema: str, enable_db_functions: bool = False) -> None:
        self.datastore = _Datastore(schema, enable_db_functions)
        self.channel_name = "ledger_events"


def test_long_schema_names_give_distinct_channels_within_postgresqls_identifier_length() -> None:
    long_a, long_b = _Recorder("s" * 60 + "a"), _Recorder("s" * 60 + "b")
    assert name_channel_by_schema(long_a) and name_channel_by_schema(long_b)
    assert long_a.channel_name != long_b.channel_name
    assert len(long_a.channel_name.encode()) <= IDENTIFIER_BYTES_MAX


def test_the_default_schema_and_the_librarys_insert_function_keep_the_librarys_name() -> None:
    for recorder in (_Recorder(""), _Recorder("public"), _Recorder("tenant", True)):
        assert not name_channel_by_schema(recorder)
        assert recorder.channel_name == "ledger_events"
