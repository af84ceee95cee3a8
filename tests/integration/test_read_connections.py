"""Read-model connections on PostgreSQL: readers in autocommit from a pool of their own."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from projections.database import connect

pytestmark = pytest.mark.postgres


def test_a_reader_runs_each_statement_on_its_own_and_a_writer_in_a_transaction(
        fresh_postgres_url: str) -> None:
    database = connect(fresh_postgres_url)
    try:
        with database.reader.connect() as reader:
            # No transaction is open between statements: each is its own.
            reader.execute(text("SELECT 1"))
            assert reader.connection.driver_connection.autocommit is True
            assert reader.execute(text("SELECT now() = statement_timestamp()")).scalar()
        with database.writer.begin() as writer:
            assert writer.connection.driver_connection.autocommit is False
        assert database.reader.pool is not database.writer.pool
    finally:
        database.dispose()


def test_a_reader_may_still_ask_for_one_snapshot(fresh_postgres_url: str) -> None:
    database = connect(fresh_postgres_url)
    try:
        with database.writer.begin() as writer:
            writer.execute(text("CREATE TABLE counted (n int)"))
        with database.reader.connect() as reader:
            snapshot = reader.execution_options(isolation_level="REPEATABLE READ")
            with snapshot.begin():
                before = snapshot.execute(text("SELECT count(*) FROM counted")).scalar()
                with database.writer.begin() as writer:
                    writer.execute(text("INSERT INTO counted VALUES (1)"))
                assert snapshot.execute(text("SELECT count(*) FROM counted")).scalar() == before
        with database.reader.connect() as reader:
            assert reader.execute(text("SELECT count(*) FROM counted")).scalar() == 1
    finally:
        database.dispose()
