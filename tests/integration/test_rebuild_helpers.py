"""Rebuilds shared out between processes (`projections.rebuild_helpers`), and one at a time.

What a user would notice: read models rebuilt with helpers that differ from a rebuild done
alone, a failed helper that leaves half-filled tables switched in, a helper that outlives
the command that started it and writes into the next rebuild's tables, or two rebuilds of
one projection at once filling (and switching to) the same tables.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from decimal import Decimal
from functools import partial
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit, urlunsplit

import psycopg
import pytest
from rebuild_support import failing_sources

from ledger import demo
from ledger.application import Ledger
from ledger.cli import open_rebuild_sources
from ledger.commands import Dispatch, DispatchLine, Receipt, ReceiptLine
from ledger.config import Settings, read_models_url, store_environment
from ledger.domain.context import CommandMeta
from projections import registry
from projections.rebuild import RebuildRunning, rebuild, rebuild_lock_key
from projections.rebuild_helpers import Helpers, RebuildHelperFailed
from projections.service import ReadModels

OPERATOR = CommandMeta(actor="operator")
ORPHAN_GONE_SECONDS = 20.0


@pytest.fixture
def ledger(fresh_postgres_url: str) -> Iterator[Ledger]:
    """The demo's documents and orders, and some more movements."""
    with Ledger(store_environment(fresh_postgres_url)) as app:
        demo.load(app)
        for number in range(20):
            quantity = Decimal(number % 5 + 1)
            app.receive(Receipt(location="SH-WH1", lines=(
                ReceiptLine("CUP-002", quantity, Decimal("1.25") + number % 3),)), OPERATOR)
            app.dispatch(Dispatch(location="SH-WH1", lines=(
                DispatchLine("CUP-002", quantity / 2),)), OPERATOR)
        yield app


@pytest.fixture
def read_models(fresh_postgres_url: str) -> Iterator[ReadModels]:
    opened = ReadModels.open(read_models_url(Settings(database_url=fresh_postgres_url)))
    yield opened
    opened.close()


def statuses(read_models: ReadModels) -> dict[str, tuple[int, int, str]]:
    return {status.name: (status.generation, status.position, status.digest)
            for status in read_models.status()}


def helpers(database_url: str, processes: int) -> Helpers:
    """Helpers that open what `ledger rebuild`'s helpers open, for any history's length."""
    return Helpers(processes, partial(open_rebuild_sources, store_environment(database_url),
                                      read_models_url(Settings(database_url=database_url))),
                   min_events=0)


def rebuilt(ledger: Ledger, read_models: ReadModels, given: Helpers | None) -> dict[str, str]:
    rebuild(read_models.database, ledger.recorder, ledger.mapper, read_models.projections,
            helpers=given)
    return {name: digest for name, (_, _, digest) in statuses(read_models).items()}


@pytest.mark.postgres
@pytest.mark.parametrize("processes", [2, 3])
def test_a_rebuild_with_helpers_equals_one_done_alone(
        ledger: Ledger, read_models: ReadModels, fresh_postgres_url: str,
        processes: int) -> None:
    alone = rebuilt(ledger, read_models, None)

    helped = rebuilt(ledger, read_models, helpers(fresh_postgres_url, processes))

    assert helped == alone
    positions = {position for _, position, _ in statuses(read_models).values()}
    assert positions == {ledger.head_position()}


@pytest.mark.postgres
def test_a_helpers_sources_create_no_tables(fresh_postgres_url: str) -> None:
    """Helpers start together; each creating the store's tables at once (the library's
    CREATE ... IF NOT EXISTS) failed one of them now and then ("tuple concurrently
    updated"). The ledger that starts them has created the tables: a helper creates none."""
    settings = Settings(database_url=fresh_postgres_url)
    with open_rebuild_sources(store_environment(fresh_postgres_url),
                              read_models_url(settings)):
        pass
    parts = urlsplit(fresh_postgres_url)
    schema = dict(parse_qsl(parts.query))["schema"]
    with psycopg.connect(urlunsplit((*parts[:3], "", ""))) as connection:
        tables = connection.execute(
            "SELECT count(*) FROM pg_tables WHERE schemaname = %s", (schema,)).fetchone()
    assert tables == (0,)


