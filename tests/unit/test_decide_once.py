"""Work a command does once, not twice: a movement's cost state, a fork's reference data.

`apply_movement` answers the second of two calls on the very same objects from the first
(`StockBin._move` computes the state after a movement for the event's figures, then the
event it triggered applies the same movement). A group-commit fork copies the aggregates
a command may change, but reads items and locations where they are.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

import pytest
from eventsourcing.application import AggregateNotFoundError
from eventsourcing.domain import Aggregate

from ledger import costing
from ledger.costing import CostState, Layer, apply_movement
from ledger.domain.identity import bin_id, item_id, location_id
from ledger.domain.item import Item, ItemDetails
from ledger.domain.location import Location
from ledger.domain.stock_bin import StockBin
from ledger.workspace import Workspace
from unit.support import LOCATION, SKU, context, given, receive

NOW = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


def layer(quantity: str, unit_cost: str, value: str) -> Layer:
    return Layer(Decimal(quantity), Decimal(unit_cost), Decimal(value))


def state(*layers: Layer) -> CostState:
    start = CostState(method="fifo", quantity=Decimal("0.000"), value=Decimal("0.00"),
                      last_unit_cost=Decimal("0.000000"), layers=())
    return apply_movement(start, (), tuple(layers))


def counting(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    calls: list[int] = []
    original = costing._apply_movement

    def counted(*args: Any) -> CostState:
        calls.append(1)
        return original(*args)

    monkeypatch.setattr(costing, "_apply_movement", counted)
    return calls


def test_a_receipt_computes_its_movement_once(monkeypatch: pytest.MonkeyPatch) -> None:
    stock_bin = given("fifo", receive("10", "2.00"))
    calls = counting(monkeypatch)
    receive("5", "3.00")(stock_bin)
    assert len(calls) == 1
    assert stock_bin.cost.quantity == Decimal("15.000")
    assert stock_bin.cost.value == Decimal("35.00")


def test_equal_but_distinct_inputs_are_computed_not_remembered(
        monkeypatch: pytest.MonkeyPatch) -> None:
    held = state(layer("10", "2", "20.00"))
    added = (layer("5", "3", "15.00"),)
    first = apply_movement(held, (), added)
    equal_state, equal_added = state(layer("10", "2", "20.00")), (layer("5", "3", "15.00"),)
    calls = counting(monkeypatch)
    again = apply_movement(equal_state, (), equal_added)
    assert len(calls) == 1
    assert again == first


def test_another_state_with_the_same_layers_gets_its_own_result() -> None:
    added = (layer("5", "3", "15.00"),)
    small, large = state(layer("1", "2", "2.00")), state(layer("100", "2", "200.00"))
    after_small = apply_movement(small, (), added)
    after_large = apply_movement(large, (), added)
    assert (after_small.quantity, after_large.quantity) == (Decimal("6.000"),
                                                            Decimal("105.000"))
    assert apply_movement(small, (), added).quantity == Decimal("6.000")


class Loads:
    """A loader over fixed aggregates that counts what it was asked for."""

    def __init__(self, *aggregates: Aggregate) -> None:
        self.aggregates = {aggregate.id: aggregate for aggregate in aggregates}
        self.asked: list[UUID] = []

    def __call__(self, aggregate_id: UUID) -> Aggregate:
        self.asked.append(aggregate_id)
        if aggregate_id not in self.aggregates:
            raise AggregateNotFoundError(aggregate_id)
        return self.aggregates[aggregate_id]


def reference() -> tuple[Item, Location]:
    item = Item.register(SKU, ItemDetails("Widget", "ea", "fifo"), "alice")
    location = Location.register(LOCATION, "Main", "alice")
    for aggregate in (item, location):
        aggregate.collect_events()
    return item, location


def test_a_fork_reads_items_and_locations_uncopied_and_copies_the_bin() -> None:
    item, location = reference()
    stock_bin = StockBin.open(SKU, LOCATION, "fifo", NOW)
    stock_bin.collect_events()
    shared = Workspace(Loads(item, location, stock_bin), NOW)
    fork = shared.fork()
    assert fork.item(SKU) is item
    assert fork.location(LOCATION) is location
    changed = fork.bin(SKU, LOCATION)
    assert changed is not stock_bin
    changed.receive(Decimal("1.000"), Decimal("2.000000"), context(), 1)
    assert stock_bin.cost.quantity == 0, "the shared bin is untouched until absorbed"
    shared.absorb(fork)
    assert shared.existing_bin(SKU, LOCATION) is changed
    assert [aggregate.id for aggregate in shared.changed()] == [bin_id(SKU, LOCATION)]


def test_a_fork_sees_an_item_missing_as_missing_and_loads_it_once() -> None:
    _, location = reference()
    loads = Loads(location)
    shared = Workspace(loads, NOW)
    for _ in range(3):
        with pytest.raises(Exception, match=SKU):
            shared.fork().item(SKU)
    assert loads.asked.count(item_id(SKU)) == 1
    assert shared.fork().location(LOCATION) is location
    assert loads.asked.count(location_id(LOCATION)) == 1
