"""Returns to a supplier (退货): stock leaves the bin at the cost it came in at.

FIFO takes the oldest layers held at the receipt's cost first, and only when they hold too
little (the rest was sold) the oldest layers of all. Moving average takes quantity × receipt
cost, never more than the bin is worth, and exactly what is left when it empties the bin.
Afterwards the layers still add up to the bin, and later dispatches take the right layers.
"""

from __future__ import annotations

from decimal import Decimal
from uuid import UUID

import pytest

from ledger.costing import CostState, Layer, ValuationMethod, apply_movement, take_at_cost
from ledger.domain.stock_bin import StockBin
from ledger.errors import InsufficientStock
from ledger.numbers import quantity, unit_cost
from unit.support import (
    Step,
    balance,
    context,
    count,
    dispatch,
    figures,
    given,
    history,
    layer,
    rebuilt,
    receive,
    when,
)

D = Decimal
ORDER_ID = UUID("00000000-0000-4000-8000-0000000000b2")


def return_to_supplier(quantity_out: str, receipt_cost: str, order_line: int = 1) -> Step:
    return lambda stock_bin: stock_bin.return_to_supplier(
        quantity(D(quantity_out)), unit_cost(D(receipt_cost)),
        context(order_id=ORDER_ID, reason="damaged"), 1, order_line=order_line)


def assert_layers_add_up(stock_bin: StockBin) -> None:
    layers = stock_bin.cost.layers
    assert sum((held.value for held in layers), D(0)) == stock_bin.value
    assert sum((held.quantity for held in layers), D(0)) == stock_bin.quantity_on_hand
    assert all(held.quantity > 0 and held.value >= 0 for held in layers)


# FIFO.


def test_fifo_returns_from_the_layer_at_the_receipt_cost_not_the_oldest() -> None:
    stock_bin = given("fifo", receive("10", "3.00"), receive("10", "2.00"))

    [returned] = when(stock_bin, return_to_supplier("4", "2.00", order_line=2))

    assert isinstance(returned, StockBin.ReturnedToSupplier)
    assert returned.removed == (layer("4", "2", "8.00"),)
    assert returned.added == ()
    assert figures(returned) == {
        "quantity": "4.000", "unit_cost": "2.000000", "value": "8.00",
        "quantity_on_hand_after": "16.000", "value_after": "42.00",
    }
    assert (returned.order_id, returned.order_line, returned.reason) == (ORDER_ID, 2, "damaged")
    assert stock_bin.cost.layers == (layer("10", "3", "30.00"), layer("6", "2", "12.00"))
    assert_layers_add_up(stock_bin)


def test_after_a_fifo_return_a_dispatch_still_takes_the_oldest_layers() -> None:
    stock_bin = given("fifo", receive("10", "3.00"), receive("10", "2.00"),
                      return_to_supplier("4", "2.00"))

    [dispatched] = when(stock_bin, dispatch("12"))

    # 10 × 3.00 = 30.00 from the oldest layer, then 2 × 2.00 = 4.00 from what the return left.
    assert dispatched.removed == (layer("10", "3", "30.00"), layer("2", "2", "4.00"))
    assert figures(dispatched)["value"] == "34.00"
    assert stock_bin.cost.layers == (layer("4", "2", "8.00"),)
    assert balance(stock_bin) == ("4.000", "8.00")


def test_fifo_takes_the_oldest_of_several_layers_at_the_receipt_cost_first() -> None:
    stock_bin = given("fifo", receive("5", "2.00"), receive("10", "3.00"), receive("5", "2.00"))

    [returned] = when(stock_bin, return_to_supplier("7", "2.00"))

    assert returned.removed == (layer("5", "2", "10.00"), layer("2", "2", "4.00"))
    assert figures(returned)["value"] == "14.00"
    assert stock_bin.cost.layers == (layer("10", "3", "30.00"), layer("3", "2", "6.00"))
    assert_layers_add_up(stock_bin)


def test_when_the_receipt_cost_layers_were_sold_fifo_takes_the_oldest_of_the_rest() -> None:
    # The dispatch took 8 of the 10 at 2.00: only 2 are left at the receipt's cost.
    stock_bin = given("fifo", receive("10", "2.00"), receive("10", "3.00"), dispatch("8"))

    [returned] = when(stock_bin, return_to_supplier("5", "2.00"))

    # 2 × 2.00 = 4.00, then 3 × 3.00 = 9.00: 13.00 for 5, 2.60 each.
    assert returned.removed == (layer("2", "2", "4.00"), layer("3", "3", "9.00"))
    assert figures(returned) == {
        "quantity": "5.000", "unit_cost": "2.600000", "value": "13.00",
        "quantity_on_hand_after": "7.000", "value_after": "21.00",
    }
    assert stock_bin.cost.layers == (layer("7", "3", "21.00"),)


def test_fifo_without_a_layer_at_the_receipt_cost_takes_the_oldest_layers() -> None:
    # A count revalued the bin at 2.50: nothing is held at 2.00 any more.
    stock_bin = given("fifo", receive("10", "2.00"), count("10", "2.50"), receive("5", "4.00"))

    [returned] = when(stock_bin, return_to_supplier("4", "2.00"))

    assert returned.removed == (layer("4", "2.5", "10.00"),)
    assert stock_bin.cost.layers == (layer("6", "2.5", "15.00"), layer("5", "4", "20.00"))
    assert_layers_add_up(stock_bin)


