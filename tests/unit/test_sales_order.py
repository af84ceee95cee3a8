"""Sales orders (销售订单): given the order's events, when a command, then events or a refusal.

The aggregate tests drive `SalesOrder` alone; the ledger tests at the end go through
`Ledger` for what needs other aggregates (the customer and their account, the items,
locations and bins). Money is worked out by hand: amount = round(quantity × price, 2)
per line, tax = round(amount × rate, 2) per line, total = amount + tax, all half up;
returns go back at (dispatched value − returned value) × q / (dispatched − returned) and
credit (invoiced − credited) × q / (invoiced − credited) quantity, exact when it is all.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID, uuid4

import pytest

from ledger import application
from ledger import purchasing as p
from ledger import selling as s
from ledger.application import Ledger
from ledger.commands import Receipt, ReceiptLine
from ledger.config import store_environment
from ledger.domain.context import CommandMeta
from ledger.domain.customer_account import CustomerAccount
from ledger.domain.identity import bin_id, customer_account_id
from ledger.domain.item import ItemDetails
from ledger.domain.party import PartyDetails
from ledger.domain.sales_order import SalesOrder, order_exposure, sales_status
from ledger.domain.stock_bin import StockBin
from ledger.errors import (
    CreditLimitExceeded,
    InvalidInput,
    InvalidTransition,
    LedgerError,
    MissingPrice,
    OrderLimitExceeded,
    PossibleDuplicate,
    UnknownItem,
    UnknownLocation,
    UnknownOrder,
    UnknownParty,
)
from ledger.numbers import average, money, quantity, unit_cost
from unit.support import RECORDED_AT, rebuilt

D = Decimal
ORDER_ID = UUID("00000000-0000-4000-8000-0000000000c1")
EARLIER_ORDER = UUID("00000000-0000-4000-8000-0000000000c0")
Step = Callable[[SalesOrder], object]


def order_line(number: int, sku: str, location: str, ordered: str,
               price: str | None) -> dict[str, Any]:
    return {"line_number": number, "sku": sku, "location": location,
            "quantity": quantity(D(ordered)),
            "unit_price": None if price is None else unit_cost(D(price))}


LINES = [order_line(1, "SKU-1", "WH-1", "10", "2.675"),
         order_line(2, "SKU-2", "WH-2", "3", "3.335")]


def approve(confirm_duplicate: bool = False) -> Step:
    return lambda order: order.review(True, "reviewer", None, confirm_duplicate)


def reject(reason: str = "customer on hold") -> Step:
    return lambda order: order.review(False, "reviewer", reason, False)


def reserve(*pairs: tuple[int, str]) -> Step:
    return lambda order: order.record_reservations({n: quantity(D(q)) for n, q in pairs},
                                                   uuid4(), "clerk")


def release(*pairs: tuple[int, str], reason: str = "count found less stock") -> Step:
    return lambda order: order.record_releases({n: quantity(D(q)) for n, q in pairs}, reason,
                                               uuid4(), "clerk")


def dispatch(*lines: tuple[int, str, str]) -> Step:
    """Dispatch (line number, quantity, value at cost) the way the decider does: check, record."""

    def step(order: SalesOrder) -> None:
        order.check_dispatch({n: quantity(D(q)) for n, q, _ in lines})
        order.record_dispatch([
            {"line_number": n, "sku": order.lines[n]["sku"],
             "location": order.lines[n]["location"], "quantity": quantity(D(q)),
             "unit_cost": average(D(value), D(q)), "value": money(D(value))}
            for n, q, value in lines], uuid4(), "clerk", RECORDED_AT)

    return step


def ship() -> Step:
    return lambda order: order.ship("DHL", "TRACK-1", uuid4(), "clerk", RECORDED_AT)


def deliver() -> Step:
    return lambda order: order.deliver("Ann Lee", RECORDED_AT, uuid4(), "driver")


def invoice(*lines: tuple[int, str, str, str], number: str = "INV-1") -> Step:
    """Invoice lines as (line number, quantity, unit price, tax rate)."""
    return lambda order: order.invoice(number, [
        {"line_number": n, "quantity": quantity(D(q)), "unit_price": unit_cost(D(price)),
         "tax_rate": D(rate)} for n, q, price, rate in lines], uuid4(), "accountant",
        RECORDED_AT)


def pay(amount: str) -> Step:
    return lambda order: order.pay(D(amount), uuid4(), "BANK-1", "accountant", RECORDED_AT)


def take_back(*pairs: tuple[int, str], reason: str = "damaged") -> Step:
    return lambda order: order.take_back({n: quantity(D(q)) for n, q in pairs}, reason,
                                         uuid4(), "clerk", RECORDED_AT)


def cancel(reason: str | None = "customer changed their mind") -> Step:
    return lambda order: order.cancel(reason, "seller", uuid4())


def history(*steps: Step, duplicates: tuple[UUID, ...] = ()) -> list[Any]:
    order = SalesOrder.place(ORDER_ID, "CUS-1", LINES, "SO-1", "rush", list(duplicates),
                             "seller", RECORDED_AT)
    for step in steps:
        step(order)
    return list(order.collect_events())


def given(*steps: Step, duplicates: tuple[UUID, ...] = ()) -> SalesOrder:
    order = rebuilt(history(*steps, duplicates=duplicates))
    assert isinstance(order, SalesOrder)
    return order


def when(order: SalesOrder, step: Step) -> list[Any]:
    step(order)
    return list(order.collect_events())


def refused(order: SalesOrder, step: Step, error: type[LedgerError]) -> Any:
    """The command is refused and the order records nothing."""
    version, status = order.version, order.status
    with pytest.raises(error) as refusal:
        step(order)
    assert list(order.collect_events()) == []
    assert (order.version, order.status) == (version, status)
    return refusal.value


FIGURE_NAMES = ("reserved", "dispatched", "shipped", "delivered", "invoiced", "returned",
                "credited")


def figures(order: SalesOrder, *names: str) -> dict[int, tuple[str, ...]]:
    """Per line, the named figures (all of them by default), as written."""
    return {n: tuple(str(line[name]) for name in names or FIGURE_NAMES)
            for n, line in order.lines.items()}


def event_lines(event: Any, *fields: str) -> list[tuple[Any, ...]]:
    return [tuple(line["line_number"] if field == "line_number" else str(line[field])
                  for field in fields) for line in event.lines]


RESERVED = (approve(), reserve((1, "10"), (2, "3")))
# Line 1: 10 out worth 25.00 (2.50 each); line 2: 3 out worth 10.00 (3.333333 each).
DISPATCHED = (*RESERVED, dispatch((1, "10", "25.00"), (2, "3", "10.00")))
DELIVERED = (*DISPATCHED, ship(), deliver())


# Placement and review.


def test_a_placed_order_records_its_customer_and_lines_and_waits_for_review() -> None:
    [placed] = history(duplicates=(EARLIER_ORDER,))

    assert isinstance(placed, SalesOrder.Placed)
    assert (placed.originator_id, placed.customer, placed.reference, placed.note,
            placed.actor, placed.possible_duplicate_of) == (
        ORDER_ID, "CUS-1", "SO-1", "rush", "seller", [EARLIER_ORDER])
    assert placed.lines == LINES
    order = given(duplicates=(EARLIER_ORDER,))
    assert (order.status, order.customer, order.possible_duplicate_of) == (
        "pending_review", "CUS-1", [EARLIER_ORDER])
    assert figures(order) == {1: ("0.000",) * 7, 2: ("0.000",) * 7}
    # 10 × 2.675 = 26.75; 3 × 3.335 = 10.005 → 10.01 (half up): 36.76 ordered.
    assert str(order.value) == "36.76"
    assert str(order.exposure()) == "0.00"


def test_an_unpriced_line_counts_nothing_towards_the_order_value() -> None:
    order = SalesOrder.place(ORDER_ID, "CUS-1", [order_line(1, "SKU-1", "WH-1", "2", "1.005"),
                                                 order_line(2, "SKU-2", "WH-1", "5", None)],
                             None, None, [], "seller", RECORDED_AT)

    # 2 × 1.005 = 2.01; line 2 has no price yet.
    assert str(order.value) == "2.01"


@pytest.mark.parametrize(("step", "approved", "reason", "confirmed", "status"), [
    (approve(), True, None, False, "backordered"),
    (approve(confirm_duplicate=True), True, None, True, "backordered"),
    (reject("customer on hold"), False, "customer on hold", False, "rejected"),
])
def test_a_review_approves_or_rejects(step: Step, approved: bool, reason: str | None,
                                      confirmed: bool, status: str) -> None:
    order = given()

    [reviewed] = when(order, step)

    assert isinstance(reviewed, SalesOrder.Reviewed)
    assert (reviewed.approved, reviewed.reviewer, reviewed.reason,
            reviewed.duplicate_confirmed) == (approved, "reviewer", reason, confirmed)
    # Approved with nothing reserved yet: every line is short, so back-ordered.
    assert order.status == status


def test_approval_puts_the_ordered_value_on_the_customers_credit() -> None:
    order = given(approve())

    assert str(order.exposure()) == "36.76"
    assert str(given(reject()).exposure()) == "0.00"
    assert str(given(approve(), cancel()).exposure()) == "0.00"


# Reservations.


def test_reservations_are_recorded_per_line_and_an_order_with_all_reserved_is_approved() -> None:
    order = given(approve())

    [reserved] = when(order, reserve((1, "6"), (2, "3")))

    assert isinstance(reserved, SalesOrder.Reserved)
    assert reserved.actor == "clerk"
    assert event_lines(reserved, "line_number", "quantity") == [(1, "6.000"), (2, "3.000")]
    assert figures(order, "reserved") == {1: ("6.000",), 2: ("3.000",)}
    assert order.short() == {1: D("4.000"), 2: D("0.000")}
    assert order.status == "backordered"

    when(order, reserve((1, "4")))

    assert order.short() == {1: D("0.000"), 2: D("0.000")}
    assert order.status == "approved"


def test_a_reservation_of_nothing_records_nothing() -> None:
    order = given(approve())

    assert when(order, reserve((1, "0"), (2, "0"))) == []
    assert when(order, reserve()) == []

    [reserved] = when(order, reserve((1, "0"), (2, "1")))
    assert event_lines(reserved, "line_number", "quantity") == [(2, "1.000")]


def test_released_reservations_are_recorded_with_their_reason_and_the_line_is_short_again(
) -> None:
    order = given(*RESERVED)
    assert order.status == "approved"

    [released] = when(order, release((1, "2.5"), (2, "0")))

    assert isinstance(released, SalesOrder.ReservationsReleased)
    assert released.reason == "count found less stock"
    assert event_lines(released, "line_number", "quantity") == [(1, "2.500")]
    assert figures(order, "reserved") == {1: ("7.500",), 2: ("3.000",)}
    assert order.short()[1] == D("2.500")
    assert order.status == "backordered"
    assert when(order, release((1, "0"))) == []


# Dispatch, shipment, delivery.


def test_a_dispatch_turns_reserved_into_dispatched_at_the_cost_it_went_out_at() -> None:
    order = given(*RESERVED)

    [dispatched] = when(order, dispatch((1, "4", "10.00")))

    assert isinstance(dispatched, SalesOrder.Dispatched)
    assert (dispatched.actor, dispatched.effective_at) == ("clerk", RECORDED_AT)
    assert event_lines(dispatched, "line_number", "sku", "location", "quantity", "value") == [
        (1, "SKU-1", "WH-1", "4.000", "10.00")]
    assert figures(order, "reserved", "dispatched", "dispatched_value") == {
        1: ("6.000", "4.000", "10.00"), 2: ("3.000", "0.000", "0.00")}
    assert order.status == "partially_dispatched"

    when(order, dispatch((1, "6", "15.00"), (2, "3", "10.00")))

    assert figures(order, "reserved", "dispatched", "dispatched_value") == {
        1: ("0.000", "10.000", "25.00"), 2: ("0.000", "3.000", "10.00")}
    assert order.status == "dispatched"


def test_dispatching_more_than_a_line_has_reserved_is_an_over_shipment() -> None:
    order = given(approve(), reserve((1, "6")))

    error = refused(order, dispatch((1, "6.001", "15.00")), OrderLimitExceeded)

    assert (error.code, error.line_number) == ("over_shipment", 1)
    assert error.facts() == {"order_id": str(ORDER_ID), "line_number": 1}
    assert "6.000 reserved" in error.detail and "10.000 not yet dispatched" in error.detail
    # Line 2 has nothing reserved: any quantity is too much, even with line 1 fine.
    error = refused(order, dispatch((1, "1", "2.50"), (2, "1", "3.33")), OrderLimitExceeded)
    assert (error.code, error.line_number) == ("over_shipment", 2)
    when(order, dispatch((1, "6", "15.00")))
    assert figures(order, "reserved", "dispatched")[1] == ("0.000", "6.000")


def test_dispatching_a_line_the_order_does_not_have_is_invalid_input() -> None:
    order = given(*RESERVED)

    error = refused(order, dispatch((3, "1", "1.00")), InvalidInput)

    assert error.field == "lines"


def test_a_shipment_takes_everything_dispatched_and_not_yet_shipped() -> None:
    order = given(*RESERVED, dispatch((1, "4", "10.00")))

    [shipped] = when(order, ship())

    assert isinstance(shipped, SalesOrder.Shipped)
    assert (shipped.carrier, shipped.tracking_number) == ("DHL", "TRACK-1")
    assert event_lines(shipped, "line_number", "quantity") == [(1, "4.000")]
    assert order.status == "partially_dispatched"

    when(order, dispatch((1, "6", "15.00"), (2, "3", "10.00")))
    [shipped] = when(order, ship())

    # Only what was dispatched since the last shipment.
    assert event_lines(shipped, "line_number", "quantity") == [(1, "6.000"), (2, "3.000")]
    assert figures(order, "dispatched", "shipped") == {1: ("10.000", "10.000"),
                                                       2: ("3.000", "3.000")}
    assert order.status == "shipped"


def test_a_delivery_signs_for_everything_shipped_and_not_yet_delivered() -> None:
    order = given(*DISPATCHED, ship())

    [delivered] = when(order, deliver())

    assert isinstance(delivered, SalesOrder.Delivered)
    assert (delivered.signed_by, delivered.signed_at, delivered.actor) == (
        "Ann Lee", RECORDED_AT, "driver")
    assert event_lines(delivered, "line_number", "quantity") == [(1, "10.000"), (2, "3.000")]
    assert order.status == "delivered"


@pytest.mark.parametrize(("steps", "step", "status", "action"), [
    (RESERVED, ship(), "approved", "ship"),
    (DISPATCHED, deliver(), "dispatched", "deliver"),
    ((*DISPATCHED, ship()), ship(), "shipped", "ship"),
    (DELIVERED, ship(), "delivered", "ship"),
    (DELIVERED, deliver(), "delivered", "deliver"),
], ids=["ship-nothing-dispatched", "deliver-nothing-shipped", "ship-again", "ship-after-delivery",
        "deliver-again"])
def test_a_shipment_or_delivery_with_nothing_pending_is_an_invalid_transition(
        steps: tuple[Step, ...], step: Step, status: str, action: str) -> None:
    order = given(*steps)

    error = refused(order, step, InvalidTransition)

    assert error.facts() == {"order_id": str(ORDER_ID), "order_status": status,
                             "action": action}


# Invoices and payments.


def test_an_invoice_is_valued_per_line_and_taxed_per_line_half_up() -> None:
    order = given(*DELIVERED)

    # Line 1: 3 × 2.675 = 8.025 → 8.03, tax 8.03 × 0.13 = 1.0439 → 1.04.
    # Line 2 at a price of its own: 3 × 3.5 = 10.50, tax 10.50 × 0.05 = 0.525 → 0.53.
    [invoiced] = when(order, invoice((1, "3", "2.675", "0.13"), (2, "3", "3.5", "0.05")))

    assert isinstance(invoiced, SalesOrder.Invoiced)
    assert (invoiced.invoice_number, invoiced.actor) == ("INV-1", "accountant")
    assert event_lines(invoiced, "line_number", "amount", "tax") == [
        (1, "8.03", "1.04"), (2, "10.50", "0.53")]
    assert (str(invoiced.amount), str(invoiced.tax), str(invoiced.total)) == (
        "18.53", "1.57", "20.10")
    assert order.status == "invoiced"
    assert (str(order.invoiced_total), str(order.outstanding)) == ("20.10", "20.10")
    assert figures(order, "invoiced", "invoiced_amount", "invoiced_tax") == {
        1: ("3.000", "8.03", "1.04"), 2: ("3.000", "10.50", "0.53")}


def test_tax_rounds_half_up_on_each_line_not_on_the_total() -> None:
    order = given(*DELIVERED)

    # Each line 1 × 0.05 = 0.05, tax 0.05 × 0.1 = 0.005 → 0.01; on the total it would be
    # 0.10 × 0.1 = 0.01 for both lines, here 0.02.
    [invoiced] = when(order, invoice((1, "1", "0.05", "0.1"), (2, "1", "0.05", "0.1")))

    assert (str(invoiced.amount), str(invoiced.tax), str(invoiced.total)) == (
        "0.10", "0.02", "0.12")


def test_invoicing_more_than_was_delivered_and_kept_is_an_over_invoice() -> None:
    # Line 1: 10 delivered, 2 back, 5 invoiced: 3 left to bill.
    order = given(*DELIVERED, take_back((1, "2")), invoice((1, "5", "2.675", "0")))

    error = refused(order, invoice((1, "3.001", "2.675", "0")), OrderLimitExceeded)
    assert (error.code, error.line_number) == ("over_invoice", 1)
    assert "3.000 delivered and not yet invoiced" in error.detail
    error = refused(order, invoice((2, "3", "3.335", "0"), (1, "3.001", "2.675", "0")),
                    OrderLimitExceeded)
    assert (error.code, error.line_number) == ("over_invoice", 1)

    when(order, invoice((1, "3", "2.675", "0"), number="INV-2"))
    assert figures(order, "delivered", "returned", "invoiced")[1] == (
        "10.000", "2.000", "8.000")


def test_nothing_can_be_invoiced_before_it_is_delivered() -> None:
    order = given(*DISPATCHED, ship())

    error = refused(order, invoice((1, "0.001", "2.675", "0")), OrderLimitExceeded)

    assert (error.code, error.line_number) == ("over_invoice", 1)


def test_credited_goods_can_be_invoiced_again_only_up_to_what_was_kept() -> None:
    # 10 delivered, 4 invoiced (4 × 2.675 = 10.70, no tax); 6 come back, 4 of them credited.
    order = given(*DELIVERED, invoice((1, "4", "2.675", "0")), take_back((1, "6")))
    assert figures(order, "invoiced", "returned", "credited")[1] == (
        "4.000", "6.000", "4.000")

    # Kept 4, none of them billed any more: 4 can be billed, not 4.001.
    assert order.billable(1) == D("4.000")
    refused(order, invoice((1, "4.001", "2.675", "0")), OrderLimitExceeded)
    when(order, invoice((1, "4", "2.675", "0"), number="INV-2"))
    assert order.billable(1) == D("0.000")


def test_payments_reduce_what_is_owed_and_paying_it_all_makes_the_order_paid() -> None:
    # 3 × 3.5 = 10.50, tax 10.50 × 0.05 = 0.525 → 0.53: 11.03 owed.
    order = given(*DELIVERED, invoice((2, "3", "3.5", "0.05")))

    [paid] = when(order, pay("10.00"))

    assert isinstance(paid, SalesOrder.Paid)
    assert (paid.amount, paid.reference, paid.actor) == (D("10.00"), "BANK-1", "accountant")
    assert (order.status, str(order.paid), str(order.outstanding)) == (
        "partially_paid", "10.00", "1.03")
    when(order, pay("1.03"))
    assert (order.status, str(order.outstanding)) == ("paid", "0.00")


def test_paying_more_than_is_owed_is_an_over_payment() -> None:
    order = given(*DELIVERED, invoice((2, "3", "3.5", "0.05")), pay("10"))

    error = refused(order, pay("1.04"), OrderLimitExceeded)

    assert (error.code, error.line_number) == ("over_payment", None)
    assert error.facts() == {"order_id": str(ORDER_ID)}
    assert "Only 1.03 is owed" in error.detail
    when(order, pay("1.03"))
    assert order.status == "paid"


def test_nothing_can_be_paid_before_anything_is_invoiced() -> None:
    order = given(*DELIVERED)

    error = refused(order, pay("0.01"), OrderLimitExceeded)

    assert error.code == "over_payment"
    assert "Only 0.00 is owed" in error.detail


# Returns and credit notes.


def test_a_return_comes_back_at_the_cost_it_went_out_at_and_is_credited() -> None:
    # Line 1: 10 out worth 25.00, 4 invoiced: 4 × 2.675 = 10.70, tax 10.70 × 0.1 = 1.07.
    order = given(*DELIVERED, invoice((1, "4", "2.675", "0.1")))

    [returned] = when(order, take_back((1, "2")))

    assert isinstance(returned, SalesOrder.Returned)
    assert (returned.reason, returned.actor) == ("damaged", "clerk")
    assert returned.credit_note_number == f"CN-{returned.document_id}"
    # Value 25.00 × 2/10 = 5.00; credit 10.70 × 2/4 = 5.35, tax 1.07 × 2/4 = 0.535 → 0.54.
    assert event_lines(returned, "line_number", "sku", "location", "quantity", "value",
                       "credited_quantity", "credit_amount", "credit_tax") == [
        (1, "SKU-1", "WH-1", "2.000", "5.00", "2.000", "5.35", "0.54")]
    assert (str(returned.credit_amount), str(returned.credit_tax),
            str(returned.credit_total)) == ("5.35", "0.54", "5.89")
    assert figures(order, "returned", "credited", "returned_value", "credited_amount",
                   "credited_tax")[1] == ("2.000", "2.000", "5.00", "5.35", "0.54")
    # 11.77 invoiced less 5.89 credited.
    assert (str(order.credited_total), str(order.outstanding)) == ("5.89", "5.88")
    assert order.status == "invoiced"


def test_returning_all_in_parts_takes_back_the_exact_value_and_credit_in_the_end() -> None:
    # Line 2: 3 out worth 10.00. Invoiced 3 × 3.335 = 10.005 → 10.01,
    # tax 10.01 × 0.13 = 1.3013 → 1.30: 11.31 in all.
    order = given(*DELIVERED, invoice((2, "3", "3.335", "0.13")))

    parts = [when(order, take_back((2, "1")))[0] for _ in range(3)]

    # Each share is of what is left: value 10.00 / 3 = 3.333… → 3.33, then 6.67 / 2 = 3.335
    # → 3.34, then the 3.33 left; credit 10.01 / 3 → 3.34, 6.67 / 2 → 3.34, the 3.33 left;
    # tax 1.30 / 3 → 0.43, 0.87 / 2 = 0.435 → 0.44, the 0.43 left.
    assert [event_lines(part, "quantity", "value", "credit_amount", "credit_tax")
            for part in parts] == [[("1.000", "3.33", "3.34", "0.43")],
                                   [("1.000", "3.34", "3.34", "0.44")],
                                   [("1.000", "3.33", "3.33", "0.43")]]
    assert [str(part.credit_total) for part in parts] == ["3.77", "3.78", "3.76"]
    assert figures(order, "returned_value", "credited_amount", "credited_tax")[2] == (
        "10.00", "10.01", "1.30")
    assert (str(order.credited_total), str(order.outstanding)) == ("11.31", "0.00")


def test_a_return_of_all_that_is_left_takes_exactly_what_is_left() -> None:
    # Line 2 invoiced 3 × 1 = 3.00, tax 3.00 × 0.005 = 0.015 → 0.02. Returning 2 of 3 takes
    # 6.666… → 6.67, credit 2.00 and 0.0133… → 0.01; the last one exactly the 3.33, 1.00
    # and 0.01 left.
    order = given(*DELIVERED, invoice((2, "3", "1", "0.005")))

    [first] = when(order, take_back((2, "2")))
    [last] = when(order, take_back((2, "1")))

    assert event_lines(first, "value", "credit_amount", "credit_tax") == [
        ("6.67", "2.00", "0.01")]
    assert event_lines(last, "value", "credit_amount", "credit_tax") == [
        ("3.33", "1.00", "0.01")]
    assert str(order.outstanding) == "0.00"


def test_a_whole_return_in_one_go_takes_each_lines_value_exactly() -> None:
    order = given(*DELIVERED)

    [returned] = when(order, take_back((1, "10"), (2, "3")))

    assert event_lines(returned, "line_number", "quantity", "value", "credited_quantity",
                       "credit_amount") == [(1, "10.000", "25.00", "0.000", "0.00"),
                                            (2, "3.000", "10.00", "0.000", "0.00")]
    assert (str(returned.credit_total), order.status) == ("0.00", "returned")


def test_only_invoiced_quantity_is_credited() -> None:
    # 4 of line 1 invoiced: 4 × 2.675 = 10.70, no tax. Returning 6 credits the 4 billed;
    # a further return of 1 credits nothing.
    order = given(*DELIVERED, invoice((1, "4", "2.675", "0")))

    [returned] = when(order, take_back((1, "6")))
    [more] = when(order, take_back((1, "1")))

    # 25.00 × 6/10 = 15.00, then 10.00 × 1/4 = 2.50.
    assert event_lines(returned, "quantity", "value", "credited_quantity", "credit_amount",
                       "credit_tax") == [("6.000", "15.00", "4.000", "10.70", "0.00")]
    assert event_lines(more, "quantity", "value", "credited_quantity", "credit_amount",
                       "credit_tax") == [("1.000", "2.50", "0.000", "0.00", "0.00")]
    assert (str(order.credited_total), str(order.outstanding)) == ("10.70", "0.00")


def test_returning_more_than_was_delivered_and_kept_is_an_over_return() -> None:
    order = given(*DELIVERED, take_back((1, "4")))

    error = refused(order, take_back((1, "6.001")), OrderLimitExceeded)
    assert (error.code, error.line_number) == ("over_return", 1)
    assert "6.000 delivered and kept" in error.detail
    error = refused(order, take_back((1, "1"), (2, "3.001")), OrderLimitExceeded)
    assert (error.code, error.line_number) == ("over_return", 2)

    when(order, take_back((1, "6")))
    assert figures(order, "delivered", "returned")[1] == ("10.000", "10.000")


def test_goods_shipped_but_not_delivered_cannot_be_returned() -> None:
    order = given(*DISPATCHED, ship())

    error = refused(order, take_back((1, "1")), OrderLimitExceeded)

    assert (error.code, error.line_number) == ("over_return", 1)


def test_returning_a_line_the_order_does_not_have_is_invalid_input() -> None:
    order = given(*DELIVERED)

    error = refused(order, take_back((3, "1")), InvalidInput)

    assert error.field == "lines"


# Cancellation.


@pytest.mark.parametrize(("steps", "released"), [
    ((), []),
    ((approve(),), []),
    ((approve(), reserve((1, "4"))), [(1, "4.000")]),
    (RESERVED, [(1, "10.000"), (2, "3.000")]),
], ids=["pending_review", "backordered-nothing-reserved", "backordered", "approved"])
def test_an_order_can_be_cancelled_until_something_is_dispatched(
        steps: tuple[Step, ...], released: list[tuple[int, str]]) -> None:
    order = given(*steps)

    releases = order.cancel("customer changed their mind", "seller", uuid4())
    events = list(order.collect_events())

    assert [(n, str(q)) for n, q in releases.items()] == released
    *releasing, cancelled = events
    if released:
        [released_event] = releasing
        assert isinstance(released_event, SalesOrder.ReservationsReleased)
        assert released_event.reason == "order cancelled"
        assert event_lines(released_event, "line_number", "quantity") == released
    else:
        assert releasing == []
    assert isinstance(cancelled, SalesOrder.Cancelled)
    assert (cancelled.reason, cancelled.actor) == ("customer changed their mind", "seller")
    assert order.status == "cancelled"
    assert all(line["reserved"] == 0 for line in order.lines.values())
    assert str(order.exposure()) == "0.00"


# Refusals: steps out of order.

AFTER_CANCEL = (approve(), reserve((1, "2")), cancel())
ANY_STEP = {"approve": approve(), "reject": reject(),
            "dispatch": dispatch((1, "1", "2.50")), "ship": ship(), "deliver": deliver(),
            "invoice": invoice((1, "1", "1", "0")), "pay": pay("1"),
            "return": take_back((1, "1")), "cancel": cancel()}
STATES: dict[str, tuple[Step, ...]] = {
    "pending_review": (),
    "rejected": (reject(),),
    "cancelled": AFTER_CANCEL,
    "approved": RESERVED,
    "partially_dispatched": (*RESERVED, dispatch((1, "1", "2.50"))),
    "dispatched": DISPATCHED,
    "shipped": (*DISPATCHED, ship()),
    "delivered": DELIVERED,
    "returned": (*DELIVERED, take_back((1, "10"), (2, "3"))),
    "invoiced": (*DELIVERED, invoice((1, "1", "1", "0"))),
    "partially_paid": (*DELIVERED, invoice((1, "2", "1", "0")), pay("1")),
    "paid": (*DELIVERED, invoice((1, "1", "1", "0")), pay("1")),
}


@pytest.mark.parametrize(("status", "action"), [
    *[("pending_review", action) for action in ("dispatch", "ship", "deliver", "invoice",
                                                "pay", "return")],
    *[("rejected", action) for action in ANY_STEP],
    *[("cancelled", action) for action in ANY_STEP],
    *[(status, review) for status in STATES
      if status not in ("pending_review", "rejected", "cancelled")
      for review in ("approve", "reject")],
    *[(status, "cancel") for status in ("partially_dispatched", "dispatched", "shipped",
                                        "delivered", "returned", "invoiced", "partially_paid",
                                        "paid")],
])
def test_a_step_out_of_order_is_an_invalid_transition(status: str, action: str) -> None:
    order = given(*STATES[status])
    assert order.status == status

    error = refused(order, ANY_STEP[action], InvalidTransition)

    assert error.code == "invalid_transition"
    assert error.facts() == {"order_id": str(ORDER_ID), "order_status": status,
                             "action": action}


@pytest.mark.parametrize("status", list(STATES))
def test_every_status_is_reached_by_its_steps(status: str) -> None:
    assert given(*STATES[status]).status == status


def test_a_replayed_order_has_the_figures_of_the_live_one() -> None:
    steps = (*DELIVERED, invoice((1, "10", "2.675", "0.13"), (2, "3", "3.335", "0.13")),
             take_back((2, "1")), pay("10"))
    live = SalesOrder.place(ORDER_ID, "CUS-1", LINES, None, None, [], "seller", RECORDED_AT)
    for step in steps:
        step(live)

    replayed = given(*steps)

    # 26.75 + 3.48 tax (3.4775 → 3.48), 10.01 + 1.30 tax: 41.54; credited 3.34 + 0.43.
    assert (replayed.status, replayed.invoiced_total, replayed.credited_total, replayed.paid,
            replayed.version) == (live.status, live.invoiced_total, live.credited_total,
                                  live.paid, live.version) == (
        "partially_paid", D("41.54"), D("3.77"), D("10.00"), 9)
    assert figures(replayed) == figures(live)


# sales_status and order_exposure, the pure rules.


def status_line(ordered: str = "10", reserved: str = "0", dispatched: str = "0",
                shipped: str = "0", delivered: str = "0", returned: str = "0") -> dict[str, Any]:
    return {"quantity": D(ordered), "reserved": D(reserved), "dispatched": D(dispatched),
            "shipped": D(shipped), "delivered": D(delivered), "returned": D(returned)}


ALL_DELIVERED = [status_line(dispatched="10", shipped="10", delivered="10")]


@pytest.mark.parametrize(("review", "cancelled", "lines", "money_figures", "status"), [
    ("approved", True, [status_line(reserved="10")], ("0", "0", "0"), "cancelled"),
    (None, True, [status_line()], ("0", "0", "0"), "cancelled"),
    (None, False, [status_line()], ("0", "0", "0"), "pending_review"),
    ("rejected", False, [status_line()], ("0", "0", "0"), "rejected"),
    ("approved", False, [status_line(reserved="10"), status_line("1", reserved="1")],
     ("0", "0", "0"), "approved"),
    ("approved", False, [status_line(reserved="10"), status_line("1", reserved="0.999")],
     ("0", "0", "0"), "backordered"),
    ("approved", False, [status_line()], ("0", "0", "0"), "backordered"),
    ("approved", False, [status_line(reserved="6", dispatched="4")], ("0", "0", "0"),
     "partially_dispatched"),
    ("approved", False, [status_line(dispatched="10", shipped="10", delivered="10"),
                         status_line("2")], ("0", "0", "0"), "partially_dispatched"),
    ("approved", False, [status_line(dispatched="10", shipped="9.999")], ("0", "0", "0"),
     "dispatched"),
    ("approved", False, [status_line(dispatched="10", shipped="10", delivered="4")],
     ("0", "0", "0"), "shipped"),
    ("approved", False, ALL_DELIVERED, ("0", "0", "0"), "delivered"),
    ("approved", False, [status_line(dispatched="10", shipped="10", delivered="10",
                                     returned="3")], ("0", "0", "0"), "delivered"),
    ("approved", False, [status_line(dispatched="10", shipped="10", delivered="10",
                                     returned="10")], ("20.10", "20.10", "0"), "returned"),
    ("approved", False, ALL_DELIVERED, ("20.10", "0", "0"), "invoiced"),
    ("approved", False, ALL_DELIVERED, ("20.10", "0", "0.01"), "partially_paid"),
    ("approved", False, ALL_DELIVERED, ("20.10", "0", "20.10"), "paid"),
    ("approved", False, ALL_DELIVERED, ("20.10", "5.10", "15.00"), "paid"),
    ("approved", False, ALL_DELIVERED, ("20.10", "5.10", "14.99"), "partially_paid"),
], ids=["cancelled-after-approval", "cancelled-pending", "pending_review", "rejected",
        "approved", "backordered-short-by-a-gram", "backordered-nothing-reserved",
        "partially_dispatched", "partially_dispatched-one-line-untouched", "dispatched",
        "shipped", "delivered", "delivered-partly-returned", "returned", "invoiced",
        "partially_paid", "paid", "paid-after-credit", "partially_paid-after-credit"])
def test_sales_status_reads_the_figures(review: str | None, cancelled: bool,
                                        lines: list[dict[str, Any]],
                                        money_figures: tuple[str, str, str],
                                        status: str) -> None:
    invoiced, credited, paid = (D(amount) for amount in money_figures)

    assert sales_status(review, cancelled, lines, invoiced, credited, paid) == status


@pytest.mark.parametrize(("open_approved", "amounts", "exposure"), [
    (False, ("100.00", "113.00", "0.00", "0.00"), "0.00"),
    (True, ("100.00", "0.00", "0.00", "0.00"), "100.00"),
    (True, ("100.00", "50.00", "0.00", "0.00"), "100.00"),
    (True, ("100.00", "113.00", "0.00", "0.00"), "113.00"),
    (True, ("100.00", "113.00", "13.00", "50.00"), "50.00"),
    (True, ("100.00", "113.00", "0.00", "113.00"), "0.00"),
    (True, ("100.00", "113.00", "113.00", "113.00"), "0.00"),
    (True, ("100.00", "0.00", "0.00", "0.00"), "100.00"),
], ids=["not-open", "ordered", "partly-invoiced-still-the-value", "invoiced-with-tax",
        "less-credited-and-paid", "paid-in-full", "refund-due-floored", "approved-only"])
def test_order_exposure_is_the_larger_of_value_and_invoiced_less_credited_and_paid(
        open_approved: bool, amounts: tuple[str, str, str, str], exposure: str) -> None:
    value, invoiced, credited, paid = (D(amount) for amount in amounts)

    assert str(order_exposure(open_approved, value, invoiced, credited, paid)) == exposure


def test_an_orders_exposure_follows_its_invoices_credits_and_payments() -> None:
    # 36.76 ordered; invoiced 10 × 2.675 = 26.75 + 3 × 3.335 = 10.01, tax at 0.2:
    # 5.35 + 2.00 = 7.35; 44.11 in all, more than the value.
    order = given(*DELIVERED)
    assert str(order.exposure()) == "36.76"

    when(order, invoice((1, "10", "2.675", "0.2"), (2, "3", "3.335", "0.2")))
    assert str(order.exposure()) == "44.11"
    when(order, pay("4.11"))
    assert str(order.exposure()) == "40.00"
    # Line 2 back in full: credit 10.01 + 2.00 = 12.01.
    when(order, take_back((2, "3")))
    assert str(order.exposure()) == "27.99"


# Through the ledger: the customer, their account, items, locations and bins.

META = CommandMeta("seller")
Line = tuple[str, str, str, str | None]
BOLTS: Line = ("FIFO-1", "WH-1", "10", "6")


@pytest.fixture
def shop(ledger: Ledger) -> Ledger:
    ledger.register_party("CUS-1", PartyDetails("Corner shop", ("customer",)), META)
    ledger.register_party("CUS-2", PartyDetails("Kiosk", ("customer",), D("100")), META)
    ledger.register_party("SUP-1", PartyDetails("Tea Co.", ("supplier",)), META)
    ledger.register_party("BOTH-1", PartyDetails("Trader", ("supplier", "customer")), META)
    return ledger


def stock(ledger: Ledger, sku: str, amount: str, cost: str, at: str = "WH-1") -> None:
    ledger.receive(Receipt(location=at, lines=(ReceiptLine(sku, D(amount), D(cost)),)), META)


def place(ledger: Ledger, *lines: Line, customer: str = "CUS-1") -> UUID:
    result = ledger.place_sales_order(s.PlaceOrder(customer=customer, lines=tuple(
        s.SalesLine(sku, at, D(amount), None if price is None else D(price))
        for sku, at, amount, price in lines or (BOLTS,))), META)
    order_id: UUID = result.data["order_id"]
    return order_id


def review(ledger: Ledger, order_id: UUID, approved: bool = True,
           confirm_duplicate: bool = False, reason: str | None = None) -> dict[str, Any]:
    return ledger.review_sales_order(s.SalesReview(
        order_id=order_id, approved=approved, confirm_duplicate=confirm_duplicate,
        reason=reason), META).data


def delivered(ledger: Ledger, *lines: Line, customer: str = "CUS-1") -> UUID:
    """An order approved, dispatched in full from stock, shipped and delivered."""
    order_id = place(ledger, *lines, customer=customer)
    review(ledger, order_id)
    ledger.dispatch_sales_order(p.Quantities(order_id=order_id, quantities=()), META)
    ledger.ship_sales_order(s.Ship(order_id=order_id, carrier="DHL", tracking_number="T-1"),
                            META)
    ledger.deliver_sales_order(s.Deliver(order_id=order_id, signed_by="Ann"), META)
    return order_id


def exposures(ledger: Ledger, customer: str) -> dict[str, str]:
    account: Any = ledger.repository.get(customer_account_id(customer))
    assert isinstance(account, CustomerAccount)
    return {order_id: str(amount) for order_id, amount in account.exposures.items()}


def test_a_placed_order_waits_for_review_with_no_duplicate(shop: Ledger) -> None:
    result = shop.place_sales_order(s.PlaceOrder(customer="CUS-1", reference="SO-1", lines=(
        s.SalesLine("FIFO-1", "WH-1", D("10"), D("6")),
        s.SalesLine("AVG-1", "WH-2", D("2.5"), None))), META)

    assert result.data == {"document_id": result.document_id, "order_id": result.document_id,
                           "status": "pending_review", "outstanding": D("0.00"),
                           "possible_duplicate_of": []}
    order = shop.sales_order(result.document_id)
    assert (order.customer, order.reference, order.status) == ("CUS-1", "SO-1",
                                                               "pending_review")
    assert [(line["sku"], line["location"], str(line["quantity"]), str(line["unit_price"]))
            for line in order.lines.values()] == [("FIFO-1", "WH-1", "10.000", "6.000000"),
                                                  ("AVG-1", "WH-2", "2.500", "None")]


@pytest.mark.parametrize(("customer", "lines", "error"), [
    ("NOBODY", (BOLTS,), UnknownParty),
    ("SUP-1", (BOLTS,), InvalidInput),
    ("CUS-1", (BOLTS, ("NOPE", "WH-1", "1", "1")), UnknownItem),
    ("CUS-1", (BOLTS, ("FIFO-1", "WH-9", "1", "1")), UnknownLocation),
], ids=["unknown-party", "supplier-only", "unknown-item", "unknown-location"])
def test_a_placement_needs_a_customer_and_known_items_and_locations(
        shop: Ledger, customer: str, lines: tuple[Line, ...],
        error: type[LedgerError]) -> None:
    head = shop.head_position()

    with pytest.raises(error) as refusal:
        place(shop, *lines, customer=customer)

    assert shop.head_position() == head
    if error is InvalidInput:
        assert refusal.value.facts() == {"field": "customer"}


def test_a_party_that_is_both_supplier_and_customer_may_order(shop: Ledger) -> None:
    order_id = place(shop, customer="BOTH-1")

    assert shop.sales_order(order_id).customer == "BOTH-1"


def test_a_party_no_longer_a_customer_cannot_have_an_order_approved(shop: Ledger) -> None:
    order_id = place(shop, customer="BOTH-1")
    shop.register_party("BOTH-1", PartyDetails("Trader", ("supplier",)), META)
    head = shop.head_position()

    with pytest.raises(InvalidInput) as refusal:
        review(shop, order_id)

    assert refusal.value.field == "customer"
    assert shop.head_position() == head
    assert review(shop, order_id, approved=False, reason="no longer buys")["status"] == (
        "rejected")


def test_an_unpriced_line_must_be_priced_before_approval(shop: Ledger) -> None:
    order_id = place(shop, BOLTS, ("AVG-1", "WH-1", "1", None), ("FIFO-1", "WH-2", "1", None))
    head = shop.head_position()

    with pytest.raises(MissingPrice) as refusal:
        review(shop, order_id)

    assert refusal.value.code == "missing_price"
    assert refusal.value.facts() == {"order_id": str(order_id), "line_numbers": [2, 3]}
    assert shop.head_position() == head
    assert shop.sales_order(order_id).status == "pending_review"
    assert review(shop, order_id, approved=False, reason="no price")["status"] == "rejected"


def test_the_same_lines_again_within_the_window_are_flagged_and_need_confirmation(
        shop: Ledger) -> None:
    first = place(shop, BOLTS, ("AVG-1", "WH-2", "2", "3.5"))
    # The same lines in another order.
    second = place(shop, ("AVG-1", "WH-2", "2", "3.5"), BOLTS)

    assert shop.sales_order(second).possible_duplicate_of == [first]
    head = shop.head_position()
    with pytest.raises(PossibleDuplicate) as refusal:
        review(shop, second)
    assert refusal.value.facts() == {"order_id": str(second),
                                     "possible_duplicate_of": [str(first)]}
    assert shop.head_position() == head

    result = review(shop, second, confirm_duplicate=True)

    assert result["status"] == "backordered"
    assert shop.sales_order(second).status == "backordered"
    # The first, not flagged, needs no confirmation.
    assert review(shop, first)["status"] == "backordered"


def test_the_same_figures_written_differently_are_the_same_lines(shop: Ledger) -> None:
    first = place(shop, ("FIFO-1", "WH-1", "10", "6"))

    order_id = place(shop, ("FIFO-1", "WH-1", "10.000", "6.00"))

    assert shop.sales_order(order_id).possible_duplicate_of == [first]


@pytest.mark.parametrize("other", [
    (("FIFO-1", "WH-1", "10.001", "6"),), (("FIFO-1", "WH-1", "10", "6.000001"),),
    (("FIFO-1", "WH-2", "10", "6"),), (("AVG-1", "WH-1", "10", "6"),),
    (BOLTS, BOLTS), (("FIFO-1", "WH-1", "10", None),),
], ids=["quantity", "price", "location", "sku", "an-extra-line", "no-price"])
def test_orders_whose_lines_differ_are_not_flagged(shop: Ledger,
                                                   other: tuple[Line, ...]) -> None:
    place(shop, BOLTS)

    order_id = place(shop, *other)

    assert shop.sales_order(order_id).possible_duplicate_of == []


def test_another_customers_order_with_the_same_lines_is_not_a_duplicate(shop: Ledger) -> None:
    place(shop, customer="CUS-1")

    order_id = place(shop, customer="BOTH-1")

    assert shop.sales_order(order_id).possible_duplicate_of == []


def test_every_earlier_order_with_the_same_lines_is_named_oldest_first(shop: Ledger) -> None:
    first, second = place(shop), place(shop)

    third = place(shop)

    assert shop.sales_order(third).possible_duplicate_of == [first, second]


def with_customer(ledger: Ledger) -> Ledger:
    ledger.register_item("FIFO-1", ItemDetails("Bolt", "each", "fifo"), META)
    ledger.register_location("WH-1", "Main warehouse", META)
    ledger.register_party("CUS-1", PartyDetails("Corner shop", ("customer",)), META)
    return ledger


class Clock:
    """Stands in for `datetime` in ledger.application: `now` is what the test sets."""

    def __init__(self, at: datetime) -> None:
        self.at = at

    def now(self, tz: Any = None) -> datetime:
        return self.at


def test_only_orders_placed_within_the_window_before_are_flagged(
        sqlite_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    start = datetime(2025, 3, 1, 9, 0, tzinfo=UTC)
    clock = Clock(start)
    monkeypatch.setattr(application, "datetime", clock)
    with Ledger(store_environment(sqlite_url),
                duplicate_order_window=timedelta(hours=1)) as ledger:
        with_customer(ledger)
        first = place(ledger)
        # Exactly one window later: still within it (the window is inclusive).
        clock.at = start + timedelta(hours=1)
        second = place(ledger)
        # One window and a second after the second: neither is within the window.
        clock.at = start + timedelta(hours=2, seconds=1)
        third = place(ledger)
        clock.at = start + timedelta(hours=2, minutes=30)
        fourth = place(ledger)

        assert ledger.sales_order(first).possible_duplicate_of == []
        assert ledger.sales_order(second).possible_duplicate_of == [first]
        assert ledger.sales_order(third).possible_duplicate_of == []
        assert ledger.sales_order(fourth).possible_duplicate_of == [third]


def test_with_no_window_an_order_placed_moments_later_is_not_flagged(sqlite_url: str) -> None:
    with Ledger(store_environment(sqlite_url), duplicate_order_window=timedelta(0)) as ledger:
        with_customer(ledger)
        place(ledger)

        order_id = place(ledger)

        assert ledger.sales_order(order_id).possible_duplicate_of == []


def test_approval_reserves_what_is_available_and_backorders_the_rest(shop: Ledger) -> None:
    stock(shop, "FIFO-1", "6", "2")
    order_id = place(shop, BOLTS, ("AVG-1", "WH-1", "1", "4"))

    result = review(shop, order_id)

    assert result["status"] == "backordered"
    first, second = result["reservations"]
    assert (first["line_number"], first["sku"], first["location"], str(first["reserved_now"]),
            str(first["reserved"]), str(first["short"])) == (
        1, "FIFO-1", "WH-1", "6.000", "6.000", "4.000")
    # (How "nothing reserved now" is written: see the test after this one.)
    assert (second["line_number"], second["sku"], second["location"], second["reserved_now"],
            str(second["reserved"]), str(second["short"])) == (
        2, "AVG-1", "WH-1", 0, "0.000", "1.000")
    stock_bin = shop.stock_bin("FIFO-1", "WH-1")
    assert stock_bin is not None
    assert (str(stock_bin.quantity_reserved), str(stock_bin.quantity_available)) == (
        "6.000", "0.000")


def test_nothing_reserved_now_is_written_with_three_places_like_every_quantity(
        shop: Ledger) -> None:
    stock(shop, "FIFO-1", "10", "2")
    # Line 1 gets its 1 now; line 2 has no bin to reserve from and gets nothing, which is
    # written like any other quantity (3 places), as `reserved` and `short` are.
    order_id = place(shop, ("FIFO-1", "WH-1", "1", "6"), ("AVG-1", "WH-2", "1", "4"))

    result = review(shop, order_id)

    assert [str(r["reserved_now"]) for r in result["reservations"]] == ["1.000", "0.000"]


def test_a_reserve_takes_what_arrived_since_and_appends_nothing_when_nothing_came(
        shop: Ledger) -> None:
    stock(shop, "FIFO-1", "6", "2")
    order_id = place(shop)
    review(shop, order_id)
    head = shop.head_position()

    nothing = shop.reserve_sales_order(p.OrderStep(order_id=order_id), META)

    assert (nothing.position, shop.head_position()) == (head, head)
    assert [str(r["reserved_now"]) for r in nothing.data["reservations"]] == ["0.000"]
    stock(shop, "FIFO-1", "5", "3")

    result = shop.reserve_sales_order(p.OrderStep(order_id=order_id), META)

    assert [(str(r["reserved_now"]), str(r["reserved"]), str(r["short"]))
            for r in result.data["reservations"]] == [("4.000", "10.000", "0.000")]
    assert result.data["status"] == "approved"


def test_a_pending_or_cancelled_order_cannot_reserve(shop: Ledger) -> None:
    stock(shop, "FIFO-1", "6", "2")
    pending = place(shop)
    cancelled = place(shop, ("FIFO-1", "WH-1", "1", "6"))
    review(shop, cancelled)
    shop.cancel_sales_order(p.OrderStep(order_id=cancelled), META)

    for order_id, status in ((pending, "pending_review"), (cancelled, "cancelled")):
        with pytest.raises(InvalidTransition) as refusal:
            shop.reserve_sales_order(p.OrderStep(order_id=order_id), META)
        assert (refusal.value.status, refusal.value.action) == (status, "reserve")


def test_an_order_goes_from_stock_to_cash_and_back_at_cost(shop: Ledger) -> None:
    stock(shop, "FIFO-1", "4", "2")
    stock(shop, "FIFO-1", "6", "3")
    order_id = place(shop)
    review(shop, order_id)

    dispatched = shop.dispatch_sales_order(p.Quantities(order_id=order_id, quantities=()),
                                           META)

    # FIFO: 4 × 2.00 + 6 × 3.00 = 26.00 for the 10.
    [line] = dispatched.lines
    assert (str(line["quantity"]), str(line["value"]), str(line["quantity_on_hand_after"])) == (
        "10.000", "26.00", "0.000")
    events = shop.repository.event_store.get(bin_id("FIFO-1", "WH-1"))
    out = [event for event in events if isinstance(event, StockBin.Dispatched)]
    assert [(e.order_id, e.order_line, str(e.value)) for e in out] == [(order_id, 1, "26.00")]
    shop.ship_sales_order(s.Ship(order_id=order_id, carrier="DHL", tracking_number="T-1"),
                          META)
    shop.deliver_sales_order(s.Deliver(order_id=order_id, signed_by="Ann"), META)

    # At the order's price 6: 10 × 6 = 60.00, tax 60.00 × 0.13 = 7.80.
    invoiced = shop.invoice_sales_order(p.Invoice(
        order_id=order_id, invoice_number="INV-1", lines=((1, D("10"), None, D("0.13")),)),
        META)
    assert (invoiced.data["status"], str(invoiced.data["outstanding"])) == ("invoiced",
                                                                             "67.80")

    returned = shop.return_sales_order(p.Quantities(
        order_id=order_id, quantities=((1, D("5")),), reason="damaged"), META)

    # Back at 26.00 × 5/10 = 13.00 (2.60 each); credit 30.00 + 3.90 tax.
    [back] = returned.lines
    assert (str(back["quantity"]), str(back["unit_cost"]), str(back["value"]),
            str(back["quantity_on_hand_after"]), str(back["value_after"])) == (
        "5.000", "2.600000", "13.00", "5.000", "13.00")
    note = returned.data["credit_note"]
    assert (str(note["amount"]), str(note["tax"]), str(note["total"])) == (
        "30.00", "3.90", "33.90")
    assert note["number"] == f"CN-{returned.document_id}"
    paid = shop.pay_sales_order(p.Payment(order_id=order_id, amount=D("33.90")), META)
    assert (paid.data["status"], str(paid.data["outstanding"])) == ("paid", "0.00")


def test_an_invoice_line_defaults_to_the_order_price(shop: Ledger) -> None:
    stock(shop, "FIFO-1", "10", "2")
    order_id = delivered(shop, ("FIFO-1", "WH-1", "3", "2.675"))

    result = shop.invoice_sales_order(p.Invoice(
        order_id=order_id, invoice_number="INV-1", lines=((1, D("3"), None, D("0")),)), META)

    # 3 × 2.675 = 8.025 → 8.03.
    assert str(result.data["outstanding"]) == "8.03"


def test_a_return_needs_a_reason_and_a_rejection_too(shop: Ledger) -> None:
    stock(shop, "FIFO-1", "10", "2")
    order_id = delivered(shop)
    other = place(shop, ("FIFO-1", "WH-1", "1", "6"))

    with pytest.raises(InvalidInput) as refusal:
        shop.return_sales_order(p.Quantities(order_id=order_id, quantities=((1, D(1)),)), META)
    assert refusal.value.field == "reason"
    with pytest.raises(InvalidInput) as refusal:
        review(shop, other, approved=False)
    assert refusal.value.field == "reason"


def test_an_unknown_order_is_refused_by_every_command(shop: Ledger) -> None:
    unknown = uuid4()
    commands: list[Callable[[], object]] = [
        lambda: review(shop, unknown),
        lambda: shop.reserve_sales_order(p.OrderStep(order_id=unknown), META),
        lambda: shop.dispatch_sales_order(p.Quantities(order_id=unknown, quantities=()), META),
        lambda: shop.ship_sales_order(s.Ship(order_id=unknown, carrier="DHL",
                                             tracking_number="T"), META),
        lambda: shop.deliver_sales_order(s.Deliver(order_id=unknown, signed_by="Ann"), META),
        lambda: shop.invoice_sales_order(p.Invoice(
            order_id=unknown, invoice_number="I", lines=((1, D(1), None, D(0)),)), META),
        lambda: shop.pay_sales_order(p.Payment(order_id=unknown, amount=D(1)), META),
        lambda: shop.return_sales_order(p.Quantities(order_id=unknown, quantities=((1, D(1)),),
                                                     reason="bad"), META),
        lambda: shop.cancel_sales_order(p.OrderStep(order_id=unknown), META),
        lambda: shop.sales_order(unknown),
    ]
    for command in commands:
        with pytest.raises(UnknownOrder):
            command()


def test_a_purchase_order_is_not_a_sales_order(shop: Ledger) -> None:
    result = shop.create_purchase_order(p.CreateOrder(supplier="SUP-1", lines=(
        p.OrderLine("FIFO-1", "WH-1", D("1"), D("1")),)), META)

    with pytest.raises(UnknownOrder):
        shop.sales_order(result.data["order_id"])
    with pytest.raises(UnknownOrder):
        review(shop, result.data["order_id"])


# Credit: the customer's other approved orders, never more than the limit.

KIOSK = "CUS-2"  # credit limit 100.00


def kiosk_order(ledger: Ledger, amount: str, price: str = "1") -> UUID:
    return place(ledger, ("FIFO-1", "WH-1", amount, price), customer=KIOSK)


def test_the_credit_limit_counts_other_approved_orders_not_pending_ones(shop: Ledger) -> None:
    approved = kiosk_order(shop, "60")
    pending = kiosk_order(shop, "90")
    review(shop, approved)
    assert exposures(shop, KIOSK) == {str(approved): "60.00"}

    # 60.00 approved + 40.00 = 100.00: exactly the limit. The 90.00 pending counts nothing.
    exact = kiosk_order(shop, "40")
    assert review(shop, exact)["status"] == "backordered"
    head = shop.head_position()

    # Now 100.00 approved: the pending 90.00 is too much.
    with pytest.raises(CreditLimitExceeded) as refusal:
        review(shop, pending)

    assert refusal.value.facts() == {"customer": KIOSK, "credit_limit": "100.00",
                                     "exposure": "100.00", "order_exposure": "90.00"}
    assert shop.head_position() == head
    assert shop.sales_order(pending).status == "pending_review"


def test_one_cent_over_the_limit_is_refused(shop: Ledger) -> None:
    review(shop, kiosk_order(shop, "60"))
    order_id = kiosk_order(shop, "40.001", "1")

    # 40.001 × 1 = 40.001 → 40.00: exactly the limit with the 60.00. Then 1 × 0.01 is over.
    assert review(shop, order_id)["status"] == "backordered"
    with pytest.raises(CreditLimitExceeded) as refusal:
        review(shop, kiosk_order(shop, "1", "0.01"))
    assert (str(refusal.value.exposure), str(refusal.value.order_exposure)) == (
        "100.00", "0.01")


def test_rejected_and_cancelled_orders_free_the_credit(shop: Ledger) -> None:
    first = kiosk_order(shop, "60")
    review(shop, first)
    second = kiosk_order(shop, "50")
    with pytest.raises(CreditLimitExceeded):
        review(shop, second)

    shop.cancel_sales_order(p.OrderStep(order_id=first, reason="wrong order"), META)

    assert exposures(shop, KIOSK) == {}
    assert review(shop, second)["status"] == "backordered"
    third = kiosk_order(shop, "50", "1.01")
    # 50 × 1.01 = 50.50: 50.00 + 50.50 is over.
    with pytest.raises(CreditLimitExceeded):
        review(shop, third)
    review(shop, third, approved=False, reason="over limit")
    assert exposures(shop, KIOSK) == {str(second): "50.00"}


def test_payments_free_the_credit_and_an_invoice_with_tax_takes_more(shop: Ledger) -> None:
    stock(shop, "FIFO-1", "100", "0.5")
    order_id = delivered(shop, ("FIFO-1", "WH-1", "60", "1"), customer=KIOSK)
    # 60 × 1 = 60.00, tax 60.00 × 0.1 = 6.00: 66.00 invoiced, more than the 60.00 ordered.
    shop.invoice_sales_order(p.Invoice(order_id=order_id, invoice_number="INV-1",
                                       lines=((1, D("60"), None, D("0.1")),)), META)
    assert exposures(shop, KIOSK) == {str(order_id): "66.00"}
    other = kiosk_order(shop, "35")

    # 66.00 + 35.00 = 101.00.
    with pytest.raises(CreditLimitExceeded) as refusal:
        review(shop, other)
    assert str(refusal.value.exposure) == "66.00"

    shop.pay_sales_order(p.Payment(order_id=order_id, amount=D("1.00")), META)

    # 65.00 + 35.00 = 100.00.
    assert exposures(shop, KIOSK) == {str(order_id): "65.00"}
    assert review(shop, other)["status"] == "approved"


def test_a_credit_note_frees_the_credit(shop: Ledger) -> None:
    stock(shop, "FIFO-1", "100", "0.5")
    order_id = delivered(shop, ("FIFO-1", "WH-1", "60", "1"), customer=KIOSK)
    shop.invoice_sales_order(p.Invoice(order_id=order_id, invoice_number="INV-1",
                                       lines=((1, D("60"), None, D("0")),)), META)
    other = kiosk_order(shop, "50")
    # 60.00 + 50.00 = 110.00.
    with pytest.raises(CreditLimitExceeded):
        review(shop, other)

    shop.return_sales_order(p.Quantities(order_id=order_id, quantities=((1, D("20")),),
                                         reason="damaged"), META)

    # 60.00 invoiced less 20.00 credited; 40.00 + 50.00 = 90.00.
    assert exposures(shop, KIOSK) == {str(order_id): "40.00"}
    assert review(shop, other)["status"] == "approved"


def test_a_customer_without_a_limit_has_no_credit_check(shop: Ledger) -> None:
    order_id = place(shop, ("FIFO-1", "WH-1", "1000000", "1000"))

    assert review(shop, order_id)["status"] == "backordered"
    assert exposures(shop, "CUS-1") == {str(order_id): "1000000000.00"}
