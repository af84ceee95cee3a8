"""SQLAlchemy engines for the read models, on SQLite or PostgreSQL.

SQLite allows one writer at a time; a projection transaction that read first and
wrote later could find the file changed under it, so writers begin with
`BEGIN IMMEDIATE` and take the lock up front. Readers use a separate engine whose
transactions never ask for the write lock.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit, urlunsplit

from sqlalchemy import Engine, create_engine, event

from ledger.config import ConfigurationError

SCHEMA_PATTERN = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")


@dataclass(frozen=True)
class ReadDatabase:
    """The engines of the read-model database and which dialect it speaks."""

    writer: Engine
    reader: Engine
    dialect: str
    schema: str | None = None
    path: str | None = None
    place: tuple[str, ...] = ()

    def ensure_schema(self) -> None:
        """Create the PostgreSQL schema the URL names, if it is missing."""
        if self.schema:
            with self.writer.begin() as connection:
                # Ask first: CREATE SCHEMA IF NOT EXISTS needs CREATE on the database even
                # when the schema exists, which a locked-down service role does not have.
                exists = connection.exec_driver_sql(
                    "SELECT 1 FROM pg_namespace WHERE nspname = %(name)s",
                    {"name": self.schema}).first()
                if exists is None:
                    connection.exec_driver_sql(f'CREATE SCHEMA "{self.schema}"')

    def erase(self) -> None:
        """Remove every read model here (a scratch replay starts from nothing)."""
        if self.schema:
            with self.writer.begin() as connection:
                connection.exec_driver_sql(f'DROP SCHEMA IF EXISTS "{self.schema}" CASCADE')
                connection.exec_driver_sql(f'CREATE SCHEMA "{self.schema}"')
        elif self.path:
            self.dispose()
            for suffix in ("", "-wal", "-shm"):
                Path(self.path + suffix).unlink(missing_ok=True)

    def dispose(self) -> None:
        self.writer.dispose()
        if self.reader is not self.writer:
            self.reader.dispose()


def place(url: str) -> tuple[str, ...]:
    """Where a URL's tables live, comparable between URLs written differently."""
    parts = urlsplit(url)
    if parts.scheme == "sqlite":
        path = parts.path[1:] if parts.path.startswith("/") else parts.path
        return ("sqlite", str(Path(path).resolve()))
    schema = parse_qs(parts.query).get("schema", ["public"])[0]
    return ("postgresql", parts.hostname or "", str(parts.port or 5432),
            parts.path.lstrip("/"), schema)


def connect(url: str) -> ReadDatabase:
    """Engines for a `sqlite:///…` or `postgresql://…[?schema=NAME]` read-model URL."""
    parts = urlsplit(url)
    if parts.scheme == "sqlite":
        return _sqlite(parts.path)
    if parts.scheme in ("postgresql", "postgres", "postgresql+psycopg"):
        return _postgres(url)
    raise ConfigurationError(f"Read models need a sqlite:/// or postgresql:// URL; got {url!r}.")


def _sqlite(url_path: str) -> ReadDatabase:
    path = url_path[1:] if url_path.startswith("/") else url_path
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    writer = create_engine(f"sqlite+pysqlite:///{path}", pool_size=1, max_overflow=0,
                           pool_timeout=30)
    reader = create_engine(f"sqlite+pysqlite:///{path}", pool_size=8, max_overflow=8)
    for engine, begin in ((writer, "BEGIN IMMEDIATE"), (reader, "BEGIN")):
        _sqlite_pragmas(engine, begin)
    return ReadDatabase(writer, reader, "sqlite", path=path, place=place(f"sqlite:///{path}"))


def _sqlite_pragmas(engine: Engine, begin: str) -> None:
    @event.listens_for(engine, "connect")
    def on_connect(dbapi_connection: Any, _: Any) -> None:
        # Let us issue BEGIN ourselves (pysqlite's own transaction handling is implicit).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        # The busy timeout first: switching to WAL itself waits for other openers.
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def on_begin(connection: Any) -> None:
        connection.exec_driver_sql(begin)


def _postgres(url: str) -> ReadDatabase:
    parts = urlsplit(url)
    query = parse_qs(parts.query)
    schema = query.get("schema", [None])[0]
    if schema is not None and not SCHEMA_PATTERN.fullmatch(schema):
        raise ConfigurationError(f"A schema name is letters, digits and '_'; got {schema!r}.")
    plain = urlunsplit(("postgresql+psycopg", parts.netloc, parts.path, "", ""))
    connect_args: dict[str, Any] = {"connect_timeout": 10}
    if schema:
        connect_args["options"] = f"-c search_path={schema}"
    engine = create_engine(plain, pool_size=8, max_overflow=8, pool_pre_ping=True,
                           connect_args=connect_args)
    # Readers run each statement on its own, as READ COMMITTED would anyway: no BEGIN and
    # no ROLLBACK around a query, two round trips fewer for every read request (a reader
    # that needs one snapshot asks for REPEATABLE READ on its connection, as finance does).
    # A pool of their own, in autocommit from the start: not switched to it and back at
    # every checkout, as an engine sharing the writers' pool would be.
    reader = create_engine(plain, pool_size=8, max_overflow=8, pool_pre_ping=True,
                           connect_args=connect_args, isolation_level="AUTOCOMMIT")
    return ReadDatabase(engine, reader, "postgresql", schema=schema, place=place(url))
