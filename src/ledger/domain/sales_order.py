"""`SalesOrder` (销售订单): placed, reviewed, reserved, dispatched, shipped, delivered, paid.

The order keeps, per line, what was ordered and what is reserved, dispatched (with the
cost it went out at), shipped, delivered, invoiced, returned and credited; every
transition checks those figures and refuses what is out of order. Reservations,
dispatches and returns move stock on the bins in the same `save()` (see
`ledger/selling.py`).
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

from eventsourcing.domain import Aggregate

from ledger.errors import InvalidInput, InvalidTransition, OrderLimitExceeded
from ledger.numbers import ZERO, ZERO_MONEY, ZERO_QUANTITY, extend, money, share

Line = dict[str, Any]
FIGURES = ("reserved", "dispatched", "shipped", "delivered", "invoiced", "returned", "credited")
MONEY_FIGURES = ("dispatched_value", "returned_value", "invoiced_amount", "invoiced_tax",
                 "credited_amount", "credited_tax")


class SalesFigures:
    """An order's per-line figures and money, and what they say: shared with the read model.

    The order's events apply to this state alone, so the sales-order read model folds
    them with the very same code as the aggregate.
    """

    def __init__(self, lines: list[Line]) -> None:
        self.lines = {int(line["line_number"]): {
            **line, **dict.fromkeys(FIGURES, ZERO_QUANTITY),
            **dict.fromkeys(MONEY_FIGURES, ZERO_MONEY)}
            for line in lines}
        self.review_outcome: str | None = None
        self.invoiced_total = ZERO_MONEY
        self.credited_total = ZERO_MONEY
        self.paid = ZERO_MONEY
        self.cancelled = False

    def add(self, lines: list[Line], **signs: int) -> None:
        """Add (or, with sign -1, subtract) each line's quantity to the named figures."""
        for line in lines:
            held = self.lines[int(line["line_number"])]
            for figure, sign in signs.items():
                held[figure] = held[figure] + sign * line["quantity"]

    def add_money(self, lines: list[Line], **fields: str) -> None:
        """Add each line's recorded money fields to the named money figures."""
        for line in lines:
            held = self.lines[int(line["line_number"])]
            for figure, field in fields.items():
                held[figure] = held[figure] + line[field]

    @property
    def status(self) -> str:
        return sales_status(self.review_outcome, self.cancelled, list(self.lines.values()),
                            self.invoiced_total, self.credited_total, self.paid)

    @property
    def outstanding(self) -> Decimal:
        """What the customer owes: invoiced less credited less paid (negative: a refund due)."""
        return self.invoiced_total - self.credited_total - self.paid

    def short(self) -> dict[int, Decimal]:
        """Per line, what is ordered but neither reserved nor dispatched (back-ordered)."""
        return {number: line["quantity"] - line["dispatched"] - line["reserved"]
                for number, line in self.lines.items()}


