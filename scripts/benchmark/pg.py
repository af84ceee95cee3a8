"""The PostgreSQL server the benchmark runs on: its database, scratch schemas, settings.

Everything happens in the database `ledger_bench` (created on first use, UTF8 and the C
locale like the test database), in schemas named `bench_<run>_<phase>` that are dropped
when their phase ends and, whatever happens, when the run ends. One run at a time: a run
holds an advisory lock for its whole life, and drops the schemas a crashed run left behind.
"""

from __future__ import annotations

import contextlib
import os
import time
import uuid
from collections.abc import Iterator
from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg import sql

ADMIN_URL_VARIABLE = "LEDGER_BENCH_POSTGRES_URL"
DEFAULT_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
DATABASE = "ledger_bench"
SCHEMA_PREFIX = "bench_"
RUN_LOCK = 7_007_007  # advisory lock key: one benchmark run at a time


def admin_url() -> str:
    return os.environ.get(ADMIN_URL_VARIABLE, "").strip() or DEFAULT_ADMIN_URL


def database_url(schema: str | None = None) -> str:
    """The bench database's URL (libpq form), with `?schema=` when a schema is given."""
    parts = urlsplit(admin_url())
    query = f"schema={schema}" if schema else ""
    return urlunsplit((parts.scheme, parts.netloc, f"/{DATABASE}", query, ""))


def connect(url: str | None = None, *, autocommit: bool = True) -> psycopg.Connection:
    target = url or database_url()
    plain = target.split("?", 1)[0]  # psycopg does not know ?schema=
    return psycopg.connect(plain, autocommit=autocommit, connect_timeout=10)


def ensure_database() -> None:
    with connect(admin_url()) as conn:
        if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (DATABASE,)).fetchone():
            return
        with contextlib.suppress(psycopg.errors.DuplicateDatabase,
                                 psycopg.errors.UniqueViolation):
            conn.execute(sql.SQL("CREATE DATABASE {} TEMPLATE template0 ENCODING 'UTF8' "
                                 "LC_COLLATE 'C' LC_CTYPE 'C'").format(sql.Identifier(DATABASE)))


def server_settings() -> dict[str, str]:
    names = ("server_version", "fsync", "synchronous_commit", "wal_sync_method",
             "full_page_writes", "shared_buffers", "max_connections", "commit_delay")
    with connect() as conn:
        return {name: str(conn.execute(sql.SQL("SHOW {}").format(sql.Identifier(name)))
                          .fetchone()[0]) for name in names}


def checkpoint() -> None:
    """Flush what earlier phases wrote, so that a checkpoint does not land in a timed window
    (and the operating system's dirty pages, such as a just-written export file, are not
    written back inside one either)."""
    if hasattr(os, "sync"):
        os.sync()
    with connect() as conn, contextlib.suppress(psycopg.Error):
        conn.execute("CHECKPOINT")


def autovacuum_quiet(seconds_max: float = 60.0) -> float:
    """Wait until no autovacuum worker runs (at most `seconds_max`); the seconds waited.

    Interleaved windows (benchmark.rounds) follow one another: the autovacuum that one
    window's inserts set off would otherwise run in the next one, another phase's."""
    started = time.monotonic()
    with connect() as conn:
        while time.monotonic() - started < seconds_max:
            row = conn.execute("SELECT count(*) FROM pg_stat_activity "
                               "WHERE backend_type = 'autovacuum worker'").fetchone()
            if not row or not row[0]:
                break
            time.sleep(0.2)
    return time.monotonic() - started


class Scratch:
    """The run's scratch schemas: created on demand, dropped on request and at the end."""

    def __init__(self) -> None:
        self.run_id = uuid.uuid4().hex[:8]
        self.created: list[str] = []
        self._lock: psycopg.Connection | None = None

    def open(self) -> list[str]:
        """Take the run lock and drop schemas a crashed run left; returns what was dropped."""
        ensure_database()
        self._lock = connect()
        got = self._lock.execute("SELECT pg_try_advisory_lock(%s)", (RUN_LOCK,)).fetchone()[0]
        if not got:
            self._lock.close()
            self._lock = None
            raise RuntimeError(f"another benchmark run holds the lock on {DATABASE}; "
                               "wait for it to finish (measurements would disturb each other)")
        stale = self.existing()
        for schema in stale:
            self.drop(schema)
        return stale

    def existing(self) -> list[str]:
        with connect() as conn:
            rows = conn.execute("SELECT nspname FROM pg_namespace WHERE nspname LIKE %s "
                                "ORDER BY nspname", (SCHEMA_PREFIX + "%",)).fetchall()
        return [row[0] for row in rows]

    def create(self, phase: str) -> str:
        """A new empty schema for `phase`; returns its name."""
        schema = f"{SCHEMA_PREFIX}{self.run_id}_{phase}"
        with connect() as conn:
            conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(
                sql.Identifier(schema)))
            conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
        if schema not in self.created:
            self.created.append(schema)
        return schema

    def url(self, schema: str) -> str:
        return database_url(schema)

    def drop(self, schema: str) -> None:
        with connect() as conn:
            conn.execute("SET lock_timeout = '30s'")
            # Whatever still holds a lock there (a killed client's backend) goes first.
            conn.execute("SELECT pg_terminate_backend(pid) FROM pg_locks l "
                         "JOIN pg_class c ON c.oid = l.relation "
                         "JOIN pg_namespace n ON n.oid = c.relnamespace "
                         "WHERE n.nspname = %s AND l.pid <> pg_backend_pid()", (schema,))
            conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(
                sql.Identifier(schema)))
        if schema in self.created:
            self.created.remove(schema)

    @contextlib.contextmanager
    def schema(self, phase: str, keep: bool = False) -> Iterator[str]:
        """A schema for the length of a `with` block (kept with --keep, for debugging)."""
        name = self.create(phase)
        try:
            yield name
        finally:
            if not keep:
                with contextlib.suppress(psycopg.Error):
                    self.drop(name)

    def close(self, keep: bool = False) -> None:
        if not keep:
            for schema in list(self.created):
                with contextlib.suppress(psycopg.Error):
                    self.drop(schema)
        if self._lock is not None:
            with contextlib.suppress(psycopg.Error):
                self._lock.close()
            self._lock = None


def hung_inserts(schema: str, seconds: float) -> int:
    """Backends inserting into `schema` that have waited on the client for `seconds`.

    The signature of a client/server deadlock: the server waits for the rest of a query
    message (ClientRead) that the client never sends, while the client waits for results.
    """
    pattern = f'%INSERT INTO "{schema}".%'
    with connect() as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
            "AND state = 'active' AND wait_event = 'ClientRead' AND query LIKE %s "
            "AND now() - query_start > make_interval(secs => %s)", (pattern, seconds)).fetchone()
    return int(row[0])
