"""Stock counts (盘点): on-hand becomes what was counted; gains at current cost, losses like a
dispatch; a count with a unit cost revalues everything on hand."""

from __future__ import annotations

from decimal import Decimal

import pytest

from ledger.commands import Count, CountLine
from ledger.costing import ValuationMethod
from ledger.documents import decide_count
from ledger.domain.stock_bin import StockBin
from unit.support import (
    LOCATION,
    SKU,
    Step,
    bins,
    context,
    count,
    dispatch,
    events_of,
    given,
    item,
    layer,
    location,
    receive,
    when,
    workspace,
)

D = Decimal
TWO_FIFO_LAYERS = (receive("10", "2.00"), receive("10", "3.00"))


def counted_figures(event: StockBin.Counted) -> dict[str, str | bool]:
    return {
        "quantity_counted": str(event.quantity_counted),
        "quantity_difference": str(event.quantity_difference),
        "value_difference": str(event.value_difference),
        "unit_cost": str(event.unit_cost),
        "revalued": event.revalued,
        "quantity_on_hand_after": str(event.quantity_on_hand_after),
        "value_after": str(event.value_after),
    }


def test_a_gain_is_valued_at_the_bins_current_unit_cost() -> None:
    stock_bin = given("fifo", *TWO_FIFO_LAYERS)

    [counted] = when(stock_bin, count("24"))

    assert isinstance(counted, StockBin.Counted)
    assert counted_figures(counted) == {
        "quantity_counted": "24.000", "quantity_difference": "4.000",
        "value_difference": "10.00", "unit_cost": "2.500000", "revalued": False,
        "quantity_on_hand_after": "24.000", "value_after": "60.00"}
    assert (counted.removed, counted.added) == ((), (layer("4", "2.5", "10.00"),))
    assert stock_bin.cost.layers == (
        layer("10", "2", "20.00"), layer("10", "3", "30.00"), layer("4", "2.5", "10.00"))


def test_a_gain_in_an_emptied_bin_is_valued_at_the_last_unit_cost() -> None:
    stock_bin = given("moving_average", receive("3", "3.333333"), dispatch("3"))

    [counted] = when(stock_bin, count("3"))

    assert (str(counted.unit_cost), str(counted.value_difference)) == ("3.333333", "10.00")
    assert (str(stock_bin.quantity_on_hand), str(stock_bin.value)) == ("3.000", "10.00")


def test_a_fifo_loss_takes_the_oldest_layer_first() -> None:
    stock_bin = given("fifo", *TWO_FIFO_LAYERS)

    [counted] = when(stock_bin, count("15"))

    assert counted.removed == (layer("5", "2", "10.00"),)
    assert (str(counted.quantity_difference), str(counted.value_difference)) == (
        "-5.000", "-10.00")
    assert (str(counted.quantity_on_hand_after), str(counted.value_after)) == ("15.000", "40.00")
    assert stock_bin.cost.layers == (layer("5", "2", "10.00"), layer("10", "3", "30.00"))


def test_a_moving_average_loss_leaves_at_the_average() -> None:
    stock_bin = given("moving_average", receive("3", "3.333333"))

    [counted] = when(stock_bin, count("2"))

    assert counted.removed == (layer("1", "3.333333", "3.33"),)
    assert str(counted.value_difference) == "-3.33"
    assert (str(stock_bin.quantity_on_hand), str(stock_bin.value)) == ("2.000", "6.67")


LOSSES = [
    pytest.param("fifo", (*TWO_FIFO_LAYERS,), "5", id="fifo"),
    pytest.param("moving_average", (receive("3", "3.333333"),), "1", id="moving_average"),
]


@pytest.mark.parametrize(("method", "steps", "lost"), LOSSES)
def test_a_loss_takes_the_same_layers_and_value_as_a_dispatch(
        method: ValuationMethod, steps: tuple[Step, ...], lost: str) -> None:
    [dispatched] = when(given(method, *steps), dispatch(lost))
    on_hand = given(method, *steps).quantity_on_hand

    [counted] = when(given(method, *steps), count(str(on_hand - D(lost))))

    assert counted.removed == dispatched.removed
    assert counted.value_difference == -dispatched.value


@pytest.mark.parametrize(("method", "steps", "lost"), LOSSES)
def test_a_loss_records_the_unit_cost_a_dispatch_would(
        method: ValuationMethod, steps: tuple[Step, ...], lost: str) -> None:
    # A loss is valued like a dispatch (DESIGN 4): its unit cost is the value it took ÷ quantity.
    [dispatched] = when(given(method, *steps), dispatch(lost))
    on_hand = given(method, *steps).quantity_on_hand

    [counted] = when(given(method, *steps), count(str(on_hand - D(lost))))

    assert str(counted.unit_cost) == str(dispatched.unit_cost)


