"""The database's own limits, measured with psycopg on a table shaped like the event table.

The table copies what `eventsourcing.postgres.PostgresApplicationRecorder` creates
(columns, primary key, the unique index on notification_id, storage parameters); rows
carry a ~250-byte state. No application code runs here: these are the ceilings the ledger
is compared with.
"""

from __future__ import annotations

import os
import time
import uuid
from dataclasses import dataclass

import psycopg
from psycopg import sql

from benchmark import pg
from benchmark.stats import LoadResult, run_clients

STATE_BYTES = 250
TOPIC = "ledger:StockBin.Received"
COPY_TRANSACTION_ROWS = 10_000
READ_PAGE_ROWS = 5_000  # the page size of `ledger rebuild` and `ledger export`


def create_table(conn: psycopg.Connection, schema: str, table: str) -> None:
    """The stored-events table as eventsourcing 9.5 creates it for an application recorder."""
    ident = {"schema": sql.Identifier(schema), "table": sql.Identifier(table),
             "index": sql.Identifier(f"{table}_notification_id_idx")}
    conn.execute(sql.SQL(
        "CREATE TABLE {schema}.{table} ("
        "originator_id uuid NOT NULL, originator_version bigint NOT NULL, topic text, "
        "state bytea, notification_id bigserial, "
        "PRIMARY KEY (originator_id, originator_version)) WITH ("
        "autovacuum_enabled = true, autovacuum_vacuum_threshold = 100000000, "
        "autovacuum_vacuum_scale_factor = 0.5, autovacuum_analyze_threshold = 1000, "
        "autovacuum_analyze_scale_factor = 0.01)").format(**ident))
    conn.execute(sql.SQL("CREATE UNIQUE INDEX {index} ON {schema}.{table} "
                         "(notification_id ASC)").format(**ident))


def insert_commit(schema: str, table: str, clients: int, seconds: float,
                  lock_table: bool = False) -> LoadResult:
    """`clients` threads, each committing one single-row INSERT per transaction.

    With `lock_table`, each transaction first takes the EXCLUSIVE table lock, as the
    library's recorder does before every insert (so that commit order is id order).
    """
    insert = sql.SQL("INSERT INTO {}.{} (originator_id, originator_version, topic, state) "
                     "VALUES (%s, %s, %s, %s)").format(sql.Identifier(schema),
                                                       sql.Identifier(table))
    lock = sql.SQL("LOCK TABLE {}.{} IN EXCLUSIVE MODE").format(sql.Identifier(schema),
                                                                sql.Identifier(table))
    connections = [pg.connect(autocommit=False) for _ in range(clients)]
    state = os.urandom(STATE_BYTES)

    def make(n: int):
        conn = connections[n]
        originator = uuid.uuid4()
        version = [0]

        def operation(_rng: object) -> None:
            version[0] += 1
            with conn.transaction():
                if lock_table:
                    conn.execute(lock)
                conn.execute(insert, (originator, version[0], TOPIC, state), prepare=True)

        return operation

    try:
        return run_clients(clients, seconds, make)
    finally:
        for conn in connections:
            conn.close()


@dataclass
class Timed:
    rows: int
    seconds: float

    @property
    def rate(self) -> float:
        return self.rows / self.seconds


def copy_rows(schema: str, table: str, rows: int) -> Timed:
    """COPY `rows` rows in transactions of 10,000 rows (binary format), timed end to end."""
    copy = sql.SQL("COPY {}.{} (originator_id, originator_version, topic, state) "
                   "FROM STDIN (FORMAT BINARY)").format(sql.Identifier(schema),
                                                       sql.Identifier(table))
    states = [os.urandom(STATE_BYTES) for _ in range(64)]
    with pg.connect(autocommit=False) as conn:
        started = time.perf_counter()
        written = 0
        while written < rows:
            batch = min(COPY_TRANSACTION_ROWS, rows - written)
            with conn.transaction(), conn.cursor() as cursor, cursor.copy(copy) as out:
                out.set_types(["uuid", "int8", "text", "bytea"])
                for n in range(batch):
                    out.write_row((uuid.uuid4(), 1, TOPIC, states[n % 64]))
            written += batch
        return Timed(written, time.perf_counter() - started)


