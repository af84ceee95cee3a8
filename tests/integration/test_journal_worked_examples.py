"""Worked examples of the journal (总账凭证), computed by hand and checked line by line.

Two items go through the same story, one FIFO and one moving average: receipts at different
costs, a sales order dispatched, counts that gain and lose, a transfer through stock in
transit, a sales invoice with tax and a customer return with its credit note, a purchase order
received, invoiced at another price (purchase price variance) and paid, and a return to the
supplier of goods received and not invoiced. After every command the read models are caught
up and the entries it posted are compared with the hand-worked ones: kind, and per line the
account, the location, the debit and the credit as written. Every entry is also traced back
to its stored event (position, event id, topic, effective time) and must balance. At the end
the trial balance is worked out by hand, its inventory per location must equal the valuation,
and the reconciliation must pass.

The arithmetic is in the comments: money = round(quantity × unit cost, 2), half up; a moving
average unit cost = round(value ÷ quantity, 6); a FIFO take values each layer it touches;
shares (invoice clearing GRNI, returns, credit notes) are round(total × part ÷ whole, 2).
"""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from typing import Any
from uuid import UUID

import pytest
from sqlalchemy import Connection, func, select

from ledger import purchasing as p
from ledger import selling as s
from ledger.accounts import Chart
from ledger.application import Ledger
from ledger.commands import Count, CountLine, DispatchLine, Receipt, ReceiptLine, Transfer
from ledger.config import Settings, read_models_url, store_environment
from ledger.domain.context import CommandMeta
from ledger.domain.identity import event_id
from ledger.domain.item import ItemDetails
from ledger.domain.party import PartyDetails
from ledger.domain.purchase_order import PurchaseOrder
from ledger.domain.sales_order import SalesOrder
from ledger.domain.stock_bin import StockBin
from ledger.posting import POSTING_TOPICS
from projections import finance as q
from projections import finance_reports as views
from projections import state
from projections.encoding import instant, moment_of, money_of
from projections.reconciliation import reconcile
from projections.service import ReadModels

D = Decimal
META = CommandMeta(actor="bookkeeper")
CUSTOMER = "CUS-1"
SUPPLIER = "SUP-1"
FINANCE_MODELS = ("journal", "stock_levels", "stock_card", "cost_layers", "purchase_orders",
                  "sales_orders", "audit_log")
# account, location, debit, credit — as the journal writes them.
Line = tuple[str, str | None, str, str]
Entry = tuple[str, list[Line]]
TOPIC_OF_KIND = {
    "receipt": StockBin.Received.TOPIC,
    "sales_dispatch": StockBin.Dispatched.TOPIC,
    "dispatch": StockBin.Dispatched.TOPIC,
    "transfer_out": StockBin.TransferredOut.TOPIC,
    "transfer_in": StockBin.TransferredIn.TOPIC,
    "supplier_return": StockBin.ReturnedToSupplier.TOPIC,
    "customer_return": StockBin.ReturnedByCustomer.TOPIC,
    "count": StockBin.Counted.TOPIC,
    "supplier_invoice": PurchaseOrder.Invoiced.TOPIC,
    "supplier_payment": PurchaseOrder.Paid.TOPIC,
    "sales_invoice": SalesOrder.Invoiced.TOPIC,
    "customer_payment": SalesOrder.Paid.TOPIC,
    "credit_note": SalesOrder.Returned.TOPIC,
}


