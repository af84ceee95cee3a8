"""Dispatches (出库): stock leaves at cost, and never more than is available."""

from __future__ import annotations

from decimal import Decimal

import pytest

from ledger.commands import Dispatch, DispatchLine
from ledger.documents import decide_dispatch
from ledger.domain.stock_bin import StockBin
from ledger.errors import InsufficientStock, UnknownItem, UnknownLocation
from unit.support import (
    LOCATION,
    SKU,
    context,
    events_of,
    given,
    item,
    layer,
    location,
    receive,
    workspace,
)

D = Decimal


def dispatch_of(*lines: tuple[str, str], at: str = LOCATION) -> Dispatch:
    return Dispatch(location=at, lines=tuple(
        DispatchLine(sku, D(quantity_out)) for sku, quantity_out in lines))


def test_a_dispatch_records_what_left_and_at_what_cost() -> None:
    stock_bin = given("fifo", receive("10", "2.00"), receive("10", "3.00"))
    space = workspace(item(), location(), stock_bin)

    lines = decide_dispatch(dispatch_of((SKU, "12.000")), space, context())

    [dispatched] = events_of(space.changed())
    assert isinstance(dispatched, StockBin.Dispatched)
    assert (dispatched.sku, dispatched.location, dispatched.line_number) == (SKU, LOCATION, 1)
    assert dispatched.removed == (layer("10", "2", "20.00"), layer("2", "3", "6.00"))
    assert lines == [{
        "sku": SKU, "location": LOCATION, "quantity": D("12.000"),
        "unit_cost": D("2.166667"), "value": D("26.00"),
        "quantity_on_hand_after": D("8.000"), "value_after": D("24.00"),
    }]


def test_a_dispatch_of_everything_empties_the_bin_to_the_cent() -> None:
    stock_bin = given("moving_average", receive("3", "3.333333"), receive("4", "1.11"))
    space = workspace(item(method="moving_average"), location(), stock_bin)

    [line] = decide_dispatch(dispatch_of((SKU, "7.000")), space, context())

    assert (line["value"], line["quantity_on_hand_after"], line["value_after"]) == (
        D("14.44"), D("0"), D("0"))
    assert str(line["value_after"]) == "0.00"


def test_a_dispatch_beyond_what_is_on_hand_is_refused_with_the_facts() -> None:
    space = workspace(item(), location(), given("fifo", receive("5", "2.00")))

    with pytest.raises(InsufficientStock) as refusal:
        decide_dispatch(dispatch_of((SKU, "5.001")), space, context())

    assert refusal.value.facts() == {
        "sku": SKU, "location": LOCATION, "requested": "5.001", "available": "5.000"}
    assert space.changed() == []


def test_a_dispatch_from_a_bin_that_never_held_stock_is_refused() -> None:
    space = workspace(item(), location())

    with pytest.raises(InsufficientStock) as refusal:
        decide_dispatch(dispatch_of((SKU, "1.000")), space, context())

    assert refusal.value.facts() == {
        "sku": SKU, "location": LOCATION, "requested": "1.000", "available": "0.000"}


def test_lines_for_the_same_sku_draw_on_the_same_stock() -> None:
    space = workspace(item(), location(), given("fifo", receive("5", "2.00")))

    with pytest.raises(InsufficientStock) as refusal:
        decide_dispatch(dispatch_of((SKU, "3.000"), (SKU, "3.000")), space, context())

    assert (refusal.value.requested, refusal.value.available) == (D("3"), D("2"))


def test_a_dispatch_of_an_unregistered_item_is_refused() -> None:
    space = workspace(location())

    with pytest.raises(UnknownItem):
        decide_dispatch(dispatch_of(("NOPE", "1.000")), space, context())


def test_a_dispatch_from_an_unregistered_location_is_refused() -> None:
    space = workspace(item())

    with pytest.raises(UnknownLocation):
        decide_dispatch(dispatch_of((SKU, "1.000"), at="WH-9"), space, context())
