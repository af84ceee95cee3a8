"""Read models built from random stock histories agree with the ledger, however they are built.

Each example records a random history of receipts, dispatches, transfers and counts (FIFO and
moving-average items, several locations, some documents refused for want of stock) on a fresh
SQLite event store, with explicit effective times that never go backwards and often coincide.
Then, on read-model databases of their own:

* the current stock levels equal what the stock bins hold;
* runners with different page sizes, one of them following the history as it is written,
  produce byte-identical read models (equal digests);
* a rebuild from position zero produces the live read models' digests at the same position;
* "stock as of T", for every instant a movement happened, an instant between two, and one before
  anything happened, equals a replay of the events effective at or before T.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta, timezone
from decimal import ROUND_DOWN, Decimal
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ledger.application import Ledger
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
from ledger.domain.identity import bin_id
from ledger.domain.item import ItemDetails
from ledger.domain.stock_bin import StockBin
from ledger.errors import InsufficientStock
from ledger.numbers import ZERO, ZERO_MONEY, ZERO_QUANTITY
from projections import queries
from projections.encoding import money_of, quantity_of, unit_cost_of
from projections.rebuild import rebuild
from projections.runner import ProjectionRunner
from projections.service import ReadModels

ITEMS: dict[str, ValuationMethod] = {
    "FIFO-A": "fifo", "FIFO-B": "fifo", "AVG-A": "moving_average", "AVG-B": "moving_average"}
SKUS = tuple(ITEMS)
LOCATIONS = ("WH-1", "WH-2", "SHOP")
BINS = [(sku, location) for sku in SKUS for location in LOCATIONS]
ACTOR = CommandMeta(actor="property")
# Well in the past, so that every effective time is accepted; steps of whole hours, so that
# half an hour after a movement is strictly between two movement instants.
HISTORY_START = datetime(2024, 3, 1, 8, 0, tzinfo=UTC)
TIME_STEP = timedelta(hours=1)
ZONES = (UTC, timezone(timedelta(hours=8)), timezone(timedelta(hours=-5, minutes=-30)))
PAGE_SIZES = (1, 3, 500)
QUANTITY_STEP = Decimal("0.001")
QUERY_LIMIT = 100
LOG_PAGE = 500
EXAMPLES = 20
PROPERTY_SETTINGS = settings(max_examples=EXAMPLES, deadline=None,
                             suppress_health_check=[HealthCheck.too_slow,
                                                    HealthCheck.data_too_large])

quantities = st.decimals(min_value=Decimal("0.001"), max_value=Decimal("40"), places=3)
# Dispatch and transfer lines are drawn as a share of what the bin holds when they are recorded:
# most succeed, those above 1 are refused for want of stock (and so is the whole document).
shares = st.decimals(min_value=Decimal("0.05"), max_value=Decimal("1.2"), places=2)
counted_quantities = st.decimals(min_value=ZERO, max_value=Decimal("40"), places=3)
unit_costs = st.decimals(min_value=ZERO, max_value=Decimal("250"), places=6)
skus = st.sampled_from(SKUS)
locations = st.sampled_from(LOCATIONS)
location_pairs = st.permutations(LOCATIONS).map(lambda codes: (codes[0], codes[1]))


@dataclass(frozen=True)
class Step:
    """One document of a history, and how far its effective time moves past the previous one."""

    method: str
    document: Any
    hours_later: int
    zone: timezone


def _receipts() -> st.SearchStrategy[tuple[str, Any]]:
    lines = st.lists(st.builds(ReceiptLine, skus, quantities, unit_costs), min_size=1, max_size=3)
    return st.tuples(st.just("receive"), st.builds(
        lambda location, found: Receipt(location=location, lines=tuple(found)), locations, lines))


def _dispatches() -> st.SearchStrategy[tuple[str, Any]]:
    lines = st.lists(st.builds(DispatchLine, skus, shares), min_size=1, max_size=2)
    return st.tuples(st.just("dispatch"), st.builds(
        lambda location, found: Dispatch(location=location, lines=tuple(found)), locations, lines))


def _transfers() -> st.SearchStrategy[tuple[str, Any]]:
    lines = st.lists(st.builds(DispatchLine, skus, shares), min_size=1, max_size=2)
    return st.tuples(st.just("transfer"), st.builds(
        lambda pair, found: Transfer(from_location=pair[0], to_location=pair[1],
                                     lines=tuple(found)), location_pairs, lines))


def _counts() -> st.SearchStrategy[tuple[str, Any]]:
    lines = st.lists(st.builds(CountLine, skus, counted_quantities, st.none() | unit_costs),
                     min_size=1, max_size=2, unique_by=lambda line: line.sku)
    return st.tuples(st.just("count"), st.builds(
        lambda location, found: Count(location=location, reason="cycle count",
                                      lines=tuple(found)), locations, lines))


documents = st.one_of(_receipts(), _dispatches(), _transfers(), _counts(), _receipts())
steps = st.builds(lambda chosen, hours, zone: Step(chosen[0], chosen[1], hours, zone),
                  documents, st.sampled_from((0, 0, 1, 2)), st.sampled_from(ZONES))
histories = st.lists(steps, min_size=3, max_size=14)


@dataclass
class Scenario:
    """A ledger on a fresh SQLite file with the reference data, and a directory for read models."""

    directory: Path
    ledger: Ledger
    read_models: list[ReadModels]

    def open_read_models(self, name: str) -> ReadModels:
        read_models = ReadModels.open(f"sqlite:///{(self.directory / name).as_posix()}")
        self.read_models.append(read_models)
        return read_models

    def runner(self, read_models: ReadModels, page_size: int) -> ProjectionRunner:
        runner = ProjectionRunner(read_models.database, self.ledger.recorder, self.ledger.mapper,
                                  read_models.projections, page_size=page_size)
        runner.prepare()
        return runner

    def record(self, history: list[Step], after_each: ProjectionRunner | None = None) -> None:
        """Record every document at its effective time; refusals for want of stock are ignored."""
        moment = HISTORY_START
        for step in history:
            moment += step.hours_later * TIME_STEP
            document = self._concrete(step.document, moment.astimezone(step.zone))
            with suppress(InsufficientStock):
                getattr(self.ledger, step.method)(document, ACTOR)
            if after_each is not None:
                after_each.catch_up()

    def _concrete(self, document: Any, moment: datetime) -> Any:
        """The document at `moment`, its shares of stock turned into quantities."""
        if isinstance(document, Dispatch | Transfer):
            source = document.location if isinstance(document, Dispatch) else (
                document.from_location)
            lines = tuple(self._share(line.sku, source, line.quantity) for line in document.lines)
            document = replace(document, lines=lines)
        return replace(document, effective_at=moment)

    def _share(self, sku: str, location: str, share: Decimal) -> DispatchLine:
        """A share of what the bin holds; from an empty bin, of another SKU's stock there."""
        held = {code: self._held(code, location) for code in SKUS}
        if held[sku] == ZERO:
            sku = next((code for code in SKUS if held[code] > ZERO), sku)
        taken = (held[sku] * share).quantize(QUANTITY_STEP, rounding=ROUND_DOWN)
        return DispatchLine(sku, max(taken, QUANTITY_STEP))

    def _held(self, sku: str, location: str) -> Decimal:
        stock_bin = self.ledger.stock_bin(sku, location)
        return ZERO if stock_bin is None else stock_bin.quantity_on_hand


