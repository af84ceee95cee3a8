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

The round trip is driven on libpq itself (`psycopg.pq`, the connection's `pgconn`): the
pipeline's five messages sent at once, the statement prepared once per connection under a
name of its own, its arrays and its answer in PostgreSQL's binary format, encoded and read
here (`pg_binary`). psycopg's cursors, pipeline object and adapters cost more of the
writer's CPU than the statement's whole work: a batch of 16 1 KB events took 0.62–0.69 ms
of CPU through them against 0.30–0.33 ms here, and 1.29–1.43 against 1.02–1.09 ms a round
trip (one thread in a loop, 500 batches, three interleaved pairs).
"""

from __future__ import annotations

import hashlib
import select
import weakref
from collections.abc import Collection, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from eventsourcing.persistence import (
    InterfaceError,
    Notification,
    OperationalError,
    StoredEvent,
)
from eventsourcing.utils import retry
from psycopg import errors, pq
from psycopg.sql import SQL, Identifier, Literal

from ledger import pg_binary

# The statements (by name) prepared on each connection of this process: writers of one
# schema (several ledgers in one process, sharing a pool) share their statement, named after
# its text (psycopg names its own `_pg3_N`). Weakly held: a connection the pool drops takes
# its entry with it.
_PREPARED: weakref.WeakKeyDictionary[Any, set[bytes]] = weakref.WeakKeyDictionary()
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
        self.ids = pg_binary.ids_of(datastore.originator_id_type)
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
            # evaluated for each row it is selected in. Parameters: $1 the position, $2-$5
            # the batch's columns, $6 the aggregates looked up, $7 the most others' to read.
            self.insert = SQL(
                "WITH later AS MATERIALIZED (SELECT originator_id FROM {0} "
                "WHERE notification_id > $1), "
                "stored AS (INSERT INTO {0} (originator_id, originator_version, topic, state) "
                "SELECT * FROM unnest($2::{1}[], $3::int8[], $4::text[], $5::bytea[]) "
                "WHERE NOT EXISTS (SELECT FROM later WHERE originator_id = ANY($6::{1}[])) "
                "RETURNING notification_id) "
                "SELECT 0 AS part, notification_id, NULL::{1} AS originator_id, "
                "NULL::int8 AS originator_version, NULL::text AS topic, NULL::bytea AS state "
                "FROM stored "
                "UNION ALL SELECT 1, NULL, NULL, NULL, pg_notify({2}, '')::text, NULL "
                "FROM (SELECT FROM stored LIMIT 1) AS any_stored "
                "UNION ALL (SELECT 2, " + _COLUMNS + " FROM {0} WHERE notification_id > $1 "
                "ORDER BY notification_id LIMIT $7)").format(
                    table, Identifier(datastore.originator_id_type),
                    Literal(recorder.channel_name)).as_bytes(connection)
        self.name = b"ledger_batch_" + hashlib.sha256(self.insert).hexdigest()[:24].encode()

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
        parameters = self.encode(stored_events, watched)
        # A psycopg error raised inside the library's `get_connection` becomes the library's
        # (a duplicate version an IntegrityError); the connection's context then rolls the
        # aborted transaction back before the connection goes back to the pool.
        with self.recorder.datastore.get_connection() as connection:
            prepared = self._prepared(connection)
            pgconn = connection.pgconn
            try:
                rows = self._round_trip(pgconn, self.name not in prepared,
                                        _with_bounds(parameters, position, limit))
            except (errors.InvalidSqlStatementName, errors.DuplicatePreparedStatement) as error:
                # Deallocated by someone (psycopg deallocates every statement when it rolls
                # back a connection it prepared its own on), or prepared on a save that then
                # failed: once more, preparing it or not as the server says. Rolled back
                # on libpq itself: psycopg's rollback would deallocate it all again.
                _roll_back(pgconn)
                rows = self._round_trip(pgconn,
                                        isinstance(error, errors.InvalidSqlStatementName),
                                        _with_bounds(parameters, position, limit))
            prepared.add(self.name)
        return self._found(rows, len(stored_events))

    def encode(self, stored_events: Sequence[StoredEvent],
               watched: Collection[UUID]) -> list[bytes]:
        """The statement's parameters but the position and the limit ($1 and $7), in
        PostgreSQL's binary format: the batch's four columns, the aggregates watched."""
        return [self.ids.array([event.originator_id for event in stored_events]),
                pg_binary.int8_array([event.originator_version for event in stored_events]),
                pg_binary.text_array([event.topic for event in stored_events]),
                pg_binary.bytea_array([event.state for event in stored_events]),
                self.ids.array(watched)]

    def send(self, parameters: list[bytes], sent: int, position: int,
             limit: int) -> InFlight:
        """`write`'s round trip begun and not awaited (a pipelined writer decides its next
        batch meanwhile): the pipeline sent on a connection held until `receive`.
        `parameters` from `encode`, for `sent` events."""
        stack = ExitStack()
        connection = stack.enter_context(self.recorder.datastore.get_connection())
        with _closing_on_error(stack):
            prepared = self._prepared(connection)
            self._send(connection.pgconn, self.name not in prepared,
                       _with_bounds(parameters, position, limit))
            prepared.add(self.name)  # taken back if the server refuses it (`receive`)
        return InFlight(stack, connection.pgconn, sent, prepared)

    def receive(self, flight: InFlight) -> BatchWrite:
        """The answer to a `send`: as `write`'s, its errors the library's as there; the
        connection goes back to the pool. (No second try: the pipelined writer decides the
        batch again, in step, when this raises.)"""
        with flight.stack:
            try:
                rows = self._answer(flight.pgconn, _results_or_abandon(flight.pgconn))
            except (errors.InvalidSqlStatementName, errors.DuplicatePreparedStatement):
                flight.prepared.discard(self.name)  # unknown now: `write` finds out
                raise
        return self._found(rows, flight.sent)

    @staticmethod
    def wait(flight: InFlight, other: int) -> None:
        """Until the answer to `flight` begins to arrive, or descriptor `other` can be
        read."""
        _wait_either(flight.pgconn.socket, other)

    @staticmethod
    def _prepared(connection: Any) -> set[bytes]:
        prepared = _PREPARED.get(connection)
        if prepared is None:
            prepared = _PREPARED[connection] = set()
        return prepared

    def _round_trip(self, pgconn: Any, prepare: bool, parameters: list[bytes]) -> Any:
        """BEGIN, the lock, the statement (prepared first when `prepare`), COMMIT: one
        pipeline, one Sync; the statement's rows (binary), or its error raised."""
        self._send(pgconn, prepare, parameters)
        return self._answer(pgconn, _results_or_abandon(pgconn))

    def _send(self, pgconn: Any, prepare: bool, parameters: list[bytes]) -> None:
        pgconn.enter_pipeline_mode()
        try:
            pgconn.send_query_params(b"BEGIN", None)
            for statement in self.lock:
                pgconn.send_query_params(statement, None)
            if prepare:
                pgconn.send_prepare(self.name, self.insert, None)
            pgconn.send_query_prepared(self.name, parameters,
                                       param_formats=[pq.Format.BINARY] * len(parameters),
                                       result_format=pq.Format.BINARY)
            pgconn.send_query_params(b"COMMIT", None)
            pgconn.pipeline_sync()
            _flush(pgconn)
        except BaseException:
            _abandon(pgconn)
            raise

    @staticmethod
    def _answer(pgconn: Any, results: list[Any]) -> Any:
        pgconn.exit_pipeline_mode()
        failed = next((result for result in results
                       if result.status == pq.ExecStatus.FATAL_ERROR), None)
        if failed is not None:
            raise errors.error_from_result(failed, encoding=_encoding(pgconn))
        return next(result for result in results if result.status == pq.ExecStatus.TUPLES_OK)

    def _found(self, rows: Any, sent: int) -> BatchWrite:
        positions: list[int] = []
        foreign: list[Notification] = []
        for row in range(rows.ntuples):
            part = rows.get_value(row, 0)
            if part == pg_binary.ZERO_INT4:
                positions.append(pg_binary.read_int8(rows.get_value(row, 1)))
            elif part == pg_binary.TWO_INT4:
                foreign.append(self._notification(rows, row))
        if sent and not positions:
            return BatchWrite(foreign, None)
        assert len(positions) == sent, "every event stored, or none"
        return BatchWrite(foreign, positions)

    def _notification(self, rows: Any, row: int) -> Notification:
        return Notification(id=pg_binary.read_int8(rows.get_value(row, 1)),
                            originator_id=self.ids.read(rows.get_value(row, 2)),
                            originator_version=pg_binary.read_int8(rows.get_value(row, 3)),
                            topic=rows.get_value(row, 4).decode(),
                            state=bytes(rows.get_value(row, 5)))