def test_fifo_returns_of_a_layer_in_parts_take_exactly_what_it_was_worth() -> None:
    # 3 × 3.333333 = 10.00: one unit is 3.33 (half up), the last two exactly the 6.67 left.
    stock_bin = given("fifo", receive("1", "9.00"), receive("3", "3.333333"))

    first = when(stock_bin, return_to_supplier("1", "3.333333"))[0]
    last = when(stock_bin, return_to_supplier("2", "3.333333"))[0]

    assert (first.value, last.value) == (D("3.33"), D("6.67"))
    assert last.unit_cost == D("3.335000")
    assert stock_bin.cost.layers == (layer("1", "9", "9.00"),)
    assert balance(stock_bin) == ("1.000", "9.00")


# Moving average.


def test_moving_average_returns_quantity_times_the_receipt_cost() -> None:
    # 10 × 1.00 + 10 × 5.00 = 60.00 for 20 (3.00 each); the return takes 4 × 5.00 = 20.00.
    stock_bin = given("moving_average", receive("10", "1.00"), receive("10", "5.00"))

    [returned] = when(stock_bin, return_to_supplier("4", "5.00"))

    assert returned.removed == (layer("4", "5", "20.00"),)
    assert figures(returned) == {
        "quantity": "4.000", "unit_cost": "5.000000", "value": "20.00",
        "quantity_on_hand_after": "16.000", "value_after": "40.00",
    }
    assert stock_bin.unit_cost == D("2.500000")
    assert stock_bin.cost.layers == ()


def test_after_a_moving_average_return_dispatches_take_the_new_average() -> None:
    stock_bin = given("moving_average", receive("10", "1.00"), receive("10", "5.00"),
                      return_to_supplier("4", "5.00"))

    [dispatched] = when(stock_bin, dispatch("6"))

    # 40.00 / 16 = 2.50 each: 6 × 2.50 = 15.00.
    assert figures(dispatched)["value"] == "15.00"
    assert balance(stock_bin) == ("10.000", "25.00")


def test_a_moving_average_return_that_empties_the_bin_takes_exactly_the_value_left() -> None:
    # 1 × 1.00 + 2 × 3.333333 (6.67) = 7.67 for 3; a dispatch of 1 at 2.556667 takes 2.56,
    # leaving 2 worth 5.11. Returning those 2 takes the 5.11, not 2 × 3.333333 = 6.67.
    stock_bin = given("moving_average", receive("1", "1.00"), receive("2", "3.333333"),
                      dispatch("1"))

    [returned] = when(stock_bin, return_to_supplier("2", "3.333333"))

    assert figures(returned) == {
        "quantity": "2.000", "unit_cost": "2.555000", "value": "5.11",
        "quantity_on_hand_after": "0.000", "value_after": "0.00",
    }
    assert balance(stock_bin) == ("0.000", "0.00")


def test_a_moving_average_return_never_takes_more_than_the_bin_is_worth() -> None:
    # 10 × 1.00 + 2 × 5.00 = 20.00 for 12; 9 out at 1.666667 is 15.00, leaving 3 worth 5.00.
    stock_bin = given("moving_average", receive("10", "1.00"), receive("2", "5.00"),
                      dispatch("9"))

    [returned] = when(stock_bin, return_to_supplier("2", "5.00"))

    assert returned.value == D("5.00")
    assert balance(stock_bin) == ("1.000", "0.00")


# Both methods.


@pytest.mark.parametrize("method", ["fifo", "moving_average"])
def test_returning_more_than_the_bin_holds_is_refused(method: ValuationMethod) -> None:
    stock_bin = given(method, receive("5", "2.00"))

    with pytest.raises(InsufficientStock) as refusal:
        stock_bin.return_to_supplier(D("5.001"), D("2"), context(order_id=ORDER_ID), 1,
                                     order_line=1)

    assert (refusal.value.requested, refusal.value.available) == (D("5.001"), D("5.000"))
    assert list(stock_bin.collect_events()) == []
    assert balance(stock_bin) == ("5.000", "10.00")


@pytest.mark.parametrize("method", ["fifo", "moving_average"])
def test_a_replayed_bin_equals_the_live_one_after_returns(method: ValuationMethod) -> None:
    steps = (receive("10", "3.00"), receive("10", "2.00"), return_to_supplier("4", "2.00"),
             dispatch("11"), return_to_supplier("5", "3.00"))
    live = given(method)
    for step in steps:
        when(live, step)

    replayed = rebuilt(history(method, *steps))

    assert replayed.cost == live.cost
    assert balance(replayed) == balance(live)


# The pure rule.


def test_take_at_cost_leaves_the_layers_in_order_after_apply_movement() -> None:
    state = CostState(method="fifo", quantity=D("15"), value=D("37.50"), layers=(
        Layer(D("5"), D("3"), D("15.00")), Layer(D("5"), D("2"), D("10.00")),
        Layer(D("5"), D("2.5"), D("12.50"))))

    removed = take_at_cost(state, D("6"), D("2.5"))
    after = apply_movement(state, removed, ())

    # 5 at 2.50 (12.50), then 1 from the oldest of all at 3.00.
    assert removed == (Layer(D("5"), D("2.5"), D("12.50")), Layer(D("1"), D("3"), D("3.00")))
    assert after.layers == (Layer(D("4"), D("3"), D("12.00")), Layer(D("5"), D("2"), D("10.00")))
    assert (after.quantity, after.value) == (D("9"), D("22.00"))


def test_take_at_cost_for_moving_average_is_quantity_times_cost_or_all_that_is_left() -> None:
    state = CostState(method="moving_average", quantity=D("3"), value=D("7.00"))

    assert take_at_cost(state, D("1"), D("2.125")) == (Layer(D("1"), D("2.125"), D("2.13")),)
    assert take_at_cost(state, D("2.5"), D("4")) == (Layer(D("2.5"), D("4"), D("7.00")),)
    assert take_at_cost(state, D("3"), D("4")) == (Layer(D("3"), D("2.333333"), D("7.00")),)