@contextmanager
def scenario() -> Iterator[Scenario]:
    with tempfile.TemporaryDirectory(prefix="ledger-projections-") as name:
        directory = Path(name)
        url = f"sqlite:///{(directory / 'ledger.db').as_posix()}"
        ledger = Ledger(store_environment(url))
        opened = Scenario(directory, ledger, [])
        try:
            for sku, method in ITEMS.items():
                ledger.register_item(sku, ItemDetails(f"Item {sku}", "ea", method), ACTOR)
            for code in LOCATIONS:
                ledger.register_location(code, f"Location {code}", ACTOR)
            yield opened
        finally:
            for read_models in opened.read_models:
                read_models.close()
            ledger.close()


def digests(read_models: ReadModels) -> dict[str, tuple[int, str]]:
    """Each projection's position and digest."""
    return {status.name: (status.position, status.digest) for status in read_models.status()}


def movements(ledger: Ledger) -> list[tuple[int, StockBin.Movement]]:
    """Every stock movement in the log, with its position, in log order."""
    found: list[tuple[int, StockBin.Movement]] = []
    position = 0
    while True:
        page = ledger.recorder.select_notifications(
            start=position, limit=LOG_PAGE, inclusive_of_start=False)
        if not page:
            return found
        for notification in page:
            event = ledger.mapper.to_domain_event(notification)
            if isinstance(event, StockBin.Movement):
                found.append((notification.id, event))
        position = page[-1].id


