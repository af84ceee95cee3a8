"""Tamper evidence on real stores: edit the event table by hand, then `ledger verify`.

What an auditor would notice: an event changed, deleted or reordered directly in SQLite or
PostgreSQL (the way someone with database access would) that `ledger verify` still calls
intact, or a report that names the wrong event. Two ways of knowing the truth are tested
separately: the audit log's recorded links (caught up by a runner before the tampering), and a
digest the auditor kept outside the system with no audit log to consult.
"""

from __future__ import annotations

import contextlib
import os
import re
import sqlite3
import subprocess
import sys
from collections.abc import Callable, Iterator
from decimal import Decimal
from urllib.parse import parse_qs, urlsplit, urlunsplit

import psycopg
import pytest
from psycopg import sql

from ledger.application import Ledger
from ledger.chain import Digest, verify
from ledger.cli import main
from ledger.commands import Dispatch, DispatchLine, Receipt, ReceiptLine, Transfer
from ledger.config import Settings, read_models_url, store_environment
from ledger.domain.context import CommandMeta
from ledger.domain.item import ItemDetails
from ledger.export import records
from projections.service import ReadModels

D = Decimal
OPERATOR = CommandMeta(actor="operator")
CLI_SECONDS = 120
# The event that is changed or deleted, and the pair that is swapped (all before the head).
TAMPERED = 5
SWAPPED = (4, 7)


# The store and the CLI.


def seed(ledger: Ledger) -> int:
    """A small history of every kind of stock movement; returns the head position."""
    ledger.register_item("FIFO-1", ItemDetails("Bolt", "each", "fifo"), OPERATOR)
    for code in ("WH-1", "WH-2"):
        ledger.register_location(code, f"Location {code}", OPERATOR)
    ledger.receive(Receipt(location="WH-1", lines=(
        ReceiptLine("FIFO-1", D("10"), D("2.50")),)), OPERATOR)
    ledger.receive(Receipt(location="WH-1", lines=(
        ReceiptLine("FIFO-1", D("5"), D("3.00")),)), OPERATOR)
    ledger.dispatch(Dispatch(location="WH-1", lines=(DispatchLine("FIFO-1", D("4")),)), OPERATOR)
    ledger.transfer(Transfer(from_location="WH-1", to_location="WH-2", lines=(
        DispatchLine("FIFO-1", D("3")),)), OPERATOR)
    head = ledger.head_position()
    assert head > max(TAMPERED, *SWAPPED), "the tampered events must lie before the head"
    return head


@pytest.fixture
def store(database_url: str) -> Iterator[tuple[str, int]]:
    """A seeded store (the application closed again, as after a working day); its URL and head."""
    with Ledger(store_environment(database_url)) as ledger:
        head = seed(ledger)
    yield database_url, head


def catch_up_audit_log(database_url: str) -> int:
    """Run the read models to the head, as the service does; returns the audit log's last link."""
    with Ledger(store_environment(database_url)) as ledger:
        read_models = ReadModels.open(read_models_url(Settings(database_url=database_url)))
        try:
            read_models.runner(ledger.recorder, ledger.mapper).catch_up()
            return max(position for position, _ in read_models.chain_links())
        finally:
            read_models.close()


def digest_at(database_url: str, position: int) -> Digest:
    """The digest an auditor writes down at `position` while the store is intact."""
    with Ledger(store_environment(database_url)) as ledger:
        return verify(records(ledger.recorder, stop=position), []).head


def verify_in_process(database_url: str, monkeypatch: pytest.MonkeyPatch,
                      capsys: pytest.CaptureFixture[str], *arguments: str) -> tuple[int, str]:
    """`ledger verify …` through the CLI's entry point; its exit status and output."""
    capsys.readouterr()
    with monkeypatch.context() as patched:
        patched.setenv("LEDGER_DATABASE_URL", database_url)
        patched.delenv("LEDGER_READ_DATABASE_URL", raising=False)
        status = main(["verify", *arguments])
    captured = capsys.readouterr()
    return status, captured.out + captured.err


def verify_subprocess(database_url: str, *arguments: str) -> tuple[int, str]:
    """`python -m ledger.cli verify …` as a real process."""
    environment = {key: value for key, value in os.environ.items()
                   if not key.startswith("LEDGER_")}
    environment["LEDGER_DATABASE_URL"] = database_url
    done = subprocess.run([sys.executable, "-m", "ledger.cli", "verify", *arguments],
                          env=environment, capture_output=True, text=True,
                          timeout=CLI_SECONDS, check=False)
    return done.returncode, done.stdout + done.stderr


