"""The checks an auditor runs: each view against another, with expected, actual, difference.

`as_of` applies to the balance checks (trial balance, inventory against valuation); the
order checks compare the journal with the order read models at the read models' position
(orders are documents, not balances in time). Read in one snapshot, so every read model
is seen at the same position.
"""

from __future__ import annotations

import json
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection

from ledger import posting as p
from ledger.posting import POSTING_TOPICS
from projections import finance as q
from projections.encoding import money_of
from projections.finance_reports import ZERO, Check, trial_balance, valuation

Row = dict[str, Any]


def reconcile(connection: Connection, tables: q.Tables, *, as_of: datetime | None,
              position: int) -> Row:
    from ledger.accounts import Chart

    balance = trial_balance(connection, tables, Chart.parse(), as_of)
    checks = [
        Check("trial_balance_balances", balance["total_debit"], balance["total_credit"],
              "total credits equal total debits"),
        _inventory(connection, tables, balance, as_of),
        _grni(connection, tables),
        _party_account(connection, tables, p.ACCOUNTS_RECEIVABLE),
        _party_account(connection, tables, p.ACCOUNTS_PAYABLE),
        *_posted_once(connection, tables, position),
    ]
    results = [check.out() for check in checks]
    return {"as_of": as_of, "position": position, "ok": all(r["ok"] for r in results),
            "checks": results}


def _inventory(connection: Connection, tables: q.Tables, balance: Row,
               as_of: datetime | None) -> Check:
    accounts = {p.INVENTORY, p.STOCK_IN_TRANSIT}
    actual = sum((row["balance"] for row in balance["accounts"] if row["account"] in accounts),
                 ZERO)
    valued = valuation(connection, tables, as_of=as_of, sku=None, location=None)
    per_location: dict[str, Decimal] = {}
    for item in valued["items"]:
        per_location[item["location"]] = per_location.get(item["location"], ZERO) + item["value"]
    booked = {row["location"]: row["balance"] for row in balance["accounts"]
              if row["account"] == p.INVENTORY}
    items = [{"location": location, "expected": per_location.get(location, ZERO),
              "actual": booked.get(location, ZERO)}
             for location in sorted(set(per_location) | set(booked))]
    return Check("inventory_equals_valuation", valued["total_value"], actual,
                 "Inventory and Stock in Transit accounts equal the valuation total",
                 [item for item in items if item["expected"] != item["actual"]])


def _grni(connection: Connection, tables: q.Tables) -> Check:
    """Per purchase-order line: GRNI = received value − returned value − value invoiced."""
    booked = q.grni_by_order_line(connection, tables.journal)
    expected_total, actual_total, mismatched = ZERO, ZERO, []
    for order in q.orders(connection, tables.purchase_orders):
        for line in json.loads(order["lines"]):
            key = (order["order_id"], int(line["line_number"]))
            expected = (Decimal(line["received_value"]) - Decimal(line["returned_value"])
                        - Decimal(line["grni_cleared"]))
            actual = money_of(booked.pop(key, 0))
            expected_total += expected
            actual_total += actual
            if expected != actual:
                mismatched.append({"order_id": key[0], "line_number": key[1],
                                   "expected": expected, "actual": actual})
    plain = money_of(booked.pop(("", 0), 0))
    for (order_id, line_number), amount in booked.items():
        # GRNI booked against an order line the purchase orders do not know.
        actual_total += money_of(amount)
        mismatched.append({"order_id": order_id, "line_number": line_number,
                           "expected": ZERO, "actual": money_of(amount)})
    return Check("grni_equals_received_not_invoiced", expected_total, actual_total,
                 "GRNI per purchase-order line equals received − returned − invoiced at "
                 f"receipt value (receipts outside any order hold a further {plain})",
                 mismatched)


def _party_account(connection: Connection, tables: q.Tables, account: str) -> Check:
    """AR (AP) per party equals the open invoice amounts of their sales (purchase) orders."""
    receivable = account == p.ACCOUNTS_RECEIVABLE
    table = tables.sales_orders if receivable else tables.purchase_orders
    party_column = "customer" if receivable else "supplier"
    expected: dict[str, Decimal] = {}
    for order in q.orders(connection, table):
        owed = money_of(order["invoiced_total_e2"] - order["paid_e2"]
                        - (order["credited_total_e2"] if receivable else 0))
        expected[order[party_column]] = expected.get(order[party_column], ZERO) + owed
    sign = 1 if receivable else -1
    actual = {party: money_of(sign * total)
              for party, total in q.party_balances(connection, tables.journal, account).items()}
    items = [{"party": party, "expected": expected.get(party, ZERO),
              "actual": actual.get(party, ZERO)} for party in sorted(set(expected) | set(actual))]
    name = "receivables" if receivable else "payables"
    return Check(f"{name}_equal_open_invoices", sum(expected.values(), ZERO),
                 sum(actual.values(), ZERO),
                 f"{'AR' if receivable else 'AP'} equals invoiced − credited − paid on the "
                 f"{'sales' if receivable else 'purchase'} orders, per party",
                 [item for item in items if item["expected"] != item["actual"]])


def _posted_once(connection: Connection, tables: q.Tables, position: int) -> list[Check]:
    events, entries, unbalanced = q.postings_count(connection, tables, POSTING_TOPICS,
                                                   position)
    return [
        Check("every_event_posted_once", Decimal(events), Decimal(entries),
              "one journal entry per stored event of a posting kind, keyed by its position"),
        Check("every_entry_balances", Decimal(0), Decimal(unbalanced),
              "entries whose debits differ from their credits"),
    ]