def read_pages(schema: str, table: str) -> Timed:
    """Read the whole table in notification-id order, a page at a time (the log's reader)."""
    select = sql.SQL("SELECT * FROM {}.{} WHERE notification_id > %s "
                     "ORDER BY notification_id LIMIT %s").format(sql.Identifier(schema),
                                                                sql.Identifier(table))
    with pg.connect() as conn, conn.cursor() as cursor:
        started = time.perf_counter()
        position, total = 0, 0
        while True:
            cursor.execute(select, (position, READ_PAGE_ROWS), prepare=True)
            page = cursor.fetchall()
            total += len(page)
            if len(page) < READ_PAGE_ROWS:
                break
            position = page[-1][4]
        return Timed(total, time.perf_counter() - started)


def write_tables(schema: str, tables: list[str]) -> Timed:
    """What a rebuild writes, written as fast as the server takes it: every row of `tables`
    (as the rebuild left them) is read into memory in COPY's binary format, then COPYed on
    one connection into empty tables of the same columns and primary key, whose other
    indexes are built afterwards, as `ledger rebuild` builds them; the copies are dropped.
    Timed: the COPYs and the index builds; rows: the rows written."""
    rows, seconds = 0, 0.0
    with pg.connect() as conn:
        for table in tables:
            source = sql.Identifier(schema, table)
            target = sql.Identifier(schema, f"floor_{table}")
            data = bytearray()
            with conn.cursor().copy(sql.SQL("COPY {} TO STDOUT (FORMAT BINARY)").format(
                    source)) as out:
                for chunk in out:
                    data += chunk
            rows += conn.execute(sql.SQL("SELECT count(*) FROM {}").format(
                source)).fetchone()[0]  # type: ignore[index]
            keys, indexes = _table_indexes(conn, schema, table)
            conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(target))
            conn.execute(sql.SQL("CREATE TABLE {} (LIKE {} INCLUDING DEFAULTS)").format(
                target, source))
            for key in keys:
                conn.execute(sql.SQL("ALTER TABLE {} ADD ").format(target) + sql.SQL(key))
            started = time.perf_counter()
            with conn.transaction(), conn.cursor().copy(sql.SQL(
                    "COPY {} FROM STDIN (FORMAT BINARY)").format(target)) as copy:
                for start in range(0, len(data), 1 << 20):
                    copy.write(data[start:start + (1 << 20)])
            for index in indexes:
                conn.execute(index.replace(f" ON {schema}.{table} ",
                                           f" ON {schema}.floor_{table} ", 1)
                             .replace("INDEX ", "INDEX floor_", 1))
            seconds += time.perf_counter() - started
            conn.execute(sql.SQL("DROP TABLE {}").format(target))
    return Timed(rows, seconds)


def _table_indexes(conn: psycopg.Connection, schema: str, table: str
                   ) -> tuple[list[str], list[str]]:
    """A table's primary-key and unique constraints (as a rebuild's fresh table has them
    while it is filled), and the CREATE INDEX statements of its other indexes."""
    keys = [str(row[0]) for row in conn.execute(
        "SELECT pg_get_constraintdef(c.oid) FROM pg_constraint c "
        "JOIN pg_class t ON t.oid = c.conrelid JOIN pg_namespace n ON n.oid = t.relnamespace "
        "WHERE n.nspname = %s AND t.relname = %s AND c.contype IN ('p', 'u') "
        "ORDER BY c.contype, c.conname", (schema, table))]
    indexes = [row[0] for row in conn.execute(
        "SELECT indexdef FROM pg_indexes i WHERE schemaname = %s AND tablename = %s "
        "AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conname = i.indexname "
        "AND c.contype IN ('p', 'u'))", (schema, table))]
    return keys, indexes