def head_digest_of(output: str) -> Digest:
    found = re.search(r"head digest:\s+(\S+)", output)
    assert found, output
    return Digest.parse(found.group(1))


def assert_tampered_at(status: int, output: str, position: int) -> None:
    assert status == 1, output
    tampered = [line for line in output.splitlines() if line.startswith("TAMPERED: ")]
    assert len(tampered) == 1, output
    assert re.search(rf"\bposition {position}\b", tampered[0]), output


# Editing the event table by hand.


def _sqlite_path(database_url: str) -> str:
    path = urlsplit(database_url).path
    return path[1:] if path.startswith("/") else path


@contextlib.contextmanager
def sqlite_store(database_url: str) -> Iterator[sqlite3.Connection]:
    """A plain connection to the store's file, committed and closed at the end."""
    connection = sqlite3.connect(_sqlite_path(database_url))
    with contextlib.closing(connection), connection:
        yield connection


def _postgres(database_url: str) -> tuple[str, str]:
    parts = urlsplit(database_url)
    return (urlunsplit((parts.scheme, parts.netloc, parts.path, "", "")),
            parse_qs(parts.query)["schema"][0])


def forged(state: bytes) -> bytes:
    """The same event with another actor: a plausible edit that keeps the JSON valid."""
    changed = state.replace(b'"actor":"operator"', b'"actor":"mallory"')
    assert changed != state
    return changed


def change_state(database_url: str, position: int) -> None:
    if database_url.startswith("sqlite:"):
        with sqlite_store(database_url) as connection:
            (state,) = connection.execute(
                "SELECT state FROM stored_events WHERE rowid = ?", (position,)).fetchone()
            connection.execute("UPDATE stored_events SET state = ? WHERE rowid = ?",
                               (forged(bytes(state)), position))
        return
    url, schema = _postgres(database_url)
    table = sql.SQL("{}.ledger_events").format(sql.Identifier(schema))
    with psycopg.connect(url, autocommit=True) as connection:
        row = connection.execute(sql.SQL("SELECT state FROM {} WHERE notification_id = %s")
                                 .format(table), (position,)).fetchone()
        assert row is not None
        connection.execute(sql.SQL("UPDATE {} SET state = %s WHERE notification_id = %s")
                           .format(table), (forged(bytes(row[0])), position))


def edit_in_sql(database_url: str, position: int) -> None:
    """The edit someone at a SQL prompt would make (on SQLite, `replace` turns the blob to text)."""
    if database_url.startswith("sqlite:"):
        with sqlite_store(database_url) as connection:
            connection.execute("UPDATE stored_events SET state = replace(state, 'operator', "
                               "'mallory') WHERE rowid = ?", (position,))
        return
    url, schema = _postgres(database_url)
    with psycopg.connect(url, autocommit=True) as connection:
        connection.execute(sql.SQL(
            "UPDATE {}.ledger_events SET state = convert_to(replace(convert_from(state, 'UTF8'), "
            "'operator', 'mallory'), 'UTF8') WHERE notification_id = %s").format(
            sql.Identifier(schema)), (position,))


def delete_event(database_url: str, position: int) -> None:
    if database_url.startswith("sqlite:"):
        with sqlite_store(database_url) as connection:
            deleted = connection.execute("DELETE FROM stored_events WHERE rowid = ?", (position,))
            assert deleted.rowcount == 1
        return
    url, schema = _postgres(database_url)
    with psycopg.connect(url, autocommit=True) as connection:
        removed = connection.execute(sql.SQL(
            "DELETE FROM {}.ledger_events WHERE notification_id = %s").format(
            sql.Identifier(schema)), (position,))
        assert removed.rowcount == 1


def swap_positions(database_url: str, first: int, second: int) -> None:
    """Exchange two events' places in the log (their positions), in one transaction."""
    moves = ((first, -1), (second, first), (-1, second))
    if database_url.startswith("sqlite:"):
        with sqlite_store(database_url) as connection:
            for old, new in moves:
                connection.execute("UPDATE stored_events SET rowid = ? WHERE rowid = ?",
                                   (new, old))
        return
    url, schema = _postgres(database_url)
    statement = sql.SQL("UPDATE {}.ledger_events SET notification_id = %s "
                        "WHERE notification_id = %s").format(sql.Identifier(schema))
    with psycopg.connect(url) as connection:
        for old, new in moves:
            connection.execute(statement, (new, old))