class SalesOrder(Aggregate, SalesFigures):
    """A sales order and where it stands."""

    TOPIC = "ledger:SalesOrder"

    class Event(Aggregate.Event):
        TOPIC = "ledger:SalesOrder.Event"

    class Placed(Aggregate.Created):
        TOPIC = "ledger:SalesOrder.Placed"
        customer: str
        lines: list[Line]
        reference: str | None
        note: str | None
        possible_duplicate_of: list[UUID]
        actor: str

    class Reviewed(Event):
        TOPIC = "ledger:SalesOrder.Reviewed"
        approved: bool
        reviewer: str
        reason: str | None
        duplicate_confirmed: bool

        def apply(self, order: SalesFigures) -> None:
            order.review_outcome = "approved" if self.approved else "rejected"

    class Reserved(Event):
        TOPIC = "ledger:SalesOrder.Reserved"
        document_id: UUID
        lines: list[Line]
        actor: str

        def apply(self, order: SalesFigures) -> None:
            order.add(self.lines, reserved=1)

    class ReservationsReleased(Event):
        TOPIC = "ledger:SalesOrder.ReservationsReleased"
        document_id: UUID
        lines: list[Line]
        reason: str
        actor: str

        def apply(self, order: SalesFigures) -> None:
            order.add(self.lines, reserved=-1)

    class Dispatched(Event):
        TOPIC = "ledger:SalesOrder.Dispatched"
        customer: str
        document_id: UUID
        lines: list[Line]
        actor: str
        effective_at: datetime

        def apply(self, order: SalesFigures) -> None:
            order.add(self.lines, reserved=-1, dispatched=1)
            order.add_money(self.lines, dispatched_value="value")

    class Shipped(Event):
        TOPIC = "ledger:SalesOrder.Shipped"
        document_id: UUID
        carrier: str
        tracking_number: str
        lines: list[Line]
        actor: str
        effective_at: datetime

        def apply(self, order: SalesFigures) -> None:
            order.add(self.lines, shipped=1)

    class Delivered(Event):
        TOPIC = "ledger:SalesOrder.Delivered"
        document_id: UUID
        signed_by: str
        signed_at: datetime
        lines: list[Line]
        actor: str

        def apply(self, order: SalesFigures) -> None:
            order.add(self.lines, delivered=1)

    class Invoiced(Event):
        TOPIC = "ledger:SalesOrder.Invoiced"
        customer: str
        document_id: UUID
        invoice_number: str
        lines: list[Line]
        amount: Decimal
        tax: Decimal
        total: Decimal
        actor: str
        effective_at: datetime

        def apply(self, order: SalesFigures) -> None:
            order.add(self.lines, invoiced=1)
            order.add_money(self.lines, invoiced_amount="amount", invoiced_tax="tax")
            order.invoiced_total += self.total

    class Paid(Event):
        TOPIC = "ledger:SalesOrder.Paid"
        customer: str
        payment_id: UUID
        amount: Decimal
        reference: str | None
        actor: str
        effective_at: datetime

        def apply(self, order: SalesFigures) -> None:
            order.paid += self.amount

    class Returned(Event):
        """Goods back from the customer at the cost they went out at, with the credit note."""

        TOPIC = "ledger:SalesOrder.Returned"
        customer: str
        document_id: UUID
        credit_note_number: str
        lines: list[Line]
        credit_amount: Decimal
        credit_tax: Decimal
        credit_total: Decimal
        reason: str
        actor: str
        effective_at: datetime

        def apply(self, order: SalesFigures) -> None:
            order.add(self.lines, returned=1)
            order.add([{"line_number": line["line_number"], "quantity": line["credited_quantity"]}
                       for line in self.lines], credited=1)
            order.add_money(self.lines, returned_value="value", credited_amount="credit_amount",
                            credited_tax="credit_tax")
            order.credited_total += self.credit_total

    class Cancelled(Event):
        TOPIC = "ledger:SalesOrder.Cancelled"
        reason: str | None
        actor: str

        def apply(self, order: SalesFigures) -> None:
            order.cancelled = True

    def __init__(self, customer: str, lines: list[Line], reference: str | None,
                 note: str | None, possible_duplicate_of: list[UUID]) -> None:
        SalesFigures.__init__(self, lines)
        self.customer = customer
        self.reference = reference
        self.note = note
        self.possible_duplicate_of = list(possible_duplicate_of)

    @classmethod
    def place(cls, order_id: UUID, customer: str, lines: list[Line], reference: str | None,
              note: str | None, possible_duplicate_of: list[UUID], actor: str,
              at: datetime) -> SalesOrder:
        return cls._create(cls.Placed, id=order_id, timestamp=at, customer=customer,
                           lines=lines, reference=reference, note=note,
                           possible_duplicate_of=possible_duplicate_of, actor=actor)

    # What the order says about itself.

    @property
    def value(self) -> Decimal:
        """The ordered value at the order's prices (before tax)."""
        return sum((extend(line["quantity"], line["unit_price"] or ZERO)
                    for line in self.lines.values()), ZERO_MONEY)

    def exposure(self, approved: bool | None = None) -> Decimal:
        """What this order puts on the customer's credit: see `order_exposure`."""
        approved = self.review_outcome == "approved" if approved is None else approved
        return order_exposure(approved and not self.cancelled, self.value, self.invoiced_total,
                              self.credited_total, self.paid)

    def line(self, line_number: int) -> Line:
        if line_number not in self.lines:
            raise InvalidInput(f"Sales order {self.id} has no line {line_number}.", "lines")
        return self.lines[line_number]

    def require(self, action: str, *allowed: str) -> None:
        if self.status not in allowed:
            raise InvalidTransition(str(self.id), self.status, action)

    def require_open(self, action: str) -> None:
        """Refuse unless the order was approved and not cancelled."""
        if self.review_outcome != "approved" or self.cancelled:
            raise InvalidTransition(str(self.id), self.status, action)

    # Transitions.

    def review(self, approved: bool, reviewer: str, reason: str | None,
               duplicate_confirmed: bool) -> None:
        """Approve or reject (订单审核); only an order pending review."""
        self.require("approve" if approved else "reject", "pending_review")
        self.trigger_event(self.Reviewed, approved=approved, reviewer=reviewer, reason=reason,
                           duplicate_confirmed=duplicate_confirmed)

    def record_reservations(self, reserved: dict[int, Decimal], document_id: UUID,
                            actor: str) -> None:
        lines = [{"line_number": number, "quantity": quantity}
                 for number, quantity in reserved.items() if quantity > ZERO]
        if lines:
            self.trigger_event(self.Reserved, document_id=document_id, lines=lines, actor=actor)

    def record_releases(self, released: dict[int, Decimal], reason: str, document_id: UUID,
                        actor: str) -> None:
        lines = [{"line_number": number, "quantity": quantity}
                 for number, quantity in released.items() if quantity > ZERO]
        if lines:
            self.trigger_event(self.ReservationsReleased, document_id=document_id, lines=lines,
                               reason=reason, actor=actor)

    def check_dispatch(self, quantities: dict[int, Decimal]) -> None:
        """Refuse a dispatch of more than a line has reserved (reserved stock only)."""
        self.require_open("dispatch")
        for number, quantity in quantities.items():
            held = self.line(number)
            if quantity > held["reserved"]:
                raise OrderLimitExceeded(
                    "over_shipment", str(self.id), number,
                    f"Line {number} has {held['reserved']} reserved to dispatch "
                    f"({held['quantity'] - held['dispatched']} not yet dispatched).")

    def record_dispatch(self, lines: list[Line], document_id: UUID, actor: str,
                        at: datetime) -> None:
        self.trigger_event(self.Dispatched, customer=self.customer, document_id=document_id,
                           lines=lines, actor=actor,
                           effective_at=at)

    def ship(self, carrier: str, tracking_number: str, document_id: UUID, actor: str,
             at: datetime) -> list[Line]:
        """Hand everything dispatched and not yet shipped to a carrier (发货)."""
        lines = self._pending("shipped", "dispatched", "ship")
        self.trigger_event(self.Shipped, document_id=document_id, carrier=carrier,
                           tracking_number=tracking_number, lines=lines, actor=actor,
                           effective_at=at)
        return lines

    def deliver(self, signed_by: str, signed_at: datetime, document_id: UUID,
                actor: str) -> list[Line]:
        """The customer signed for everything shipped and not yet delivered (客户签收)."""
        lines = self._pending("delivered", "shipped", "deliver")
        self.trigger_event(self.Delivered, document_id=document_id, signed_by=signed_by,
                           signed_at=signed_at, lines=lines, actor=actor)
        return lines

    def _pending(self, figure: str, before: str, action: str) -> list[Line]:
        self.require_open(action)
        lines = [{"line_number": number, "quantity": line[before] - line[figure]}
                 for number, line in self.lines.items() if line[before] > line[figure]]
        if not lines:
            raise InvalidTransition(str(self.id), self.status, action)
        return lines

    def billable(self, line_number: int) -> Decimal:
        """Delivered, kept and not yet (net) invoiced."""
        held = self.line(line_number)
        return Decimal(held["delivered"] - held["returned"] - held["invoiced"] + held["credited"])

    def invoice(self, invoice_number: str, lines: list[Line], document_id: UUID, actor: str,
                at: datetime) -> None:
        """Bill the customer: never more than was delivered and kept, per line."""
        self.require_open("invoice")
        billed = []
        for line in lines:
            number = line["line_number"]
            if line["quantity"] > self.billable(number):
                raise OrderLimitExceeded("over_invoice", str(self.id), number,
                                         f"Line {number} has {self.billable(number)} delivered "
                                         "and not yet invoiced.")
            amount = extend(line["quantity"], line["unit_price"])
            held = self.lines[number]
            billed.append({**line, "sku": held["sku"], "location": held["location"],
                           "amount": amount, "tax": money(amount * line["tax_rate"])})
        amount = sum((line["amount"] for line in billed), ZERO_MONEY)
        tax = sum((line["tax"] for line in billed), ZERO_MONEY)
        self.trigger_event(self.Invoiced, customer=self.customer, document_id=document_id,
                           invoice_number=invoice_number, lines=billed, amount=amount, tax=tax,
                           total=amount + tax, actor=actor, effective_at=at)

    def pay(self, amount: Decimal, payment_id: UUID, reference: str | None, actor: str,
            at: datetime) -> None:
        """The customer paid: never more than is owed."""
        self.require_open("pay")
        if amount > self.outstanding:
            raise OrderLimitExceeded("over_payment", str(self.id), None,
                                     f"Only {max(self.outstanding, ZERO_MONEY)} is owed.")
        self.trigger_event(self.Paid, customer=self.customer, payment_id=payment_id,
                           amount=amount,
                           reference=reference, actor=actor, effective_at=at)

    def take_back(self, quantities: dict[int, Decimal], reason: str, document_id: UUID,
                  actor: str, at: datetime) -> list[Line]:
        """A customer return (退货): at the cost it went out at, with a credit note."""
        self.require_open("return")
        lines = [self._returned_line(number, quantity) for number, quantity in quantities.items()]
        amount = sum((line["credit_amount"] for line in lines), ZERO_MONEY)
        tax = sum((line["credit_tax"] for line in lines), ZERO_MONEY)
        self.trigger_event(self.Returned, customer=self.customer, document_id=document_id,
                           credit_note_number=f"CN-{document_id}", lines=lines,
                           credit_amount=amount, credit_tax=tax, credit_total=amount + tax,
                           reason=reason, actor=actor, effective_at=at)
        return lines

    def _returned_line(self, number: int, quantity: Decimal) -> Line:
        held = self.line(number)
        returnable = held["delivered"] - held["returned"]
        if quantity > returnable:
            raise OrderLimitExceeded("over_return", str(self.id), number,
                                     f"Line {number} has {returnable} delivered and kept.")
        out_quantity = held["dispatched"] - held["returned"]
        out_value = held["dispatched_value"] - held["returned_value"]
        credited_quantity = min(quantity, held["invoiced"] - held["credited"])
        return {"line_number": number, "sku": held["sku"], "location": held["location"],
                "quantity": quantity, "value": share(out_value, quantity, out_quantity),
                "credited_quantity": credited_quantity,
                "credit_amount": share(held["invoiced_amount"] - held["credited_amount"],
                                        credited_quantity, held["invoiced"] - held["credited"]),
                "credit_tax": share(held["invoiced_tax"] - held["credited_tax"],
                                     credited_quantity, held["invoiced"] - held["credited"])}

    def cancel(self, reason: str | None, actor: str, document_id: UUID) -> dict[int, Decimal]:
        """Cancel before anything was dispatched; returns the reservations to release."""
        self.require("cancel", "pending_review", "approved", "backordered")
        releases = {number: line["reserved"] for number, line in self.lines.items()
                    if line["reserved"] > ZERO}
        self.record_releases(releases, "order cancelled", document_id, actor)
        self.trigger_event(self.Cancelled, reason=reason, actor=actor)
        return releases


