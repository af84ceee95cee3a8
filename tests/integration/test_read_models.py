"""The read models on real SQLite and PostgreSQL: caught up, live, rebuilt, raced and gapped.

What a user would notice: stock on the read side that disagrees with the ledger, a query that
does not see the write it was told to wait for, a rebuild that ends with different rows than a
clean one, an event applied twice by two runners, or an event skipped after a hole in the log.
Tests never sleep: they wait for a log position (`ReadModels.wait`), bounded.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import suppress
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import psycopg
import pytest
from eventsourcing.postgres import PostgresApplicationRecorder
from psycopg import sql

from ledger import demo
from ledger.application import CommandResult, Ledger
from ledger.commands import (
    Count,
    CountLine,
    Dispatch,
    DispatchLine,
    Receipt,
    ReceiptLine,
    Transfer,
)
from ledger.config import Settings, read_models_url, store_environment
from ledger.costing import ValuationMethod
from ledger.domain.context import CommandMeta
from ledger.domain.item import ItemDetails
from ledger.domain.stock_bin import StockBin
from ledger.errors import InsufficientStock
from projections import queries, registry
from projections.encoding import money_of, quantity_of, unit_cost_of
from projections.rebuild import rebuild
from projections.runner import ProjectionRunner
from projections.service import EmbeddedRunner, ProjectionLag, ReadModels

D = Decimal
# Every projection the service runs.
NAMES = list(registry.NAMES)
ITEMS: dict[str, ValuationMethod] = {"FIFO-1": "fifo", "AVG-1": "moving_average"}
LOCATIONS = ("WH-1", "WH-2", "SHOP")
OPERATOR = CommandMeta(actor="operator")
WAIT_SECONDS = 25.0
JOIN_SECONDS = 30.0
IDLE_SECONDS = 0.05
BARRIER_SECONDS = 10.0
QUERY_LIMIT = 100
LOG_PAGE = 500
WRITES_MAX = 2_000
OPENERS = 4


# Fixtures.


@pytest.fixture
def ledger(database_url: str) -> Iterator[Ledger]:
    """A ledger with a FIFO item, a moving-average item and three locations."""
    with Ledger(store_environment(database_url)) as app:
        for sku, method in ITEMS.items():
            app.register_item(sku, ItemDetails(f"Item {sku}", "each", method), OPERATOR)
        for code in LOCATIONS:
            app.register_location(code, f"Location {code}", OPERATOR)
        # Plenty at WH-1 so that the commands of `nth_command` are never refused.
        app.receive(Receipt(location="WH-1", lines=(
            ReceiptLine("FIFO-1", D("100000"), D("2.5")),
            ReceiptLine("AVG-1", D("100000"), D("1.25")))), OPERATOR)
        yield app


@pytest.fixture
def read_url(database_url: str) -> str:
    """Where the service keeps its read models by default (beside the events)."""
    return read_models_url(Settings(database_url=database_url))


@pytest.fixture
def other_read_url(database_url: str, tmp_path: Path) -> Iterator[Callable[[str], str]]:
    """Read-model databases of their own: a SQLite file, or a PostgreSQL schema (dropped after)."""
    created: list[str] = []
    parts = urlsplit(database_url)
    query = dict(parse_qsl(parts.query))

    def make(name: str) -> str:
        if parts.scheme == "sqlite":
            return f"sqlite:///{(tmp_path / f'{name}.read.db').as_posix()}"
        schema = f"{query['schema']}_{name}"
        with psycopg.connect(_libpq(database_url), autocommit=True) as connection:
            connection.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
        created.append(schema)
        return urlunsplit(parts._replace(query=urlencode({**query, "schema": schema})))

    yield make
    if created:
        with psycopg.connect(_libpq(database_url), autocommit=True) as connection:
            connection.execute("SET lock_timeout = '10s'")
            for schema in created:
                connection.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(
                    sql.Identifier(schema)))


def _libpq(url: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))


@pytest.fixture
def opened() -> Iterator[Callable[[str], ReadModels]]:
    """Open read models, closed after the test."""
    all_opened: list[ReadModels] = []

    def open_read_models(url: str) -> ReadModels:
        read_models = ReadModels.open(url)
        all_opened.append(read_models)
        return read_models

    yield open_read_models
    for read_models in all_opened:
        read_models.close()


# Helpers.


def nth_command(ledger: Ledger, number: int) -> CommandResult:
    """A command that is never refused (only WH-1, which holds plenty, is taken from)."""
    kind = number % 5
    quantity = D(number % 7 + 1) / 4
    if kind == 0:
        return ledger.receive(Receipt(location="WH-2", lines=(
            ReceiptLine("FIFO-1", quantity, D("3.10") + number % 3),
            ReceiptLine("AVG-1", quantity, D("1.333333")))), OPERATOR)
    if kind == 1:
        return ledger.transfer(Transfer(from_location="WH-1", to_location="SHOP", lines=(
            DispatchLine("FIFO-1", quantity), DispatchLine("AVG-1", quantity))), OPERATOR)
    if kind == 2:
        return ledger.dispatch(Dispatch(location="WH-1", lines=(
            DispatchLine("AVG-1", quantity),)), OPERATOR)
    if kind == 3:
        return ledger.count(Count(location="WH-2", reason="cycle count", lines=(
            CountLine("FIFO-1", D(number % 4)),)), OPERATOR)
    return ledger.receive(Receipt(location="SHOP", lines=(
        ReceiptLine("AVG-1", quantity, D("0.999999")),)), OPERATOR)


def statuses(read_models: ReadModels) -> dict[str, tuple[int, str]]:
    """Each projection's position and digest."""
    return {status.name: (status.position, status.digest) for status in read_models.status()}