TAMPERS: dict[str, tuple[Callable[[str], None], int]] = {
    # What is done to the store, and the position a verification must name.
    "changed": (lambda url: change_state(url, TAMPERED), TAMPERED),
    "edited_in_sql": (lambda url: edit_in_sql(url, TAMPERED), TAMPERED),
    "deleted": (lambda url: delete_event(url, TAMPERED), TAMPERED),
    "reordered": (lambda url: swap_positions(url, *SWAPPED), SWAPPED[0]),
}


# An intact store.


def test_an_intact_store_verifies_against_its_audit_log(store: tuple[str, int]) -> None:
    database_url, head = store
    assert catch_up_audit_log(database_url) == head

    status, output = verify_subprocess(database_url)

    assert status == 0, output
    assert f"events checked: {head}" in output
    assert "verified: the chain matches" in output
    assert head_digest_of(output) == digest_at(database_url, head)


def test_a_kept_digest_still_verifies_after_honest_new_events(
        store: tuple[str, int], monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    database_url, head = store
    status, output = verify_in_process(database_url, monkeypatch, capsys)
    assert status == 0, output
    kept = head_digest_of(output)
    with Ledger(store_environment(database_url)) as ledger:
        ledger.dispatch(Dispatch(location="WH-2", lines=(DispatchLine("FIFO-1", D("1")),)),
                        OPERATOR)
    catch_up_audit_log(database_url)

    status, output = verify_in_process(database_url, monkeypatch, capsys, "--digest", str(kept))

    assert status == 0, output
    assert head_digest_of(output).position > head


def test_a_malformed_kept_digest_is_a_usage_error(
        store: tuple[str, int], monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    database_url, _ = store

    status, output = verify_in_process(database_url, monkeypatch, capsys, "--digest", "5:abc")

    assert status == 2, output
    assert "POSITION:SHA256HEX" in output


# Tampering, caught by the audit log's recorded links.


@pytest.mark.parametrize("tamper", sorted(TAMPERS))
def test_tampering_is_named_by_the_audit_log(
        store: tuple[str, int], tamper: str, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    database_url, head = store
    assert catch_up_audit_log(database_url) == head
    act, position = TAMPERS[tamper]

    act(database_url)
    status, output = verify_in_process(database_url, monkeypatch, capsys)

    assert_tampered_at(status, output, position)


def test_deleting_the_newest_event_is_named_by_the_audit_log(
        store: tuple[str, int], monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    database_url, head = store
    catch_up_audit_log(database_url)

    delete_event(database_url, head)
    status, output = verify_in_process(database_url, monkeypatch, capsys)

    assert_tampered_at(status, output, head)
    assert "missing" in output


def test_a_changed_event_is_described_to_the_auditor(
        store: tuple[str, int], monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    database_url, _ = store
    catch_up_audit_log(database_url)
    with Ledger(store_environment(database_url)) as ledger:
        event = ledger.stored_event(TAMPERED)
    assert event is not None

    change_state(database_url, TAMPERED)
    status, output = verify_in_process(database_url, monkeypatch, capsys)

    assert_tampered_at(status, output, TAMPERED)
    assert str(event.originator_id) in output
    assert f"version {event.originator_version}, {event.topic}" in output


# Tampering, caught by a kept digest alone (the audit log is empty and has nothing to say).


@pytest.mark.parametrize("tamper", sorted(TAMPERS))
def test_tampering_is_caught_by_a_digest_kept_at_the_head(
        store: tuple[str, int], tamper: str, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    database_url, head = store
    kept = digest_at(database_url, head)
    act, _ = TAMPERS[tamper]

    act(database_url)
    status, output = verify_in_process(database_url, monkeypatch, capsys, "--digest", str(kept))

    # One digest proves the history before it but cannot tell which event changed: it names
    # its own position.
    assert_tampered_at(status, output, head)
    assert "kept digest" in output


@pytest.mark.parametrize("tamper", sorted(TAMPERS))
def test_tampering_is_named_by_a_digest_kept_at_that_event(
        store: tuple[str, int], tamper: str, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    database_url, _ = store
    act, position = TAMPERS[tamper]
    kept = digest_at(database_url, position)

    act(database_url)
    status, output = verify_in_process(database_url, monkeypatch, capsys, "--digest", str(kept))

    assert_tampered_at(status, output, position)


def test_deleting_the_newest_event_is_caught_by_a_kept_digest(
        store: tuple[str, int], monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    database_url, head = store
    kept = digest_at(database_url, head)

    delete_event(database_url, head)
    status, output = verify_subprocess(database_url, "--digest", str(kept))

    assert_tampered_at(status, output, head)
    assert f"ends at {head - 1}" in output