def order_exposure(open_approved: bool, value: Decimal, invoiced_total: Decimal,
                   credited_total: Decimal, paid: Decimal) -> Decimal:
    """What an order puts on the customer's credit.

    An approved, open order counts for the larger of its ordered value and what was
    invoiced on it, less what was credited and paid; other orders count for nothing.
    """
    if not open_approved:
        return ZERO_MONEY
    return max(max(value, invoiced_total) - credited_total - paid, ZERO_MONEY)


def sales_status(review: str | None, cancelled: bool, lines: list[Line],
                 invoiced_total: Decimal, credited_total: Decimal, paid: Decimal) -> str:
    """A sales order's status from its figures (shared with the order read model)."""
    if cancelled:
        return "cancelled"
    if review is None:
        return "pending_review"
    if review == "rejected":
        return "rejected"

    def total(figure: str) -> Decimal:
        return sum((Decimal(line[figure]) for line in lines), ZERO)

    if total("dispatched") == ZERO:
        short = any(Decimal(line["reserved"]) < Decimal(line["quantity"]) for line in lines)
        return "backordered" if short else "approved"
    if any(Decimal(line["dispatched"]) < Decimal(line["quantity"]) for line in lines):
        return "partially_dispatched"
    if total("shipped") < total("dispatched"):
        return "dispatched"
    if total("delivered") < total("shipped"):
        return "shipped"
    if total("returned") == total("delivered"):
        return "returned"
    if invoiced_total == ZERO:
        return "delivered"
    if paid >= invoiced_total - credited_total:
        return "paid"
    return "partially_paid" if paid > ZERO else "invoiced"
