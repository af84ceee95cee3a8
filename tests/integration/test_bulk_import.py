"""`ledger import` into PostgreSQL with COPY in one transaction, and its all-or-nothing rule.

What an operator or auditor would notice: an imported store whose export has another head
digest or whose positions are not 1..N in the file's order, a refused import that left events
behind (the bad line being the last one, after the rows before it reached the server), an
import into a store that already held events, a store without planner statistics, or bins
snapshotted that did not need it (or a long one that was not).
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path

import psycopg
import pytest
from export_support import export_lines, write_export

from ledger import export as export_module
from ledger.application import SNAPSHOT_INTERVAL, Ledger
from ledger.commands import Dispatch, DispatchLine, Receipt, ReceiptLine
from ledger.config import store_environment
from ledger.domain.context import CommandMeta
from ledger.domain.identity import bin_id
from ledger.domain.item import ItemDetails
from ledger.export import export, records

D = Decimal
OPERATOR = CommandMeta(actor="operator")
# Bin LONG-1/WH gets 1 + RECEIPTS + DISPATCHES versions and SHORT-1/WH gets 1 + RECEIPTS: both
# reach the snapshot interval, only LONG-1 reaches the (lowered) import threshold.
RECEIPTS = SNAPSHOT_INTERVAL
DISPATCHES = 60
SNAPSHOT_MIN_EVENTS = SNAPSHOT_INTERVAL + 50

Cli = Callable[..., tuple[int, str]]


@pytest.fixture(scope="module")
def history(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An export of a SQLite store with one long bin and one shorter bin (written once)."""
    directory = tmp_path_factory.mktemp("bulk-import")
    with Ledger(store_environment(f"sqlite:///{directory / 'source.db'}")) as ledger:
        ledger.register_item("LONG-1", ItemDetails("Bolt", "each", "fifo"), OPERATOR)
        ledger.register_item("SHORT-1", ItemDetails("Oil", "litre", "moving_average"), OPERATOR)
        ledger.register_location("WH", "Warehouse", OPERATOR)
        for n in range(RECEIPTS):
            ledger.receive(Receipt(location="WH", lines=(
                ReceiptLine("LONG-1", D(2), D(n + 1)), ReceiptLine("SHORT-1", D(2), D(1)))),
                OPERATOR)
        for _ in range(DISPATCHES):
            ledger.dispatch(Dispatch(location="WH", lines=(DispatchLine("LONG-1", D(1)),)),
                            OPERATOR)
        export(ledger.recorder, directory / "history.jsonl")
    return directory / "history.jsonl"


def stored(database_url: str) -> list[tuple[int, str, int]]:
    """Every stored event's position, aggregate id and version, in log order."""
    with Ledger(store_environment(database_url)) as ledger:
        return [(record.position, str(record.aggregate_id), record.version)
                for record in records(ledger.recorder)]


def reexported_head(database_url: str, path: Path) -> str:
    with Ledger(store_environment(database_url)) as ledger:
        return str(export(ledger.recorder, path))


def tampered_last(history: Path, tmp_path: Path) -> Path:
    """The export with the state of its last event changed (still valid base64)."""
    header, entries = export_lines(history)
    state = base64.b64decode(str(entries[-1]["state"]))
    entries[-1]["state"] = base64.b64encode(state + b" ").decode()
    path = tmp_path / "tampered.jsonl"
    write_export(path, header, entries)
    return path


def test_copy_import_reproduces_the_export_in_file_order(
        history: Path, fresh_postgres_url: str, tmp_path: Path, cli: Cli) -> None:
    _, entries = export_lines(history)
    head = reexported_head(f"sqlite:///{history.parent / 'source.db'}", tmp_path / "source.jsonl")

    status, output = cli(fresh_postgres_url, "import", str(history))

    assert status == 0, output
    assert f"imported {len(entries)} events" in output and f"head digest {head}" in output
    assert stored(fresh_postgres_url) == [
        (number, str(entry["aggregate_id"]), entry["version"])
        for number, entry in enumerate(entries, start=1)]
    assert reexported_head(fresh_postgres_url, tmp_path / "again.jsonl") == head


