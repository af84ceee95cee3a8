"""Finance views assembled from the finance queries: decimals, account codes, ageing, checks.

Pure arithmetic on query results; the API serialises what these return.
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from sqlalchemy import Connection

from ledger import posting as p
from ledger.accounts import Chart
from projections import finance as q
from projections.encoding import money_of, quantity_of, unit_cost_of

Row = dict[str, Any]
ZERO = Decimal("0.00")
BUCKETS = (("d0_30", 0, 30), ("d31_60", 31, 60), ("d61_90", 61, 90), ("over_90", 91, None))


def _money(rows: list[Row], name: str) -> Decimal:
    return money_of(sum(row[name] or 0 for row in rows))


def journal_entry(lines: list[Row], chart: Chart) -> Row:
    first = lines[0]
    return {
        "position": first["position"], "event_id": first["event_id"], "kind": first["kind"],
        "effective_at": first["effective_at"], "recorded_at": first["recorded_at"],
        "document_id": first["document_id"],
        "lines": [{
            "line_number": line["line_number"], "account": line["account"],
            "code": chart.code(line["account"]), "location": line["location"],
            "sku": line["sku"], "party": line["party"], "order_id": line["order_id"],
            "order_line": line["order_line"],
            "quantity": None if line["quantity_e3"] is None else quantity_of(line["quantity_e3"]),
            "debit": money_of(line["debit_e2"]), "credit": money_of(line["credit_e2"]),
        } for line in lines],
    }


def trial_balance(connection: Connection, tables: q.Tables, chart: Chart,
                  as_of: datetime | None) -> Row:
    rows = q.trial_balance(connection, tables.journal, as_of)
    accounts = [{
        "account": row["account"], "code": chart.code(row["account"]),
        "name": chart.name(row["account"]), "location": row["location"],
        "debit": money_of(row["debit_e2"]), "credit": money_of(row["credit_e2"]),
        "balance": money_of(row["debit_e2"] - row["credit_e2"]),
    } for row in rows]
    accounts.sort(key=lambda account: (account["code"], account["location"] or ""))
    debit, credit = _money(rows, "debit_e2"), _money(rows, "credit_e2")
    return {"accounts": accounts, "total_debit": debit, "total_credit": credit,
            "balanced": debit == credit}


def valuation(connection: Connection, tables: q.Tables, *, as_of: datetime | None,
              sku: str | None, location: str | None) -> Row:
    items = []
    for row in q.valuation(connection, tables, as_of=as_of, sku=sku, location=location):
        layers = None
        if row["layers"] is not None and row["valuation_method"] == "fifo":
            layers = [{"quantity": Decimal(quantity), "unit_cost": Decimal(cost),
                       "value": Decimal(value)} for quantity, cost, value in
                      json.loads(row["layers"])]
        items.append({"sku": row["sku"], "location": row["location"],
                      "valuation_method": row["valuation_method"],
                      "quantity": quantity_of(row["quantity_on_hand_e3"]),
                      "unit_cost": unit_cost_of(row["unit_cost_e6"]),
                      "value": money_of(row["value_e2"]), "layers": layers})
    return {"items": items, "total_value": sum((item["value"] for item in items), ZERO)}


def cogs(connection: Connection, tables: q.Tables, *, start: datetime | None,
         end: datetime | None, group_by: str) -> Row:
    rows = q.cogs(connection, tables, start=start, end=end, group_by=group_by)
    groups = [{"key": row["key"], "quantity": quantity_of(row["quantity_e3"] or 0),
               "cogs": money_of(row["debit_e2"] - row["credit_e2"])} for row in rows]
    return {"group_by": group_by, "groups": groups,
            "total": sum((group["cogs"] for group in groups), ZERO)}


def sales(connection: Connection, tables: q.Tables, *, start: datetime | None,
          end: datetime | None, group_by: str) -> Row:
    groups = []
    for row in q.sales(connection, tables, start=start, end=end, group_by=group_by):
        revenue, returns = money_of(row["revenue_e2"]), money_of(row["returns_e2"])
        cost = money_of(row["cogs_e2"])
        net = revenue - returns
        groups.append({
            "key": row["key"], "quantity": quantity_of(row["quantity_e3"]),
            "returned_quantity": quantity_of(row["returned_e3"]), "revenue": revenue,
            "returns": returns, "net_revenue": net, "cogs": cost, "gross_margin": net - cost,
            "gross_margin_rate": _ratio(net - cost, net, "0.0001"), "orders": row["orders"]})
    return {"group_by": group_by, "groups": groups}


def _ratio(part: Decimal, whole: Decimal, places: str) -> Decimal | None:
    if whole == 0:
        return None
    return (part / whole).quantize(Decimal(places), rounding=ROUND_HALF_UP)


def turnover(connection: Connection, tables: q.Tables, *, start: datetime,
             end: datetime) -> Row:
    """Per SKU: COGS in the period ÷ the average of opening and closing inventory value."""
    # Values just before each edge: the period's COGS is [start, end), so opening − COGS
    # + receipts = closing holds for movements exactly on an edge too.
    opening = _value_per_sku(connection, tables, start)
    closing = _value_per_sku(connection, tables, end)
    costs = {row["key"]: money_of(row["debit_e2"] - row["credit_e2"])
             for row in q.cogs(connection, tables, start=start, end=end, group_by="sku")}
    days = Decimal((end - start).total_seconds()) / Decimal(86400)
    items = []
    for sku in sorted(set(opening) | set(closing) | set(costs)):
        average = ((opening.get(sku, ZERO) + closing.get(sku, ZERO)) / 2).quantize(
            ZERO, rounding=ROUND_HALF_UP)
        cost = costs.get(sku, ZERO)
        rate = _ratio(cost, average, "0.0001")
        items.append({"sku": sku, "cogs": cost, "opening_value": opening.get(sku, ZERO),
                      "closing_value": closing.get(sku, ZERO), "average_value": average,
                      "turnover": rate,
                      "days_on_hand": None if not rate else (days / rate).quantize(
                          Decimal("0.1"), rounding=ROUND_HALF_UP)})
    return {"days": days.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP), "items": items}


def _value_per_sku(connection: Connection, tables: q.Tables,
                   moment: datetime) -> dict[str, Decimal]:
    values: dict[str, Decimal] = defaultdict(lambda: ZERO)
    for row in q.valuation(connection, tables, as_of=moment, sku=None, location=None,
                           before=True):
        values[row["sku"]] += money_of(row["value_e2"])
    return dict(values)


def ageing(connection: Connection, tables: q.Tables, account: str, as_of: datetime) -> Row:
    """Open amounts per party, oldest first: payments and credits settle the oldest items."""
    sign = 1 if account == p.ACCOUNTS_RECEIVABLE else -1
    per_party: dict[str, list[Row]] = defaultdict(list)
    for line in q.open_items(connection, tables.journal, account, as_of):
        per_party[line["party"] or ""].append(line)
    parties = [_aged(party, lines, sign, as_of.astimezone(UTC).date()) for party, lines in
               sorted(per_party.items())]
    parties = [party for party in parties if party["open"] != 0]
    totals = {name: sum((party["buckets"][name] for party in parties), ZERO)
              for name, _, _ in BUCKETS}
    return {"as_of": as_of, "parties": parties, "buckets": totals,
            "total": sum((party["open"] for party in parties), ZERO)}


def _aged(party: str, lines: list[Row], sign: int, today: date) -> Row:
    items: list[list[Any]] = []  # [effective date, open amount in e2]
    unapplied = 0
    for line in lines:
        amount = sign * (line["debit_e2"] - line["credit_e2"])
        if amount > 0:
            items.append([line["effective_at"][:10], amount])
            continue
        unapplied += -amount
        while unapplied and items:
            taken = min(unapplied, items[0][1])
            items[0][1] -= taken
            unapplied -= taken
            if items[0][1] == 0:
                items.pop(0)
    buckets = dict.fromkeys((name for name, _, _ in BUCKETS), ZERO)
    for day, amount in items:
        age = (today - date.fromisoformat(day)).days
        for name, low, high in BUCKETS:
            # Dated after `as_of` cannot happen (lines are read up to it); 0–30 is the floor.
            if (age >= low or name == "d0_30") and (high is None or age <= high):
                buckets[name] += money_of(amount)
                break
    open_amount = sum(buckets.values(), ZERO) - money_of(unapplied)
    return {"party": party, "open": open_amount, "buckets": buckets,
            "unapplied_credit": money_of(unapplied)}


@dataclass(frozen=True)
class Check:
    name: str
    expected: Decimal
    actual: Decimal
    detail: str
    items: list[Row] | None = None

    def out(self) -> Row:
        return {"name": self.name, "expected": self.expected, "actual": self.actual,
                "difference": self.actual - self.expected, "ok": self.actual == self.expected,
                "detail": self.detail, "items": self.items}
