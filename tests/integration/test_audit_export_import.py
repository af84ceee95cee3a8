"""Export and import of the event log on real stores, and offline verification of an export.

What an auditor would notice: an import that does not reproduce the original chain (another
head digest) or the original read models, an export whose tampered line still verifies, or an
import that accepts a tampered export or writes into a store that already holds events.
"""

from __future__ import annotations

import base64
import os
import re
import subprocess
import sys
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit
from uuid import UUID, uuid4

import psycopg
import pytest
from eventsourcing.persistence import IntegrityError, StoredEvent
from export_support import export_lines, write_export
from psycopg import sql

from ledger.application import Ledger
from ledger.chain import GENESIS, Digest, Record, next_link, verify
from ledger.commands import Count, CountLine, Dispatch, DispatchLine, Receipt, ReceiptLine, Transfer
from ledger.config import Settings, read_models_url, store_environment
from ledger.domain.context import CommandMeta
from ledger.domain.item import ItemDetails
from ledger.export import records
from projections.service import ReadModels

D = Decimal
OPERATOR = CommandMeta(actor="operator")
CLI_SECONDS = 120
TAMPERED = 5

StoredTuple = tuple[str, int, str, bytes]


# Stores, read models and the CLI.


def seed(ledger: Ledger) -> None:
    """Two items (FIFO and average), three locations, every kind of movement."""
    ledger.register_item("FIFO-1", ItemDetails("Bolt", "each", "fifo"), OPERATOR)
    ledger.register_item("AVG-1", ItemDetails("Oil", "litre", "moving_average"), OPERATOR)
    for code in ("WH-1", "WH-2", "SHOP"):
        ledger.register_location(code, f"Location {code}", OPERATOR)
    ledger.receive(Receipt(location="WH-1", lines=(
        ReceiptLine("FIFO-1", D("10"), D("2.50")), ReceiptLine("AVG-1", D("8"), D("1.25")))),
        OPERATOR)
    ledger.receive(Receipt(location="WH-1", lines=(
        ReceiptLine("FIFO-1", D("5"), D("3.00")), ReceiptLine("AVG-1", D("4"), D("1.40")))),
        OPERATOR)
    ledger.dispatch(Dispatch(location="WH-1", lines=(DispatchLine("FIFO-1", D("12")),)),
                    OPERATOR)
    ledger.transfer(Transfer(from_location="WH-1", to_location="SHOP", lines=(
        DispatchLine("AVG-1", D("3")),)), OPERATOR)
    ledger.count(Count(location="SHOP", reason="cycle count", lines=(
        CountLine("AVG-1", D("2")),)), OPERATOR)


def stored_events(database_url: str) -> list[tuple[int, StoredTuple]]:
    """Every stored event as the store holds it, with its position."""
    with Ledger(store_environment(database_url)) as ledger:
        return [(record.position, (str(record.aggregate_id), record.version, record.topic,
                                   record.state)) for record in records(ledger.recorder)]


def head_of(database_url: str) -> int:
    with Ledger(store_environment(database_url)) as ledger:
        return ledger.head_position()


def caught_up_statuses(database_url: str) -> dict[str, tuple[int, str]]:
    """Read models beside the store, caught up to its head: each one's position and digest."""
    with Ledger(store_environment(database_url)) as ledger:
        read_models = ReadModels.open(read_models_url(Settings(database_url=database_url)))
        try:
            read_models.runner(ledger.recorder, ledger.mapper).catch_up()
            return {s.name: (s.position, s.digest) for s in read_models.status()}
        finally:
            read_models.close()


def ledger_cli(database_url: str, *arguments: str) -> tuple[int, str]:
    """`python -m ledger.cli …` as a real process; its exit status and output."""
    environment = {key: value for key, value in os.environ.items()
                   if not key.startswith("LEDGER_")}
    environment["LEDGER_DATABASE_URL"] = database_url
    done = subprocess.run([sys.executable, "-m", "ledger.cli", *arguments], env=environment,
                          capture_output=True, text=True, timeout=CLI_SECONDS, check=False)
    return done.returncode, done.stdout + done.stderr


def digest_in(output: str) -> Digest:
    found = re.search(r"head digest:?\s+(\d+:[0-9a-f]{64})", output)
    assert found, output
    return Digest.parse(found.group(1))


def assert_tampered_at(status: int, output: str, position: int) -> None:
    assert status == 1, output
    assert re.search(rf"TAMPERED: .*\bposition {position}\b", output), output


def _libpq(url: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))


@pytest.fixture
def empty_store(database_url: str, tmp_path: Path) -> Iterator[str]:
    """A second, empty store on the same backend: another SQLite file or PostgreSQL schema."""
    if database_url.startswith("sqlite:"):
        yield f"sqlite:///{(tmp_path / 'imported' / 'ledger.db').as_posix()}"
        return
    parts = urlsplit(database_url)
    schema = f"imported_{uuid4().hex[:12]}"
    query = urlencode({**dict(parse_qsl(parts.query)), "schema": schema})
    with psycopg.connect(_libpq(database_url), autocommit=True) as connection:
        connection.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
    yield urlunsplit(parts._replace(query=query))
    with psycopg.connect(_libpq(database_url), autocommit=True) as connection:
        connection.execute("SET lock_timeout = '10s'")
        connection.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(
            sql.Identifier(schema)))