def test_a_copy_import_leaves_the_planner_statistics(
        history: Path, fresh_postgres_url: str, cli: Cli) -> None:
    status, output = cli(fresh_postgres_url, "import", str(history))
    assert status == 0, output

    schema = fresh_postgres_url.rsplit("schema=", 1)[1]
    with psycopg.connect(fresh_postgres_url.split("?", 1)[0]) as connection:
        analyzed = connection.execute(
            "SELECT last_analyze IS NOT NULL FROM pg_stat_user_tables "
            "WHERE schemaname = %s AND relname = 'ledger_events'", (schema,)).fetchone()
    # ANALYZE by hand (the import's), not autovacuum's: reads of the fresh log use its index.
    assert analyzed == (True,), "the import did not analyze the events table"


def test_a_tampered_last_line_leaves_the_store_empty_and_a_retry_starts_at_one(
        history: Path, fresh_postgres_url: str, tmp_path: Path, cli: Cli,
        monkeypatch: pytest.MonkeyPatch) -> None:
    # Every row goes to the server as soon as it verifies: the bad line comes after all the
    # others were written, and only the rollback can remove them.
    monkeypatch.setattr(export_module, "IMPORT_COPY_BYTES", 1)
    _, entries = export_lines(history)

    status, output = cli(fresh_postgres_url, "import", str(tampered_last(history, tmp_path)))

    assert status == 1, output
    assert "refused: the export does not verify" in output
    assert f"position {entries[-1]['position']}" in output
    assert stored(fresh_postgres_url) == []
    status, output = cli(fresh_postgres_url, "import", str(history))
    assert status == 0, output
    assert [position for position, _, _ in stored(fresh_postgres_url)] == list(
        range(1, len(entries) + 1))


# Not base64 as `base64.b64encode` writes it: a foreign character, a cut last quantum, a
# line break, padding in the middle, more padding than the data needs.
@pytest.mark.parametrize("state", ["not base64!", "QUJ", "QUJD\n", "QU=D", "QUJD===="])
def test_a_malformed_last_line_is_named_and_nothing_is_imported(
        history: Path, database_url: str, tmp_path: Path, cli: Cli,
        monkeypatch: pytest.MonkeyPatch, state: str) -> None:
    monkeypatch.setattr(export_module, "IMPORT_COPY_BYTES", 1)
    header, entries = export_lines(history)
    entries[-1]["state"] = state
    path = tmp_path / "malformed.jsonl"
    write_export(path, header, entries)

    status, output = cli(database_url, "import", str(path))

    assert status == 2, output
    assert f"line {len(entries) + 1} is not an export record" in output
    assert stored(database_url) == []


def test_a_store_that_holds_events_is_refused_and_left_as_it_was(
        history: Path, fresh_postgres_url: str, cli: Cli) -> None:
    with Ledger(store_environment(fresh_postgres_url)) as ledger:
        ledger.register_location("BACK", "Back room", OPERATOR)
    before = stored(fresh_postgres_url)

    status, output = cli(fresh_postgres_url, "import", str(history))

    assert status == 1, output
    assert "refused: the store is not empty" in output
    assert stored(fresh_postgres_url) == before


def test_only_bins_with_enough_imported_events_are_snapshotted(
        history: Path, database_url: str, cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(export_module, "IMPORT_SNAPSHOT_MIN_EVENTS", SNAPSHOT_MIN_EVENTS)

    status, output = cli(database_url, "import", str(history))

    assert status == 0, output
    assert "(1 bin snapshots)" in output
    with Ledger(store_environment(database_url)) as ledger:
        assert ledger.snapshots is not None
        long_bin = list(ledger.snapshots.get(bin_id("LONG-1", "WH")))
        short_bin = list(ledger.snapshots.get(bin_id("SHORT-1", "WH")))
        loaded = ledger.stock_bin("LONG-1", "WH")
    assert [snapshot.originator_version for snapshot in long_bin] == [SNAPSHOT_INTERVAL]
    assert short_bin == []
    assert loaded is not None and loaded.version == 1 + RECEIPTS + DISPATCHES
    assert loaded.quantity_on_hand == 2 * RECEIPTS - DISPATCHES
