"""What the finance HTTP tests share: an app with every role's key, parties, and dated flows.

`serving_books(url)` starts `create_app` with the four keys of `api_support.API_KEYS` and a short
read wait, lifespan and projections running; `Books` adds a finance read (`books.read`) that
waits for the store's head, so every figure read includes every command sent before it.

Sales steps take an explicit `effective_at` (dispatch, ship, invoice, payment, return; delivery
takes `signed_at`), so each journal entry has a known date. Purchase invoices and payments take
none over HTTP: their entry is dated when recorded, so `ledger_clock` sets the ledger's clock
for the commands sent inside it.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import pytest
from api_support import API_KEYS, AUDITOR, Body
from fastapi.testclient import TestClient
from read_support import ReadApi, iso

from api.app import create_app
from ledger.config import Settings

# Long enough for a healthy runner, short enough that a stopped read model fails in seconds.
READ_WAIT_SECONDS = 2

CUSTOMER = "CUS-SHOP"
OTHER_CUSTOMER = "CUS-MART"
SUPPLIER = "SUP-TEA"
OTHER_SUPPLIER = "SUP-INK"

# The default chart of accounts (src/ledger/accounts.py): account key → code.
CODES = {
    "bank": "1002", "accounts_receivable": "1122", "tax_receivable": "2221.01",
    "inventory": "1405", "stock_in_transit": "1406", "accounts_payable": "2202",
    "grni": "2202.99", "tax_payable": "2221.02", "sales_revenue": "6001",
    "sales_returns": "6001.99", "cogs": "6401", "inventory_adjustments": "6711",
    "purchase_price_variance": "6402",
}

# Every finance and report read, with parameters it accepts.
FINANCE_READS: list[tuple[str, Body]] = [
    ("/finance/journal", {}),
    ("/finance/trial-balance", {}),
    ("/finance/valuation", {}),
    ("/finance/cogs", {"group_by": "customer"}),
    ("/reports/sales", {"group_by": "day"}),
    ("/reports/turnover", {"from": "2025-01-01T00:00:00Z", "to": "2025-02-01T00:00:00Z"}),
    ("/finance/receivables", {"as_of": "2025-06-01T00:00:00Z"}),
    ("/finance/payables", {}),
    ("/finance/reconciliation", {}),
    ("/finance/periods", {}),
]


class Books(ReadApi):
    """`ReadApi` with the finance reads, as the auditor by default, at the store's head."""

    def read(self, path: str, key: str = AUDITOR, **params: Any) -> Body:
        params.setdefault("min_position", self.head())
        return self.query(path, key=key, **params)

    def journal(self, **params: Any) -> list[Body]:
        """Every journal entry (following the cursor) for the parameters given."""
        params.setdefault("min_position", self.head())
        return self.walk("/finance/journal", limit=200, **params)


@contextmanager
def serving_books(database_url: str, **settings: Any) -> Iterator[Books]:
    app = create_app(Settings(database_url=database_url, api_keys=API_KEYS,
                              read_wait_seconds=READ_WAIT_SECONDS, **settings))
    with TestClient(app) as client:
        yield Books(client)


def register_parties(api: Books) -> None:
    """Two customers and two suppliers."""
    for code, role in ((CUSTOMER, "customer"), (OTHER_CUSTOMER, "customer"),
                       (SUPPLIER, "supplier"), (OTHER_SUPPLIER, "supplier")):
        response = api.put(f"/parties/{code}", {"name": f"Party {code}", "roles": [role]})
        assert response.status_code == 201, response.text


# Sales orders, every step dated.


def sales_step(api: Books, order_id: str, name: str, body: Body | None = None) -> Body:
    response = api.post(f"/sales-orders/{order_id}/{name}", body)
    assert response.status_code == 201, response.text
    result: Body = response.json()
    return result


def sold(api: Books, customer: str, sku: str, location: str, quantity: str, price: str,
         when: datetime) -> str:
    """An order of one line placed, approved, dispatched, shipped and delivered at `when`."""
    order_id: str = api.command("/sales-orders", {"customer": customer, "lines": [
        {"sku": sku, "location": location, "quantity": quantity, "unit_price": price}]},
    )["order_id"]
    sales_step(api, order_id, "approve")
    sales_step(api, order_id, "dispatch", {"effective_at": iso(when)})
    sales_step(api, order_id, "ship", {"carrier": "SF Express", "tracking_number": "SF1",
                                       "effective_at": iso(when)})
    sales_step(api, order_id, "deliver", {"signed_by": "Wang Fang", "signed_at": iso(when)})
    return order_id


def bill(api: Books, order_id: str, quantity: str, when: datetime, tax_rate: str = "0",
         number: str = "SI-1") -> Body:
    return sales_step(api, order_id, "invoice", {
        "invoice_number": number, "effective_at": iso(when),
        "lines": [{"line_number": 1, "quantity": quantity, "tax_rate": tax_rate}]})


def collect(api: Books, order_id: str, amount: str, when: datetime) -> Body:
    return sales_step(api, order_id, "payments", {"amount": amount, "effective_at": iso(when)})


def take_back(api: Books, order_id: str, quantity: str, when: datetime) -> Body:
    return sales_step(api, order_id, "returns", {
        "lines": [{"line_number": 1, "quantity": quantity}], "reason": "damaged",
        "effective_at": iso(when)})


# Purchase orders.


def purchase_step(api: Books, order_id: str, name: str, body: Body | None = None) -> Body:
    response = api.post(f"/purchase-orders/{order_id}/{name}", body)
    assert response.status_code == 201, response.text
    result: Body = response.json()
    return result


def purchased(api: Books, supplier: str, sku: str, location: str, quantity: str, price: str,
              received_at: datetime) -> str:
    """An order of one line created, approved and received whole at `received_at`."""
    order_id: str = api.command("/purchase-orders", {"supplier": supplier, "lines": [
        {"sku": sku, "location": location, "quantity": quantity, "unit_price": price}]},
    )["order_id"]
    purchase_step(api, order_id, "approve")
    purchase_step(api, order_id, "receipts", {
        "lines": [{"line_number": 1, "quantity": quantity}], "effective_at": iso(received_at)})
    return order_id


def supplier_invoice(api: Books, order_id: str, quantity: str, price: str | None = None,
                     tax_rate: str = "0", number: str = "INV-1") -> Body:
    line: Body = {"line_number": 1, "quantity": quantity, "tax_rate": tax_rate}
    if price is not None:
        line["unit_price"] = price
    return purchase_step(api, order_id, "invoice", {"invoice_number": number, "lines": [line]})


def supplier_payment(api: Books, order_id: str, amount: str) -> Body:
    return purchase_step(api, order_id, "payments", {"amount": amount})


@contextmanager
def ledger_clock(monkeypatch: pytest.MonkeyPatch, moment: datetime) -> Iterator[None]:
    """The ledger's clock reads `moment` for the commands sent inside: what dates a purchase
    invoice or payment, which take no effective time over HTTP."""

    class Clock(datetime):
        @classmethod
        def now(cls, tz: Any = None) -> datetime:  # type: ignore[override]
            return moment.astimezone(tz or UTC)

    with monkeypatch.context() as patch:
        patch.setattr("ledger.application.datetime", Clock)
        yield