def clean_rebuild(ledger: Ledger, read_models: ReadModels) -> dict[str, tuple[int, str]]:
    """Rebuild into (otherwise untouched) read models; their positions and digests."""
    rebuild(read_models.database, ledger.recorder, ledger.mapper, read_models.projections)
    return statuses(read_models)


def stock_rows(read_models: ReadModels) -> dict[tuple[str, str], dict[str, Any]]:
    levels = read_models.by_name["stock_levels"]
    generation = read_models.wait(["stock_levels"], 0, 1)["stock_levels"].generation
    with read_models.database.reader.connect() as connection:
        page = queries.stock(connection, levels, generation, sku=None, location=None,
                             after=None, limit=QUERY_LIMIT)
    assert not page.has_more
    return {(row["sku"], row["location"]): row for row in page.rows}


def assert_levels_equal_bins(ledger: Ledger, read_models: ReadModels) -> None:
    rows = stock_rows(read_models)
    for sku in ITEMS:
        for location in LOCATIONS:
            stock_bin = ledger.stock_bin(sku, location)
            row = rows.pop((sku, location), None)
            if stock_bin is None:
                assert row is None, (sku, location)
                continue
            assert row is not None, (sku, location)
            assert (quantity_of(row["quantity_on_hand_e3"]), money_of(row["value_e2"]),
                    unit_cost_of(row["unit_cost_e6"])) == (
                stock_bin.quantity_on_hand, stock_bin.value, stock_bin.unit_cost), (sku, location)
    assert rows == {}


def movement_positions(ledger: Ledger) -> list[int]:
    """The log positions of every stock movement."""
    found: list[int] = []
    position = 0
    while page := ledger.recorder.select_notifications(
            start=position, limit=LOG_PAGE, inclusive_of_start=False):
        found += [n.id for n in page
                  if isinstance(ledger.mapper.to_domain_event(n), StockBin.Movement)]
        position = page[-1].id
    return found


