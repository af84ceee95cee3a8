"""Transfers (调拨): stock leaves one location at cost and arrives at another at that cost."""

from __future__ import annotations

from decimal import Decimal

import pytest

from ledger.commands import DispatchLine, Transfer
from ledger.costing import ValuationMethod
from ledger.documents import decide_transfer
from ledger.domain.stock_bin import StockBin
from ledger.errors import InsufficientStock, UnknownLocation
from unit.support import (
    LOCATION,
    OTHER_LOCATION,
    SKU,
    bins,
    context,
    events_of,
    figures,
    given,
    item,
    layer,
    location,
    receive,
    workspace,
)

D = Decimal


def transfer_of(quantity_moved: str, to: str = OTHER_LOCATION) -> Transfer:
    return Transfer(from_location=LOCATION, to_location=to,
                    lines=(DispatchLine(SKU, D(quantity_moved)),))


def test_fifo_layers_arrive_with_their_costs_and_order_behind_what_was_there() -> None:
    source = given("fifo", receive("3", "3.333333"), receive("2", "5.00"))
    destination = given("fifo", receive("1", "1.00"), location=OTHER_LOCATION)
    space = workspace(item(), location(), location(OTHER_LOCATION), source, destination)

    decide_transfer(transfer_of("4.000"), space, context())

    out, arrived = events_of(space.changed())
    carried = (layer("3", "3.333333", "10.00"), layer("1", "5", "5.00"))
    assert isinstance(out, StockBin.TransferredOut)
    assert (out.location, out.to_location, out.removed, out.added) == (
        LOCATION, OTHER_LOCATION, carried, ())
    assert figures(out) == {
        "quantity": "4.000", "unit_cost": "3.750000", "value": "15.00",
        "quantity_on_hand_after": "1.000", "value_after": "5.00"}
    assert isinstance(arrived, StockBin.TransferredIn)
    assert (arrived.location, arrived.from_location, arrived.removed, arrived.added) == (
        OTHER_LOCATION, LOCATION, (), carried)
    assert figures(arrived) == {
        "quantity": "4.000", "unit_cost": "3.750000", "value": "15.00",
        "quantity_on_hand_after": "5.000", "value_after": "16.00"}
    assert source.cost.layers == (layer("1", "5", "5.00"),)
    assert destination.cost.layers == (layer("1", "1", "1.00"), *carried)


def test_a_moving_average_transfer_re_averages_the_destination() -> None:
    source = given("moving_average", receive("3", "3.333333"))
    destination = given("moving_average", receive("10", "1.00"), location=OTHER_LOCATION)
    space = workspace(item(method="moving_average"), location(), location(OTHER_LOCATION),
                      source, destination)

    [line] = decide_transfer(transfer_of("1.000"), space, context())

    assert (line["quantity"], line["unit_cost"], line["value"]) == (
        D("1.000"), D("3.330000"), D("3.33"))
    assert (line["quantity_on_hand_after"], line["value_after"]) == (D("2.000"), D("6.67"))
    assert (line["to_location"], line["to_quantity_on_hand_after"], line["to_value_after"]) == (
        OTHER_LOCATION, D("11.000"), D("13.33"))
    # 13.33 / 11 = 1.21181…
    assert str(destination.unit_cost) == "1.211818"


@pytest.mark.parametrize("method", ["fifo", "moving_average"])
def test_a_transfer_conserves_value_and_opens_the_destination(method: ValuationMethod) -> None:
    source = given(method, receive("3", "3.333333"), receive("7", "1.01"))
    space = workspace(item(method=method), location(), location(OTHER_LOCATION), source)

    decide_transfer(transfer_of("10.000"), space, context())

    source_after, destination = bins(space)
    assert [type(event) for event in events_of([destination])] == [
        StockBin.Opened, StockBin.TransferredIn]
    assert (source_after.quantity_on_hand, str(source_after.value)) == (D("0"), "0.00")
    assert (destination.quantity_on_hand, str(destination.value)) == (D("10"), "17.07")


def test_a_transfer_of_more_than_the_source_holds_is_refused() -> None:
    space = workspace(item(), location(), location(OTHER_LOCATION),
                      given("fifo", receive("2", "1.00")))

    with pytest.raises(InsufficientStock) as refusal:
        decide_transfer(transfer_of("2.500"), space, context())

    assert refusal.value.facts() == {
        "sku": SKU, "location": LOCATION, "requested": "2.500", "available": "2.000"}
    assert space.changed() == []


def test_a_transfer_to_an_unregistered_location_is_refused() -> None:
    space = workspace(item(), location(), given("fifo", receive("2", "1.00")))

    with pytest.raises(UnknownLocation) as refusal:
        decide_transfer(transfer_of("1.000", to="WH-9"), space, context())

    assert refusal.value.location == "WH-9"
    assert space.changed() == []
