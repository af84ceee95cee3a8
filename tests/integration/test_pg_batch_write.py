"""A group-commit batch checked and saved in one round trip (ledger.pg_batch_write).

`BatchWriter.write` stores a batch's events unless another writer stored an event of an
aggregate the batch looked up after the writer's position; either way it returns what
others stored after that position. These tests drive it directly on a PostgreSQL store,
with the library's own recorder as "another writer".
"""

from __future__ import annotations

import gc
import threading
import uuid
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest
from eventsourcing.persistence import IntegrityError, OperationalError, StoredEvent
from psycopg import pq, sql

from ledger import pg_batch_write
from ledger.application import Ledger
from ledger.config import store_environment
from ledger.pg_batch_write import BatchWriter

pytestmark = pytest.mark.postgres
WAIT_SECONDS = 10.0


@pytest.fixture
def ledger(fresh_postgres_url: str) -> Iterator[Ledger]:
    app = Ledger(store_environment(fresh_postgres_url))
    yield app
    app.close()


@pytest.fixture
def writer(ledger: Ledger) -> BatchWriter:
    assert ledger.batch_writer is not None
    return ledger.batch_writer


def event(aggregate_id: uuid.UUID, version: int, state: bytes = b'{"n":1}') -> StoredEvent:
    return StoredEvent(aggregate_id, version, "test:Event", state)


def head(ledger: Ledger) -> int:
    return ledger.recorder.max_notification_id() or 0


def test_a_sqlite_ledger_has_no_batch_writer(sqlite_url: str) -> None:
    app = Ledger(store_environment(sqlite_url))
    try:
        assert app.batch_writer is None
        assert BatchWriter.for_recorder(app.recorder) is None
    finally:
        app.close()


def test_with_nothing_stored_since_the_batch_is_written_after_the_position(
        ledger: Ledger, writer: BatchWriter) -> None:
    mine, theirs = uuid.uuid4(), uuid.uuid4()
    ledger.recorder.insert_events([event(theirs, 1)])
    position = head(ledger)

    written = writer.write([event(mine, 1), event(mine, 2, b'{"n":2}')], position, [mine], 10)

    assert written.foreign == []
    assert written.positions == [position + 1, position + 2]
    stored = ledger.recorder.select_events(mine)
    assert [(e.originator_version, e.state) for e in stored] == [(1, b'{"n":1}'),
                                                                 (2, b'{"n":2}')]


def test_another_writers_event_on_a_looked_up_aggregate_stops_the_whole_batch(
        ledger: Ledger, writer: BatchWriter) -> None:
    read_only, written_to = uuid.uuid4(), uuid.uuid4()
    position = head(ledger)
    ledger.recorder.insert_events([event(read_only, 1, b'{"other":true}')])

    written = writer.write([event(written_to, 1)], position, [read_only, written_to], 10)

    assert written.positions is None
    assert [(n.originator_id, n.originator_version, n.state) for n in written.foreign] == [
        (read_only, 1, b'{"other":true}')]
    assert written.foreign[0].id == position + 1
    assert ledger.recorder.select_events(written_to) == []
    assert head(ledger) == position + 1


def test_another_writers_events_elsewhere_are_returned_in_order_and_the_batch_is_written(
        ledger: Ledger, writer: BatchWriter) -> None:
    mine, a, b = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    position = head(ledger)
    ledger.recorder.insert_events([event(a, 1), event(b, 1)])
    ledger.recorder.insert_events([event(a, 2)])

    written = writer.write([event(mine, 1)], position, [mine], 10)

    assert [(n.id, n.originator_id, n.originator_version) for n in written.foreign] == [
        (position + 1, a, 1), (position + 2, b, 1), (position + 3, a, 2)]
    assert written.positions == [position + 4]


def test_at_most_the_limit_of_others_events_is_returned(
        ledger: Ledger, writer: BatchWriter) -> None:
    others = uuid.uuid4()
    position = head(ledger)
    ledger.recorder.insert_events([event(others, version) for version in range(1, 6)])

    written = writer.write([event(uuid.uuid4(), 1)], position, [], 3)

    assert [n.originator_version for n in written.foreign] == [1, 2, 3]
    assert written.positions == [position + 6]
    assert writer.read_after(position + 3, 10)[0].originator_version == 4