def card_positions(read_models: ReadModels) -> list[int]:
    card = read_models.by_name["stock_card"]
    generation = read_models.wait(["stock_card"], 0, 1)["stock_card"].generation
    table = card.tables(generation)["stock_card"]
    with read_models.database.reader.connect() as connection:
        return list(connection.execute(table.select().with_only_columns(
            table.c.position).order_by(table.c.position)).scalars())


class CountingRunner(ProjectionRunner):
    """A runner that counts the notifications it consumed itself.

    Runners given one `together` barrier start every page at the same moment, so that each
    page is contended (left alone, one SQLite runner can take the lock again and again while
    the other backs off). `together.abort()` lets them run freely again.
    """

    consumed = 0
    together: threading.Barrier | None = None

    def advance(self) -> int:
        if self.together is not None:
            with suppress(threading.BrokenBarrierError):
                self.together.wait(BARRIER_SECONDS)
        count = super().advance()
        self.consumed += count
        return count


class RunnerThread:
    """`runner.run()` in a thread until stopped; whatever it raises is kept for the test."""

    def __init__(self, runner: ProjectionRunner, name: str) -> None:
        self.runner = runner
        self.stop = threading.Event()
        self.errors: list[BaseException] = []
        self.thread = threading.Thread(target=self._run, name=name, daemon=True)

    def _run(self) -> None:
        try:
            self.runner.run(self.stop, self._idle, IDLE_SECONDS)
        except BaseException as error:
            self.errors.append(error)
            raise

    def _idle(self, seconds: float) -> None:
        self.stop.wait(seconds)

    def __enter__(self) -> RunnerThread:
        self.runner.prepare()
        self.thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop.set()
        self.thread.join(JOIN_SECONDS)
        assert not self.thread.is_alive(), "the runner did not stop"


class Writer:
    """Commands from a thread of their own, until stopped (bounded)."""

    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger
        self.stop = threading.Event()
        self.written = 0
        self.errors: list[BaseException] = []
        self.thread = threading.Thread(target=self._write, name="writer", daemon=True)

    def _write(self) -> None:
        try:
            for number in range(WRITES_MAX):
                if self.stop.is_set():
                    return
                nth_command(self.ledger, number)
                self.written += 1
        except BaseException as error:
            self.errors.append(error)
            raise

    def __enter__(self) -> Writer:
        self.thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop.set()
        self.thread.join(JOIN_SECONDS)
        assert not self.thread.is_alive(), "the writer did not stop"


class ArrivingRecorder:
    """The event store as a rebuild reads it, with a command recorded before some of its reads.

    Commands arrive while the new generations fill (the first reads, which stop at the head
    read before them) and inside the transaction that switches generations (its first read,
    up to whatever is there): the moments at which an arriving event is easiest to lose.
    """

    def __init__(self, recorder: Any, arrive: Callable[[], object], fills: int = 2) -> None:
        self.recorder = recorder
        self.arrive = arrive
        self.fills_left = fills
        self.in_switch = False
        self.arrived = 0

    def select_notifications(self, *args: Any, **kwargs: Any) -> Sequence[Any]:
        # The fill reads up to the head it read first; the switch reads to the end.
        switching = kwargs.get("stop") is None
        first_of_switch = switching and not self.in_switch
        filling = not switching and self.fills_left > 0
        if first_of_switch or filling:
            self.fills_left -= 1 if filling else 0
            self.arrive()
            self.arrived += 1
        self.in_switch = switching
        found: Sequence[Any] = self.recorder.select_notifications(*args, **kwargs)
        return found

    def __getattr__(self, name: str) -> Any:
        return getattr(self.recorder, name)


# Tests.