class Books:
    """A ledger on a SQLite file with its read models, and what the journal posted since."""

    def __init__(self, url: str) -> None:
        self.ledger = Ledger(store_environment(url))
        self.read_models = ReadModels.open(read_models_url(Settings(database_url=url)))
        self.runner = self.read_models.runner(self.ledger.recorder, self.ledger.mapper)
        self.runner.prepare()
        self.seen = self.ledger.head_position()
        self.rows: list[dict[str, Any]] = []

    def close(self) -> None:
        self.read_models.close()
        self.ledger.close()

    def tables(self, connection: Connection) -> q.Tables:
        states = state.read(connection, list(FINANCE_MODELS))
        return q.Tables(**{name: self.read_models.by_name[name].tables(
            states[name].generation)[name] for name in FINANCE_MODELS})

    def posted(self) -> list[Entry]:
        """Catch up; the entries posted since the last look, each traced to its stored event."""
        head = self.ledger.head_position()
        self.runner.catch_up()
        with self.read_models.database.reader.connect() as connection:
            journal = self.tables(connection).journal
            rows = [dict(row) for row in connection.execute(
                select(journal).where(journal.c.position > self.seen)
                .order_by(journal.c.position, journal.c.line_number)).mappings()]
        assert all(row["position"] <= head for row in rows)
        entries: dict[int, list[dict[str, Any]]] = {}
        for row in rows:
            entries.setdefault(row["position"], []).append(row)
        for position, lines in entries.items():
            trace(self.ledger, position, lines)
        self.seen = head
        self.rows = rows
        return [(lines[0]["kind"], [(line["account"], line["location"],
                                     str(money_of(line["debit_e2"])),
                                     str(money_of(line["credit_e2"]))) for line in lines])
                for lines in entries.values()]

    def parties(self) -> set[str | None]:
        """The parties named on the lines of the last look."""
        return {row["party"] for row in self.rows}


def trace(ledger: Ledger, position: int, lines: list[dict[str, Any]]) -> None:
    """An entry's lines name the stored event at their position, and the entry balances."""
    stored = ledger.stored_event(position)
    assert stored is not None, f"no stored event at position {position}"
    assert stored.id == position
    assert stored.topic in POSTING_TOPICS
    named = str(event_id(stored.originator_id, stored.originator_version))
    assert {line["event_id"] for line in lines} == {named}
    assert {line["kind"] for line in lines} == {lines[0]["kind"]}
    assert TOPIC_OF_KIND[lines[0]["kind"]] == stored.topic
    assert [line["line_number"] for line in lines] == list(range(1, len(lines) + 1))
    event = ledger.mapper.to_domain_event(stored)
    effective = getattr(event, "effective_at", None) or event.timestamp
    assert {line["effective_at"] for line in lines} == {instant(effective)}
    assert sum(line["debit_e2"] for line in lines) == sum(line["credit_e2"] for line in lines)


def books_agree(books: Books) -> dict[tuple[str, str | None], tuple[str, str, str]]:
    """Entries balance, the trial balance balances, inventory per location equals the
    valuation per location, and the reconciliation passes; the trial balance, as written."""
    books.runner.catch_up()
    head = books.ledger.head_position()
    with books.read_models.database.reader.connect() as connection:
        tables = books.tables(connection)
        journal = tables.journal
        unbalanced = connection.execute(
            select(journal.c.position).group_by(journal.c.position)
            .having(func.sum(journal.c.debit_e2) != func.sum(journal.c.credit_e2))).all()
        balance = views.trial_balance(connection, tables, Chart.parse(), None)
        valued = views.valuation(connection, tables, as_of=None, sku=None, location=None)
        checked = reconcile(connection, tables, as_of=None, position=head)
        # Also as of every moment an entry took effect (the trial balance and the valuation
        # read as of the same effective time).
        moments = sorted({moment_of(text) for text in connection.execute(
            select(journal.c.effective_at).distinct()).scalars()})
        failed_as_of = {instant(moment): [check["name"] for check in reconcile(
            connection, tables, as_of=moment, position=head)["checks"] if not check["ok"]]
            for moment in moments}
    assert {moment: names for moment, names in failed_as_of.items() if names} == {}
    assert unbalanced == []
    assert balance["balanced"] is True
    assert balance["total_debit"] == balance["total_credit"]
    booked = {row["location"]: row["balance"] for row in balance["accounts"]
              if row["account"] == "inventory"}
    per_location: dict[str, Decimal] = {}
    for item in valued["items"]:
        per_location[item["location"]] = per_location.get(item["location"], D("0")) + \
            item["value"]
    assert booked == per_location
    failed = [check for check in checked["checks"] if not check["ok"]]
    assert failed == []
    assert checked["ok"] is True
    return {(row["account"], row["location"]): (str(row["debit"]), str(row["credit"]),
                                                str(row["balance"]))
            for row in balance["accounts"]}