def flows(event: StockBin.Movement) -> tuple[Decimal, Decimal]:
    """The quantity and value a movement added to its bin (negative when it took some out)."""
    if isinstance(event, StockBin.Counted):
        return event.quantity_difference, event.value_difference
    sign = 1 if isinstance(event, StockBin.Received | StockBin.TransferredIn) else -1
    quantity: Decimal = event.quantity  # type: ignore[attr-defined]
    value: Decimal = event.value  # type: ignore[attr-defined]
    return sign * quantity, sign * value


def replay_as_of(ledger: Ledger, history: list[tuple[int, StockBin.Movement]],
                 moment: datetime) -> dict[tuple[str, str], tuple[Decimal, Decimal, Decimal]]:
    """On-hand, value and unit cost per bin, from the movements effective at or before `moment`.

    On-hand and value are folded from what each movement moved; the unit cost is the bin's own,
    replayed from its events up to the last movement that counts.
    """
    totals: dict[tuple[str, str], tuple[Decimal, Decimal]] = {}
    versions: dict[tuple[str, str], int] = {}
    for _, event in history:
        if event.effective_at > moment:
            continue
        key = (event.sku, event.location)
        quantity, value = totals.get(key, (ZERO_QUANTITY, ZERO_MONEY))
        quantity_in, value_in = flows(event)
        totals[key] = (quantity + quantity_in, value + value_in)
        versions[key] = max(versions.get(key, 0), event.originator_version)
    replayed = {}
    for key, (quantity, value) in totals.items():
        stock_bin: Any = ledger.repository.get(bin_id(*key), version=versions[key])
        assert isinstance(stock_bin, StockBin)
        replayed[key] = (quantity, value, stock_bin.unit_cost)
    return replayed


def stock_as_of(read_models: ReadModels, moment: datetime
                ) -> dict[tuple[str, str], tuple[Decimal, Decimal, Decimal]]:
    """What the read side answers for stock as of `moment`, per bin."""
    states = read_models.wait(["stock_levels", "stock_card"], 0, timeout=1)
    with read_models.database.reader.connect() as connection:
        page = queries.stock_as_of(
            connection, read_models.by_name["stock_levels"], states["stock_levels"].generation,
            read_models.by_name["stock_card"], states["stock_card"].generation,
            moment=moment, sku=None, location=None, after=None, limit=QUERY_LIMIT)
    assert not page.has_more
    return {
        (row["card"]["sku"], row["card"]["location"]): (
            quantity_of(row["card"]["quantity_on_hand_after_e3"]),
            money_of(row["card"]["value_after_e2"]),
            unit_cost_of(row["card"]["unit_cost_after_e6"]))
        for row in page.rows
    }