def test_caught_up_read_models_equal_the_ledger(ledger: Ledger, read_url: str,
                                                opened: Callable[[str], ReadModels]) -> None:
    ledger.register_item("FIFO-1", ItemDetails("Hex bolt", "box", "fifo", D("12")), OPERATOR)
    ledger.register_location("SHOP", "Shop floor", OPERATOR)
    for number in range(12):
        nth_command(ledger, number)
    ledger.count(Count(location="SHOP", reason="revaluation", lines=(
        CountLine("AVG-1", D("2.5"), D("7.777777")),)), OPERATOR)
    with pytest.raises(InsufficientStock):
        ledger.dispatch(Dispatch(location="SHOP", lines=(DispatchLine("FIFO-1", D(10**6)),)),
                        OPERATOR)
    read_models = opened(read_url)
    runner = read_models.runner(ledger.recorder, ledger.mapper)
    runner.prepare()
    runner.catch_up()

    head = ledger.head_position()
    assert {position for position, _ in statuses(read_models).values()} == {head}
    assert_levels_equal_bins(ledger, read_models)
    assert card_positions(read_models) == movement_positions(ledger)
    with read_models.database.reader.connect() as connection:
        items = read_models.by_name["items"].tables(1)["items"]
        locations = read_models.by_name["locations"].tables(1)["locations"]
        item_rows = {row.sku: row for row in connection.execute(items.select())}
        location_rows = {row.code: row.name for row in connection.execute(locations.select())}
    for sku in ITEMS:
        item = ledger.item(sku)
        row = item_rows.pop(sku)
        assert (row.name, row.uom, row.valuation_method, row.version) == (
            item.name, item.uom, item.valuation_method, item.version)
        reorder_point = None if row.reorder_point_e3 is None else quantity_of(row.reorder_point_e3)
        assert reorder_point == item.reorder_point
    assert item_rows == {}
    assert location_rows == {code: ledger.location(code).name for code in LOCATIONS}  # type: ignore[union-attr]


def test_a_query_waiting_for_a_position_sees_that_write(
        ledger: Ledger, read_url: str, opened: Callable[[str], ReadModels],
        caplog: pytest.LogCaptureFixture) -> None:
    read_models = opened(read_url)
    embedded = EmbeddedRunner(read_models.runner(ledger.recorder, ledger.mapper),
                              ledger.recorder)
    ledger.on_recorded.append(embedded.wakeup.wake)
    embedded.start()
    try:
        for number in range(15):
            result = nth_command(ledger, number)
            read_models.wait(["stock_levels", "stock_card"], result.position, WAIT_SECONDS)
            rows = stock_rows(read_models)
            for line in result.lines:
                row = rows[line["sku"], line["location"]]
                assert quantity_of(row["quantity_on_hand_e3"]) == line["quantity_on_hand_after"]
                assert money_of(row["value_e2"]) == line["value_after"]
                if "to_location" in line:
                    row = rows[line["sku"], line["to_location"]]
                    assert (quantity_of(row["quantity_on_hand_e3"]), money_of(row["value_e2"])) \
                        == (line["to_quantity_on_hand_after"], line["to_value_after"])
        # A position nobody has written yet is waited for, bounded, then refused.
        with pytest.raises(ProjectionLag):
            read_models.wait(["stock_levels"], ledger.head_position() + 1, 0.2)
    finally:
        embedded.stop()
    assert not embedded.thread.is_alive()
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


def test_rebuild_under_live_projection_and_writes_equals_a_clean_rebuild(
        ledger: Ledger, read_url: str, other_read_url: Callable[[str], str],
        opened: Callable[[str], ReadModels]) -> None:
    for number in range(40):
        nth_command(ledger, number)
    live = opened(read_url)
    arriving = ArrivingRecorder(ledger.recorder, lambda: nth_command(ledger, 2))
    runner = CountingRunner(live.database, ledger.recorder, ledger.mapper, live.projections,
                            page_size=7)
    with RunnerThread(runner, "live") as thread, Writer(ledger) as writer:
        rebuilt = rebuild(live.database, arriving, ledger.mapper,  # type: ignore[arg-type]
                          live.projections, page_size=10)
    assert not thread.errors and not writer.errors
    assert writer.written > 0 and runner.consumed > 0
    # Commands arrived while the projections filled and while they switched generations.
    assert arriving.arrived == 3
    assert {state.generation for state in rebuilt.values()} == {2}

    head = ledger.head_position()
    runner.catch_up()
    assert {position for position, _ in statuses(live).values()} == {head}
    assert statuses(live) == clean_rebuild(ledger, opened(other_read_url("clean")))
    assert_levels_equal_bins(ledger, live)
    assert card_positions(live) == movement_positions(ledger)