@dataclass
class InFlight:
    """A batch's round trip sent and not yet answered, and the pooled connection it holds."""

    stack: ExitStack
    pgconn: Any
    sent: int
    prepared: set[bytes]  # what is prepared on its connection


def _with_bounds(parameters: list[bytes], position: int, limit: int) -> list[bytes]:
    return [pg_binary.int8(position), *parameters, pg_binary.int8(limit)]


@contextmanager
def _closing_on_error(stack: ExitStack) -> Iterator[None]:
    """Hand an error to the connection's context (the library's, which translates it and
    gives the connection back), as raising inside a `with` block would."""
    try:
        yield
    except BaseException as error:
        stack.__exit__(type(error), error, error.__traceback__)  # raises the library's
        raise


def _flush(pgconn: Any) -> None:
    """Send what libpq holds (a large batch takes more than one write): as libpq asks,
    reading what arrives meanwhile."""
    socket = pgconn.socket
    while pgconn.flush():
        _wait(socket, writable=True)
        pgconn.consume_input()


def _results_or_abandon(pgconn: Any) -> list[Any]:
    try:
        return _results_until_sync(pgconn)
    except BaseException:
        _abandon(pgconn)
        raise


def _results_until_sync(pgconn: Any) -> list[Any]:
    """Every result of the pipeline, up to its Sync, waiting on the socket between them
    (the other threads run meanwhile)."""
    socket = pgconn.socket
    results: list[Any] = []
    while True:
        if pgconn.is_busy():
            _wait(socket)
            pgconn.consume_input()
            continue
        result = pgconn.get_result()
        if result is None:  # the end of one statement's results
            continue
        if result.status == pq.ExecStatus.PIPELINE_SYNC:
            return results
        results.append(result)


