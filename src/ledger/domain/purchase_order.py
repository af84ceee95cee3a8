"""`PurchaseOrder` (采购订单): ordered, reviewed, received, billed, paid, returned, closed.

The order keeps, per line, what was ordered, received, returned and invoiced, and for
the whole order what was invoiced and paid; every transition checks those figures
and refuses what is out of order. Receipts and returns move stock through the bins
in the same `save()` (see `ledger/purchasing.py`).
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

from eventsourcing.domain import Aggregate

from ledger.errors import InvalidInput, InvalidTransition, OrderLimitExceeded
from ledger.numbers import ZERO, ZERO_MONEY, extend, money, share

Line = dict[str, Any]


class PurchaseOrder(Aggregate):
    """A purchase order and where it stands."""

    TOPIC = "ledger:PurchaseOrder"

    class Event(Aggregate.Event):
        TOPIC = "ledger:PurchaseOrder.Event"

    class Created(Aggregate.Created):
        TOPIC = "ledger:PurchaseOrder.Created"
        supplier: str
        lines: list[Line]
        reference: str | None
        note: str | None
        actor: str

    class Reviewed(Event):
        TOPIC = "ledger:PurchaseOrder.Reviewed"
        approved: bool
        reviewer: str
        reason: str | None

        def apply(self, order: PurchaseOrder) -> None:
            order.review_outcome = "approved" if self.approved else "rejected"

    class GoodsReceived(Event):
        TOPIC = "ledger:PurchaseOrder.GoodsReceived"
        document_id: UUID
        lines: list[Line]
        actor: str
        effective_at: datetime

        def apply(self, order: PurchaseOrder) -> None:
            order.add("received", self.lines)
            order.add_money("received_value", self.lines, "value")

    class GoodsReturned(Event):
        TOPIC = "ledger:PurchaseOrder.GoodsReturned"
        document_id: UUID
        lines: list[Line]
        reason: str
        actor: str
        effective_at: datetime

        def apply(self, order: PurchaseOrder) -> None:
            order.add("returned", self.lines)
            order.add_money("returned_value", self.lines, "value")

    class Invoiced(Event):
        """The supplier's invoice; each line clears `grni_value` of goods received not invoiced."""

        TOPIC = "ledger:PurchaseOrder.Invoiced"
        supplier: str
        document_id: UUID | None
        invoice_number: str
        lines: list[Line]
        amount: Decimal
        tax: Decimal
        total: Decimal
        actor: str
        effective_at: datetime | None

        def apply(self, order: PurchaseOrder) -> None:
            order.add("invoiced", self.lines)
            order.add_money("grni_cleared", self.lines, "grni_value")
            order.invoiced_total += self.total

    class Paid(Event):
        TOPIC = "ledger:PurchaseOrder.Paid"
        supplier: str
        payment_id: UUID
        amount: Decimal
        reference: str | None
        actor: str
        effective_at: datetime | None

        def apply(self, order: PurchaseOrder) -> None:
            order.paid += self.amount

    class Ended(Event):
        TOPIC = "ledger:PurchaseOrder.Ended"
        outcome: str
        reason: str | None
        actor: str

        def apply(self, order: PurchaseOrder) -> None:
            order.ended = self.outcome

    def __init__(self, supplier: str, lines: list[Line], reference: str | None,
                 note: str | None) -> None:
        self.supplier = supplier
        self.reference = reference
        self.note = note
        self.lines = {int(line["line_number"]): {
            **line, "received": ZERO, "returned": ZERO, "invoiced": ZERO,
            "received_value": ZERO_MONEY, "returned_value": ZERO_MONEY,
            "grni_cleared": ZERO_MONEY} for line in lines}
        self.review_outcome: str | None = None
        self.invoiced_total = ZERO_MONEY
        self.paid = ZERO_MONEY
        self.ended: str | None = None

    @classmethod
    def create(cls, order_id: UUID, supplier: str, lines: list[Line], reference: str | None,
               note: str | None, actor: str, at: datetime) -> PurchaseOrder:
        return cls._create(cls.Created, id=order_id, timestamp=at, supplier=supplier,
                           lines=lines, reference=reference, note=note, actor=actor)

    def add(self, figure: str, lines: list[Line]) -> None:
        """Add recorded per-line quantities to a figure (received, returned, invoiced)."""
        for line in lines:
            held = self.lines[int(line["line_number"])]
            held[figure] = held[figure] + line["quantity"]

    def add_money(self, figure: str, lines: list[Line], field: str) -> None:
        """Add recorded per-line money (received, returned and cleared values)."""
        for line in lines:
            held = self.lines[int(line["line_number"])]
            held[figure] = held[figure] + line[field]

    @property
    def status(self) -> str:
        """Where the order stands, from its recorded figures."""
        return purchase_status(self.review_outcome, self.ended, list(self.lines.values()),
                               self.invoiced_total, self.paid)

    @property
    def outstanding(self) -> Decimal:
        return self.invoiced_total - self.paid

    def require(self, action: str, *allowed: str) -> None:
        """Refuse `action` unless the order stands in one of `allowed`."""
        if self.status not in allowed:
            raise InvalidTransition(str(self.id), self.status, action)

    def line(self, line_number: int) -> Line:
        if line_number not in self.lines:
            raise InvalidInput(f"Purchase order {self.id} has no line {line_number}.", "lines")
        return self.lines[line_number]

    def review(self, approved: bool, reviewer: str, reason: str | None) -> None:
        """Approve or reject (订单审核); only an order pending review."""
        self.require("approve" if approved else "reject", "pending_review")
        self.trigger_event(self.Reviewed, approved=approved, reviewer=reviewer, reason=reason)

    def receive(self, quantities: dict[int, Decimal], tolerance: Decimal, document_id: UUID,
                actor: str, at: datetime) -> list[Line]:
        """Receive goods against lines, within the over-receipt tolerance; returns the lines."""
        self.require("receive", "approved", "partially_received", "received", "invoiced",
                     "paid")
        lines = []
        for number, quantity in quantities.items():
            held = self.line(number)
            allowed = held["quantity"] * (1 + tolerance) - held["received"]
            if quantity > allowed:
                raise OrderLimitExceeded("over_receipt", str(self.id), number,
                                         f"Line {number} may receive at most {allowed} more.")
            lines.append({"line_number": number, "sku": held["sku"],
                          "location": held["location"], "quantity": quantity,
                          "unit_cost": held["unit_price"],
                          "value": extend(quantity, held["unit_price"])})
        self.trigger_event(self.GoodsReceived, document_id=document_id, lines=lines,
                           actor=actor, effective_at=at)
        return lines

    def return_goods(self, quantities: dict[int, Decimal]) -> list[Line]:
        """What returning received goods to the supplier takes (at the cost they came in at).

        The caller takes the stock out of the bins, then records the return with the value
        each line actually took (`record_return`).
        """
        self.require("return", "partially_received", "received", "invoiced", "paid", "closed")
        lines = []
        for number, quantity in quantities.items():
            held = self.line(number)
            # Goods already billed go back with the supplier's credit note, which the finance
            # issue brings; until then only received goods not yet invoiced can be returned.
            returnable = held["received"] - held["returned"] - held["invoiced"]
            if quantity > returnable:
                raise OrderLimitExceeded("over_return", str(self.id), number,
                                         f"Line {number} has {returnable} received, kept and "
                                         "not yet invoiced to return.")
            lines.append({"line_number": number, "sku": held["sku"],
                          "location": held["location"], "quantity": quantity,
                          "unit_cost": held["unit_price"]})
        return lines

    def record_return(self, lines: list[Line], reason: str, document_id: UUID, actor: str,
                      at: datetime) -> None:
        self.trigger_event(self.GoodsReturned, document_id=document_id, lines=lines,
                           reason=reason, actor=actor, effective_at=at)

    def invoice(self, invoice_number: str, lines: list[Line], actor: str,
                at: datetime | None = None, document_id: UUID | None = None) -> None:
        """Record the supplier's invoice: never more than was received and kept, per line."""
        self.require("invoice", "partially_received", "received", "invoiced", "paid", "closed")
        billed = []
        for line in lines:
            held = self.line(line["line_number"])
            billable = held["received"] - held["returned"] - held["invoiced"]
            if line["quantity"] > billable:
                raise OrderLimitExceeded("over_invoice", str(self.id), line["line_number"],
                                         f"Line {line['line_number']} has {billable} to bill.")
            amount = extend(line["quantity"], line["unit_price"])
            tax = money(amount * line["tax_rate"])
            grni = share(held["received_value"] - held["returned_value"] - held["grni_cleared"],
                         line["quantity"], billable)
            billed.append({**line, "amount": amount, "tax": tax, "grni_value": grni})
        amount = sum((line["amount"] for line in billed), ZERO_MONEY)
        tax = sum((line["tax"] for line in billed), ZERO_MONEY)
        self.trigger_event(self.Invoiced, supplier=self.supplier, document_id=document_id,
                           invoice_number=invoice_number, lines=billed,
                           amount=amount, tax=tax, total=amount + tax, actor=actor,
                           effective_at=at)

    def pay(self, amount: Decimal, payment_id: UUID, reference: str | None,
            actor: str, at: datetime | None = None) -> None:
        """Pay the supplier: never more than is owed on the invoices."""
        self.require("pay", "invoiced", "partially_received", "received", "closed")
        if amount > self.outstanding:
            raise OrderLimitExceeded("over_payment", str(self.id), None,
                                     f"Only {self.outstanding} is owed.")
        self.trigger_event(self.Paid, supplier=self.supplier, payment_id=payment_id,
                           amount=amount, reference=reference, actor=actor,
                           effective_at=at)

    def end(self, outcome: str, reason: str | None, actor: str) -> None:
        """Cancel (what was not received is no longer expected) or close the order."""
        if outcome == "cancelled":
            self.require("cancel", "pending_review", "approved", "partially_received")
        else:
            self.require("close", "approved", "partially_received", "received", "invoiced",
                         "paid")
        self.trigger_event(self.Ended, outcome=outcome, reason=reason, actor=actor)


def purchase_status(review: str | None, ended: str | None, lines: list[Line],
                    invoiced_total: Decimal, paid: Decimal) -> str:
    """A purchase order's status from its figures (shared with the order read model)."""
    if ended or review == "rejected":
        return ended or "rejected"
    if review is None:
        return "pending_review"
    received = sum((Decimal(line["received"]) for line in lines), ZERO)
    if received == ZERO:
        return "approved"
    if any(Decimal(line["received"]) < Decimal(line["quantity"]) for line in lines):
        return "partially_received"
    if invoiced_total > ZERO and paid >= invoiced_total:
        return "paid"
    return "invoiced" if invoiced_total > ZERO else "received"