def test_two_runners_on_one_read_database_apply_each_event_once(
        ledger: Ledger, read_url: str, other_read_url: Callable[[str], str],
        opened: Callable[[str], ReadModels]) -> None:
    for number in range(30):
        nth_command(ledger, number)
    # Two instances, as two API processes would have: separate engines on one database.
    first, second = opened(read_url), opened(read_url)
    runners = [CountingRunner(read_models.database, ledger.recorder, ledger.mapper,
                              read_models.projections, page_size=1)
               for read_models in (first, second)]
    together = threading.Barrier(len(runners))
    for runner in runners:
        runner.together = together
    with RunnerThread(runners[0], "first") as one, RunnerThread(runners[1], "second") as two:
        for number in range(30, 45):
            nth_command(ledger, number)
        head = ledger.head_position()
        try:
            first.wait(NAMES, head, WAIT_SECONDS)
        finally:
            together.abort()
    assert not one.errors and not two.errors
    assert runners[0].consumed > 0 and runners[1].consumed > 0, "both runners took part"
    # Every notification was consumed by exactly one of them.
    assert runners[0].consumed + runners[1].consumed == len(notification_ids(ledger))

    single = opened(other_read_url("single"))
    alone = single.runner(ledger.recorder, ledger.mapper)
    alone.prepare()
    alone.catch_up()
    assert statuses(first) == statuses(second) == statuses(single)
    assert card_positions(first) == movement_positions(ledger)


class RecordingStop(threading.Event):
    """A stop event that records each wait on it and ends the run there."""

    def __init__(self) -> None:
        super().__init__()
        self.waits: list[float | None] = []

    def wait(self, timeout: float | None = None) -> bool:
        self.waits.append(timeout)
        self.set()
        return True


class PageRecordingRunner(ProjectionRunner):
    pages: list[int]

    def advance(self) -> int:
        count = super().advance()
        self.pages.append(count)
        return count


@pytest.mark.parametrize("gather", [0.0, 0.25])
def test_after_a_page_that_did_not_fill_a_runner_lets_events_gather(
        ledger: Ledger, read_url: str, opened: Callable[[str], ReadModels],
        gather: float) -> None:
    read_models = opened(read_url)
    caught_up = read_models.runner(ledger.recorder, ledger.mapper)
    caught_up.prepare()
    caught_up.catch_up()
    before = ledger.head_position()
    for number in range(3):
        nth_command(ledger, number)
    new = ledger.head_position() - before
    assert new >= 3
    runner = PageRecordingRunner(read_models.database, ledger.recorder, ledger.mapper,
                                 caught_up.projections, page_size=new - 1)
    runner.pages = []
    stop, idled = RecordingStop(), []

    def idle(seconds: float) -> None:
        idled.append(seconds)
        stop.set()

    runner.run(stop, idle, IDLE_SECONDS, gather_seconds=gather)

    if gather:
        # A full page goes straight on to the next; the one that did not fill, to gathering.
        assert (runner.pages, stop.waits, idled) == ([new - 1, 1], [gather], [])
    else:
        assert (runner.pages, stop.waits, idled) == ([new - 1, 1, 0], [], [IDLE_SECONDS])


def notification_ids(ledger: Ledger) -> list[int]:
    found: list[int] = []
    position = 0
    while page := ledger.recorder.select_notifications(
            start=position, limit=LOG_PAGE, inclusive_of_start=False):
        found += [n.id for n in page]
        position = page[-1].id
    return found


