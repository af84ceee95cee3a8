"""Demo sales orders, one or more in every status, loaded after the demo stock and purchases.

Each order is a script of steps; every step carries a fixed idempotency key, so loading
twice appends nothing. Stock-moving steps carry fixed effective times after the demo's
last receipt, so the demo history is the same on every machine.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

from ledger import purchasing as p
from ledger import selling as s
from ledger.application import CommandResult, Ledger
from ledger.domain.context import CommandMeta

D = Decimal
# 20 × 7.60 = 152.00 plus 13 % tax 19.76: what so-11 owes and pays.
# (key, customer, sku, location, quantity, unit price, the steps after placing it)
ORDERS: tuple[tuple[str, str, str, str, str, str | None, tuple[str, ...]], ...] = (
    ("so-01-pending", "BJ-SHOP", "TEA-001", "SH-WH1", "5", "25.00", ()),
    ("so-02-rejected", "SH-CAFE", "CUP-002", "SH-WH1", "10", None, ("reject",)),
    ("so-03-approved", "BJ-SHOP", "POT-003", "SH-WH1", "2", "98.00", ("approve",)),
    ("so-04-backordered", "BJ-SHOP", "POT-003", "BJ-WH2", "10", "95.00", ("approve",)),
    ("so-05-partially-dispatched", "SH-CAFE", "CUP-002", "SH-WH1", "40", "7.50",
     ("approve", "dispatch-25")),
    ("so-06-dispatched", "SH-CAFE", "POT-003", "SH-WH1", "1", "99.00",
     ("approve", "dispatch")),
    ("so-07-shipped", "BJ-SHOP", "TEA-001", "SH-WH1", "10", "26.00",
     ("approve", "dispatch", "ship")),
    ("so-08-delivered", "SH-CAFE", "CUP-002", "SH-WH1", "5", "7.80",
     ("approve", "dispatch", "ship", "deliver")),
    ("so-09-invoiced", "BJ-SHOP", "TEA-001", "SH-WH1", "4", "26.00",
     ("approve", "dispatch", "ship", "deliver", "invoice")),
    ("so-10-partially-paid", "BJ-SHOP", "TEA-001", "SH-WH1", "8", "25.50",
     ("approve", "dispatch", "ship", "deliver", "invoice", "pay-100", "return-1")),
    ("so-11-paid", "SH-CAFE", "CUP-002", "SH-WH1", "20", "7.60",
     ("approve", "dispatch", "ship", "deliver", "invoice", "pay-171.76")),
    ("so-12-cancelled", "SH-CAFE", "TEA-001", "SH-WH1", "3", "26.00",
     ("approve", "cancel")),
)
TAX_RATE = D("0.13")


def load(ledger: Ledger, meta: Callable[[str], CommandMeta],
         at: Callable[[int, int], datetime]) -> int:
    """Place and move the demo sales orders; returns the number of commands that appended."""
    appended = 0
    for day, (key, customer, sku, location, ordered, price, steps) in enumerate(ORDERS, 10):
        line = s.SalesLine(sku, location, D(ordered), None if price is None else D(price))
        placed = ledger.place_sales_order(
            s.PlaceOrder(customer=customer, reference=key.upper(), lines=(line,)), meta(key))
        appended += not placed.replayed
        order_id = placed.document_id
        for hour, step in enumerate(steps, 9):
            result = _step(ledger, order_id, step, at(day, hour))(meta(f"{key}-{step}"))
            appended += not result.replayed
    return appended


def _step(ledger: Ledger, order_id: UUID, step: str,
          when: datetime) -> Callable[[CommandMeta], CommandResult]:
    name, _, amount = step.partition("-")
    actions: dict[str, Callable[[CommandMeta], CommandResult]] = {
        "approve": lambda m: ledger.review_sales_order(
            s.SalesReview(order_id=order_id, approved=True), m),
        "reject": lambda m: ledger.review_sales_order(
            s.SalesReview(order_id=order_id, approved=False, reason="no price agreed"), m),
        "dispatch": lambda m: ledger.dispatch_sales_order(p.Quantities(
            order_id=order_id, effective_at=when,
            quantities=((1, D(amount)),) if amount else ()), m),
        "ship": lambda m: ledger.ship_sales_order(s.Ship(
            order_id=order_id, carrier="SF Express", tracking_number=f"SF{when:%m%d%H}",
            effective_at=when), m),
        "deliver": lambda m: ledger.deliver_sales_order(
            s.Deliver(order_id=order_id, signed_by="Wang Li", effective_at=when), m),
        "invoice": lambda m: ledger.invoice_sales_order(p.Invoice(
            order_id=order_id, invoice_number=f"SI-{when:%m%d}", effective_at=when,
            lines=((1, _delivered(ledger, order_id), None, TAX_RATE),)), m),
        "pay": lambda m: ledger.pay_sales_order(p.Payment(
            order_id=order_id, effective_at=when, amount=D(amount)), m),
        "return": lambda m: ledger.return_sales_order(p.Quantities(
            order_id=order_id, reason="damaged in transit", effective_at=when,
            quantities=((1, D(amount)),)), m),
        "cancel": lambda m: ledger.cancel_sales_order(
            p.OrderStep(order_id=order_id, reason="customer changed their mind"), m),
    }
    return actions[name]


def _delivered(ledger: Ledger, order_id: UUID) -> Any:
    return ledger.sales_order(order_id).lines[1]["delivered"]
