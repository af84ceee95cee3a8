"""Purchase orders (采购订单): given the order's events, when a command, then events or a refusal.

The aggregate tests drive `PurchaseOrder` alone; the ledger tests at the end go through
`Ledger` for what needs other aggregates (the supplier, the bins) or the command checks.
Money is worked out by hand: amount = round(quantity × price, 2) per line, tax =
round(amount × rate, 2) per line, total = amount + tax, all half up.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from decimal import Decimal
from typing import Any
from uuid import UUID, uuid4

import pytest

from ledger import purchasing as p
from ledger.application import Ledger
from ledger.config import store_environment
from ledger.domain.context import CommandMeta
from ledger.domain.identity import bin_id, item_id
from ledger.domain.item import ItemDetails
from ledger.domain.party import PartyDetails
from ledger.domain.purchase_order import PurchaseOrder
from ledger.domain.stock_bin import StockBin
from ledger.errors import (
    InvalidInput,
    InvalidTransition,
    LedgerError,
    OrderLimitExceeded,
    UnknownOrder,
    UnknownParty,
)
from ledger.numbers import extend, quantity, unit_cost
from unit.support import RECORDED_AT, rebuilt

D = Decimal
ORDER_ID = UUID("00000000-0000-4000-8000-0000000000a1")
Step = Callable[[PurchaseOrder], object]


def order_line(number: int, sku: str, location: str, ordered: str, price: str) -> dict[str, Any]:
    return {"line_number": number, "sku": sku, "location": location,
            "quantity": quantity(D(ordered)), "unit_price": unit_cost(D(price))}


LINES = [order_line(1, "SKU-1", "WH-1", "10", "2.675"),
         order_line(2, "SKU-2", "WH-2", "7", "1.5")]


def approve(reason: str | None = None) -> Step:
    return lambda order: order.review(True, "reviewer", reason)


def reject(reason: str = "price too high") -> Step:
    return lambda order: order.review(False, "reviewer", reason)


def receive(*pairs: tuple[int, str], tolerance: str = "0") -> Step:
    return lambda order: order.receive({n: quantity(D(q)) for n, q in pairs}, D(tolerance),
                                       uuid4(), "clerk", RECORDED_AT)


def return_goods(*pairs: tuple[int, str]) -> Step:
    """Check the return, then record it at the receipt cost (as the bins would take it)."""

    def step(order: PurchaseOrder) -> None:
        lines = order.return_goods({n: quantity(D(q)) for n, q in pairs})
        order.record_return([{**line, "value": extend(line["quantity"], line["unit_cost"])}
                             for line in lines], "damaged", uuid4(), "clerk", RECORDED_AT)

    return step


def invoice(*lines: tuple[int, str, str, str], number: str = "INV-1") -> Step:
    """Invoice lines as (line number, quantity, unit price, tax rate)."""
    return lambda order: order.invoice(number, [
        {"line_number": n, "quantity": quantity(D(q)), "unit_price": unit_cost(D(price)),
         "tax_rate": D(rate)} for n, q, price, rate in lines], "accountant")


def pay(amount: str) -> Step:
    return lambda order: order.pay(D(amount), uuid4(), "BANK-1", "accountant")


def cancel() -> Step:
    return lambda order: order.end("cancelled", "no longer needed", "buyer")


def close() -> Step:
    return lambda order: order.end("closed", None, "buyer")


def history(*steps: Step) -> list[Any]:
    order = PurchaseOrder.create(ORDER_ID, "SUP-1", LINES, "PO-1", "urgent", "buyer",
                                 RECORDED_AT)
    for step in steps:
        step(order)
    return list(order.collect_events())


def given(*steps: Step) -> PurchaseOrder:
    order = rebuilt(history(*steps))
    assert isinstance(order, PurchaseOrder)
    return order


def when(order: PurchaseOrder, step: Step) -> list[Any]:
    step(order)
    return list(order.collect_events())


def refused(order: PurchaseOrder, step: Step, error: type[LedgerError]) -> Any:
    """The command is refused and the order records nothing."""
    version, status = order.version, order.status
    with pytest.raises(error) as refusal:
        step(order)
    assert list(order.collect_events()) == []
    assert (order.version, order.status) == (version, status)
    return refusal.value


def figures(order: PurchaseOrder) -> dict[int, tuple[str, str, str]]:
    """Per line: received, returned, invoiced, as written."""
    return {n: (str(line["received"]), str(line["returned"]), str(line["invoiced"]))
            for n, line in order.lines.items()}


FULLY_RECEIVED = (approve(), receive((1, "10"), (2, "7")))


# Events.


def test_a_new_order_records_its_supplier_and_lines_and_waits_for_review() -> None:
    [created] = history()

    assert isinstance(created, PurchaseOrder.Created)
    assert (created.originator_id, created.supplier, created.reference, created.note,
            created.actor) == (ORDER_ID, "SUP-1", "PO-1", "urgent", "buyer")
    assert created.lines == LINES
    order = given()
    assert order.status == "pending_review"
    assert figures(order) == {1: ("0", "0", "0"), 2: ("0", "0", "0")}


@pytest.mark.parametrize(("step", "approved", "reason", "status"), [
    (approve(), True, None, "approved"),
    (approve("checked prices"), True, "checked prices", "approved"),
    (reject("price too high"), False, "price too high", "rejected"),
])
def test_a_review_approves_or_rejects(step: Step, approved: bool, reason: str | None,
                                      status: str) -> None:
    order = given()

    [reviewed] = when(order, step)

    assert isinstance(reviewed, PurchaseOrder.Reviewed)
    assert (reviewed.approved, reviewed.reviewer, reviewed.reason) == (approved, "reviewer",
                                                                       reason)
    assert order.status == status


def test_a_receipt_records_each_line_at_the_order_price_valued_half_up() -> None:
    order = given(approve())

    [received] = when(order, receive((1, "3"), (2, "0.5")))

    assert isinstance(received, PurchaseOrder.GoodsReceived)
    assert (received.actor, received.effective_at) == ("clerk", RECORDED_AT)
    # 3 × 2.675 = 8.025 → 8.03; 0.5 × 1.5 = 0.75.
    assert [(line["line_number"], line["sku"], line["location"], str(line["quantity"]),
             str(line["unit_cost"]), str(line["value"])) for line in received.lines] == [
        (1, "SKU-1", "WH-1", "3.000", "2.675000", "8.03"),
        (2, "SKU-2", "WH-2", "0.500", "1.500000", "0.75")]
    assert order.status == "partially_received"
    assert figures(order) == {1: ("3.000", "0", "0"), 2: ("0.500", "0", "0")}


def test_receipts_add_up_and_the_order_is_received_when_every_line_is() -> None:
    order = given(approve(), receive((1, "4")), receive((1, "6"), (2, "3")))
    assert order.status == "partially_received"

    when(order, receive((2, "4")))

    assert order.status == "received"
    assert figures(order) == {1: ("10.000", "0", "0"), 2: ("7.000", "0", "0")}


def test_a_return_records_the_lines_at_the_order_price_with_its_reason() -> None:
    order = given(approve(), receive((1, "6")))

    [returned] = when(order, return_goods((1, "2.5")))

    assert isinstance(returned, PurchaseOrder.GoodsReturned)
    assert returned.reason == "damaged"
    assert [(line["line_number"], str(line["quantity"]), str(line["unit_cost"]))
            for line in returned.lines] == [(1, "2.500", "2.675000")]
    assert figures(order)[1] == ("6.000", "2.500", "0")


def test_an_invoice_is_valued_per_line_and_taxed_per_line_half_up() -> None:
    order = given(*FULLY_RECEIVED)

    # Line 1: 3 × 2.675 = 8.025 → 8.03, tax 8.03 × 0.13 = 1.0439 → 1.04.
    # Line 2 at the supplier's own price: 7 × 1.5 = 10.50, tax 10.50 × 0.05 = 0.525 → 0.53.
    [invoiced] = when(order, invoice((1, "3", "2.675", "0.13"), (2, "7", "1.5", "0.05")))

    assert isinstance(invoiced, PurchaseOrder.Invoiced)
    assert invoiced.invoice_number == "INV-1"
    assert [(line["line_number"], str(line["amount"]), str(line["tax"]))
            for line in invoiced.lines] == [(1, "8.03", "1.04"), (2, "10.50", "0.53")]
    assert (str(invoiced.amount), str(invoiced.tax), str(invoiced.total)) == (
        "18.53", "1.57", "20.10")
    assert order.status == "invoiced"
    assert str(order.outstanding) == "20.10"
    assert figures(order) == {1: ("10.000", "0", "3.000"), 2: ("7.000", "0", "7.000")}


def test_payments_reduce_what_is_owed_and_paying_it_all_makes_the_order_paid() -> None:
    order = given(*FULLY_RECEIVED, invoice((1, "3", "2.675", "0.13"), (2, "7", "1.5", "0.05")))

    [paid] = when(order, pay("20.00"))

    assert isinstance(paid, PurchaseOrder.Paid)
    assert (paid.amount, paid.reference, paid.actor) == (D("20.00"), "BANK-1", "accountant")
    assert (order.status, str(order.outstanding)) == ("invoiced", "0.10")
    when(order, pay("0.10"))
    assert (order.status, str(order.outstanding)) == ("paid", "0.00")


@pytest.mark.parametrize("steps", [(), (approve(),), (approve(), receive((1, "1")))],
                         ids=["pending_review", "approved", "partially_received"])
def test_an_order_can_be_cancelled_until_it_is_fully_received(steps: tuple[Step, ...]) -> None:
    order = given(*steps)

    [ended] = when(order, cancel())

    assert isinstance(ended, PurchaseOrder.Ended)
    assert (ended.outcome, ended.reason, ended.actor) == ("cancelled", "no longer needed",
                                                          "buyer")
    assert order.status == "cancelled"


@pytest.mark.parametrize("steps", [
    (approve(),), (approve(), receive((1, "1"))), FULLY_RECEIVED,
    (*FULLY_RECEIVED, invoice((1, "1", "1", "0"))),
    (*FULLY_RECEIVED, invoice((1, "1", "1", "0")), pay("1.00")),
], ids=["approved", "partially_received", "received", "invoiced", "paid"])
def test_an_order_can_be_closed_once_approved(steps: tuple[Step, ...]) -> None:
    order = given(*steps)

    [ended] = when(order, close())

    assert (ended.outcome, ended.reason) == ("closed", None)
    assert order.status == "closed"


def test_a_replayed_order_has_the_figures_of_the_live_one() -> None:
    steps = (*FULLY_RECEIVED, return_goods((2, "1")), invoice((1, "4", "2.675", "0.1")),
             pay("5"), close())
    live = PurchaseOrder.create(ORDER_ID, "SUP-1", LINES, None, None, "buyer", RECORDED_AT)
    for step in steps:
        step(live)

    replayed = given(*steps)

    assert (replayed.status, replayed.invoiced_total, replayed.paid, replayed.version) == (
        live.status, live.invoiced_total, live.paid, live.version) == (
        "closed", D("11.77"), D("5.00"), 7)
    assert figures(replayed) == figures(live)


# Refusals: steps out of order.

AFTER_CANCEL = (approve(), receive((1, "1")), cancel())
ANY_STEP = {"approve": approve(), "reject": reject(), "receive": receive((1, "1")),
            "return": return_goods((1, "1")), "invoice": invoice((1, "1", "1", "0")),
            "pay": pay("1"), "cancel": cancel(), "close": close()}


@pytest.mark.parametrize(("steps", "status", "action"), [
    ((approve(),), "approved", "approve"),
    ((approve(),), "approved", "reject"),
    ((reject(),), "rejected", "approve"),
    ((), "pending_review", "receive"),
    ((reject(),), "rejected", "receive"),
    ((approve(),), "approved", "return"),
    ((approve(),), "approved", "invoice"),
    ((approve(),), "approved", "pay"),
    ((), "pending_review", "close"),
    (FULLY_RECEIVED, "received", "cancel"),
    ((*FULLY_RECEIVED, close()), "closed", "receive"),
    ((*FULLY_RECEIVED, close()), "closed", "close"),
    ((*FULLY_RECEIVED, invoice((1, "1", "1", "0")), pay("1")), "paid", "pay"),
    *[(AFTER_CANCEL, "cancelled", action) for action in ANY_STEP],
    *[((reject(),), "rejected", action) for action in ("return", "invoice", "pay", "cancel",
                                                       "close")],
])
def test_a_step_out_of_order_is_an_invalid_transition(steps: tuple[Step, ...], status: str,
                                                      action: str) -> None:
    order = given(*steps)
    assert order.status == status

    error = refused(order, ANY_STEP[action], InvalidTransition)

    assert error.code == "invalid_transition"
    assert error.facts() == {"order_id": str(ORDER_ID), "order_status": status,
                             "action": action}


# Refusals: more than the order allows.


def limit(order: PurchaseOrder, step: Step, code: str, line_number: int | None) -> str:
    error: OrderLimitExceeded = refused(order, step, OrderLimitExceeded)
    assert error.code == code
    assert error.line_number == line_number
    return error.detail


def test_receiving_more_than_ordered_is_an_over_receipt_without_tolerance() -> None:
    order = given(approve(), receive((1, "6")))

    detail = limit(order, receive((2, "7"), (1, "4.001")), "over_receipt", 1)

    assert "4.000" in detail
    when(order, receive((1, "4")))
    assert figures(order)[1][0] == "10.000"


@pytest.mark.parametrize(("tolerance", "most"), [("0.1", "11"), ("0.05", "10.5"),
                                                 ("0.333", "13.33")])
def test_the_over_receipt_tolerance_is_a_fraction_of_the_ordered_quantity(
        tolerance: str, most: str) -> None:
    order = given(approve(), receive((1, "2"), tolerance=tolerance))
    rest = str(D(most) - 2)

    limit(order, receive((1, str(D(rest) + D("0.001"))), tolerance=tolerance),
          "over_receipt", 1)
    when(order, receive((1, rest), tolerance=tolerance))

    assert order.lines[1]["received"] == D(most)
    limit(order, receive((1, "0.001"), tolerance=tolerance), "over_receipt", 1)


def test_returning_more_than_was_received_and_kept_is_an_over_return() -> None:
    order = given(approve(), receive((1, "6")), return_goods((1, "2")))

    limit(order, return_goods((1, "4.001")), "over_return", 1)
    limit(order, return_goods((2, "0.001")), "over_return", 2)
    when(order, return_goods((1, "4")))
    assert figures(order)[1] == ("6.000", "6.000", "0")


def test_invoicing_more_than_was_received_less_returned_is_an_over_invoice() -> None:
    order = given(*FULLY_RECEIVED, return_goods((1, "3")), invoice((1, "5", "2.675", "0")))

    limit(order, invoice((1, "2.001", "2.675", "0")), "over_invoice", 1)
    limit(order, invoice((2, "7", "1.5", "0"), (1, "3", "2.675", "0")), "over_invoice", 1)
    when(order, invoice((1, "2", "2.675", "0"), number="INV-2"))
    assert figures(order)[1] == ("10.000", "3.000", "7.000")


def test_paying_more_than_is_owed_is_an_over_payment() -> None:
    # 7 × 1.5 = 10.50, tax 10.50 × 0.05 = 0.525 → 0.53: 11.03 owed.
    order = given(*FULLY_RECEIVED, invoice((2, "7", "1.5", "0.05")), pay("10"))

    detail = limit(order, pay("1.04"), "over_payment", None)

    assert "1.03" in detail
    when(order, pay("1.03"))
    assert order.status == "paid"


def test_a_return_never_leaves_more_invoiced_than_was_received_and_kept() -> None:
    # All 10 of line 1 received and billed: returning 4 must not leave 10 billed for 6 kept,
    # whether the return is refused or credits the invoice.
    order = given(*FULLY_RECEIVED, invoice((1, "10", "2.675", "0")))

    with contextlib.suppress(OrderLimitExceeded):
        when(order, return_goods((1, "4")))

    line = order.lines[1]
    assert line["invoiced"] <= line["received"] - line["returned"], figures(order)[1]


@pytest.mark.parametrize("step", [receive((3, "1")), return_goods((3, "1")),
                                  invoice((3, "1", "1", "0"))], ids=["receive", "return",
                                                                     "invoice"])
def test_a_line_the_order_does_not_have_is_invalid_input(step: Step) -> None:
    order = given(*FULLY_RECEIVED)

    error = refused(order, step, InvalidInput)

    assert error.field == "lines"


# Through the ledger: the supplier, the bins and the command checks.

META = CommandMeta("buyer")


@pytest.fixture
def supplied(ledger: Ledger) -> Ledger:
    ledger.register_party("SUP-1", PartyDetails("Tea Co.", ("supplier",)), META)
    ledger.register_party("CUS-1", PartyDetails("Shop", ("customer",)), META)
    return ledger


def create(ledger: Ledger, supplier: str = "SUP-1", sku: str = "FIFO-1") -> UUID:
    result = ledger.create_purchase_order(p.CreateOrder(supplier=supplier, lines=(
        p.OrderLine(sku, "WH-1", D("10"), D("2.5")),)), META)
    order_id: UUID = result.data["order_id"]
    return order_id


def received(ledger: Ledger, sku: str = "FIFO-1", amount: str = "10") -> UUID:
    order_id = create(ledger, sku=sku)
    ledger.review_purchase_order(p.Review(order_id=order_id, approved=True), META)
    ledger.receive_purchase_order(p.Quantities(order_id=order_id, quantities=((1, D(amount)),)),
                                  META)
    return order_id


@pytest.mark.parametrize(("supplier", "error"), [("NOBODY", UnknownParty),
                                                 ("CUS-1", InvalidInput)])
def test_an_order_needs_a_registered_supplier(supplied: Ledger, supplier: str,
                                              error: type[LedgerError]) -> None:
    head = supplied.head_position()

    with pytest.raises(error):
        create(supplied, supplier=supplier)

    assert supplied.head_position() == head


def test_a_receipt_puts_stock_in_the_bin_linked_to_the_order_and_its_line(
        supplied: Ledger) -> None:
    order_id = received(supplied, amount="4")

    opened, receipt = supplied.repository.event_store.get(bin_id("FIFO-1", "WH-1"))

    assert isinstance(opened, StockBin.Opened) and isinstance(receipt, StockBin.Received)
    assert (receipt.order_id, receipt.order_line, receipt.line_number) == (order_id, 1, 1)
    # 4 × 2.5 = 10.00 at the order's price.
    assert (receipt.quantity, receipt.unit_cost, receipt.value) == (D("4"), D("2.5"),
                                                                     D("10.00"))
    assert supplied.purchase_order(order_id).status == "partially_received"


def test_the_ledger_over_receipt_tolerance_applies_to_every_receipt(sqlite_url: str) -> None:
    with Ledger(store_environment(sqlite_url), over_receipt_tolerance=D("0.2")) as ledger:
        ledger.register_item("FIFO-1", ItemDetails("Bolt", "each", "fifo"), META)
        ledger.register_location("WH-1", "Main warehouse", META)
        ledger.register_party("SUP-1", PartyDetails("Tea Co.", ("supplier",)), META)
        # 10 ordered, 20 % over allowed: 12 in one receipt, then not a unit more.
        order_id = received(ledger, amount="12")
        with pytest.raises(OrderLimitExceeded):
            ledger.receive_purchase_order(p.Quantities(order_id=order_id,
                                                       quantities=((1, D("0.001")),)), META)
        assert ledger.purchase_order(order_id).status == "received"


def test_an_unknown_order_is_refused_by_every_command(supplied: Ledger) -> None:
    unknown = uuid4()
    commands: list[Callable[[], object]] = [
        lambda: supplied.review_purchase_order(p.Review(order_id=unknown, approved=True), META),
        lambda: supplied.receive_purchase_order(
            p.Quantities(order_id=unknown, quantities=((1, D(1)),)), META),
        lambda: supplied.return_purchase_order(
            p.Quantities(order_id=unknown, quantities=((1, D(1)),), reason="bad"), META),
        lambda: supplied.invoice_purchase_order(p.Invoice(
            order_id=unknown, invoice_number="I", lines=((1, D(1), None, D(0)),)), META),
        lambda: supplied.pay_purchase_order(p.Payment(order_id=unknown, amount=D(1)), META),
        lambda: supplied.end_purchase_order(p.End(order_id=unknown, outcome="closed"), META),
        lambda: supplied.purchase_order(unknown),
    ]
    for command in commands:
        with pytest.raises(UnknownOrder):
            command()


def test_an_id_that_is_not_an_order_is_an_unknown_order(supplied: Ledger) -> None:
    # The id of an item: the ledger must answer unknown_order, not fail an assertion.
    with pytest.raises(UnknownOrder):
        supplied.purchase_order(item_id("FIFO-1"))


def test_returns_and_rejections_need_a_reason(supplied: Ledger) -> None:
    order_id = received(supplied)
    other = create(supplied)

    with pytest.raises(InvalidInput) as refusal:
        supplied.return_purchase_order(p.Quantities(order_id=order_id,
                                                    quantities=((1, D(1)),)), META)
    assert refusal.value.field == "reason"
    with pytest.raises(InvalidInput):
        supplied.review_purchase_order(p.Review(order_id=other, approved=False), META)


def test_an_invoice_line_defaults_to_the_order_price_and_no_tax(supplied: Ledger) -> None:
    order_id = received(supplied)

    result = supplied.invoice_purchase_order(p.Invoice(
        order_id=order_id, invoice_number="INV-1", lines=((1, D("3"), None, D("0")),)), META)

    # 3 × 2.5 = 7.50, no tax.
    assert (result.data["status"], result.data["outstanding"]) == ("invoiced", D("7.50"))


def test_an_invoice_naming_a_line_twice_cannot_bill_more_than_was_received(
        supplied: Ledger) -> None:
    order_id = received(supplied)
    head = supplied.head_position()
    twice = ((1, D("6"), None, D("0")), (1, D("6"), None, D("0")))

    with pytest.raises(InvalidInput) as refusal:
        supplied.invoice_purchase_order(p.Invoice(order_id=order_id, invoice_number="INV-1",
                                                  lines=twice), META)

    assert refusal.value.field == "lines"
    assert supplied.head_position() == head
    assert supplied.purchase_order(order_id).lines[1]["invoiced"] == 0
