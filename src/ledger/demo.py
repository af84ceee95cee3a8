"""A small demo data set, loaded through the application service.

Every command carries a fixed idempotency key, so loading twice appends nothing.
Effective times are fixed instants in the past, so the demo history is the same
on every machine (record times are, of course, the moment of loading).
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from ledger import demo_sales
from ledger import purchasing as p
from ledger.application import Ledger
from ledger.commands import (
    Count,
    CountLine,
    Dispatch,
    DispatchLine,
    Receipt,
    ReceiptLine,
    Transfer,
)
from ledger.domain.context import CommandMeta
from ledger.domain.item import ItemDetails
from ledger.domain.party import PartyDetails

ACTOR = "demo-loader"
ITEMS = {
    "TEA-001": ItemDetails("Green tea 250 g", "box", "fifo", Decimal("20")),
    "CUP-002": ItemDetails("Porcelain cup", "ea", "moving_average", Decimal("50")),
    "POT-003": ItemDetails("Clay teapot", "ea", "fifo", Decimal("5")),
}
LOCATIONS = {"SH-WH1": "Shanghai main warehouse", "BJ-WH2": "Beijing warehouse"}
PARTIES = {
    "HZ-TEA": PartyDetails("Hangzhou Tea Co.", ("supplier",)),
    "JDZ-PORC": PartyDetails("Jingdezhen Porcelain Works", ("supplier",)),
    "BJ-SHOP": PartyDetails("Beijing Teahouse", ("customer",), Decimal("20000")),
    "SH-CAFE": PartyDetails("Shanghai Tea Cafe", ("customer",)),
}


def _at(day: int, hour: int) -> datetime:
    return datetime(2026, 3, day, hour, 0, tzinfo=UTC)


def _meta(key: str) -> CommandMeta:
    return CommandMeta(ACTOR, f"demo-{key}", f"demo-{key}")


def load(ledger: Ledger) -> int:
    """Load the demo data set (idempotent); returns the number of commands that appended."""
    appended = 0
    for sku, details in ITEMS.items():
        appended += ledger.register_item(sku, details, CommandMeta(ACTOR)).changed
    for code, name in LOCATIONS.items():
        appended += ledger.register_location(code, name, CommandMeta(ACTOR)).changed
    for code, party in PARTIES.items():
        appended += ledger.register_party(code, party, CommandMeta(ACTOR)).changed
    for key, run in _documents(ledger):
        appended += not run(_meta(key)).replayed
    return appended + _purchase_orders(ledger) + demo_sales.load(ledger, _meta, _at)


def _purchase_orders(ledger: Ledger) -> int:
    """Purchase orders in several states: pending, approved, partly received, paid, cancelled."""
    d, appended = Decimal, 0

    def run(key: str, step: Any) -> Any:
        nonlocal appended
        result = step(_meta(key))
        appended += not result.replayed
        return result

    def order(key: str, supplier: str, sku: str, quantity: str, price: str) -> Any:
        line = p.OrderLine(sku, "SH-WH1", d(quantity), d(price))
        created = run(key, lambda meta: ledger.create_purchase_order(
            p.CreateOrder(supplier=supplier, reference=key.upper(), lines=(line,)), meta))
        return created.document_id

    order("po-1-pending", "HZ-TEA", "TEA-001", "80", "12.80")
    approved = order("po-2-approved", "JDZ-PORC", "CUP-002", "300", "3.40")
    run("po-2-approve", lambda m: ledger.review_purchase_order(
        p.Review(order_id=approved, approved=True), m))
    partial = order("po-3-partial", "HZ-TEA", "TEA-001", "60", "12.90")
    run("po-3-approve", lambda m: ledger.review_purchase_order(
        p.Review(order_id=partial, approved=True), m))
    run("po-3-receipt", lambda m: ledger.receive_purchase_order(p.Quantities(
        order_id=partial, effective_at=_at(6, 9), quantities=((1, d("40")),)), m))
    paid = order("po-4-paid", "JDZ-PORC", "POT-003", "10", "47.50")
    for key, step in (
        ("po-4-approve", lambda m: ledger.review_purchase_order(
            p.Review(order_id=paid, approved=True), m)),
        ("po-4-receipt", lambda m: ledger.receive_purchase_order(p.Quantities(
            order_id=paid, effective_at=_at(7, 9), quantities=((1, d("10")),)), m)),
        ("po-4-invoice", lambda m: ledger.invoice_purchase_order(p.Invoice(
            order_id=paid, invoice_number="JDZ-INV-0307", effective_at=_at(8, 9),
            lines=((1, d("10"), None, d("0.13")),)), m)),
        ("po-4-payment", lambda m: ledger.pay_purchase_order(
            p.Payment(order_id=paid, amount=d("536.75"), effective_at=_at(9, 9)), m)),
    ):
        run(key, step)
    cancelled = order("po-5-cancelled", "HZ-TEA", "TEA-001", "20", "13.00")
    run("po-5-cancel", lambda m: ledger.end_purchase_order(
        p.End(order_id=cancelled, outcome="cancelled", reason="supplier out of stock"), m))
    return appended


def _documents(ledger: Ledger):  # type: ignore[no-untyped-def]
    d = Decimal
    yield "receipt-1", lambda meta: ledger.receive(Receipt(
        location="SH-WH1", reference="PO-2026-0301", effective_at=_at(1, 9), lines=(
            ReceiptLine("TEA-001", d("100"), d("12.50")),
            ReceiptLine("CUP-002", d("200"), d("3.20")),
            ReceiptLine("POT-003", d("20"), d("48.00")))), meta)
    yield "receipt-2", lambda meta: ledger.receive(Receipt(
        location="SH-WH1", reference="PO-2026-0302", effective_at=_at(2, 10), lines=(
            ReceiptLine("TEA-001", d("50"), d("13.10")),
            ReceiptLine("CUP-002", d("100"), d("3.50")))), meta)
    yield "dispatch-1", lambda meta: ledger.dispatch(Dispatch(
        location="SH-WH1", reference="SO-2026-0303", effective_at=_at(3, 14), lines=(
            DispatchLine("TEA-001", d("120")), DispatchLine("CUP-002", d("150")))), meta)
    yield "transfer-1", lambda meta: ledger.transfer(Transfer(
        from_location="SH-WH1", to_location="BJ-WH2", reference="TR-2026-0304",
        effective_at=_at(4, 8), lines=(
            DispatchLine("TEA-001", d("20")), DispatchLine("POT-003", d("8")))), meta)
    yield "count-1", lambda meta: ledger.count(Count(
        location="SH-WH1", reason="monthly count", effective_at=_at(5, 17), lines=(
            CountLine("CUP-002", d("148")), CountLine("POT-003", d("12")))), meta)