def valuation(books: Books) -> list[tuple[str, str, str, str, list[tuple[Decimal, ...]] | None]]:
    with books.read_models.database.reader.connect() as connection:
        valued = views.valuation(connection, books.tables(connection), as_of=None, sku=None,
                                 location=None)
    return [(item["sku"], item["location"], str(item["quantity"]), str(item["value"]),
             None if item["layers"] is None else
             [(layer["quantity"], layer["unit_cost"], layer["value"])
              for layer in item["layers"]])
            for item in valued["items"]]


@pytest.fixture
def books(sqlite_url: str) -> Iterator[Books]:
    found = Books(sqlite_url)
    ledger = found.ledger
    ledger.register_item("FIFO-1", ItemDetails("Bolt", "each", "fifo"), META)
    ledger.register_item("AVG-1", ItemDetails("Oil", "litre", "moving_average"), META)
    ledger.register_location("WH-1", "Main warehouse", META)
    ledger.register_location("WH-2", "Shop", META)
    ledger.register_party(CUSTOMER, PartyDetails("Corner shop", ("customer",)), META)
    ledger.register_party(SUPPLIER, PartyDetails("Tea Co.", ("supplier",)), META)
    # Reference data posts nothing.
    assert found.posted() == []
    yield found
    found.close()


# Commands, as a clerk would give them.

def receive(ledger: Ledger, sku: str, amount: str, cost: str, at: str = "WH-1") -> None:
    ledger.receive(Receipt(location=at, lines=(ReceiptLine(sku, D(amount), D(cost)),)), META)


def count(ledger: Ledger, sku: str, counted: str, at: str = "WH-1") -> None:
    ledger.count(Count(location=at, lines=(CountLine(sku, D(counted)),),
                       reason="cycle count"), META)


def transfer(ledger: Ledger, sku: str, amount: str) -> None:
    ledger.transfer(Transfer(from_location="WH-1", to_location="WH-2",
                             lines=(DispatchLine(sku, D(amount)),)), META)


def place_and_approve(ledger: Ledger, sku: str, amount: str, price: str) -> UUID:
    placed = ledger.place_sales_order(s.PlaceOrder(customer=CUSTOMER, lines=(
        s.SalesLine(sku, "WH-1", D(amount), D(price)),)), META)
    order_id: UUID = placed.data["order_id"]
    ledger.review_sales_order(s.SalesReview(order_id=order_id, approved=True), META)
    return order_id


def ship_and_deliver(ledger: Ledger, order_id: UUID) -> None:
    ledger.ship_sales_order(s.Ship(order_id=order_id, carrier="SF", tracking_number="SF-1"),
                            META)
    ledger.deliver_sales_order(s.Deliver(order_id=order_id, signed_by="Ann Lee"), META)


def purchase(ledger: Ledger, sku: str, amount: str, price: str) -> UUID:
    created = ledger.create_purchase_order(p.CreateOrder(supplier=SUPPLIER, lines=(
        p.OrderLine(sku, "WH-1", D(amount), D(price)),)), META)
    order_id: UUID = created.data["order_id"]
    ledger.review_purchase_order(p.Review(order_id=order_id, approved=True), META)
    return order_id


