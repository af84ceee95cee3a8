"""Finance queries over the journal and the stock read models: exact sums of scaled integers.

Every figure is a SQL aggregate over journal lines (or the stock card's running balances),
so each can be traced back to the lines, and each line to its event.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Table, and_, func, select

from ledger import posting as p
from projections.encoding import instant

Row = dict[str, Any]


@dataclass(frozen=True)
class Tables:
    """The read-model tables (of their live generations) finance reads."""

    journal: Table
    stock_levels: Table
    stock_card: Table
    cost_layers: Table
    purchase_orders: Table
    sales_orders: Table
    audit_log: Table


def _during(table: Table, start: datetime | None, end: datetime | None) -> list[Any]:
    """Effective time in [start, end)."""
    conditions = []
    if start is not None:
        conditions.append(table.c.effective_at >= instant(start))
    if end is not None:
        conditions.append(table.c.effective_at < instant(end))
    return conditions


def journal_entries(connection: Connection, journal: Table, *, start: datetime | None,
                    end: datetime | None, account: str | None, after: int,
                    limit: int) -> tuple[list[list[Row]], bool]:
    """Whole entries (all their lines) in log order after a position, with more to come?"""
    positions = (select(journal.c.position).distinct()
                 .where(journal.c.position > after, *_during(journal, start, end))
                 .order_by(journal.c.position).limit(limit + 1))
    if account is not None:
        positions = positions.where(journal.c.account == account)
    found = [row[0] for row in connection.execute(positions)]
    page = found[:limit]
    if not page:
        return [], False
    lines = connection.execute(select(journal).where(journal.c.position.in_(page))
                               .order_by(journal.c.position, journal.c.line_number)).mappings()
    entries: dict[int, list[Row]] = {}
    for line in lines:
        entries.setdefault(line["position"], []).append(dict(line))
    return list(entries.values()), len(found) > limit


def balances(connection: Connection, journal: Table, *, as_of: datetime | None,
             by: Iterable[str] = ()) -> list[Row]:
    """Debits and credits per account (and the columns in `by`), effective up to `as_of`."""
    columns = [journal.c.account, *(journal.c[name] for name in by)]
    statement = (select(*columns, func.sum(journal.c.debit_e2).label("debit_e2"),
                        func.sum(journal.c.credit_e2).label("credit_e2"))
                 .group_by(*columns).order_by(*columns))
    if as_of is not None:
        statement = statement.where(journal.c.effective_at <= instant(as_of))
    return [dict(row) for row in connection.execute(statement).mappings()]


def trial_balance(connection: Connection, journal: Table, as_of: datetime | None) -> list[Row]:
    """Every account's debit and credit; inventory per location."""
    rows: list[Row] = []
    for row in balances(connection, journal, as_of=as_of, by=("location",)):
        location = row["location"] if row["account"] == p.INVENTORY else None
        if rows and (rows[-1]["account"], rows[-1]["location"]) == (row["account"], location):
            rows[-1]["debit_e2"] += row["debit_e2"]
            rows[-1]["credit_e2"] += row["credit_e2"]
        else:
            rows.append({**row, "location": location})
    return rows


def valuation(connection: Connection, tables: Tables, *, as_of: datetime | None,
              sku: str | None, location: str | None, before: bool = False) -> list[Row]:
    """Quantity and value per bin, now (with FIFO layers) or as of an effective moment
    (movements at that moment included, or with `before` not)."""
    levels, layers = tables.stock_levels, tables.cost_layers
    statement = (select(levels.c.sku, levels.c.location, levels.c.quantity_on_hand_e3,
                        levels.c.value_e2, levels.c.unit_cost_e6, layers.c.valuation_method,
                        layers.c.layers)
                 .join(layers, and_(layers.c.sku == levels.c.sku,
                                    layers.c.location == levels.c.location), isouter=True)
                 .order_by(levels.c.sku, levels.c.location))
    if sku is not None:
        statement = statement.where(levels.c.sku == sku)
    if location is not None:
        statement = statement.where(levels.c.location == location)
    rows = [dict(row) for row in connection.execute(statement).mappings()]
    if as_of is None:
        return rows
    return [row for row in (_as_of(connection, tables.stock_card, row, as_of, before)
                            for row in rows) if row is not None]


def _as_of(connection: Connection, card: Table, row: Row, moment: datetime,
           before: bool) -> Row | None:
    """The bin's figures after its last movement effective at (or before) `moment`."""
    at = instant(moment)
    found = connection.execute(
        select(card.c.quantity_on_hand_after_e3, card.c.value_after_e2,
               card.c.unit_cost_after_e6)
        .where(card.c.sku == row["sku"], card.c.location == row["location"],
               card.c.effective_at < at if before else card.c.effective_at <= at)
        .order_by(card.c.effective_at.desc(), card.c.position.desc()).limit(1)).first()
    if found is None:
        return None
    return {**row, "quantity_on_hand_e3": found[0], "value_e2": found[1],
            "unit_cost_e6": found[2], "layers": None}


