"""Moving-average costing: every receipt re-averages; outgoing stock leaves at value ÷ on-hand."""

from __future__ import annotations

from decimal import Decimal

from ledger.domain.stock_bin import StockBin
from unit.support import dispatch, figures, given, layer, receive, when


def test_every_receipt_re_averages_the_unit_cost() -> None:
    stock_bin = given("moving_average", receive("10", "2.00"))
    assert str(stock_bin.unit_cost) == "2.000000"

    [received] = when(stock_bin, receive("5", "3.50"))
    assert isinstance(received, StockBin.Received)
    assert figures(received) == {
        "quantity": "5.000", "unit_cost": "3.500000", "value": "17.50",
        "quantity_on_hand_after": "15.000", "value_after": "37.50",
    }
    assert str(stock_bin.unit_cost) == "2.500000"

    when(stock_bin, receive("5", "2.00"))
    # 47.50 / 20 = 2.375
    assert str(stock_bin.unit_cost) == "2.375000"


def test_a_dispatch_leaves_at_the_average_and_keeps_it() -> None:
    stock_bin = given("moving_average", receive("10", "2.00"), receive("5", "3.50"))

    [dispatched] = when(stock_bin, dispatch("4"))

    assert isinstance(dispatched, StockBin.Dispatched)
    assert dispatched.removed == (layer("4", "2.5", "10.00"),)
    assert figures(dispatched) == {
        "quantity": "4.000", "unit_cost": "2.500000", "value": "10.00",
        "quantity_on_hand_after": "11.000", "value_after": "27.50",
    }
    assert str(stock_bin.unit_cost) == "2.500000"


def test_outgoing_value_rounds_half_up_not_to_even() -> None:
    # 2 units worth 0.25: the average is 0.125, and one unit out is 0.13 (banker's: 0.12).
    stock_bin = given("moving_average", receive("1", "0.12"), receive("1", "0.13"))

    [dispatched] = when(stock_bin, dispatch("1"))

    assert figures(dispatched) == {
        "quantity": "1.000", "unit_cost": "0.130000", "value": "0.13",
        "quantity_on_hand_after": "1.000", "value_after": "0.12",
    }


def test_taking_one_at_a_time_leaves_no_residue() -> None:
    # 3 units for 10.00: 3.33 at 3.333333, then 3.34 at 3.335, then the 3.33 left.
    stock_bin = given("moving_average", receive("3", "3.333333"))

    taken = [when(stock_bin, dispatch("1"))[0] for _ in range(3)]

    assert [(str(event.value), str(event.value_after)) for event in taken] == [
        ("3.33", "6.67"), ("3.34", "3.33"), ("3.33", "0.00"),
    ]
    assert (str(stock_bin.quantity_on_hand), str(stock_bin.value)) == ("0.000", "0.00")


def test_emptying_the_bin_takes_exactly_the_value_left() -> None:
    # 30000 units worth 1.00 average 0.000033; 30000 × 0.000033 would be 0.99 and strand a cent.
    stock_bin = given("moving_average", receive("20000", "0.00005"), receive("10000", "0"))
    assert str(stock_bin.unit_cost) == "0.000033"

    [dispatched] = when(stock_bin, dispatch("30000"))

    assert figures(dispatched) == {
        "quantity": "30000.000", "unit_cost": "0.000033", "value": "1.00",
        "quantity_on_hand_after": "0.000", "value_after": "0.00",
    }
    assert stock_bin.value == Decimal("0")


def test_a_receipt_after_emptying_starts_a_fresh_average() -> None:
    stock_bin = given("moving_average", receive("3", "3.333333"), dispatch("3"))

    when(stock_bin, receive("2", "5.00"))

    assert str(stock_bin.unit_cost) == "5.000000"
    assert (str(stock_bin.quantity_on_hand), str(stock_bin.value)) == ("2.000", "10.00")