@pytest.mark.parametrize(
    ("method", "steps", "value_lost"),
    [
        pytest.param("fifo", (receive("3", "3.333333"), dispatch("1")), "-6.67", id="fifo"),
        pytest.param("moving_average", (receive("20000", "0.00005"), receive("10000", "0")),
                     "-1.00", id="moving_average"),
    ],
)
def test_counting_zero_takes_exactly_the_value_left(
        method: ValuationMethod, steps: tuple[Step, ...], value_lost: str) -> None:
    stock_bin = given(method, *steps)

    [counted] = when(stock_bin, count("0"))

    assert str(counted.value_difference) == value_lost
    assert (str(stock_bin.quantity_on_hand), str(stock_bin.value)) == ("0.000", "0.00")


def test_a_fifo_count_with_a_unit_cost_revalues_everything_into_one_layer() -> None:
    stock_bin = given("fifo", *TWO_FIFO_LAYERS)

    [counted] = when(stock_bin, count("20", "4.00"))

    assert counted_figures(counted) == {
        "quantity_counted": "20.000", "quantity_difference": "0.000",
        "value_difference": "30.00", "unit_cost": "4.000000", "revalued": True,
        "quantity_on_hand_after": "20.000", "value_after": "80.00"}
    assert counted.removed == (layer("10", "2", "20.00"), layer("10", "3", "30.00"))
    assert stock_bin.cost.layers == (layer("20", "4", "80.00"),)


def test_a_revaluing_count_can_also_change_the_quantity() -> None:
    stock_bin = given("fifo", *TWO_FIFO_LAYERS)

    [counted] = when(stock_bin, count("12", "2.50"))

    assert (str(counted.quantity_difference), str(counted.value_difference)) == (
        "-8.000", "-20.00")
    assert stock_bin.cost.layers == (layer("12", "2.5", "30.00"),)


def test_a_moving_average_count_with_a_unit_cost_revalues_the_bin() -> None:
    stock_bin = given("moving_average", receive("3", "3.333333"))

    [counted] = when(stock_bin, count("3", "3.00"))

    assert (str(counted.value_difference), counted.revalued) == ("-1.00", True)
    assert (str(stock_bin.value), str(stock_bin.unit_cost)) == ("9.00", "3.000000")


def test_a_count_that_finds_what_was_expected_records_no_difference() -> None:
    stock_bin = given("fifo", *TWO_FIFO_LAYERS)

    [counted] = when(stock_bin, count("20"))

    assert (counted.quantity_difference, counted.value_difference) == (D("0"), D("0"))
    assert (counted.removed, counted.added) == ((), ())
    assert str(stock_bin.value) == "50.00"


@pytest.mark.parametrize(
    ("steps", "counted_as", "field", "written"),
    [
        pytest.param((*TWO_FIFO_LAYERS,), "20", "value_difference", "0.00", id="no difference"),
        pytest.param((), "5", "unit_cost", "0.000000", id="gain in a bin never used"),
    ],
)
def test_count_figures_are_written_with_their_places(
        steps: tuple[Step, ...], counted_as: str, field: str, written: str) -> None:
    [counted] = when(given("fifo", *steps), count(counted_as))

    assert str(getattr(counted, field)) == written


def test_a_count_document_reports_the_differences_and_carries_its_reason() -> None:
    space = workspace(item(), location(), given("fifo", *TWO_FIFO_LAYERS))
    document = context(reason="annual stocktake")

    [line] = decide_count(
        Count(location=LOCATION, reason="annual stocktake",
              lines=(CountLine(SKU, D("15.000")),)), space, document)

    # The loss's unit cost is pinned by test_a_loss_records_the_unit_cost_a_dispatch_would.
    assert {name: figure for name, figure in line.items() if name != "unit_cost"} == {
        "sku": SKU, "location": LOCATION, "counted_quantity": D("15.000"),
        "quantity": D("-5.000"), "value": D("-10.00"), "revalued": False,
        "quantity_on_hand_after": D("15.000"), "value_after": D("40.00")}
    [counted] = events_of(bins(space))
    assert counted.reason == "annual stocktake"


def test_a_count_in_a_bin_never_used_opens_it() -> None:
    space = workspace(item(), location())

    decide_count(Count(location=LOCATION, reason="found on shelf",
                       lines=(CountLine(SKU, D("2.000"), D("1.500000")),)), space, context())

    [stock_bin] = bins(space)
    assert [type(event) for event in stock_bin.pending_events] == [
        StockBin.Opened, StockBin.Counted]
    assert (str(stock_bin.quantity_on_hand), str(stock_bin.value)) == ("2.000", "3.00")
