"""The shared database fixtures of tests/conftest.py do what they promise."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qs, urlsplit, urlunsplit

import psycopg
import pytest


def split_schema(url: str) -> tuple[str, str | None]:
    """Split our URL format into a libpq URL and the ``schema`` query parameter."""
    parts = urlsplit(url)
    schema = parse_qs(parts.query).get("schema", [None])[0]
    return urlunsplit(parts._replace(query="")), schema


def schema_exists(url: str, schema: str) -> bool:
    """Whether ``schema`` exists in the database at ``url``."""
    with psycopg.connect(url, connect_timeout=5) as conn:
        row = conn.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", (schema,)).fetchone()
    return row is not None


def objects_in_schema(url: str, schema: str) -> int:
    """How many relations, types and functions live in ``schema``."""
    query = """
        SELECT (SELECT count(*) FROM pg_class WHERE relnamespace = n.oid)
             + (SELECT count(*) FROM pg_type WHERE typnamespace = n.oid)
             + (SELECT count(*) FROM pg_proc WHERE pronamespace = n.oid)
        FROM pg_namespace n WHERE n.nspname = %s
    """
    with psycopg.connect(url, connect_timeout=5) as conn:
        row = conn.execute(query, (schema,)).fetchone()
    assert row is not None, f"schema {schema} does not exist"
    return int(row[0])


@dataclass
class DropWatch:
    """Schemas a test saw; checked to be gone after the fixtures set up later are torn down."""

    url: str
    schemas: list[str] = field(default_factory=list)


@pytest.fixture
def drop_watch(request: pytest.FixtureRequest) -> Iterator[DropWatch]:
    """Requested *before* ``database_url``, so its teardown runs after that fixture's teardown."""
    if request.node.get_closest_marker("postgres") is None:
        yield DropWatch(url="")
        return
    watch = DropWatch(url=request.getfixturevalue("postgres_url"))
    yield watch
    for schema in watch.schemas:
        assert not schema_exists(watch.url, schema), f"schema {schema} was not dropped"


def test_sqlite_url_is_an_absolute_file_in_tmp_path(sqlite_url: str, tmp_path: Path) -> None:
    assert sqlite_url.startswith("sqlite:////")
    path = Path(sqlite_url.removeprefix("sqlite:///"))
    assert path.is_absolute()
    assert path == (tmp_path / "ledger.db").resolve()
    assert not path.exists()


def test_postgres_url_names_the_test_database(postgres_url: str) -> None:
    assert urlsplit(postgres_url).path == "/ledger_test"
    with psycopg.connect(postgres_url, connect_timeout=5) as conn:
        row = conn.execute("SELECT current_database()").fetchone()
    assert row == ("ledger_test",)


def test_database_url_gives_an_empty_private_store(
    drop_watch: DropWatch, database_url: str, request: pytest.FixtureRequest
) -> None:
    backend = request.node.callspec.id
    if backend == "sqlite":
        assert database_url.startswith("sqlite:////")
        assert request.node.get_closest_marker("postgres") is None
        return
    assert backend == "postgres"
    assert request.node.get_closest_marker("postgres") is not None
    url, schema = split_schema(database_url)
    assert schema is not None
    assert schema.startswith("t_")
    assert len(schema) == len("t_") + 12
    assert urlsplit(url).path == "/ledger_test"
    assert schema_exists(url, schema)
    assert objects_in_schema(url, schema) == 0
    drop_watch.schemas.append(schema)  # drop_watch's teardown proves it is gone afterwards


@pytest.mark.postgres
def test_fresh_postgres_schema_is_writable_and_dropped_with_its_tables(
    drop_watch: DropWatch, fresh_postgres_url: str, postgres_url: str
) -> None:
    url, schema = split_schema(fresh_postgres_url)
    assert schema is not None
    with psycopg.connect(url, connect_timeout=5) as conn:
        conn.execute(f'CREATE TABLE "{schema}".probe (id int)')
        conn.execute(f'INSERT INTO "{schema}".probe VALUES (1)')
        conn.commit()
    assert objects_in_schema(url, schema) > 0  # the CASCADE drop has something to do
    assert split_schema(postgres_url)[1] is None
    drop_watch.schemas.append(schema)