@PROPERTY_SETTINGS
@given(history=histories)
def test_stock_levels_equal_what_the_bins_hold(history: list[Step]) -> None:
    with scenario() as opened:
        opened.record(history)
        read_models = opened.open_read_models("read.db")
        opened.runner(read_models, page_size=500).catch_up()
        levels = read_models.by_name["stock_levels"]
        generation = read_models.wait(["stock_levels"], 0, timeout=1)["stock_levels"].generation
        with read_models.database.reader.connect() as connection:
            page = queries.stock(connection, levels, generation, sku=None, location=None,
                                 after=None, limit=QUERY_LIMIT)
        rows = {(row["sku"], row["location"]): row for row in page.rows}
        for sku, location in BINS:
            stock_bin = opened.ledger.stock_bin(sku, location)
            row = rows.pop((sku, location), None)
            if stock_bin is None:
                assert row is None, (sku, location)
                continue
            assert row is not None, (sku, location)
            assert quantity_of(row["quantity_on_hand_e3"]) == stock_bin.quantity_on_hand
            assert quantity_of(row["quantity_reserved_e3"]) == stock_bin.quantity_reserved
            assert money_of(row["value_e2"]) == stock_bin.value
            assert unit_cost_of(row["unit_cost_e6"]) == stock_bin.unit_cost
        assert rows == {}


@PROPERTY_SETTINGS
@given(history=histories)
def test_page_size_never_changes_the_read_models(history: list[Step]) -> None:
    with scenario() as opened:
        # One runner follows the history command by command; the others start when it is over.
        following = opened.open_read_models("following.db")
        opened.record(history, after_each=opened.runner(following, page_size=3))
        head = opened.ledger.head_position()
        expected = digests(following)
        assert {position for position, _ in expected.values()} == {head}
        for page_size in PAGE_SIZES:
            read_models = opened.open_read_models(f"read-{page_size}.db")
            opened.runner(read_models, page_size=page_size).catch_up()
            assert digests(read_models) == expected, f"page size {page_size}"


@PROPERTY_SETTINGS
@given(history=histories, page_size=st.sampled_from((1, 2, 7, 5000)))
def test_rebuild_reproduces_the_live_read_models(history: list[Step], page_size: int) -> None:
    with scenario() as opened:
        url = read_models_url(Settings(database_url=f"sqlite:///{opened.directory}/ledger.db"))
        read_models = ReadModels.open(url)
        opened.read_models.append(read_models)
        opened.record(history, after_each=opened.runner(read_models, page_size=500))
        live = {status.name: status for status in read_models.status()}
        for rebuilt_times in (1, 2):
            rebuild(read_models.database, opened.ledger.recorder, opened.ledger.mapper,
                    read_models.projections, page_size=page_size)
            for status in read_models.status():
                before = live[status.name]
                assert status.generation == before.generation + rebuilt_times, status.name
                assert (status.position, status.digest) == (before.position, before.digest), (
                    status.name)


def instants(history: list[tuple[int, StockBin.Movement]]) -> list[datetime]:
    """Every movement instant, half an hour after each, and a minute before the first."""
    boundaries = sorted({event.effective_at for _, event in history})
    between = [moment + TIME_STEP / 2 for moment in boundaries]
    return [HISTORY_START - timedelta(minutes=1), *boundaries, *between]


@PROPERTY_SETTINGS
@given(history=histories, zone=st.sampled_from(ZONES))
def test_stock_as_of_any_moment_equals_a_replay_up_to_it(history: list[Step],
                                                         zone: timezone) -> None:
    with scenario() as opened:
        opened.record(history)
        read_models = opened.open_read_models("read.db")
        opened.runner(read_models, page_size=3).catch_up()
        recorded = movements(opened.ledger)
        for moment in instants(recorded):
            expected = replay_as_of(opened.ledger, recorded, moment)
            # The same instant asked in another zone is the same instant.
            assert stock_as_of(read_models, moment.astimezone(zone)) == expected, moment
