"""Given events, when a command, then events: the helpers the unit tests share.

A bin's history is produced by commands on a fresh bin, then the bin under test
is rebuilt from those events alone, the way the repository loads it. Figures are
compared as strings so that the places (3 for quantities, 6 for unit costs, 2 for
money) are pinned as well as the amounts.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from uuid import UUID, uuid4

from eventsourcing.application import AggregateNotFoundError
from eventsourcing.domain import Aggregate

from ledger.costing import Layer, ValuationMethod
from ledger.domain.context import MovementContext
from ledger.domain.item import Item, ItemDetails
from ledger.domain.location import Location
from ledger.domain.stock_bin import StockBin
from ledger.numbers import quantity, unit_cost
from ledger.workspace import Workspace

SKU = "SKU-1"
LOCATION = "WH-1"
OTHER_LOCATION = "WH-2"
RECORDED_AT = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)

Step = Callable[[StockBin], object]


def context(**overrides: Any) -> MovementContext:
    """The metadata of one command, recorded at a fixed moment."""
    fields: dict[str, Any] = {
        "document_id": uuid4(),
        "actor": "alice",
        "effective_at": RECORDED_AT,
        "recorded_at": RECORDED_AT,
    }
    fields.update(overrides)
    return MovementContext(**fields)


def receive(quantity_in: str, cost_per_unit: str) -> Step:
    return lambda stock_bin: stock_bin.receive(
        quantity(Decimal(quantity_in)), unit_cost(Decimal(cost_per_unit)), context(), 1)


def dispatch(quantity_out: str) -> Step:
    return lambda stock_bin: stock_bin.dispatch(quantity(Decimal(quantity_out)), context(), 1)


def count(quantity_counted: str, cost_per_unit: str | None = None) -> Step:
    cost = None if cost_per_unit is None else unit_cost(Decimal(cost_per_unit))
    return lambda stock_bin: stock_bin.count(
        quantity(Decimal(quantity_counted)), cost, context(reason="cycle count"), 1)


def history(method: ValuationMethod, *steps: Step, sku: str = SKU,
            location: str = LOCATION) -> list[Any]:
    """The events of a bin opened for `method` and put through `steps`."""
    stock_bin = StockBin.open(sku, location, method, RECORDED_AT)
    for step in steps:
        step(stock_bin)
    return list(stock_bin.collect_events())


def rebuilt(events: Iterable[Any]) -> Any:
    """An aggregate rebuilt from its events alone."""
    aggregate = None
    for event in events:
        aggregate = event.mutate(aggregate)
    assert aggregate is not None
    return aggregate


def given(method: ValuationMethod, *steps: Step, sku: str = SKU,
          location: str = LOCATION) -> StockBin:
    """A bin rebuilt from the events of `steps`."""
    stock_bin = rebuilt(history(method, *steps, sku=sku, location=location))
    assert isinstance(stock_bin, StockBin)
    return stock_bin


def when(stock_bin: StockBin, step: Step) -> list[Any]:
    """The events one command on the bin triggers."""
    step(stock_bin)
    return list(stock_bin.collect_events())


def layer(quantity_held: str, cost_per_unit: str, value: str) -> Layer:
    return Layer(Decimal(quantity_held), Decimal(cost_per_unit), Decimal(value))


def written(value: Decimal | None) -> str | None:
    return None if value is None else str(value)


def figures(event: Any) -> dict[str, str | None]:
    """What a movement event says moved, and the bin's balance after it, as written."""
    return {
        "quantity": written(getattr(event, "quantity", None)),
        "unit_cost": written(getattr(event, "unit_cost", None)),
        "value": written(getattr(event, "value", None)),
        "quantity_on_hand_after": written(event.quantity_on_hand_after),
        "value_after": written(event.value_after),
    }


def balance(stock_bin: StockBin) -> tuple[str, str]:
    """On-hand and value of a bin, as written."""
    return str(stock_bin.quantity_on_hand), str(stock_bin.value)


def item(sku: str = SKU, method: ValuationMethod = "fifo") -> Item:
    registered = Item.register(sku, ItemDetails(sku, "each", method), "admin")
    result = rebuilt(registered.collect_events())
    assert isinstance(result, Item)
    return result


def location(code: str = LOCATION) -> Location:
    result = rebuilt(Location.register(code, f"Warehouse {code}", "admin").collect_events())
    assert isinstance(result, Location)
    return result


def workspace(*aggregates: Aggregate) -> Workspace:
    """A workspace over aggregates already recorded (nothing pending), no database."""
    known: dict[UUID, Aggregate] = {aggregate.id: aggregate for aggregate in aggregates}

    def load(aggregate_id: UUID) -> Aggregate:
        if aggregate_id not in known:
            raise AggregateNotFoundError(aggregate_id)
        return known[aggregate_id]

    return Workspace(load, RECORDED_AT)


def events_of(aggregates: Sequence[Aggregate]) -> list[Any]:
    """The pending events of aggregates, in the order they would be saved."""
    return [event for aggregate in aggregates for event in aggregate.pending_events]


def bins(space: Workspace) -> list[StockBin]:
    """The bins a document changed, in the order it first touched them."""
    changed = space.changed()
    assert all(isinstance(aggregate, StockBin) for aggregate in changed)
    return [aggregate for aggregate in changed if isinstance(aggregate, StockBin)]