def test_a_fifo_item_posts_every_step_as_worked_out_by_hand(books: Books) -> None:
    ledger = books.ledger

    # Receipts: 10 × 2.50 = 25.00; 10 × 3.10 = 31.00. Layers [10@2.50, 10@3.10] = 56.00.
    receive(ledger, "FIFO-1", "10", "2.50")
    assert books.posted() == [("receipt", [("inventory", "WH-1", "25.00", "0.00"),
                                           ("grni", "WH-1", "0.00", "25.00")])]
    receive(ledger, "FIFO-1", "10", "3.10")
    assert books.posted() == [("receipt", [("inventory", "WH-1", "31.00", "0.00"),
                                           ("grni", "WH-1", "0.00", "31.00")])]

    # A sales order of 15 at 4.99: placing and approving (which reserves) post nothing.
    order_id = place_and_approve(ledger, "FIFO-1", "15", "4.99")
    assert books.posted() == []
    # Dispatched: 10 × 2.50 = 25.00 + 5 × 3.10 = 15.50 → 40.50. Left [5@3.10] = 15.50.
    ledger.dispatch_sales_order(p.Quantities(order_id=order_id, quantities=()), META)
    assert books.posted() == [("sales_dispatch", [("cogs", "WH-1", "40.50", "0.00"),
                                                  ("inventory", "WH-1", "0.00", "40.50")])]
    assert books.rows[0]["order_id"] == str(order_id)

    # Count gain: counted 7 of 5 → +2 at the bin's cost 15.50 / 5 = 3.10 → 6.20.
    # Layers [5@3.10, 2@3.10] = 21.70.
    count(ledger, "FIFO-1", "7")
    assert books.posted() == [("count", [("inventory", "WH-1", "6.20", "0.00"),
                                         ("inventory_adjustments", "WH-1", "0.00", "6.20")])]
    # Count loss: counted 6 of 7 → −1 from the oldest layer at 3.10 → 3.10.
    # Layers [4@3.10, 2@3.10] = 18.60.
    count(ledger, "FIFO-1", "6")
    assert books.posted() == [("count", [("inventory", "WH-1", "0.00", "3.10"),
                                         ("inventory_adjustments", "WH-1", "3.10", "0.00")])]

    # Transfer 3 to WH-2: 3 × 3.10 = 9.30 out of WH-1 into transit, then into WH-2.
    # WH-1 [1@3.10, 2@3.10] = 9.30; WH-2 [3@3.10] = 9.30.
    transfer(ledger, "FIFO-1", "3")
    assert books.posted() == [
        ("transfer_out", [("stock_in_transit", "WH-1", "9.30", "0.00"),
                          ("inventory", "WH-1", "0.00", "9.30")]),
        ("transfer_in", [("inventory", "WH-2", "9.30", "0.00"),
                         ("stock_in_transit", "WH-2", "0.00", "9.30")]),
    ]

    # Shipping and delivery post nothing.
    ship_and_deliver(ledger, order_id)
    assert books.posted() == []
    # Sales invoice of the 15 at 4.99, tax 0.13: 15 × 4.99 = 74.85; 74.85 × 0.13 = 9.7305 →
    # 9.73; total 84.58.
    ledger.invoice_sales_order(p.Invoice(order_id=order_id, invoice_number="S-INV-1",
                                         lines=((1, D("15"), None, D("0.13")),)), META)
    assert books.posted() == [("sales_invoice", [("accounts_receivable", None, "84.58", "0.00"),
                                                 ("sales_revenue", "WH-1", "0.00", "74.85"),
                                                 ("tax_payable", None, "0.00", "9.73")])]
    assert books.parties() == {CUSTOMER}

    # The customer returns 2. Stock back at the cost it went out at: 40.50 × 2 / 15 = 5.40
    # (a layer of 2 at 2.70). Credit note: 74.85 × 2 / 15 = 9.98; tax 9.73 × 2 / 15 =
    # 1.2973… → 1.30; total 11.28. WH-1 [1@3.10, 2@3.10, 2@2.70] = 14.70.
    ledger.return_sales_order(p.Quantities(order_id=order_id, quantities=((1, D("2")),),
                                           reason="damaged"), META)
    assert books.posted() == [
        ("credit_note", [("sales_returns", "WH-1", "9.98", "0.00"),
                         ("tax_payable", None, "1.30", "0.00"),
                         ("accounts_receivable", None, "0.00", "11.28")]),
        ("customer_return", [("inventory", "WH-1", "5.40", "0.00"),
                             ("cogs", "WH-1", "0.00", "5.40")]),
    ]
    # The customer pays what is left: 84.58 − 11.28 = 73.30.
    ledger.pay_sales_order(p.Payment(order_id=order_id, amount=D("73.30")), META)
    assert books.posted() == [("customer_payment", [("bank", None, "73.30", "0.00"),
                                                    ("accounts_receivable", None, "0.00",
                                                     "73.30")])]

    # A purchase order of 8 at 2.675: creating and approving post nothing.
    po_id = purchase(ledger, "FIFO-1", "8", "2.675")
    assert books.posted() == []
    # Received: 8 × 2.675 = 21.40. WH-1 [1@3.10, 2@3.10, 2@2.70, 8@2.675] = 36.10.
    ledger.receive_purchase_order(p.Quantities(order_id=po_id, quantities=((1, D("8")),)),
                                  META)
    assert books.posted() == [("receipt", [("inventory", "WH-1", "21.40", "0.00"),
                                           ("grni", "WH-1", "0.00", "21.40")])]
    assert books.rows[0]["order_id"] == str(po_id) and books.rows[0]["order_line"] == 1
    # The supplier invoices 5 at 2.80, tax 0.13: amount 5 × 2.80 = 14.00; GRNI cleared
    # 21.40 × 5 / 8 = 13.375 → 13.38; variance 14.00 − 13.38 = 0.62 (a debit); tax
    # 14.00 × 0.13 = 1.82; payable 15.82.
    ledger.invoice_purchase_order(p.Invoice(order_id=po_id, invoice_number="P-INV-1",
                                            lines=((1, D("5"), D("2.80"), D("0.13")),)), META)
    assert books.posted() == [("supplier_invoice", [
        ("grni", None, "13.38", "0.00"),
        ("purchase_price_variance", None, "0.62", "0.00"),
        ("tax_receivable", None, "1.82", "0.00"),
        ("accounts_payable", None, "0.00", "15.82")])]
    assert books.parties() == {SUPPLIER}
    ledger.pay_purchase_order(p.Payment(order_id=po_id, amount=D("15.82")), META)
    assert books.posted() == [("supplier_payment", [("accounts_payable", None, "15.82", "0.00"),
                                                    ("bank", None, "0.00", "15.82")])]
    # 2 of the 3 received and not invoiced go back, from the 2.675 layer: 2 × 2.675 = 5.35.
    # WH-1 [1@3.10, 2@3.10, 2@2.70, 6@2.675] = 3.10 + 6.20 + 5.40 + 16.05 = 30.75.
    # GRNI left on the line: 21.40 − 5.35 − 13.38 = 2.67.
    ledger.return_purchase_order(p.Quantities(order_id=po_id, quantities=((1, D("2")),),
                                              reason="damaged"), META)
    assert books.posted() == [("supplier_return", [("grni", "WH-1", "5.35", "0.00"),
                                                   ("inventory", "WH-1", "0.00", "5.35")])]

    assert valuation(books) == [
        ("FIFO-1", "WH-1", "11.000", "30.75",
         [(D("1"), D("3.10"), D("3.10")), (D("2"), D("3.10"), D("6.20")),
          (D("2"), D("2.70"), D("5.40")), (D("6"), D("2.675"), D("16.05"))]),
        ("FIFO-1", "WH-2", "3.000", "9.30", [(D("3"), D("3.10"), D("9.30"))]),
    ]
    # The trial balance, summed by hand from the entries above (debit, credit, balance):
    assert books_agree(books) == {
        # 25.00 + 31.00 + 6.20 + 5.40 + 21.40 = 89.00; 40.50 + 3.10 + 9.30 + 5.35 = 58.25
        ("inventory", "WH-1"): ("89.00", "58.25", "30.75"),
        ("inventory", "WH-2"): ("9.30", "0.00", "9.30"),
        ("stock_in_transit", None): ("9.30", "9.30", "0.00"),
        # 13.38 + 5.35 = 18.73; 25.00 + 31.00 + 21.40 = 77.40
        ("grni", None): ("18.73", "77.40", "-58.67"),
        ("cogs", None): ("40.50", "5.40", "35.10"),
        ("inventory_adjustments", None): ("3.10", "6.20", "-3.10"),
        # 84.58 = 11.28 + 73.30
        ("accounts_receivable", None): ("84.58", "84.58", "0.00"),
        ("sales_revenue", None): ("0.00", "74.85", "-74.85"),
        ("sales_returns", None): ("9.98", "0.00", "9.98"),
        ("tax_payable", None): ("1.30", "9.73", "-8.43"),
        ("bank", None): ("73.30", "15.82", "57.48"),
        ("purchase_price_variance", None): ("0.62", "0.00", "0.62"),
        ("tax_receivable", None): ("1.82", "0.00", "1.82"),
        ("accounts_payable", None): ("15.82", "15.82", "0.00"),
    }