def test_a_version_taken_all_the_same_is_an_integrity_error_and_nothing_is_kept(
        ledger: Ledger, writer: BatchWriter, monkeypatch: pytest.MonkeyPatch) -> None:
    """A version stored before the position (so not seen as another writer's event) still
    collides: the error is raised, the transaction rolled back, the connection reusable."""
    taken, fresh = uuid.uuid4(), uuid.uuid4()
    ledger.recorder.insert_events([event(taken, 1)])
    position = head(ledger)
    pool = writer.recorder.datastore.pool
    returned: list[pq.TransactionStatus] = []
    put = pool.putconn
    monkeypatch.setattr(pool, "putconn", lambda connection: returned.append(
        connection.info.transaction_status) or put(connection))

    with pytest.raises(IntegrityError):
        writer.write([event(fresh, 1), event(taken, 1)], position, [fresh], 10)

    assert ledger.recorder.select_events(fresh) == []
    assert head(ledger) == position
    # The aborted transaction was ended before the connection went back to the pool.
    assert returned[0] == pq.TransactionStatus.IDLE
    again = writer.write([event(fresh, 1)], position, [fresh], 10)
    assert again.positions is not None and len(again.positions) == 1


def test_an_empty_watch_list_and_an_empty_batch_are_accepted(
        ledger: Ledger, writer: BatchWriter) -> None:
    position = head(ledger)
    written = writer.write([event(uuid.uuid4(), 1)], position, [], 10)
    assert written.positions == [position + 1]
    assert writer.read_after(position, 10)[0].id == position + 1
    assert writer.read_after(position + 1, 10) == []


def test_every_byte_of_a_state_and_any_topic_are_stored_exactly(
        ledger: Ledger, writer: BatchWriter) -> None:
    """The batch goes as column arrays in binary: states of every byte value, empty and
    large ones, non-ASCII and quoting characters in topics, and versions past 32 bits are
    read back exactly as the library's own read returns them."""
    mine = uuid.uuid4()
    events = [
        StoredEvent(mine, 1, 'test:Événement "quoted", (with) {braces}\\', bytes(range(256))),
        StoredEvent(mine, 2, "test:空", b""),
        StoredEvent(mine, 2**40, "test:Large", b"\x00\\x" * 50_000),
    ]
    position = head(ledger)

    written = writer.write(events, position, [mine], 10)

    assert written.positions == [position + 1, position + 2, position + 3]
    stored = ledger.recorder.select_events(mine)
    assert [(e.originator_id, e.originator_version, e.topic, e.state) for e in stored] == [
        (e.originator_id, e.originator_version, e.topic, e.state) for e in events]


def test_a_batch_that_stores_notifies_listeners_once_and_one_that_stores_nothing_does_not(
        ledger: Ledger, writer: BatchWriter, fresh_postgres_url: str) -> None:
    """Projection runners wake on the library's channel: a written batch notifies it once
    (in the batch's own statement, with the library's empty payload); a batch stopped by
    another writer's event stores nothing and notifies nothing."""
    parts = urlsplit(fresh_postgres_url)
    channel = ledger.recorder.channel_name
    with psycopg.connect(urlunsplit((*parts[:3], "", "")), autocommit=True) as listener:
        listener.execute(sql.SQL("LISTEN {}").format(sql.Identifier(channel)))

        def received_until_marker() -> list[str]:
            # Notifications arrive in commit order: everything sent before the marker first.
            listener.execute("SELECT pg_notify(%s, 'marker')", (channel,))
            payloads = []
            for notify in listener.notifies(timeout=WAIT_SECONDS):
                if notify.payload == "marker":
                    return payloads
                payloads.append(notify.payload)
            raise AssertionError(f"no marker within {WAIT_SECONDS} s: {payloads}")

        mine, theirs = uuid.uuid4(), uuid.uuid4()
        assert writer.write([event(mine, 1), event(mine, 2)], head(ledger), [mine], 10).positions
        assert received_until_marker() == [""]
        stale = head(ledger)
        ledger.recorder.insert_events([event(theirs, 1)])  # the library's save notifies too
        assert writer.write([event(mine, 3)], stale, [mine, theirs], 10).positions is None
        assert received_until_marker() == [""]
        assert writer.write([], head(ledger), [mine], 10).positions == []  # stores nothing
        assert received_until_marker() == []


