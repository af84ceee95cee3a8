"""Settings read from the environment, and the event store they select.

Nothing connects at import time: `Settings.from_environ()` only reads variables,
and `store_environment()` only turns a database URL into the `eventsourcing`
library's own settings.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import parse_qs, unquote, urlsplit

DEFAULT_DATABASE_URL = "sqlite:///ledger.db"


if TYPE_CHECKING:
    from ledger.group_commit import GroupCommitSettings


REBUILD_PROCESSES_MAX = 16
# Every process reads the whole log and runs the audit log's chain through it (about 9 µs an
# event) besides decoding and folding its part of the aggregates (about 75 µs an event of
# the part): past eight, the part that every process repeats is most of each one's work.
REBUILD_PROCESSES_AUTO_MAX = 8


class ConfigurationError(ValueError):
    """A setting that cannot be used (named in the message)."""


@dataclass(frozen=True)
class Settings:
    """Everything the service needs to start."""

    database_url: str = DEFAULT_DATABASE_URL
    read_database_url: str | None = None
    projections: str = "embedded"
    api_keys: str = ""
    request_body_bytes_max: int = 1024 * 1024
    read_wait_seconds: float = 5.0
    create_tables: bool = True
    over_receipt_tolerance: Decimal = Decimal(0)
    duplicate_order_window_seconds: int = 24 * 60 * 60
    account_codes: str = ""
    group_commit: bool = True
    group_commit_batch_max: int = 256
    group_commit_window_ms: float = 0.5  # a duration, not money: float-ok
    group_commit_pipeline: bool = True
    command_attempts_max: int = 32
    telemetry: bool = False
    project_gather_ms: float = 25.0  # a duration, not money: float-ok
    rebuild_processes: int = 0  # 0: one per core, at most REBUILD_PROCESSES_AUTO_MAX

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        return cls(
            database_url=env.get("LEDGER_DATABASE_URL") or DEFAULT_DATABASE_URL,
            read_database_url=env.get("LEDGER_READ_DATABASE_URL") or None,
            projections=env.get("LEDGER_PROJECTIONS") or "embedded",
            api_keys=env.get("LEDGER_API_KEYS", ""),
            request_body_bytes_max=int(env.get("LEDGER_REQUEST_BODY_BYTES_MAX", 1024 * 1024)),
            # A duration, not money. float-ok
            read_wait_seconds=float(env.get("LEDGER_READ_WAIT_SECONDS", 5.0)),  # float-ok
            over_receipt_tolerance=Decimal(env.get("LEDGER_OVER_RECEIPT_TOLERANCE", "0")),
            account_codes=env.get("LEDGER_ACCOUNT_CODES", ""),
            group_commit=env.get("LEDGER_GROUP_COMMIT", "on").lower() not in ("0", "off",
                                                                            "false", "no"),
            group_commit_batch_max=int(env.get("LEDGER_GROUP_COMMIT_BATCH_MAX", 256)),
            # A duration, not money. float-ok
            group_commit_window_ms=float(env.get("LEDGER_GROUP_COMMIT_WINDOW_MS", 0.5)),
            group_commit_pipeline=env.get("LEDGER_GROUP_COMMIT_PIPELINE", "on").lower()
            not in ("0", "off", "false", "no"),
            duplicate_order_window_seconds=int(env.get("LEDGER_DUPLICATE_ORDER_WINDOW_SECONDS",
                                                       24 * 60 * 60)),
            create_tables=env.get("LEDGER_CREATE_TABLES", "true").lower() not in ("0", "false",
                                                                                  "no"),
            telemetry=env.get("LEDGER_TELEMETRY", "off").lower() in ("1", "on", "true", "yes"),
            # A duration, not money. float-ok
            project_gather_ms=float(env.get("LEDGER_PROJECT_GATHER_MS", 25.0)),
            rebuild_processes=int(env.get("LEDGER_REBUILD_PROCESSES", 0)),
        )


def event_store_environment(settings: Settings) -> dict[str, str]:
    """The `eventsourcing` settings these ledger settings select."""
    return store_environment(settings.database_url, create_tables=settings.create_tables)


def read_models_url(settings: Settings) -> str:
    """Where the read models live: LEDGER_READ_DATABASE_URL, else beside the events.

    On SQLite they get a file of their own next to the event store (`ledger.db` →
    `ledger.read.db`), so that projection writes never wait for the event store's
    single writer; on PostgreSQL they share the event store's database and schema.
    """
    if settings.read_database_url:
        return settings.read_database_url
    url = settings.database_url
    if url.startswith("sqlite:"):
        stem = url[:-3] if url.endswith(".db") else url
        return f"{stem}.read.db"
    return url


def store_environment(database_url: str, *, create_tables: bool = True) -> dict[str, str]:
    """The `eventsourcing` settings for a `sqlite:///…` or `postgresql://…` URL.

    A locked-down PostgreSQL deployment (`ledger setup-db`) runs with `create_tables=False`:
    the service role may not create or replace the store's tables and functions.
    """
    parts = urlsplit(database_url)
    create = {"CREATE_TABLE": "true" if create_tables else "false"}
    if parts.scheme == "sqlite":
        return _sqlite_environment(parts.path) | create
    if parts.scheme in ("postgresql", "postgres", "postgresql+psycopg"):
        return _postgres_environment(database_url) | create
    raise ConfigurationError(
        f"LEDGER_DATABASE_URL must start with sqlite:/// or postgresql://; got {database_url!r}."
    )


def _sqlite_environment(url_path: str) -> dict[str, str]:
    # SQLAlchemy's convention: sqlite:///relative.db and sqlite:////absolute/path.db.
    path = url_path[1:] if url_path.startswith("/") else url_path
    if not path:
        raise ConfigurationError("A sqlite URL names a file: sqlite:///path/to/ledger.db.")
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    return {
        "PERSISTENCE_MODULE": "eventsourcing.sqlite",
        "SQLITE_DBNAME": path,
        "SQLITE_LOCK_TIMEOUT": "10",
    }


def _postgres_environment(database_url: str) -> dict[str, str]:
    parts = urlsplit(database_url)
    query = parse_qs(parts.query)
    dbname = unquote(parts.path.lstrip("/"))
    if not dbname or not parts.hostname:
        raise ConfigurationError(
            "A PostgreSQL URL names a host and a database: postgresql://user@host:5432/db."
        )
    environment = {
        "PERSISTENCE_MODULE": "eventsourcing.postgres",
        "POSTGRES_DBNAME": dbname,
        "POSTGRES_HOST": parts.hostname,
        "POSTGRES_PORT": str(parts.port or 5432),
        "POSTGRES_USER": unquote(parts.username or "postgres"),
        "POSTGRES_PASSWORD": unquote(parts.password or ""),
        "POSTGRES_POOL_SIZE": query.get("pool_size", ["10"])[0],
        "POSTGRES_MAX_OVERFLOW": query.get("max_overflow", ["10"])[0],
        "POSTGRES_LOCK_TIMEOUT": "10",
        "POSTGRES_CONNECT_TIMEOUT": "10",
    }
    if "schema" in query:
        environment["POSTGRES_SCHEMA"] = query["schema"][0]
    return environment


def project_gather_seconds(settings: Settings) -> float:
    """How long a `ledger project` worker lets events gather after a page that did not fill
    (`ProjectionRunner.run`)."""
    if not 0 <= settings.project_gather_ms <= 1000:
        raise ConfigurationError("LEDGER_PROJECT_GATHER_MS is from 0 to 1000.")
    return settings.project_gather_ms / 1000


def rebuild_processes(settings: Settings, cores: int | None = None) -> int:
    """How many processes `ledger rebuild` may fold in, itself included (on PostgreSQL read
    models; `projections.rebuild_helpers`): LEDGER_REBUILD_PROCESSES, or by default one per
    core (`cores`, else the machine's), at most REBUILD_PROCESSES_AUTO_MAX."""
    if not 0 <= settings.rebuild_processes <= REBUILD_PROCESSES_MAX:
        raise ConfigurationError(
            f"LEDGER_REBUILD_PROCESSES is from 0 (one per core) to {REBUILD_PROCESSES_MAX}.")
    if settings.rebuild_processes:
        return settings.rebuild_processes
    return max(1, min(cores or os.cpu_count() or 1, REBUILD_PROCESSES_AUTO_MAX))


def group_commit_settings(settings: Settings) -> GroupCommitSettings | None:
    """How the application service batches commands (None: one transaction per command)."""
    from ledger.group_commit import GroupCommitSettings

    if not settings.group_commit:
        return None
    if settings.group_commit_batch_max < 1 or not 0 <= settings.group_commit_window_ms <= 100:
        raise ConfigurationError("LEDGER_GROUP_COMMIT_BATCH_MAX is at least 1 and "
                                 "LEDGER_GROUP_COMMIT_WINDOW_MS from 0 to 100.")
    return GroupCommitSettings(settings.group_commit_batch_max,
                               settings.group_commit_window_ms / 1000,
                               pipelined=settings.group_commit_pipeline)