def cogs(connection: Connection, tables: Tables, *, start: datetime | None,
         end: datetime | None, group_by: str) -> list[Row]:
    """Cost of goods sold (debits less credits on COGS) per SKU, location or customer."""
    journal, orders = tables.journal, tables.sales_orders
    key = orders.c.customer if group_by == "customer" else journal.c[group_by]
    statement = (select(key.label("key"), func.sum(journal.c.debit_e2).label("debit_e2"),
                        func.sum(journal.c.credit_e2).label("credit_e2"),
                        func.sum(journal.c.quantity_e3).label("quantity_e3"))
                 .select_from(journal.join(orders, orders.c.order_id == journal.c.order_id,
                                           isouter=True))
                 .where(journal.c.account == p.COGS, *_during(journal, start, end))
                 .group_by(key).order_by(key))
    return [dict(row) for row in connection.execute(statement).mappings()]


def sales(connection: Connection, tables: Tables, *, start: datetime | None,
          end: datetime | None, group_by: str) -> list[Row]:
    """Per SKU, customer or day: revenue, returns, COGS, quantities, orders (销售统计报表).

    COGS lines come from the bins' dispatches and name the order, not the customer: the
    customer is the order's, from the sales-order read model.
    """
    journal, orders = tables.journal, tables.sales_orders
    source: Any = journal
    key: Any = journal.c.sku
    if group_by == "day":
        key = func.substr(journal.c.effective_at, 1, 10)
    elif group_by == "customer":
        source = journal.join(orders, orders.c.order_id == journal.c.order_id)
        key = orders.c.customer

    def amount(account: str, sign: int) -> Any:
        return func.coalesce(func.sum((journal.c.credit_e2 - journal.c.debit_e2) * sign)
                             .filter(journal.c.account == account), 0)

    def quantity(account: str) -> Any:
        return func.coalesce(func.sum(journal.c.quantity_e3).filter(
            journal.c.account == account), 0)

    statement = (select(key.label("key"),
                        amount(p.SALES_REVENUE, 1).label("revenue_e2"),
                        amount(p.SALES_RETURNS, -1).label("returns_e2"),
                        amount(p.COGS, -1).label("cogs_e2"),
                        quantity(p.SALES_REVENUE).label("quantity_e3"),
                        quantity(p.SALES_RETURNS).label("returned_e3"),
                        func.count(journal.c.order_id.distinct()).filter(
                            journal.c.account == p.SALES_REVENUE).label("orders"))
                 .select_from(source)
                 .where(journal.c.account.in_((p.SALES_REVENUE, p.SALES_RETURNS, p.COGS)),
                        journal.c.order_id.is_not(None), *_during(journal, start, end))
                 .group_by(key).order_by(key))
    return [dict(row) for row in connection.execute(statement).mappings()]


def open_items(connection: Connection, journal: Table, account: str,
               as_of: datetime | None) -> list[Row]:
    """The lines of a party account (AR or AP) in effective-time order, per party."""
    statement = (select(journal.c.party, journal.c.effective_at, journal.c.position,
                        journal.c.debit_e2, journal.c.credit_e2)
                 .where(journal.c.account == account)
                 .order_by(journal.c.party, journal.c.effective_at, journal.c.position))
    if as_of is not None:
        statement = statement.where(journal.c.effective_at <= instant(as_of))
    return [dict(row) for row in connection.execute(statement).mappings()]


def grni_by_order_line(connection: Connection, journal: Table) -> dict[tuple[str, int], int]:
    """The GRNI balance (credit − debit, e2) per purchase-order line; plain receipts: ("", 0)."""
    statement = (select(journal.c.order_id, journal.c.order_line,
                        func.sum(journal.c.credit_e2 - journal.c.debit_e2))
                 .where(journal.c.account == p.GRNI)
                 .group_by(journal.c.order_id, journal.c.order_line))
    return {(order_id or "", order_line or 0): total
            for order_id, order_line, total in connection.execute(statement)}


def party_balances(connection: Connection, journal: Table, account: str) -> dict[str, int]:
    """Debit − credit (e2) per party on a party account."""
    statement = (select(journal.c.party, func.sum(journal.c.debit_e2 - journal.c.credit_e2))
                 .where(journal.c.account == account).group_by(journal.c.party))
    return {party or "": total for party, total in connection.execute(statement)}


def postings_count(connection: Connection, tables: Tables, topics: frozenset[str],
                   up_to: int) -> tuple[int, int, int]:
    """Events of posting topics up to a position; entries posted; entries that do not balance."""
    audit, journal = tables.audit_log, tables.journal
    events = connection.execute(select(func.count()).select_from(audit).where(
        audit.c.topic.in_(sorted(topics)), audit.c.position <= up_to)).scalar_one()
    entries = connection.execute(select(func.count(journal.c.position.distinct())).where(
        journal.c.position <= up_to)).scalar_one()
    per_entry = (select(journal.c.position)
                 .where(journal.c.position <= up_to).group_by(journal.c.position)
                 .having(func.sum(journal.c.debit_e2) != func.sum(journal.c.credit_e2))
                 .subquery())
    unbalanced = connection.execute(select(func.count()).select_from(per_entry)).scalar_one()
    return events, entries, unbalanced


def orders(connection: Connection, table: Table) -> list[Row]:
    return [dict(row) for row in connection.execute(select(table)).mappings()]


def stock_value(connection: Connection, levels: Table) -> dict[str, int]:
    """The value of stock on hand per location (e2)."""
    statement = (select(levels.c.location, func.sum(levels.c.value_e2))
                 .group_by(levels.c.location))
    return {location: total for location, total in connection.execute(statement)}

