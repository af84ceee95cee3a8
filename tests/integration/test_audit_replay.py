"""`ledger replay --to POSITION`: every read model as it stood at a past position, on real stores.

What an auditor would notice: a replay whose digests differ from those the live read models had
when they stood at that position, a replay that disturbs the live read models, or one that
destroys data it was never meant to touch.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path
from urllib.parse import parse_qs, parse_qsl, urlencode, urlsplit, urlunsplit
from uuid import uuid4

import psycopg
import pytest
from psycopg import sql

from ledger.application import Ledger
from ledger.commands import Count, CountLine, Dispatch, DispatchLine, Receipt, ReceiptLine, Transfer
from ledger.config import Settings, read_models_url, store_environment
from ledger.domain.context import CommandMeta
from ledger.domain.item import ItemDetails
from ledger.export import records
from projections.service import ReadModels

D = Decimal
OPERATOR = CommandMeta(actor="operator")
CLI_SECONDS = 120

Statuses = dict[str, tuple[int, str]]


def seed(ledger: Ledger) -> int:
    """Reference data and a first day of movements; returns the head position."""
    ledger.register_item("FIFO-1", ItemDetails("Bolt", "each", "fifo"), OPERATOR)
    ledger.register_item("AVG-1", ItemDetails("Oil", "litre", "moving_average"), OPERATOR)
    for code in ("WH-1", "SHOP"):
        ledger.register_location(code, f"Location {code}", OPERATOR)
    ledger.receive(Receipt(location="WH-1", lines=(
        ReceiptLine("FIFO-1", D("10"), D("2.50")), ReceiptLine("AVG-1", D("8"), D("1.25")))),
        OPERATOR)
    return ledger.dispatch(Dispatch(location="WH-1", lines=(
        DispatchLine("FIFO-1", D("4")),)), OPERATOR).position


def later(ledger: Ledger) -> int:
    """A second day that changes every read model; returns the head position."""
    ledger.register_item("FIFO-1", ItemDetails("Bolt, zinc", "each", "fifo"), OPERATOR)
    ledger.register_location("SHOP", "Shop floor", OPERATOR)
    ledger.receive(Receipt(location="WH-1", lines=(
        ReceiptLine("FIFO-1", D("5"), D("3.00")),)), OPERATOR)
    ledger.transfer(Transfer(from_location="WH-1", to_location="SHOP", lines=(
        DispatchLine("FIFO-1", D("6")), DispatchLine("AVG-1", D("2")))), OPERATOR)
    return ledger.count(Count(location="SHOP", reason="cycle count", lines=(
        CountLine("AVG-1", D("1")),)), OPERATOR).position


def statuses(read_models: ReadModels) -> Statuses:
    return {status.name: (status.position, status.digest) for status in read_models.status()}


def statuses_at(url: str) -> Statuses:
    read_models = ReadModels.open(url)
    try:
        return statuses(read_models)
    finally:
        read_models.close()


def printed_statuses(output: str) -> Statuses:
    """The projection lines `ledger replay` prints: name, position, digest."""
    return {name: (int(position), digest) for name, position, digest in re.findall(
        r"^(\w+)\s+(\d+)\s+([0-9a-f]{64})$", output, re.MULTILINE)}


def stored_events(database_url: str) -> list[tuple[int, str, int, bytes]]:
    with Ledger(store_environment(database_url)) as ledger:
        return [(r.position, str(r.aggregate_id), r.version, r.state)
                for r in records(ledger.recorder)]


def ledger_cli(database_url: str, *arguments: str) -> tuple[int, str]:
    """`python -m ledger.cli …` as a real process; its exit status and output."""
    environment = {key: value for key, value in os.environ.items()
                   if not key.startswith("LEDGER_")}
    environment["LEDGER_DATABASE_URL"] = database_url
    done = subprocess.run([sys.executable, "-m", "ledger.cli", *arguments], env=environment,
                          capture_output=True, text=True, timeout=CLI_SECONDS, check=False)
    return done.returncode, done.stdout + done.stderr


def _libpq(url: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))


@pytest.fixture
def other_place(database_url: str, tmp_path: Path) -> Iterator[Callable[[], tuple[list[str], str]]]:
    """New places for read models: (replay arguments naming it, its URL); schemas dropped after."""
    schemas: list[str] = []

    def make() -> tuple[list[str], str]:
        name = f"replay_{uuid4().hex[:12]}"
        if database_url.startswith("sqlite:"):
            path = (tmp_path / f"{name}.db").as_posix()
            return ["--file", path], f"sqlite:///{path}"
        schemas.append(name)
        query = urlencode({**dict(parse_qsl(urlsplit(database_url).query)), "schema": name})
        return ["--schema", name], urlunsplit(urlsplit(database_url)._replace(query=query))

    yield make
    if schemas:
        with psycopg.connect(_libpq(database_url), autocommit=True) as connection:
            connection.execute("SET lock_timeout = '10s'")
            for schema in schemas:
                connection.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(
                    sql.Identifier(schema)))


def test_a_replay_equals_the_live_read_models_at_that_position(
        database_url: str, other_place: Callable[[], tuple[list[str], str]]) -> None:
    live_url = read_models_url(Settings(database_url=database_url))
    with Ledger(store_environment(database_url)) as ledger:
        position = seed(ledger)
        later(ledger)
        live = ReadModels.open(live_url)
        try:
            runner = live.runner(ledger.recorder, ledger.mapper)
            runner.stop_at = position
            runner.catch_up()
            at_position = statuses(live)
            more = later(ledger)
            runner.stop_at = None
            runner.catch_up()
            at_head = statuses(live)
        finally:
            live.close()
    assert {p for p, _ in at_position.values()} == {position}
    assert {p for p, _ in at_head.values()} == {more}
    # Every read model this history feeds must have changed after P, or the test proves nothing
    # (orders are not part of this history).
    fed = set(at_head) - {"purchase_orders", "sales_orders"}
    assert all(at_head[name][1] != at_position[name][1] for name in fed), \
        "every read model should have changed after P, or the test proves nothing"
    arguments, scratch_url = other_place()

    status, output = ledger_cli(database_url, "replay", "--to", str(position), *arguments)

    assert status == 0, output
    assert printed_statuses(output) == at_position
    assert statuses_at(scratch_url) == at_position
    assert statuses_at(live_url) == at_head


def test_a_second_replay_into_the_same_scratch_starts_from_nothing(
        database_url: str, other_place: Callable[[], tuple[list[str], str]],
        cli: Callable[..., tuple[int, str]]) -> None:
    live_url = read_models_url(Settings(database_url=database_url))
    with Ledger(store_environment(database_url)) as ledger:
        position = seed(ledger)
        head = later(ledger)
        live = ReadModels.open(live_url)
        try:
            live.runner(ledger.recorder, ledger.mapper).catch_up()
            at_head = statuses(live)
        finally:
            live.close()
    arguments, scratch_url = other_place()
    status, output = cli(database_url, "replay", "--to", str(head), *arguments)
    assert status == 0, output

    status, output = cli(database_url, "replay", "--to", str(position), *arguments)
    assert status == 0, output
    status, output = cli(database_url, "replay", "--to", str(head), *arguments)

    assert status == 0, output
    assert statuses_at(scratch_url) == at_head


def test_a_replay_into_the_live_read_models_is_refused(
        database_url: str, tmp_path: Path, cli: Callable[..., tuple[int, str]]) -> None:
    live_url = read_models_url(Settings(database_url=database_url))
    with Ledger(store_environment(database_url)) as ledger:
        position = seed(ledger)
        head = later(ledger)
        live = ReadModels.open(live_url)
        try:
            live.runner(ledger.recorder, ledger.mapper).catch_up()
            before = statuses(live)
        finally:
            live.close()
    if database_url.startswith("sqlite:"):
        arguments = ["--file", urlsplit(live_url).path[1:]]
    else:
        arguments = ["--schema", parse_qs(urlsplit(database_url).query)["schema"][0]]

    status, output = cli(database_url, "replay", "--to", str(position), *arguments)

    assert status == 2, output
    assert "refused" in output
    assert statuses_at(live_url) == before
    assert {p for p, _ in before.values()} == {head}


def test_a_replay_without_a_scratch_target_is_a_usage_error(
        database_url: str, cli: Callable[..., tuple[int, str]]) -> None:
    status, output = cli(database_url, "replay", "--to", "1")

    assert status == 2, output
    assert "--schema" in output and "--file" in output


def test_a_replay_never_erases_the_event_store(
        database_url: str, other_place: Callable[[], tuple[list[str], str]],
        cli: Callable[..., tuple[int, str]]) -> None:
    # An auditor names the store's own file (SQLite) or schema (PostgreSQL, read models kept
    # elsewhere) as the scratch target by mistake: the replay must refuse, not erase the events.
    _, read_url = other_place()
    with Ledger(store_environment(database_url)) as ledger:
        position = seed(ledger)
    before = stored_events(database_url)
    if database_url.startswith("sqlite:"):
        arguments = ["--file", urlsplit(database_url).path[1:]]
    else:
        arguments = ["--schema", parse_qs(urlsplit(database_url).query)["schema"][0]]

    try:
        status, output = cli(database_url, "replay", "--to", str(position), *arguments,
                             read_url=read_url)
    except Exception as error:  # what the replay did to the store is the outcome under test
        status, output = -1, repr(error)

    assert stored_events(database_url) == before, f"the replay erased the event store: {output}"
    assert status == 2, output
