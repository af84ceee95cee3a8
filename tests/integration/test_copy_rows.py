"""Rows copied into PostgreSQL (`projections.base.copy_rows`): back exactly as given.

Tables of integers and text go in with a binary COPY, any other table as text. What a user
would notice: a read-model value that comes back changed (an escape, a sign, a NULL), which
would also change that read model's digest.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import BigInteger, Boolean, Column, Integer, MetaData, Table, Text, select

from projections import registry
from projections.base import _binary_types, copy_rows
from projections.database import ReadDatabase, connect

pytestmark = pytest.mark.postgres

TEXTS = ["", "plain", "tab\there", "new\nline", "back\\slash", "quote\"'", "内部领用",
         "caf\u00e9", "\U0001f600", "a\x7fb", "\\N", "NULL"]


@pytest.fixture
def database(fresh_postgres_url: str) -> Iterator[ReadDatabase]:
    opened = connect(fresh_postgres_url)
    yield opened
    opened.dispose()


def _rows(count: int) -> list[dict[str, Any]]:
    return [{"position": n + 1, "small": (-1) ** n * n, "big": (-1) ** n * (2**62 + n),
             "text": TEXTS[n % len(TEXTS)], "maybe": None if n % 3 == 0 else TEXTS[-n % 12]}
            for n in range(count)]


def _round_trip(database: ReadDatabase, table: Table, rows: list[dict[str, Any]]
                ) -> list[dict[str, Any]]:
    with database.writer.begin() as connection:
        table.create(connection)
        copy_rows(connection, table, rows)
    with database.writer.begin() as connection:
        return [dict(row) for row in connection.execute(
            select(table).order_by(table.c.position)).mappings()]


def test_integers_and_text_come_back_exactly(database: ReadDatabase) -> None:
    table = Table("copied", MetaData(), Column("position", BigInteger, primary_key=True),
                  Column("small", Integer), Column("big", BigInteger), Column("text", Text),
                  Column("maybe", Text))
    assert _binary_types(table) == ["int8", "int4", "int8", "text", "text"]
    rows = _rows(40)

    assert _round_trip(database, table, rows) == rows


def test_a_table_of_other_types_is_copied_as_text(database: ReadDatabase) -> None:
    table = Table("copied_text", MetaData(), Column("position", BigInteger, primary_key=True),
                  Column("text", Text), Column("flag", Boolean))
    assert _binary_types(table) is None
    rows = [{"position": n + 1, "text": TEXTS[n % len(TEXTS)], "flag": n % 2 == 0}
            for n in range(len(TEXTS))]

    assert _round_trip(database, table, rows) == rows


def test_every_read_model_table_is_copied_in_binary() -> None:
    for projection in registry.all_projections():
        for table in projection.tables(1).values():
            assert _binary_types(table) is not None, table.name
