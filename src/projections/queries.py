"""Queries over the read models, each bounded by a page size and keyed by a cursor."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Select, and_, or_, select

from projections.base import Projection
from projections.encoding import instant

Row = dict[str, Any]


@dataclass(frozen=True)
class Page:
    """Rows of a page; `last` is the last row examined (the next page starts after it)."""

    rows: list[Row]
    has_more: bool
    last: Row | None


def _page(connection: Connection, statement: Select[Any], limit: int) -> Page:
    rows = [dict(row) for row in connection.execute(statement.limit(limit + 1)).mappings()]
    page = rows[:limit]
    return Page(page, len(rows) > limit, page[-1] if page else None)


def stock(connection: Connection, levels: Projection, generation: int, *, sku: str | None,
          location: str | None, after: tuple[str, str] | None, limit: int) -> Page:
    """Current stock per (SKU, location), in SKU then location order."""
    table = levels.tables(generation)["stock_levels"]
    statement = select(table).order_by(table.c.sku, table.c.location)
    if sku is not None:
        statement = statement.where(table.c.sku == sku)
    if location is not None:
        statement = statement.where(table.c.location == location)
    if after is not None:
        statement = statement.where(or_(
            table.c.sku > after[0], and_(table.c.sku == after[0], table.c.location > after[1])))
    return _page(connection, statement, limit)


def stock_as_of(connection: Connection, levels: Projection, levels_generation: int,
                card: Projection, card_generation: int, *, moment: datetime,
                sku: str | None, location: str | None, after: tuple[str, str] | None,
                limit: int) -> Page:
    """Stock as of an effective moment: for each bin, its last stock-card row at or before it.

    One indexed seek per bin on (sku, location, effective_at, position): the cost does not
    grow with the length of history. Bins with no movement by then are left out.
    """
    bins = stock(connection, levels, levels_generation, sku=sku, location=location,
                 after=after, limit=limit)
    table = card.tables(card_generation)["stock_card"]
    at = instant(moment)
    rows = []
    for level in bins.rows:
        statement = (
            select(table)
            .where(table.c.sku == level["sku"], table.c.location == level["location"],
                   table.c.effective_at <= at)
            .order_by(table.c.effective_at.desc(), table.c.position.desc())
            .limit(1)
        )
        found = connection.execute(statement).mappings().first()
        if found is not None:
            rows.append({"level": level, "card": dict(found)})
    return Page(rows, bins.has_more, bins.last)


def movements(connection: Connection, card: Projection, generation: int, *, sku: str,
              location: str | None, start: datetime | None, end: datetime | None,
              after: tuple[str, int] | None, limit: int) -> Page:
    """A SKU's stock card in effective-time order (then log order), optionally one location."""
    table = card.tables(generation)["stock_card"]
    statement = (select(table).where(table.c.sku == sku)
                 .order_by(table.c.effective_at, table.c.position))
    if location is not None:
        statement = statement.where(table.c.location == location)
    if start is not None:
        statement = statement.where(table.c.effective_at >= instant(start))
    if end is not None:
        statement = statement.where(table.c.effective_at < instant(end))
    if after is not None:
        statement = statement.where(or_(
            table.c.effective_at > after[0],
            and_(table.c.effective_at == after[0], table.c.position > after[1])))
    return _page(connection, statement, limit)


def low_stock(connection: Connection, levels: Projection, levels_generation: int,
              items: Projection, items_generation: int, *, after: tuple[str, str] | None,
              limit: int) -> Page:
    """Bins whose available quantity is at or below their item's reorder point."""
    level = levels.tables(levels_generation)["stock_levels"]
    item = items.tables(items_generation)["items"]
    available = level.c.quantity_on_hand_e3 - level.c.quantity_reserved_e3
    statement = (
        select(level, item.c.reorder_point_e3, item.c.name, item.c.uom)
        .join(item, item.c.sku == level.c.sku)
        .where(item.c.reorder_point_e3.is_not(None), available <= item.c.reorder_point_e3)
        .order_by(level.c.sku, level.c.location)
    )
    if after is not None:
        statement = statement.where(or_(
            level.c.sku > after[0], and_(level.c.sku == after[0], level.c.location > after[1])))
    return _page(connection, statement, limit)


def audit_events(connection: Connection, audit: Projection, generation: int, *, after: int,
                 limit: int, topic: str | None, aggregate_id: str | None,
                 start: datetime | None, end: datetime | None) -> Page:
    """Events in log order after a position, filtered by topic, aggregate and record time."""
    table = audit.tables(generation)["audit_log"]
    statement = select(table).where(table.c.position > after).order_by(table.c.position)
    if topic is not None:
        statement = statement.where(table.c.topic == topic)
    if aggregate_id is not None:
        statement = statement.where(table.c.aggregate_id == aggregate_id)
    if start is not None:
        statement = statement.where(table.c.recorded_at >= instant(start))
    if end is not None:
        statement = statement.where(table.c.recorded_at < instant(end))
    return _page(connection, statement, limit)


def audit_entry(connection: Connection, audit: Projection, generation: int,
                position: int | None) -> Row | None:
    """The audit-log row at a position, or the newest one when `position` is None."""
    table = audit.tables(generation)["audit_log"]
    statement = select(table)
    if position is None:
        statement = statement.order_by(table.c.position.desc()).limit(1)
    else:
        statement = statement.where(table.c.position == position)
    found = connection.execute(statement).mappings().first()
    return None if found is None else dict(found)


def orders(connection: Connection, orders_projection: Projection, generation: int, *,
           status: str | None, party: tuple[str, str | None], after: int, limit: int) -> Page:
    """Purchase or sales orders in creation order, optionally by status or party.

    `party` names the party column (supplier, customer) and the code to match.
    """
    table = orders_projection.tables(generation)[orders_projection.name]
    statement = (select(table).where(table.c.created_position > after)
                 .order_by(table.c.created_position))
    if status is not None:
        statement = statement.where(table.c.status == status)
    column, code = party
    if code is not None:
        statement = statement.where(table.c[column] == code)
    return _page(connection, statement, limit)


def order(connection: Connection, orders_projection: Projection, generation: int,
          order_id: str) -> Row | None:
    """One purchase or sales order's row."""
    table = orders_projection.tables(generation)[orders_projection.name]
    found = connection.execute(select(table).where(table.c.order_id == order_id)).mappings()
    row = found.first()
    return None if row is None else dict(row)