@pytest.fixture
def source(database_url: str) -> str:
    with Ledger(store_environment(database_url)) as ledger:
        seed(ledger)
    return database_url


@pytest.fixture
def exported(source: str, tmp_path: Path, cli: Callable[..., tuple[int, str]]) -> Path:
    path = tmp_path / "ledger-export.jsonl"
    status, output = cli(source, "export", "--to", str(path))
    assert status == 0, output
    return path


# Editing an export file.


def forge(entry: dict[str, object]) -> None:
    """Change an exported event's state (another actor), leaving its link alone."""
    state = base64.b64decode(str(entry["state"]))
    changed = state.replace(b'"actor":"operator"', b'"actor":"mallory"')
    assert changed != state
    entry["state"] = base64.b64encode(changed).decode()


def relink(entries: list[dict[str, object]]) -> None:
    """Recompute every link, as a forger who knows the format would."""
    link = GENESIS
    for entry in entries:
        record = Record(int(str(entry["position"])), UUID(str(entry["aggregate_id"])),
                        int(str(entry["version"])), str(entry["topic"]),
                        base64.b64decode(str(entry["state"])))
        link = next_link(link, record)
        entry["link"] = link


# Round trip.


def test_import_reproduces_the_chain_the_events_and_the_read_models(
        source: str, empty_store: str, tmp_path: Path,
        cli: Callable[..., tuple[int, str]]) -> None:
    path = tmp_path / "ledger-export.jsonl"
    original = caught_up_statuses(source)
    status, output = ledger_cli(source, "verify")
    assert status == 0, output
    head = digest_in(output)

    status, output = ledger_cli(source, "export", "--to", str(path))
    assert status == 0, output
    assert digest_in(output) == head
    status, output = ledger_cli(empty_store, "import", str(path))
    assert status == 0, output
    assert f"imported {head.position} events" in output

    assert stored_events(empty_store) == stored_events(source)
    status, output = cli(empty_store, "verify", "--digest", str(head))
    assert status == 0, output
    assert digest_in(output) == head
    assert caught_up_statuses(empty_store) == original


def test_the_imported_store_is_a_working_ledger(
        source: str, exported: Path, empty_store: str,
        cli: Callable[..., tuple[int, str]]) -> None:
    status, output = cli(empty_store, "import", str(exported))
    assert status == 0, output

    with Ledger(store_environment(empty_store)) as imported:
        result = imported.dispatch(Dispatch(location="SHOP", lines=(
            DispatchLine("AVG-1", D("1")),)), OPERATOR)
        shop = imported.stock_bin("AVG-1", "SHOP")
    with Ledger(store_environment(source)) as ledger:
        ledger.dispatch(Dispatch(location="SHOP", lines=(DispatchLine("AVG-1", D("1")),)),
                        OPERATOR)
        original = ledger.stock_bin("AVG-1", "SHOP")

    assert result.position == head_of(source)
    assert shop is not None and original is not None
    assert (shop.quantity_on_hand, shop.value) == (original.quantity_on_hand, original.value)


def test_an_export_verifies_offline_against_a_kept_digest(
        source: str, exported: Path, tmp_path: Path,
        cli: Callable[..., tuple[int, str]]) -> None:
    head = digest_in(cli(source, "verify")[1])
    nowhere = tmp_path / "nowhere"

    status, output = ledger_cli(f"sqlite:///{nowhere.as_posix()}/ledger.db", "verify",
                                "--export", str(exported), "--digest", str(head))

    assert status == 0, output
    assert digest_in(output) == head
    assert not nowhere.exists(), "verifying an export must not touch a store"


def test_the_chain_survives_gaps_in_the_source_log(
        fresh_postgres_url: str, tmp_path: Path, sqlite_url: str,
        cli: Callable[..., tuple[int, str]]) -> None:
    # PostgreSQL consumes positions for inserts that roll back: the imported copy is numbered
    # without gaps, but the chain covers the order of events, not their numbers.
    path = tmp_path / "gapped.jsonl"
    with Ledger(store_environment(fresh_postgres_url)) as ledger:
        seed(ledger)
        first = ledger.recorder.select_notifications(start=1, limit=1)[0]
        with pytest.raises(IntegrityError):
            ledger.recorder.insert_events([StoredEvent(
                first.originator_id, first.originator_version, first.topic, first.state)])
        ledger.register_location("BACK", "Back room", OPERATOR)
        positions = [position for position, _ in stored_events(fresh_postgres_url)]
    assert positions[-1] > len(positions), "the source log has no gap to test with"
    status, output = cli(fresh_postgres_url, "export", "--to", str(path))
    head = digest_in(output)

    status, output = cli(sqlite_url, "import", str(path))

    assert status == 0, output
    imported = stored_events(sqlite_url)
    assert [stored for _, stored in imported] == [
        stored for _, stored in stored_events(fresh_postgres_url)]
    assert [position for position, _ in imported] == list(range(1, len(positions) + 1))
    status, output = cli(sqlite_url, "verify")
    assert status == 0, output
    assert digest_in(output).link == head.link