def _wait(socket: int, writable: bool = False) -> None:
    """Until the socket can be read (or, `writable`, read or written): `poll`, which takes
    any descriptor (`select` refuses those past 1023, which a busy server reaches); `select`
    where there is no `poll` (Windows)."""
    if _POLL is None:
        select.select([socket], [socket] if writable else [], [])
        return
    poller = _POLL()
    poller.register(socket, select.POLLIN | (select.POLLOUT if writable else 0))
    poller.poll()


def _wait_either(socket: int, other: int) -> None:
    """Until either descriptor can be read (or has failed)."""
    if _POLL is None:
        select.select([socket, other], [], [])
        return
    poller = _POLL()
    poller.register(socket, select.POLLIN)
    poller.register(other, select.POLLIN)
    poller.poll()


_POLL = getattr(select, "poll", None)


def _roll_back(pgconn: Any) -> None:
    """ROLLBACK on the connection itself, past psycopg (which would deallocate its prepared
    statements, and with them every other); its error raised, as psycopg's."""
    result = pgconn.exec_(b"ROLLBACK")
    if result.status != pq.ExecStatus.COMMAND_OK:
        raise errors.error_from_result(result, encoding=_encoding(pgconn))


def _abandon(pgconn: Any) -> None:
    """Leave pipeline mode after a failure part-way; a connection that cannot (results
    still owed) is closed, and the pool replaces it."""
    try:
        pgconn.exit_pipeline_mode()
    except errors.Error:  # libpq refused: results are still owed on this connection
        pgconn.finish()


def _encoding(pgconn: Any) -> str:
    name = pgconn.parameter_status(b"client_encoding") or b"UTF8"
    return "utf-8" if name.upper() in (b"UTF8", b"UNICODE") else name.decode()