def test_the_batch_holds_the_librarys_lock_so_positions_stay_in_commit_order(
        ledger: Ledger, writer: BatchWriter, fresh_postgres_url: str) -> None:
    """Writers racing the library's own save through the same table lock: every write's
    check saw everything stored before its own events, so the log has no event that a
    later-positioned batch missed; positions are gapless and in each writer's order."""
    other = Ledger(store_environment(fresh_postgres_url))
    try:
        errors: list[BaseException] = []
        mine = [uuid.uuid4() for _ in range(4)]

        def batches(aggregate_id: uuid.UUID) -> None:
            position = head(ledger)
            try:
                for version in range(1, 26):
                    written = writer.write([event(aggregate_id, version)], position,
                                           [aggregate_id], 1_000)
                    assert written.positions is not None
                    foreign_ids = [n.id for n in written.foreign]
                    # Everything between the position and this batch was returned.
                    assert foreign_ids == list(range(position + 1, written.positions[0]))
                    position = written.positions[-1]
            except BaseException as error:  # reported to the test's thread
                errors.append(error)

        def library(aggregate_id: uuid.UUID) -> None:
            for version in range(1, 26):
                other.recorder.insert_events([event(aggregate_id, version)])

        threads = [threading.Thread(target=batches, args=(mine[0],)),
                   threading.Thread(target=batches, args=(mine[1],)),
                   threading.Thread(target=library, args=(mine[2],)),
                   threading.Thread(target=library, args=(mine[3],))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert errors == []
        notifications = ledger.recorder.select_notifications(start=1, limit=1_000)
        assert [n.id for n in notifications] == list(range(1, 101))
    finally:
        other.close()


# The round trip is driven on libpq itself (binary parameters and answer, a statement
# prepared once per connection): what psycopg's cursors did for it must still hold.


def test_others_events_come_back_exactly_as_the_librarys_own_read_returns_them(
        ledger: Ledger, writer: BatchWriter) -> None:
    theirs = uuid.uuid4()
    position = head(ledger)
    ledger.recorder.insert_events([
        StoredEvent(theirs, 1, "test:Ünïcode topic", bytes(range(256))),
        StoredEvent(theirs, 2**40, "test:Empty", b"")])

    written = writer.write([event(uuid.uuid4(), 1)], position, [], 10)

    assert written.foreign == writer.read_after(position, 2)
    assert [type(n.originator_id) for n in written.foreign] == [uuid.UUID, uuid.UUID]
    assert written.foreign[0].state == bytes(range(256))
    assert written.foreign[1].originator_version == 2**40


def written_again_after(ledger: Ledger, writer: BatchWriter,
                        meddle: Callable[[Any], None]) -> None:
    """A batch written; `meddle` done to every connection the writer may take next; a
    second batch of the same aggregate written, and both stored."""
    mine = uuid.uuid4()
    assert writer.write([event(mine, 1)], head(ledger), [mine], 10).positions
    pool = writer.recorder.datastore.pool
    held = [pool.getconn() for _ in range(pool.get_stats()["pool_size"])]
    for connection in held:
        meddle(connection)
    for connection in held:
        pool.putconn(connection)

    written = writer.write([event(mine, 2)], head(ledger), [mine], 10)

    assert written.positions == [head(ledger)]
    assert [e.originator_version for e in ledger.recorder.select_events(mine)] == [1, 2]


def test_a_statement_deallocated_on_the_connection_is_prepared_again(
        ledger: Ledger, writer: BatchWriter) -> None:
    written_again_after(ledger, writer, lambda connection: connection.execute("DEALLOCATE ALL"))


def test_a_statement_the_registry_forgot_is_used_and_survives_psycopgs_own_statements(
        ledger: Ledger, writer: BatchWriter) -> None:
    """The statement is on the server but not in the writer's registry (prepared in a save
    that then failed), and psycopg has prepared statements of its own on the connection:
    preparing it again is refused, and the rollback before the second try must not be
    psycopg's, which deallocates every statement when it has its own (the race tests saw
    'prepared statement ... does not exist' reach callers)."""

    def forget(connection: Any) -> None:
        connection.execute("SELECT 1", prepare=True)  # one of psycopg's own
        if writer.name not in pg_batch_write._PREPARED.get(connection, set()):
            assert connection.pgconn.prepare(writer.name, writer.insert).status == \
                pq.ExecStatus.COMMAND_OK
        pg_batch_write._PREPARED.get(connection, set()).discard(writer.name)  # forgotten

    written_again_after(ledger, writer, forget)


def test_connections_lost_are_replaced_and_the_write_goes_through(
        ledger: Ledger, writer: BatchWriter, fresh_postgres_url: str) -> None:
    """Every connection of the writer's pool killed by the server (only those: other tests
    share the database): each write's retries each take one and find it dead (the library's
    retry: 10 attempts, so a pool of more than 10 can exhaust them); each dead one is
    dropped, never handed out again, and a write goes through once the pool has replaced
    them, storing its events once."""
    mine = uuid.uuid4()
    assert writer.write([event(mine, 1)], head(ledger), [mine], 10).positions
    position = head(ledger)
    pids = [connection.pgconn.backend_pid for connection in pool_connections(writer)]
    parts = urlsplit(fresh_postgres_url)
    with psycopg.connect(urlunsplit((*parts[:3], "", "")), autocommit=True) as admin:
        killed = admin.execute("SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) "
                               "FROM unnest(%s::int[]) AS pid", (pids,)).fetchone()
    assert killed is not None and killed[0] == len(pids) >= 1

    failures = 0
    while True:
        try:
            written = writer.write([event(mine, 2)], position, [mine], 10)
            break
        except OperationalError:
            failures += 1
            assert failures * 10 < killed[0] + 10, "a dead connection was handed out again"

    assert written.positions == [position + 1]
    assert [e.originator_version for e in ledger.recorder.select_events(mine)] == [1, 2]
    # What the writer remembers of the dead connections went with them.
    gc.collect()
    live = {id(connection) for connection in pool_connections(writer)}
    assert {id(connection) for connection in pg_batch_write._PREPARED} <= live


def pool_connections(writer: BatchWriter) -> list[psycopg.Connection]:
    pool = writer.recorder.datastore.pool
    held = [pool.getconn() for _ in range(pool.get_stats()["pool_size"])]
    for connection in held:
        pool.putconn(connection)
    return held


def test_a_store_with_text_ids_is_written_and_read_back(fresh_postgres_url: str) -> None:
    app = Ledger({**store_environment(fresh_postgres_url), "ORIGINATOR_ID_TYPE": "text"})
    try:
        assert app.batch_writer is not None
        mine, theirs = uuid.uuid4(), uuid.uuid4()
        position = head(app)
        app.recorder.insert_events([StoredEvent(str(theirs), 1, "test:Event", b"{}")])

        stopped = app.batch_writer.write([event(mine, 1)], position, [mine, theirs], 10)
        written = app.batch_writer.write([event(mine, 1)], position, [mine], 10)

        assert stopped.positions is None
        assert [str(n.originator_id) for n in written.foreign] == [str(theirs)]
        assert written.positions == [position + 2]
        assert [e.originator_version for e in app.recorder.select_events(str(mine))] == [1]
    finally:
        app.close()


def test_a_connection_on_a_descriptor_past_select_s_limit_is_written_on(
        ledger: Ledger, writer: BatchWriter) -> None:
    """A busy server holds many sockets: the pool's connections may get descriptors past
    1023, which `select` refuses; the round trip waits with `poll`."""
    import os
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < 1200:
        pytest.skip(f"this process may open at most {hard} files")
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, 1200), hard))
    pool = writer.recorder.datastore.pool
    held = [pool.getconn() for _ in range(pool.get_stats()["pool_size"])]
    for connection in held:
        connection.close()  # its descriptor freed, and taken by the filler
    filler = [os.open(os.devnull, os.O_RDONLY) for _ in range(1100)]
    try:
        for connection in held:
            pool.putconn(connection)  # replaced by new connections, past the filler
        pool.wait(timeout=WAIT_SECONDS)
        mine = uuid.uuid4()
        with writer.recorder.datastore.get_connection() as connection:
            assert connection.pgconn.socket > 1023
        written = writer.write([event(mine, 1)], head(ledger), [mine], 10)
        assert written.positions == [head(ledger)]
    finally:
        for descriptor in filler:
            os.close(descriptor)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_a_batch_larger_than_the_sockets_buffers_is_sent_whole(
        ledger: Ledger, writer: BatchWriter) -> None:
    """About 12 MB in one batch: libpq sends it over many rounds of the wait."""
    mine = uuid.uuid4()
    states = [bytes([n]) * 60_000 for n in range(200)]
    position = head(ledger)

    written = writer.write([event(mine, n + 1, state) for n, state in enumerate(states)],
                           position, [mine], 10)

    assert written.positions == list(range(position + 1, position + 201))
    assert [e.state for e in ledger.recorder.select_events(mine)] == states
