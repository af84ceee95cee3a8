"""A projection worker killed mid-catch-up resumes where its last page committed, exactly once.

Real processes on PostgreSQL: a backlog of a few thousand events is written first, then a
worker is started and SIGKILLed while it is catching up, several times over. At every kill the
read models hold exactly the events up to their stored position (rows and position commit
together); after a restart reaches the head, every projection's digest equals that of a clean
rebuild into another schema. Once with our small-page worker script (`projection_child.py`),
once with the real `python -m ledger.cli project`; there the status tables that `project` (on
its way out), `status` and `rebuild` print are checked against the clean rebuild too.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import psycopg
import pytest
from psycopg import sql

from ledger.application import Ledger
from ledger.commands import Dispatch, DispatchLine, Receipt, ReceiptLine, Transfer
from ledger.config import store_environment
from ledger.costing import ValuationMethod
from ledger.domain.context import CommandMeta
from ledger.domain.item import ItemDetails
from ledger.domain.stock_bin import StockBin
from projections import registry, state
from projections.rebuild import rebuild
from projections.service import ReadModels

pytestmark = pytest.mark.postgres

D = Decimal
# Every projection the service runs.
NAMES = list(registry.NAMES)
OPERATOR = CommandMeta(actor="operator")
SKUS = [f"SKU-{number:03d}" for number in range(100)]
LOCATIONS = [f"LOC-{number:02d}" for number in range(15)]
BACKLOG_EVENTS_MIN = 3_000
CHILD_SCRIPT = Path(__file__).with_name("projection_child.py")
CHILD_PAGE_SIZE = 50
KILLS = 3
POLL_SECONDS = 0.02
PROGRESS_SECONDS_MAX = 60.0
WAIT_SECONDS = 30.0
EXIT_SECONDS_MAX = 20.0
CLI_SECONDS_MAX = 120.0
LOG_PAGE = 1_000
# Polling a table in a bounded loop needs a pause that is not a sleep: an event never set.
PAUSE = threading.Event()


@pytest.fixture
def ledger(fresh_postgres_url: str) -> Iterator[Ledger]:
    """A ledger with a backlog of over 3,000 events: receipts into 1,500 bins, then moves."""
    with Ledger(store_environment(fresh_postgres_url)) as app:
        for number, sku in enumerate(SKUS):
            method: ValuationMethod = "fifo" if number % 2 else "moving_average"
            app.register_item(sku, ItemDetails(f"Item {sku}", "each", method), OPERATOR)
        for code in LOCATIONS:
            app.register_location(code, f"Location {code}", OPERATOR)
        for number, code in enumerate(LOCATIONS):
            app.receive(Receipt(location=code, lines=tuple(
                ReceiptLine(sku, D(10 + number), D("1.000001") * (index + 1))
                for index, sku in enumerate(SKUS))), OPERATOR)
        app.transfer(Transfer(from_location=LOCATIONS[0], to_location=LOCATIONS[1], lines=tuple(
            DispatchLine(sku, D("3.5")) for sku in SKUS)), OPERATOR)
        app.dispatch(Dispatch(location=LOCATIONS[2], lines=tuple(
            DispatchLine(sku, D("0.125")) for sku in SKUS)), OPERATOR)
        assert app.head_position() >= BACKLOG_EVENTS_MIN
        yield app


@pytest.fixture
def clean_url(fresh_postgres_url: str) -> Iterator[str]:
    """Another schema of the same database, for a clean rebuild to compare with."""
    parts = urlsplit(fresh_postgres_url)
    query = dict(parse_qsl(parts.query))
    schema = f"{query['schema']}_clean"
    plain = urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))
    with psycopg.connect(plain, autocommit=True) as connection:
        connection.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
    yield urlunsplit(parts._replace(query=urlencode({**query, "schema": schema})))
    with psycopg.connect(plain, autocommit=True) as connection:
        connection.execute("SET lock_timeout = '10s'")
        connection.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(
            sql.Identifier(schema)))


@pytest.fixture
def read_models(fresh_postgres_url: str) -> Iterator[ReadModels]:
    """The read models where `ledger project` keeps them: beside the events (tables made now)."""
    opened = ReadModels.open(fresh_postgres_url)
    yield opened
    opened.close()


class Worker:
    """A projection worker process, its output kept in files for the failure message."""

    def __init__(self, argv: list[str], database_url: str, directory: Path, name: str) -> None:
        environment = {**os.environ, "LEDGER_DATABASE_URL": database_url}
        environment.pop("LEDGER_READ_DATABASE_URL", None)
        self.stdout = directory / f"{name}.out"
        self.stderr = directory / f"{name}.err"
        with self.stdout.open("wb") as out, self.stderr.open("wb") as err:
            self.process = subprocess.Popen(argv, env=environment, stdout=out, stderr=err)

    def output(self) -> str:
        return self.stdout.read_text() + self.stderr.read_text()[-4000:]

    def alive(self) -> bool:
        return self.process.poll() is None

    def kill(self) -> None:
        if self.alive():
            self.process.send_signal(signal.SIGKILL)
        self.process.wait(EXIT_SECONDS_MAX)

    def stop(self) -> int:
        """SIGTERM, and the exit status once it has stopped (bounded)."""
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(EXIT_SECONDS_MAX)


def lowest_position(read_models: ReadModels) -> int:
    with read_models.database.reader.connect() as connection:
        states = state.read(connection, NAMES)
    return min((current.position for current in states.values()), default=0)


def wait_for_progress(read_models: ReadModels, worker: Worker, beyond: int) -> int:
    """The lowest position once every projection is past `beyond` (the worker must live)."""
    for _ in range(int(PROGRESS_SECONDS_MAX / POLL_SECONDS)):
        position = lowest_position(read_models)
        if position > beyond:
            return position
        assert worker.alive(), f"the worker died:\n{worker.output()}"
        PAUSE.wait(POLL_SECONDS)
    raise AssertionError(f"no progress past {beyond}:\n{worker.output()}")


def movement_positions(ledger: Ledger, up_to: int) -> list[int]:
    found: list[int] = []
    position = 0
    while page := ledger.recorder.select_notifications(
            start=position, limit=LOG_PAGE, stop=up_to, inclusive_of_start=False):
        found += [n.id for n in page
                  if isinstance(ledger.mapper.to_domain_event(n), StockBin.Movement)]
        position = page[-1].id
    return found


def assert_rows_match_positions(ledger: Ledger, read_models: ReadModels) -> None:
    """Each projection holds exactly the events up to its own stored position."""
    with read_models.database.reader.connect() as connection:
        states = state.read(connection, NAMES)
        card = read_models.by_name["stock_card"].tables(
            states["stock_card"].generation)["stock_card"]
        card_positions = list(connection.execute(card.select().with_only_columns(
            card.c.position).order_by(card.c.position)).scalars())
        levels = read_models.by_name["stock_levels"].tables(
            states["stock_levels"].generation)["stock_levels"]
        level_positions = set(connection.execute(levels.select().with_only_columns(
            levels.c.updated_position)).scalars())
    assert card_positions == movement_positions(ledger, states["stock_card"].position)
    expected_levels = movement_positions(ledger, states["stock_levels"].position)
    assert level_positions <= set(expected_levels)
    if expected_levels:
        assert max(level_positions) == expected_levels[-1]


def statuses(read_models: ReadModels) -> dict[str, tuple[int, str]]:
    return {status.name: (status.position, status.digest) for status in read_models.status()}


def clean_rebuild(ledger: Ledger, url: str) -> dict[str, tuple[int, str]]:
    clean = ReadModels.open(url)
    try:
        rebuild(clean.database, ledger.recorder, ledger.mapper, clean.projections)
        return statuses(clean)
    finally:
        clean.close()


def kill_mid_catch_up(ledger: Ledger, read_models: ReadModels,
                      start: Callable[[str], Worker], kills: int) -> list[int]:
    """Start a worker and SIGKILL it once it has moved past the last kill, `kills` times."""
    head = ledger.head_position()
    killed_at = [0]
    for number in range(kills):
        worker = start(f"killed-{number}")
        try:
            wait_for_progress(read_models, worker, beyond=killed_at[-1])
        finally:
            worker.kill()
        position = lowest_position(read_models)
        assert killed_at[-1] < position < head, "the kill did not land mid-catch-up"
        assert_rows_match_positions(ledger, read_models)
        killed_at.append(position)
    return killed_at[1:]


def test_small_page_worker_killed_mid_catch_up_resumes_exactly_once(
        ledger: Ledger, read_models: ReadModels, fresh_postgres_url: str, clean_url: str,
        tmp_path: Path) -> None:
    def start(name: str) -> Worker:
        return Worker([sys.executable, str(CHILD_SCRIPT), str(CHILD_PAGE_SIZE)],
                      fresh_postgres_url, tmp_path, name)

    killed_at = kill_mid_catch_up(ledger, read_models, start, KILLS)
    assert len(set(killed_at)) == KILLS

    head = ledger.head_position()
    worker = start("final")
    try:
        read_models.wait(NAMES, head, WAIT_SECONDS)
        assert worker.stop() == 0, worker.output()
    finally:
        worker.kill()
    assert {position for position, _ in statuses(read_models).values()} == {head}
    assert_rows_match_positions(ledger, read_models)
    assert statuses(read_models) == clean_rebuild(ledger, clean_url)


def status_table(output: str) -> dict[str, tuple[int, str]]:
    """The positions and digests `ledger project|status` prints, by projection."""
    table = {}
    for line in output.splitlines():
        fields = line.split()
        if len(fields) == 6 and fields[0] in NAMES:
            table[fields[0]] = (int(fields[2]), fields[5])
    return table


def test_ledger_project_killed_mid_catch_up_resumes_exactly_once(
        ledger: Ledger, read_models: ReadModels, fresh_postgres_url: str, clean_url: str,
        tmp_path: Path) -> None:
    def start(name: str) -> Worker:
        return Worker([sys.executable, "-m", "ledger.cli", "project"], fresh_postgres_url,
                      tmp_path, name)

    kill_mid_catch_up(ledger, read_models, start, kills=1)

    head = ledger.head_position()
    worker = start("final")
    try:
        read_models.wait(NAMES, head, WAIT_SECONDS)
        assert worker.stop() == 0, worker.output()
    finally:
        worker.kill()
    expected = clean_rebuild(ledger, clean_url)
    assert statuses(read_models) == expected
    assert_rows_match_positions(ledger, read_models)
    # On its way out the worker prints each projection's position and digest; so do
    # `ledger status`, and `ledger rebuild` into yet another schema.
    assert status_table(worker.stdout.read_text()) == expected
    assert status_table(ledger_cli("status", database_url=fresh_postgres_url)) == expected
    rebuilt = ledger_cli("rebuild", database_url=fresh_postgres_url, read_database_url=clean_url)
    assert status_table(rebuilt) == expected
    assert rebuilt.count(f"rebuilt as generation 3 at position {head}") == len(NAMES)


def ledger_cli(command: str, database_url: str, read_database_url: str | None = None) -> str:
    """The standard output of `python -m ledger.cli COMMAND`, which must succeed."""
    environment = {**os.environ, "LEDGER_DATABASE_URL": database_url}
    environment.pop("LEDGER_READ_DATABASE_URL", None)
    if read_database_url is not None:
        environment["LEDGER_READ_DATABASE_URL"] = read_database_url
    done = subprocess.run([sys.executable, "-m", "ledger.cli", command], env=environment,
                          capture_output=True, text=True, timeout=CLI_SECONDS_MAX, check=False)
    assert done.returncode == 0, done.stdout + done.stderr[-4000:]
    return done.stdout
