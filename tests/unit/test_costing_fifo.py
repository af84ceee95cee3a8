"""FIFO costing: outgoing stock takes the oldest layers first, at the cost they came in at."""

from __future__ import annotations

from decimal import Decimal

import pytest

from ledger.domain.stock_bin import StockBin
from ledger.errors import InsufficientStock
from unit.support import LOCATION, SKU, dispatch, figures, given, layer, receive, when


def test_a_dispatch_takes_the_oldest_layer_first_whatever_its_cost() -> None:
    stock_bin = given("fifo", receive("10", "3.00"), receive("10", "2.00"))

    [dispatched] = when(stock_bin, dispatch("15"))

    assert isinstance(dispatched, StockBin.Dispatched)
    assert dispatched.removed == (layer("10", "3", "30.00"), layer("5", "2", "10.00"))
    assert dispatched.added == ()
    # 40.00 / 15 = 2.6666…, six places.
    assert figures(dispatched) == {
        "quantity": "15.000", "unit_cost": "2.666667", "value": "40.00",
        "quantity_on_hand_after": "5.000", "value_after": "10.00",
    }
    assert stock_bin.cost.layers == (layer("5", "2", "10.00"),)


def test_a_partial_layer_take_is_valued_at_the_layer_cost_rounded_half_up() -> None:
    # 3 × 0.125 = 0.375 → 0.38 on receipt; 1 × 0.125 = 0.125 → 0.13 (banker's would say 0.12).
    stock_bin = given("fifo", receive("3", "0.125"))

    [dispatched] = when(stock_bin, dispatch("1"))

    assert dispatched.removed == (layer("1", "0.125", "0.13"),)
    assert figures(dispatched) == {
        "quantity": "1.000", "unit_cost": "0.130000", "value": "0.13",
        "quantity_on_hand_after": "2.000", "value_after": "0.25",
    }
    assert stock_bin.cost.layers == (layer("2", "0.125", "0.25"),)


def test_emptying_a_layer_takes_exactly_the_value_left_in_it() -> None:
    # 3 units for 10.00 at 3.333333: taking 1 at a time gives 3.33, 3.33 and then the 3.34 left.
    stock_bin = given("fifo", receive("3", "3.333333"))

    taken = [when(stock_bin, dispatch("1"))[0] for _ in range(3)]

    assert [figures(event) for event in taken] == [
        {"quantity": "1.000", "unit_cost": "3.330000", "value": "3.33",
         "quantity_on_hand_after": "2.000", "value_after": "6.67"},
        {"quantity": "1.000", "unit_cost": "3.330000", "value": "3.33",
         "quantity_on_hand_after": "1.000", "value_after": "3.34"},
        {"quantity": "1.000", "unit_cost": "3.340000", "value": "3.34",
         "quantity_on_hand_after": "0.000", "value_after": "0.00"},
    ]
    assert stock_bin.cost.layers == ()
    assert sum(event.value for event in taken) == Decimal("10.00")


def test_a_partial_take_never_takes_more_value_than_the_layer_has_left() -> None:
    # 4 × 0.005 = 0.02, but each single unit rounds up to 0.01: the third unit finds 0.00 left.
    stock_bin = given("fifo", receive("4", "0.005"))

    taken = [when(stock_bin, dispatch("1"))[0] for _ in range(4)]

    assert [(str(event.value), str(event.value_after)) for event in taken] == [
        ("0.01", "0.01"), ("0.01", "0.00"), ("0.00", "0.00"), ("0.00", "0.00"),
    ]
    assert str(stock_bin.quantity_on_hand) == "0.000"


def test_a_take_finishes_a_partly_used_layer_then_moves_to_the_next() -> None:
    stock_bin = given("fifo", receive("3", "3.333333"), receive("1", "1.00"), dispatch("1"))

    [dispatched] = when(stock_bin, dispatch("3"))

    assert dispatched.removed == (layer("2", "3.333333", "6.67"), layer("1", "1", "1.00"))
    # 7.67 / 3 = 2.55666…
    assert figures(dispatched) == {
        "quantity": "3.000", "unit_cost": "2.556667", "value": "7.67",
        "quantity_on_hand_after": "0.000", "value_after": "0.00",
    }


def test_taking_more_than_the_bin_holds_is_refused_with_the_facts() -> None:
    stock_bin = given("fifo", receive("5", "2.00"))

    with pytest.raises(InsufficientStock) as refusal:
        when(stock_bin, dispatch("6"))

    assert refusal.value.facts() == {
        "sku": SKU, "location": LOCATION, "requested": "6.000", "available": "5.000",
    }
    assert stock_bin.pending_events == []
    assert (stock_bin.quantity_on_hand, stock_bin.value) == (Decimal("5"), Decimal("10"))
