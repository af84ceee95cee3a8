"""The log read in binary (ledger.pg_reads): the library's rows, in the library's order.

Every reader of the log (projection runners, rebuilds, exports, the group-commit cache) goes
through the recorder's `select_notifications`, which the ledger replaces on PostgreSQL. For
every kind of bound it must return exactly what the library's own method returns.
"""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
from eventsourcing.postgres import PostgresApplicationRecorder
from eventsourcing.sqlite import SQLiteApplicationRecorder

from ledger import demo
from ledger.application import Ledger
from ledger.commands import Receipt, ReceiptLine
from ledger.config import store_environment
from ledger.domain.context import CommandMeta
from ledger.pg_reads import read_in_binary

OPERATOR = CommandMeta(actor="operator")


@pytest.fixture
def ledger(fresh_postgres_url: str) -> Iterator[Ledger]:
    with Ledger(store_environment(fresh_postgres_url)) as app:
        demo.load(app)
        app.receive(Receipt(location="SH-WH1", lines=(
            ReceiptLine("CUP-002", Decimal(3), Decimal("1.5")),)), OPERATOR)
        yield app


def rows(notifications: Any) -> list[tuple[Any, ...]]:
    return [(n.id, n.originator_id, n.originator_version, n.topic, n.state, type(n.state))
            for n in notifications]


BOUNDS: list[dict[str, Any]] = [
    {"start": None, "limit": 1_000},
    {"start": 1, "limit": 5},
    {"start": 1, "limit": 5, "inclusive_of_start": False},
    {"start": 10, "limit": 1_000, "stop": 30},
    {"start": 10, "limit": 7, "stop": 30, "inclusive_of_start": False},
    {"start": None, "limit": 3, "stop": 2},
    {"start": 30, "limit": 10, "stop": 10},
    {"start": 1_000_000, "limit": 10},
    {"start": 1, "limit": 1_000, "topics": ["ledger:StockBin.Received"]},
]


@pytest.mark.postgres
@pytest.mark.parametrize("bounds", BOUNDS, ids=lambda bounds: repr(bounds))
def test_binary_reads_return_the_librarys_rows(ledger: Ledger, bounds: dict[str, Any]) -> None:
    recorder = ledger.recorder
    assert isinstance(recorder, PostgresApplicationRecorder)
    assert "select_notifications" in vars(recorder), "the ledger installed its reader"
    library = PostgresApplicationRecorder.select_notifications(recorder, **bounds)

    ours = recorder.select_notifications(**bounds)

    assert rows(ours) == rows(library)
    if bounds == BOUNDS[0]:
        assert len(ours) > 50  # the demo's events: something to compare


def test_other_recorders_keep_their_own_reads(sqlite_url: str) -> None:
    with Ledger(store_environment(sqlite_url)) as app:
        assert isinstance(app.recorder, SQLiteApplicationRecorder)
        assert "select_notifications" not in vars(app.recorder)
        assert read_in_binary(app.recorder) is False