def test_an_export_from_sqlite_imports_into_postgresql_with_the_same_chain_and_views(
        sqlite_url: str, fresh_postgres_url: str, tmp_path: Path,
        cli: Callable[..., tuple[int, str]]) -> None:
    path = tmp_path / "embedded.jsonl"
    with Ledger(store_environment(sqlite_url)) as ledger:
        seed(ledger)
    status, output = cli(sqlite_url, "export", "--to", str(path))
    head = digest_in(output)

    status, output = cli(fresh_postgres_url, "import", str(path))

    assert status == 0, output
    assert stored_events(fresh_postgres_url) == stored_events(sqlite_url)
    status, output = cli(fresh_postgres_url, "verify", "--digest", str(head))
    assert status == 0, output
    # Moving from the embedded store to production keeps the read models byte for byte.
    assert caught_up_statuses(fresh_postgres_url) == caught_up_statuses(sqlite_url)


# Tampered exports.


def test_a_changed_export_line_is_named_offline(
        exported: Path, cli: Callable[..., tuple[int, str]]) -> None:
    header, entries = export_lines(exported)
    forge(entries[TAMPERED - 1])
    write_export(exported, header, entries)

    status, output = cli("sqlite:///unused.db", "verify", "--export", str(exported))

    assert_tampered_at(status, output, TAMPERED)


def test_a_removed_export_line_fails_offline(
        exported: Path, cli: Callable[..., tuple[int, str]]) -> None:
    header, entries = export_lines(exported)
    del entries[TAMPERED - 1]
    write_export(exported, header, entries)

    status, output = cli("sqlite:///unused.db", "verify", "--export", str(exported))

    # The line's own link went with it; the next event no longer follows from its predecessor.
    assert_tampered_at(status, output, TAMPERED + 1)


def test_a_relinked_forgery_is_caught_by_a_kept_digest(
        source: str, exported: Path, cli: Callable[..., tuple[int, str]]) -> None:
    head = digest_in(cli(source, "verify")[1])
    header, entries = export_lines(exported)
    forge(entries[TAMPERED - 1])
    relink(entries)
    write_export(exported, header, entries)

    status, output = cli("sqlite:///unused.db", "verify", "--export", str(exported), "--digest",
                         str(head))

    assert_tampered_at(status, output, head.position)


def test_import_refuses_a_tampered_export_and_writes_nothing(
        exported: Path, empty_store: str) -> None:
    header, entries = export_lines(exported)
    forge(entries[TAMPERED - 1])
    write_export(exported, header, entries)

    status, output = ledger_cli(empty_store, "import", str(exported))

    assert status == 1, output
    assert "refused" in output and f"position {TAMPERED}" in output
    assert head_of(empty_store) == 0


def test_import_refuses_a_store_that_holds_events(
        source: str, exported: Path,
        cli: Callable[..., tuple[int, str]]) -> None:
    before = stored_events(source)

    status, output = cli(source, "import", str(exported))

    assert status == 1, output
    assert "refused" in output and "not empty" in output
    assert stored_events(source) == before


def test_importing_twice_is_refused_the_second_time(
        exported: Path, empty_store: str, cli: Callable[..., tuple[int, str]]) -> None:
    status, output = cli(empty_store, "import", str(exported))
    assert status == 0, output
    once = stored_events(empty_store)

    status, output = cli(empty_store, "import", str(exported))

    assert status == 1, output
    assert stored_events(empty_store) == once


def test_import_refuses_a_file_that_is_not_an_export(
        tmp_path: Path, empty_store: str, cli: Callable[..., tuple[int, str]]) -> None:
    path = tmp_path / "events.jsonl"
    path.write_text('{"position": 1}\n', encoding="utf-8")

    status, output = cli(empty_store, "import", str(path))

    assert status == 2, output
    assert "not a ledger export" in output
    assert head_of(empty_store) == 0


def test_an_export_of_an_empty_store_is_empty_and_verifies(
        empty_store: str, tmp_path: Path, cli: Callable[..., tuple[int, str]]) -> None:
    path = tmp_path / "empty.jsonl"

    status, output = cli(empty_store, "export", "--to", str(path))

    assert status == 0, output
    assert digest_in(output) == Digest(0, GENESIS)
    assert len(path.read_text(encoding="utf-8").splitlines()) == 1
    assert verify([], []).head == digest_in(cli(empty_store, "verify", "--export",
                                                str(path))[1])