@pytest.mark.postgres
@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
def test_gaps_in_the_log_are_skipped_not_waited_for(
        ledger: Ledger, database_url: str, read_url: str, other_read_url: Callable[[str], str],
        opened: Callable[[str], ReadModels]) -> None:
    # Sequence values taken by transactions that never commit leave holes in the log;
    # burning some between commands makes the same holes, some wider than a page.
    schema = dict(parse_qsl(urlsplit(database_url).query))["schema"]
    assert isinstance(ledger.recorder, PostgresApplicationRecorder)
    table = f"{schema}.{ledger.recorder.events_table_name}"
    live = opened(read_url)
    runner = CountingRunner(live.database, ledger.recorder, ledger.mapper, live.projections,
                            page_size=3)
    with RunnerThread(runner, "live"), psycopg.connect(
            _libpq(database_url), autocommit=True) as connection:
        for number in range(20):
            burnt = (1, 2, 9)[number % 3]
            for _ in range(burnt):
                connection.execute(
                    "SELECT nextval(pg_get_serial_sequence(%s, 'notification_id'))", (table,))
            nth_command(ledger, number)
        head = ledger.head_position()
        live.wait(NAMES, head, WAIT_SECONDS)
    ids = notification_ids(ledger)
    assert ids[-1] == head and len(ids) < head, "the log has holes"

    paged = opened(other_read_url("paged"))
    ProjectionRunner(paged.database, ledger.recorder, ledger.mapper, paged.projections,
                     page_size=2).catch_up()
    expected = clean_rebuild(ledger, opened(other_read_url("clean")))
    assert statuses(live) == statuses(paged) == expected
    assert {position for position, _ in expected.values()} == {head}
    assert card_positions(live) == movement_positions(ledger)
    assert_levels_equal_bins(ledger, live)


@pytest.mark.postgres
@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
def test_read_models_opened_by_several_processes_at_once_all_start(
        database_url: str, read_url: str, opened: Callable[[str], ReadModels]) -> None:
    # An API process and two `ledger project` workers (active and standby) started together on
    # a new database each open the read models, which creates their tables on first use. Each
    # thread here has engines of its own, as a process would. (SQLite is left out: there the
    # same race fails only now and then, in `PRAGMA journal_mode=WAL`, too rarely to test.)
    barrier = threading.Barrier(OPENERS)
    errors: list[str] = []

    def open_at_once() -> None:
        barrier.wait(JOIN_SECONDS)
        try:
            opened(read_url)
        except Exception as error:
            errors.append(f"{type(error).__name__}: {str(error).splitlines()[0]}")

    threads = [threading.Thread(target=open_at_once, name=f"opener-{number}", daemon=True)
               for number in range(OPENERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(JOIN_SECONDS)
    assert errors == [], "a process failed to open the read models"
    status = opened(read_url).status()
    assert sorted((s.name, s.generation, s.position) for s in status) == sorted(
        (name, 1, 0) for name in NAMES)


def test_the_set_based_rebuild_equals_the_page_at_a_time_runner(
        ledger: Ledger, read_url: str, other_read_url: Callable[[str], str],
        opened: Callable[[str], ReadModels]) -> None:
    """Every read model, every kind of event (the demo's documents, purchase and sales orders in
    every status, payments, returns): the rebuild's in-memory folds and COPY give the rows the
    runner's page-by-page upserts give."""
    demo.load(ledger)
    for number in range(30):
        nth_command(ledger, number)
    live = opened(read_url)
    runner = live.runner(ledger.recorder, ledger.mapper)
    runner.page_size = 7
    runner.prepare()
    runner.catch_up()
    paged = statuses(live)
    assert {position for position, _ in paged.values()} == {ledger.head_position()}
    assert clean_rebuild(ledger, opened(other_read_url("bulk"))) == paged
    # A rebuild over existing generations too (the live models, now generation 2).
    assert clean_rebuild(ledger, live) == paged