@pytest.mark.postgres
def test_a_helper_that_fails_switches_nothing_and_says_why(
        ledger: Ledger, read_models: ReadModels) -> None:
    rebuilt(ledger, read_models, None)
    before = statuses(read_models)
    ledger.receive(Receipt(location="SH-WH1", lines=(
        ReceiptLine("CUP-002", Decimal(7), Decimal("1.5")),)), OPERATOR)

    with pytest.raises(RebuildHelperFailed, match="these sources never open"):
        rebuild(read_models.database, ledger.recorder, ledger.mapper, read_models.projections,
                helpers=Helpers(2, failing_sources, min_events=0))

    assert statuses(read_models) == before
    # The next rebuild starts over the tables the failed one left.
    after = rebuilt(ledger, read_models, None)
    assert {position for _, position, _ in statuses(read_models).values()} == {
        ledger.head_position()}
    assert after["stock_levels"] != before["stock_levels"][2]


def test_sqlite_read_models_are_rebuilt_without_helpers(sqlite_url: str) -> None:
    # One writer at a time on SQLite: a helper would only wait. These helpers would fail.
    with Ledger(store_environment(sqlite_url)) as app:
        demo.load(app)
        opened = ReadModels.open(read_models_url(Settings(database_url=sqlite_url)))
        try:
            rebuild(opened.database, app.recorder, app.mapper, opened.projections,
                    helpers=Helpers(2, failing_sources, min_events=0))
            assert {status.position for status in opened.status()} == {app.head_position()}
        finally:
            opened.close()


def test_a_helper_whose_parent_dies_exits() -> None:
    support = Path(__file__).with_name("rebuild_support.py")
    src = str(Path(__file__).resolve().parents[2] / "src")
    path = os.pathsep.join([src, str(support.parent), os.environ.get("PYTHONPATH", "")])
    # The helper inherits its parent's stderr: not a pipe this test would wait on.
    parent = subprocess.run([sys.executable, str(support), "orphan"], stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True, timeout=60,
                            env={**os.environ, "PYTHONPATH": path}, check=True)
    helper = int(parent.stdout.strip())

    assert _gone_within(helper, ORPHAN_GONE_SECONDS), "the orphaned helper is still running"


def _gone_within(pid: int, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not _running(pid):
            return True
        time.sleep(0.1)
    return False


def _running(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat[stat.rindex(")") + 2] != "Z"  # a zombie has exited


@pytest.mark.postgres
def test_a_second_rebuild_of_a_projection_under_way_is_refused_and_changes_nothing(
        ledger: Ledger, read_models: ReadModels, fresh_postgres_url: str) -> None:
    rebuilt(ledger, read_models, None)
    before = statuses(read_models)
    key = rebuild_lock_key("journal", read_models.database.place)
    # Another rebuild of the journal, in another session, holds its lock.
    with psycopg.connect(_libpq(fresh_postgres_url), autocommit=True) as other:
        other.execute("SELECT pg_advisory_lock(%s)", (key,))

        with pytest.raises(RebuildRunning, match="rebuild of journal is already running"):
            rebuild(read_models.database, ledger.recorder, ledger.mapper,
                    read_models.projections, helpers=helpers(fresh_postgres_url, 2))
        assert statuses(read_models) == before
        # Other projections are rebuilt meanwhile; the refused rebuild let go of its locks.
        rebuild(read_models.database, ledger.recorder, ledger.mapper,
                registry.select(["stock_levels", "audit_log"]))
        after = statuses(read_models)
        assert after["stock_levels"][0] == before["stock_levels"][0] + 1
        assert after["journal"] == before["journal"]

    rebuilt(ledger, read_models, None)  # the other rebuild ended: free again
    assert statuses(read_models)["journal"][0] == before["journal"][0] + 1


@pytest.mark.postgres
def test_ledger_rebuild_says_when_another_is_under_way(
        ledger: Ledger, read_models: ReadModels, fresh_postgres_url: str,
        cli: Callable[..., tuple[int, str]]) -> None:
    key = rebuild_lock_key("stock_card", read_models.database.place)
    with psycopg.connect(_libpq(fresh_postgres_url), autocommit=True) as other:
        other.execute("SELECT pg_advisory_lock(%s)", (key,))
        status, output = cli(fresh_postgres_url, "rebuild", "stock_card")
    assert status == 3
    assert "a rebuild of stock_card is already running" in output

    status, output = cli(fresh_postgres_url, "rebuild", "stock_card")
    assert status == 0, output


def _libpq(url: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))
