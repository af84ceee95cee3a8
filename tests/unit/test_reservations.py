"""Reservations (库存检查) on a bin: stock set aside per sales-order line, never more than on hand.

A reservation takes what is available (on hand less reserved), no more; a plain dispatch,
transfer or return to a supplier can only take what is not reserved; a sales-order
dispatch takes exactly its own line's reservation; a count that finds less than is
reserved gives up the newest reservations first, on the bin and on the orders. A customer
return comes back as a layer at exactly the value it went out at. The bin tests drive
`StockBin` alone; the count and cancel tests go through `Ledger`.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any
from uuid import UUID

import pytest

from ledger import purchasing as p
from ledger import selling as s
from ledger.application import Ledger
from ledger.commands import Count, CountLine, Dispatch, DispatchLine, Receipt, ReceiptLine
from ledger.costing import ValuationMethod
from ledger.documents import COUNT_SHORTFALL
from ledger.domain.context import CommandMeta
from ledger.domain.identity import bin_id
from ledger.domain.party import PartyDetails
from ledger.domain.sales_order import SalesOrder
from ledger.domain.stock_bin import StockBin, reservation_key
from ledger.errors import InsufficientStock
from ledger.numbers import quantity
from unit.support import (
    LOCATION,
    OTHER_LOCATION,
    SKU,
    Step,
    balance,
    context,
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
ORDER_A = UUID("00000000-0000-4000-8000-0000000000d1")
ORDER_B = UUID("00000000-0000-4000-8000-0000000000d2")


def reserve(order_id: UUID, order_line: int, wanted: str) -> Step:
    return lambda stock_bin: stock_bin.reserve(order_id, order_line, quantity(D(wanted)),
                                               context())


def release(order_id: UUID, order_line: int, amount: str,
            reason: str = "order cancelled") -> Step:
    return lambda stock_bin: stock_bin.release(order_id, order_line, quantity(D(amount)),
                                               reason, context())


def dispatch_reserved(order_id: UUID, order_line: int, amount: str) -> Step:
    return lambda stock_bin: stock_bin.dispatch_reserved(
        quantity(D(amount)), context(order_id=order_id), 1, order_line)


def return_from_customer(order_id: UUID, order_line: int, amount: str, value: str) -> Step:
    return lambda stock_bin: stock_bin.return_from_customer(
        quantity(D(amount)), D(value), context(order_id=order_id, reason="damaged"), 1,
        order_line)


def transfer_out(amount: str) -> Step:
    return lambda stock_bin: stock_bin.transfer_out(quantity(D(amount)), OTHER_LOCATION,
                                                    context(), 1)


def return_to_supplier(amount: str, receipt_cost: str) -> Step:
    return lambda stock_bin: stock_bin.return_to_supplier(
        quantity(D(amount)), D(receipt_cost), context(order_id=ORDER_B), 1, order_line=1)


def reservations(stock_bin: StockBin) -> dict[str, str]:
    """What each order line holds on the bin, oldest first, as written."""
    return {key: str(amount) for key, amount in stock_bin.reservations.items()}


def key(order_id: UUID, order_line: int) -> str:
    return reservation_key(order_id, order_line)


def held(stock_bin: StockBin) -> tuple[str, str, str]:
    """On hand, reserved and available, as written."""
    return (str(stock_bin.quantity_on_hand), str(stock_bin.quantity_reserved),
            str(stock_bin.quantity_available))


# Reserving.


def test_a_reservation_sets_stock_aside_without_moving_it() -> None:
    stock_bin = given("fifo", receive("10", "2.00"))

    [reserved] = when(stock_bin, reserve(ORDER_A, 1, "4"))

    assert isinstance(reserved, StockBin.Reserved)
    assert (reserved.sku, reserved.location, reserved.order_id, reserved.order_line,
            str(reserved.quantity), str(reserved.quantity_reserved_after), reserved.actor) == (
        SKU, LOCATION, ORDER_A, 1, "4.000", "4.000", "alice")
    assert held(stock_bin) == ("10.000", "4.000", "6.000")
    assert balance(stock_bin) == ("10.000", "20.00")
    assert reservations(stock_bin) == {key(ORDER_A, 1): "4.000"}


def test_a_reservation_takes_what_is_available_and_no_more() -> None:
    stock_bin = given("fifo", receive("10", "2.00"), reserve(ORDER_A, 1, "4"))

    got = stock_bin.reserve(ORDER_B, 1, D("8.000"), context())
    [reserved] = list(stock_bin.collect_events())
    assert isinstance(reserved, StockBin.Reserved)

    # 10 on hand, 4 reserved: 6 of the 8 wanted.
    assert str(got) == "6.000"
    assert (str(reserved.quantity), str(reserved.quantity_reserved_after)) == ("6.000",
                                                                               "10.000")
    assert held(stock_bin) == ("10.000", "10.000", "0.000")
    assert reservations(stock_bin) == {key(ORDER_A, 1): "4.000", key(ORDER_B, 1): "6.000"}


@pytest.mark.parametrize("steps", [
    (), (receive("1", "2.00"), dispatch("1")), (receive("5", "2.00"), reserve(ORDER_A, 1, "5")),
], ids=["opened-empty", "emptied", "all-reserved"])
def test_with_nothing_available_a_reservation_gets_nothing_and_records_nothing(
        steps: tuple[Step, ...]) -> None:
    stock_bin = given("fifo", *steps)

    got = stock_bin.reserve(ORDER_B, 1, D("1.000"), context())

    assert got == 0
    assert list(stock_bin.collect_events()) == []
    assert key(ORDER_B, 1) not in stock_bin.reservations


def test_a_line_reserved_twice_holds_the_sum_in_one_reservation() -> None:
    stock_bin = given("moving_average", receive("10", "2.00"), reserve(ORDER_A, 1, "3"),
                      reserve(ORDER_B, 1, "2"))

    [reserved] = when(stock_bin, reserve(ORDER_A, 1, "1.5"))

    assert str(reserved.quantity_reserved_after) == "6.500"
    assert reservations(stock_bin) == {key(ORDER_A, 1): "4.500", key(ORDER_B, 1): "2.000"}


# Only unreserved stock leaves by a plain movement.


@pytest.mark.parametrize("method", ["fifo", "moving_average"])
@pytest.mark.parametrize(("take", "fits"), [
    (dispatch, dispatch), (transfer_out, transfer_out),
    (lambda amount: return_to_supplier(amount, "2.00"),
     lambda amount: return_to_supplier(amount, "2.00")),
], ids=["dispatch", "transfer", "return-to-supplier"])
def test_a_plain_movement_cannot_take_reserved_stock(method: ValuationMethod, take: Any,
                                                     fits: Any) -> None:
    stock_bin = given(method, receive("10", "2.00"), reserve(ORDER_A, 1, "7"))

    with pytest.raises(InsufficientStock) as refusal:
        take("3.001")(stock_bin)

    assert refusal.value.code == "insufficient_stock"
    assert (str(refusal.value.requested), str(refusal.value.available)) == ("3.001", "3.000")
    assert list(stock_bin.collect_events()) == []
    assert held(stock_bin) == ("10.000", "7.000", "3.000")

    when(stock_bin, fits("3"))

    assert held(stock_bin) == ("7.000", "7.000", "0.000")
    assert reservations(stock_bin) == {key(ORDER_A, 1): "7.000"}


def test_nothing_reserved_is_written_with_three_places_like_every_quantity() -> None:
    never = given("fifo", receive("10", "2.00"))
    released = given("fifo", receive("10", "2.00"), reserve(ORDER_A, 1, "4"),
                     release(ORDER_A, 1, "4"))
    dispatched = given("fifo", receive("10", "2.00"), reserve(ORDER_A, 1, "4"),
                       dispatch_reserved(ORDER_A, 1, "4"))

    assert [(str(stock_bin.quantity_reserved), str(stock_bin.reserved_for(ORDER_A, 1)))
            for stock_bin in (never, released, dispatched)] == [("0.000", "0.000")] * 3


# A sales-order dispatch takes its own line's reservation.


def test_a_reserved_dispatch_takes_exactly_its_lines_reservation_at_cost() -> None:
    stock_bin = given("fifo", receive("4", "2.00"), receive("6", "3.00"),
                      reserve(ORDER_A, 1, "5"), reserve(ORDER_A, 2, "2"),
                      reserve(ORDER_B, 1, "2"))

    [dispatched] = when(stock_bin, dispatch_reserved(ORDER_A, 1, "4.5"))

    assert isinstance(dispatched, StockBin.Dispatched)
    assert (dispatched.order_id, dispatched.order_line) == (ORDER_A, 1)
    # FIFO: 4 × 2.00 + 0.5 × 3.00 = 9.50 for 4.5 (2.111111 each).
    assert dispatched.removed == (layer("4", "2", "8.00"), layer("0.5", "3", "1.50"))
    assert figures(dispatched) == {
        "quantity": "4.500", "unit_cost": "2.111111", "value": "9.50",
        "quantity_on_hand_after": "5.500", "value_after": "16.50"}
    assert reservations(stock_bin) == {key(ORDER_A, 1): "0.500", key(ORDER_A, 2): "2.000",
                                       key(ORDER_B, 1): "2.000"}
    # What was available before (10 − 9 = 1) still is: the dispatch took reserved stock.
    assert held(stock_bin) == ("5.500", "4.500", "1.000")


def test_dispatching_a_whole_reservation_removes_it() -> None:
    stock_bin = given("moving_average", receive("10", "2.00"), reserve(ORDER_A, 1, "3"),
                      reserve(ORDER_B, 1, "2"))

    [dispatched] = when(stock_bin, dispatch_reserved(ORDER_A, 1, "3"))

    assert figures(dispatched)["value"] == "6.00"
    assert reservations(stock_bin) == {key(ORDER_B, 1): "2.000"}
    assert held(stock_bin) == ("7.000", "2.000", "5.000")


def test_a_plain_dispatch_leaves_every_reservation_alone() -> None:
    stock_bin = given("fifo", receive("10", "2.00"), reserve(ORDER_A, 1, "3"))

    [dispatched] = when(stock_bin, dispatch("7"))

    assert (dispatched.order_id, dispatched.order_line) == (None, None)
    assert reservations(stock_bin) == {key(ORDER_A, 1): "3.000"}


# Releasing.


def test_a_release_gives_up_part_or_all_of_a_reservation_with_its_reason() -> None:
    stock_bin = given("fifo", receive("10", "2.00"), reserve(ORDER_A, 1, "4"),
                      reserve(ORDER_B, 1, "3"))

    [part] = when(stock_bin, release(ORDER_A, 1, "1"))
    [rest] = when(stock_bin, release(ORDER_A, 1, "3", reason="count found less"))

    assert isinstance(part, StockBin.ReservationReleased)
    assert (part.order_id, part.order_line, str(part.quantity),
            str(part.quantity_reserved_after), part.reason) == (
        ORDER_A, 1, "1.000", "6.000", "order cancelled")
    assert (str(rest.quantity_reserved_after), rest.reason) == ("3.000", "count found less")
    assert reservations(stock_bin) == {key(ORDER_B, 1): "3.000"}
    assert held(stock_bin) == ("10.000", "3.000", "7.000")


def test_a_count_must_give_up_the_newest_reservations_first() -> None:
    stock_bin = given("fifo", receive("10", "2.00"), reserve(ORDER_A, 1, "4"),
                      reserve(ORDER_B, 1, "3"), reserve(ORDER_A, 2, "2"))

    # 9 reserved: counting 5 must free 4, the 2 of A/2 (newest), then 2 of B/1's 3.
    assert stock_bin.shortfall_releases(D("5")) == [(ORDER_A, 2, D("2.000")),
                                                    (ORDER_B, 1, D("2"))]
    assert stock_bin.shortfall_releases(D("0")) == [
        (ORDER_A, 2, D("2.000")), (ORDER_B, 1, D("3.000")), (ORDER_A, 1, D("4.000"))]
    assert stock_bin.shortfall_releases(D("9")) == []
    assert stock_bin.shortfall_releases(D("12")) == []


# Customer returns.


def test_a_fifo_customer_return_is_a_layer_of_its_own_at_exactly_the_value_given() -> None:
    # 12 went out at 10 × 2.00 + 2 × 3.00 = 26.00; 6 come back at 13.00 (2.166667 each).
    stock_bin = given("fifo", receive("10", "2.00"), receive("10", "3.00"),
                      reserve(ORDER_A, 1, "12"), dispatch_reserved(ORDER_A, 1, "12"))

    [returned] = when(stock_bin, return_from_customer(ORDER_A, 1, "6", "13.00"))

    assert isinstance(returned, StockBin.ReturnedByCustomer)
    assert (returned.order_id, returned.order_line, returned.reason) == (ORDER_A, 1,
                                                                         "damaged")
    assert (returned.removed, returned.added) == ((), (layer("6", "2.166667", "13.00"),))
    assert figures(returned) == {
        "quantity": "6.000", "unit_cost": "2.166667", "value": "13.00",
        "quantity_on_hand_after": "14.000", "value_after": "37.00"}
    assert stock_bin.cost.layers == (layer("8", "3", "24.00"), layer("6", "2.166667", "13.00"))

    [later] = when(stock_bin, dispatch("10"))

    # FIFO still: the 8 at 3.00 (24.00), then 2 of the returned layer at 2.166667 (4.33).
    assert later.removed == (layer("8", "3", "24.00"), layer("2", "2.166667", "4.33"))
    assert list(stock_bin.cost.layers) == [layer("4", "2.166667", "8.67")]


@pytest.mark.parametrize("method", ["fifo", "moving_average"])
def test_a_customer_return_adds_exactly_the_value_given_not_quantity_times_unit_cost(
        method: ValuationMethod) -> None:
    # 30000 at 10000.01 is 0.333334 each (0.3333337 → 0.333334); 30000 × 0.333334 would be
    # 10000.02. The bin takes the 10000.01 it was given.
    stock_bin = given(method)

    [returned] = when(stock_bin, return_from_customer(ORDER_A, 1, "30000", "10000.01"))

    assert (str(returned.unit_cost), str(returned.value)) == ("0.333334", "10000.01")
    assert balance(stock_bin) == ("30000.000", "10000.01")


def test_a_moving_average_customer_return_re_averages_the_bin() -> None:
    # 10 at 2.00 (20.00); 5 come back worth 15.00: 35.00 for 15, 2.333333 each.
    stock_bin = given("moving_average", receive("10", "2.00"))

    [returned] = when(stock_bin, return_from_customer(ORDER_A, 1, "5", "15.00"))

    assert figures(returned) == {
        "quantity": "5.000", "unit_cost": "3.000000", "value": "15.00",
        "quantity_on_hand_after": "15.000", "value_after": "35.00"}
    assert (stock_bin.cost.layers, str(stock_bin.unit_cost)) == ((), "2.333333")
    [later] = when(stock_bin, dispatch("3"))
    # 3 × 2.333333 = 6.999999 → 7.00.
    assert figures(later)["value"] == "7.00"
    assert balance(stock_bin) == ("12.000", "28.00")


def test_a_customer_return_frees_no_reservation_and_adds_to_what_is_available() -> None:
    stock_bin = given("fifo", receive("10", "2.00"), reserve(ORDER_A, 1, "10"),
                      dispatch_reserved(ORDER_A, 1, "4"), reserve(ORDER_B, 1, "1"))

    when(stock_bin, return_from_customer(ORDER_A, 1, "2", "4.00"))

    assert reservations(stock_bin) == {key(ORDER_A, 1): "6.000"}
    assert held(stock_bin) == ("8.000", "6.000", "2.000")


# Replay.


@pytest.mark.parametrize("method", ["fifo", "moving_average"])
def test_a_replayed_bin_has_the_reservations_of_the_live_one_in_the_same_order(
        method: ValuationMethod) -> None:
    steps = (receive("10", "2.00"), reserve(ORDER_A, 1, "4"), reserve(ORDER_B, 1, "3"),
             reserve(ORDER_A, 2, "2"), dispatch_reserved(ORDER_A, 1, "1.5"),
             release(ORDER_B, 1, "1"), release(ORDER_A, 2, "2"), reserve(ORDER_A, 2, "0.5"),
             dispatch("1"), return_from_customer(ORDER_A, 1, "0.5", "1.00"),
             dispatch_reserved(ORDER_B, 1, "2"))
    live = given(method)
    for step in steps:
        when(live, step)

    replayed = rebuilt(history(method, *steps))

    assert list(replayed.reservations.items()) == list(live.reservations.items())
    assert reservations(replayed) == {key(ORDER_A, 1): "2.500", key(ORDER_A, 2): "0.500"}
    assert held(replayed) == held(live) == ("6.000", "3.000", "3.000")
    assert (replayed.cost, replayed.version) == (live.cost, live.version)
    assert replayed.shortfall_releases(D("1")) == live.shortfall_releases(D("1"))


# Through the ledger: counts and cancellations release on the bins and the orders.

META = CommandMeta("clerk")


@pytest.fixture
def shop(ledger: Ledger) -> Ledger:
    ledger.register_party("CUS-1", PartyDetails("Corner shop", ("customer",)), META)
    ledger.receive(Receipt(location="WH-1", lines=(ReceiptLine("FIFO-1", D("10"), D("2")),)),
                   META)
    return ledger


def approved(ledger: Ledger, *amounts: str) -> UUID:
    """An order for FIFO-1 at WH-1, a line per amount, approved (and so reserved)."""
    result = ledger.place_sales_order(s.PlaceOrder(customer="CUS-1", lines=tuple(
        s.SalesLine("FIFO-1", "WH-1", D(amount), D("5")) for amount in amounts)), META)
    order_id: UUID = result.data["order_id"]
    ledger.review_sales_order(s.SalesReview(order_id=order_id, approved=True,
                                            confirm_duplicate=True), META)
    return order_id


def count(ledger: Ledger, counted: str) -> None:
    ledger.count(Count(location="WH-1", reason="cycle count",
                       lines=(CountLine("FIFO-1", D(counted)),)), META)


def bin_events_since(ledger: Ledger, version: int) -> list[Any]:
    return list(ledger.repository.event_store.get(bin_id("FIFO-1", "WH-1"), gt=version))


def the_bin(ledger: Ledger) -> StockBin:
    stock_bin = ledger.stock_bin("FIFO-1", "WH-1")
    assert stock_bin is not None
    return stock_bin


def reserved(ledger: Ledger, order_id: UUID) -> dict[int, str]:
    return {n: str(line["reserved"]) for n, line in ledger.sales_order(order_id).lines.items()}


def test_a_count_below_reserved_releases_the_newest_reservation_on_bin_and_order(
        shop: Ledger) -> None:
    older, newer = approved(shop, "4"), approved(shop, "3")
    version = the_bin(shop).version
    older_version = shop.sales_order(older).version

    count(shop, "6")

    # 7 reserved, 6 found: 1 of the newer order's 3 is given up.
    *released, counted = bin_events_since(shop, version)
    assert [(type(e).__name__, e.order_id, e.order_line, str(e.quantity),
             str(e.quantity_reserved_after), e.reason) for e in released] == [
        ("ReservationReleased", newer, 1, "1.000", "6.000", COUNT_SHORTFALL)]
    assert isinstance(counted, StockBin.Counted)
    assert held(the_bin(shop)) == ("6.000", "6.000", "0.000")
    order = shop.sales_order(newer)
    assert (reserved(shop, newer), reserved(shop, older)) == ({1: "2.000"}, {1: "4.000"})
    assert shop.sales_order(older).version == older_version
    assert (order.status, shop.sales_order(older).status) == ("backordered", "approved")
    [order_release] = [e for e in shop.repository.event_store.get(newer)
                       if isinstance(e, SalesOrder.ReservationsReleased)]
    assert (order_release.reason, order_release.actor) == (COUNT_SHORTFALL, "clerk")
    assert [(line["line_number"], str(line["quantity"])) for line in order_release.lines] == [
        (1, "1.000")]


def test_a_deep_count_releases_newest_first_across_orders_and_lines(shop: Ledger) -> None:
    older, newer = approved(shop, "4"), approved(shop, "2", "1")

    count(shop, "2")

    # 7 reserved, 2 found: newer/2 (1), newer/1 (2), then 2 of older/1's 4.
    stock_bin = the_bin(shop)
    assert reservations(stock_bin) == {key(older, 1): "2.000"}
    assert held(stock_bin) == ("2.000", "2.000", "0.000")
    assert reserved(shop, newer) == {1: "0.000", 2: "0.000"}
    assert reserved(shop, older) == {1: "2.000"}
    releases = [e for e in shop.repository.event_store.get(newer)
                if isinstance(e, SalesOrder.ReservationsReleased)]
    assert [[(line["line_number"], str(line["quantity"])) for line in e.lines]
            for e in releases] == [[(2, "1.000")], [(1, "2.000")]]


def test_a_count_at_or_above_reserved_releases_nothing(shop: Ledger) -> None:
    order_id = approved(shop, "7")
    version = the_bin(shop).version
    order_version = shop.sales_order(order_id).version

    count(shop, "7")

    [counted] = bin_events_since(shop, version)
    assert isinstance(counted, StockBin.Counted)
    assert shop.sales_order(order_id).version == order_version
    assert held(the_bin(shop)) == ("7.000", "7.000", "0.000")


def test_a_count_to_zero_releases_every_reservation(shop: Ledger) -> None:
    order_id = approved(shop, "10")

    count(shop, "0")

    assert the_bin(shop).reservations == {}
    assert (str(the_bin(shop).quantity_on_hand), str(the_bin(shop).quantity_available)) == (
        "0.000", "0.000")
    assert shop.sales_order(order_id).status == "backordered"


def test_cancelling_an_order_releases_its_reservations_on_the_bin(shop: Ledger) -> None:
    kept, cancelled = approved(shop, "3"), approved(shop, "4", "2")
    version = the_bin(shop).version

    result = shop.cancel_sales_order(p.OrderStep(order_id=cancelled, reason="not needed"),
                                     META)

    assert result.data["status"] == "cancelled"
    released = bin_events_since(shop, version)
    assert [(type(e).__name__, e.order_id, e.order_line, str(e.quantity), e.reason)
            for e in released] == [
        ("ReservationReleased", cancelled, 1, "4.000", "order cancelled"),
        ("ReservationReleased", cancelled, 2, "2.000", "order cancelled")]
    assert reservations(the_bin(shop)) == {key(kept, 1): "3.000"}
    assert held(the_bin(shop)) == ("10.000", "3.000", "7.000")


def test_a_sales_dispatch_through_the_ledger_takes_the_lines_reservation(
        shop: Ledger) -> None:
    order_id = approved(shop, "4", "3")
    other = approved(shop, "2")

    shop.dispatch_sales_order(p.Quantities(order_id=order_id, quantities=((2, D("1")),)), META)

    assert reservations(the_bin(shop)) == {key(order_id, 1): "4.000",
                                           key(order_id, 2): "2.000", key(other, 1): "2.000"}
    assert reserved(shop, order_id) == {1: "4.000", 2: "2.000"}
    assert held(the_bin(shop)) == ("9.000", "8.000", "1.000")


def test_a_plain_dispatch_through_the_ledger_cannot_take_reserved_stock(shop: Ledger) -> None:
    approved(shop, "8")
    head = shop.head_position()

    with pytest.raises(InsufficientStock) as refusal:
        shop.dispatch(Dispatch(location="WH-1", lines=(DispatchLine("FIFO-1", D("2.001")),)),
                      META)

    assert str(refusal.value.available) == "2.000"
    assert shop.head_position() == head

