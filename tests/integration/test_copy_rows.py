"""Rows copied into PostgreSQL (`projections.base.copy_rows`), and keyed rows written again
(`write_rows`): back exactly as given.

Tables of integers and text go in with a binary COPY, any other table as text; keyed rows
that were stored are changed in place, by one UPDATE of binary arrays. What a user would
notice: a read-model value that comes back changed (an escape, a sign, a NULL), which would
also change that read model's digest.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Integer,
    MetaData,
    Table,
    Text,
    select,
    text,
)

from projections import registry
from projections.base import _binary_types, copy_rows, write_rows
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


def _keyed() -> Table:
    return Table("keyed", MetaData(), Column("position", BigInteger, primary_key=True),
                 Column("name", Text, primary_key=True), Column("small", Integer),
                 Column("big", BigInteger), Column("text", Text), Column("maybe", Text))


def _written_again(database: ReadDatabase, table: Table, first: list[dict[str, Any]],
                   then: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], Any]:
    """`first` written as new rows, then `then` (some stored, some new) in one transaction;
    the table's rows afterwards, and what that transaction did to it (updated, deleted,
    inserted: PostgreSQL's counters for the transaction itself)."""
    with database.writer.begin() as connection:
        table.create(connection)
        write_rows(connection, table, [], {(row["position"], row["name"]): row for row in first})
    keys = [column.name for column in table.primary_key.columns]
    counting = text("SELECT n_tup_upd, n_tup_del, n_tup_ins FROM pg_stat_xact_user_tables "
                    "WHERE relid = CAST(:name AS regclass)")
    with database.writer.begin() as connection:
        stored = {tuple(row) for row in connection.execute(select(*table.primary_key.columns))}
        given = {tuple(row[key] for key in keys): row for row in then}
        before = connection.execute(counting, {"name": table.name}).one()
        write_rows(connection, table, [key for key in given if key in stored], given)
        after = connection.execute(counting, {"name": table.name}).one()
        counts = tuple(b - a for a, b in zip(before, after, strict=True))
        rows = [dict(row) for row in connection.execute(
            select(table).order_by(table.c.position, table.c.name)).mappings()]
    return rows, counts


def test_keyed_rows_written_again_are_changed_in_place_and_come_back_exactly(
        database: ReadDatabase) -> None:
    first = [{**row, "name": TEXTS[row["position"] % len(TEXTS)]} for row in _rows(24)]
    changed = [{**row, "small": -row["small"], "big": row["big"] // 3,
                "text": TEXTS[(row["position"] + 5) % len(TEXTS)], "maybe": None}
               for row in first[::2]]  # every "maybe" now NULL: an array of NULLs
    changed[1]["text"] = "now \\N, {here}"
    added = [{**row, "position": row["position"] + 100} for row in first[:5]]

    rows, (updated, deleted, inserted) = _written_again(database, _keyed(), first,
                                                        changed + added)

    assert (updated, deleted, inserted) == (len(changed), 0, len(added))
    expected = {(row["position"], row["name"]): row for row in first + changed + added}
    assert rows == [expected[key] for key in sorted(expected)]


def test_keyed_rows_of_a_table_of_other_types_are_written_anew(database: ReadDatabase) -> None:
    table = Table("keyed_text", MetaData(), Column("position", BigInteger, primary_key=True),
                  Column("name", Text, primary_key=True), Column("flag", Boolean))
    first = [{"position": n, "name": TEXTS[n], "flag": n % 2 == 0} for n in range(6)]
    then = [{**row, "flag": not row["flag"]} for row in first[:3]]

    rows, (updated, deleted, inserted) = _written_again(database, table, first, then)

    assert (updated, deleted, inserted) == (0, 3, 3)
    assert rows == then + first[3:]