def test_a_moving_average_item_posts_every_step_as_worked_out_by_hand(books: Books) -> None:
    ledger = books.ledger

    # Receipts: 10 × 2.00 = 20.00; 5 × 2.60 = 13.00 → 15 for 33.00 at 2.200000.
    receive(ledger, "AVG-1", "10", "2.00")
    assert books.posted() == [("receipt", [("inventory", "WH-1", "20.00", "0.00"),
                                           ("grni", "WH-1", "0.00", "20.00")])]
    receive(ledger, "AVG-1", "5", "2.60")
    assert books.posted() == [("receipt", [("inventory", "WH-1", "13.00", "0.00"),
                                           ("grni", "WH-1", "0.00", "13.00")])]

    # A sales order of 12 at 4.00, approved (12 reserved).
    order_id = place_and_approve(ledger, "AVG-1", "12", "4.00")
    assert books.posted() == []
    # Dispatch 4: 4 × 2.200000 = 8.80. Left 11 for 24.20.
    ledger.dispatch_sales_order(p.Quantities(order_id=order_id, quantities=((1, D("4")),)),
                                META)
    assert books.posted() == [("sales_dispatch", [("cogs", "WH-1", "8.80", "0.00"),
                                                  ("inventory", "WH-1", "0.00", "8.80")])]
    # Receipt 3 × 3.10 = 9.30 → 14 for 33.50; re-averaged 33.50 / 14 = 2.3928571… → 2.392857.
    receive(ledger, "AVG-1", "3", "3.10")
    assert books.posted() == [("receipt", [("inventory", "WH-1", "9.30", "0.00"),
                                           ("grni", "WH-1", "0.00", "9.30")])]
    # Dispatch 5 more: 5 × 2.392857 = 11.964285 → 11.96. Left 9 for 21.54 (2.393333).
    ledger.dispatch_sales_order(p.Quantities(order_id=order_id, quantities=((1, D("5")),)),
                                META)
    assert books.posted() == [("sales_dispatch", [("cogs", "WH-1", "11.96", "0.00"),
                                                  ("inventory", "WH-1", "0.00", "11.96")])]

    # Count gain: counted 11 of 9 → +2 × 2.393333 = 4.786666 → 4.79. 11 for 26.33 (2.393636).
    count(ledger, "AVG-1", "11")
    assert books.posted() == [("count", [("inventory", "WH-1", "4.79", "0.00"),
                                         ("inventory_adjustments", "WH-1", "0.00", "4.79")])]
    # Count loss: counted 10 of 11 → −1 × 2.393636 = 2.39. 10 for 23.94 (2.394000).
    count(ledger, "AVG-1", "10")
    assert books.posted() == [("count", [("inventory", "WH-1", "0.00", "2.39"),
                                         ("inventory_adjustments", "WH-1", "2.39", "0.00")])]

    # Transfer 4 to WH-2: 4 × 2.394 = 9.576 → 9.58. WH-1 6 for 14.36; WH-2 4 for 9.58.
    transfer(ledger, "AVG-1", "4")
    assert books.posted() == [
        ("transfer_out", [("stock_in_transit", "WH-1", "9.58", "0.00"),
                          ("inventory", "WH-1", "0.00", "9.58")]),
        ("transfer_in", [("inventory", "WH-2", "9.58", "0.00"),
                         ("stock_in_transit", "WH-2", "0.00", "9.58")]),
    ]

    # The 9 dispatched are shipped, delivered and invoiced at 4.00, tax 0.13:
    # 9 × 4.00 = 36.00; 36.00 × 0.13 = 4.68; total 40.68.
    ship_and_deliver(ledger, order_id)
    assert books.posted() == []
    ledger.invoice_sales_order(p.Invoice(order_id=order_id, invoice_number="S-INV-2",
                                         lines=((1, D("9"), None, D("0.13")),)), META)
    assert books.posted() == [("sales_invoice", [("accounts_receivable", None, "40.68", "0.00"),
                                                 ("sales_revenue", "WH-1", "0.00", "36.00"),
                                                 ("tax_payable", None, "0.00", "4.68")])]
    # The customer returns 2: they went out at 8.80 + 11.96 = 20.76 for 9, so 20.76 × 2 / 9 =
    # 4.6133… → 4.61. Credit note: 36.00 × 2 / 9 = 8.00; tax 4.68 × 2 / 9 = 1.04; total 9.04.
    # WH-1 6 + 2 = 8 for 14.36 + 4.61 = 18.97.
    ledger.return_sales_order(p.Quantities(order_id=order_id, quantities=((1, D("2")),),
                                           reason="wrong grade"), META)
    assert books.posted() == [
        ("credit_note", [("sales_returns", "WH-1", "8.00", "0.00"),
                         ("tax_payable", None, "1.04", "0.00"),
                         ("accounts_receivable", None, "0.00", "9.04")]),
        ("customer_return", [("inventory", "WH-1", "4.61", "0.00"),
                             ("cogs", "WH-1", "0.00", "4.61")]),
    ]

    # A purchase order of 6 at 2.675, received: 6 × 2.675 = 16.05. WH-1 14 for 35.02.
    po_id = purchase(ledger, "AVG-1", "6", "2.675")
    ledger.receive_purchase_order(p.Quantities(order_id=po_id, quantities=((1, D("6")),)),
                                  META)
    assert books.posted() == [("receipt", [("inventory", "WH-1", "16.05", "0.00"),
                                           ("grni", "WH-1", "0.00", "16.05")])]
    # Invoiced 4 at 2.60 (cheaper), tax 0.13: amount 10.40; GRNI cleared 16.05 × 4 / 6 =
    # 10.70; variance 10.40 − 10.70 = −0.30 (a credit); tax 10.40 × 0.13 = 1.352 → 1.35;
    # payable 11.75. Debits 10.70 + 1.35 = 12.05 = credits 0.30 + 11.75.
    ledger.invoice_purchase_order(p.Invoice(order_id=po_id, invoice_number="P-INV-2",
                                            lines=((1, D("4"), D("2.60"), D("0.13")),)), META)
    assert books.posted() == [("supplier_invoice", [
        ("grni", None, "10.70", "0.00"),
        ("purchase_price_variance", None, "0.00", "0.30"),
        ("tax_receivable", None, "1.35", "0.00"),
        ("accounts_payable", None, "0.00", "11.75")])]
    ledger.pay_purchase_order(p.Payment(order_id=po_id, amount=D("11.75")), META)
    assert books.posted() == [("supplier_payment", [("accounts_payable", None, "11.75", "0.00"),
                                                    ("bank", None, "0.00", "11.75")])]
    # 2 of the 2 received and not invoiced go back at the receipt cost: 2 × 2.675 = 5.35.
    # WH-1 12 for 29.67 (2.472500). GRNI left on the line: 16.05 − 5.35 − 10.70 = 0.00.
    ledger.return_purchase_order(p.Quantities(order_id=po_id, quantities=((1, D("2")),),
                                              reason="leaking"), META)
    assert books.posted() == [("supplier_return", [("grni", "WH-1", "5.35", "0.00"),
                                                   ("inventory", "WH-1", "0.00", "5.35")])]

    assert valuation(books) == [("AVG-1", "WH-1", "12.000", "29.67", None),
                                ("AVG-1", "WH-2", "4.000", "9.58", None)]
    # The customer has not paid: AR stays open at 40.68 − 9.04 = 31.64.
    assert books_agree(books) == {
        # 20.00 + 13.00 + 9.30 + 4.79 + 4.61 + 16.05 = 67.75;
        # 8.80 + 11.96 + 2.39 + 9.58 + 5.35 = 38.08
        ("inventory", "WH-1"): ("67.75", "38.08", "29.67"),
        ("inventory", "WH-2"): ("9.58", "0.00", "9.58"),
        ("stock_in_transit", None): ("9.58", "9.58", "0.00"),
        # 10.70 + 5.35 = 16.05; 20.00 + 13.00 + 9.30 + 16.05 = 58.35
        ("grni", None): ("16.05", "58.35", "-42.30"),
        ("cogs", None): ("20.76", "4.61", "16.15"),
        ("inventory_adjustments", None): ("2.39", "4.79", "-2.40"),
        ("accounts_receivable", None): ("40.68", "9.04", "31.64"),
        ("sales_revenue", None): ("0.00", "36.00", "-36.00"),
        ("sales_returns", None): ("8.00", "0.00", "8.00"),
        ("tax_payable", None): ("1.04", "4.68", "-3.64"),
        ("bank", None): ("0.00", "11.75", "-11.75"),
        ("purchase_price_variance", None): ("0.00", "0.30", "-0.30"),
        ("tax_receivable", None): ("1.35", "0.00", "1.35"),
        ("accounts_payable", None): ("11.75", "11.75", "0.00"),
    }
