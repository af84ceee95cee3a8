"""Read model of sales orders: status, per-line figures, money and the timeline of each order.

The figures are folded by the order's own event `apply` methods on a `SalesFigures`
state (the same code the aggregate runs), so the read model cannot drift from the
order; the timeline lists every event of the order with who, when and what.
"""

from __future__ import annotations

import json
from collections.abc import Hashable
from datetime import datetime
from decimal import Decimal
from typing import Any, ClassVar
from uuid import UUID

from sqlalchemy import BigInteger, Column, Index, Integer, MetaData, Table, Text

from ledger.domain.sales_order import FIGURES, MONEY_FIGURES, SalesFigures, SalesOrder
from projections.base import Envelope, KeyedProjection, Row
from projections.encoding import e2, instant, money_of

S = SalesOrder
EVENTS = (S.Placed, S.Reviewed, S.Reserved, S.ReservationsReleased, S.Dispatched, S.Shipped,
          S.Delivered, S.Invoiced, S.Paid, S.Returned, S.Cancelled)
# What the timeline shows of an event, when the event has it.
DETAILS = ("approved", "reason", "duplicate_confirmed", "document_id", "payment_id", "carrier",
           "tracking_number", "signed_by", "signed_at", "invoice_number", "amount", "tax",
           "total", "credit_note_number", "credit_total", "effective_at")
LINE_DETAILS = ("line_number", "quantity", "unit_price", "tax_rate", "value")


class SalesOrdersProjection(KeyedProjection):
    name = "sales_orders"
    table_name = "sales_orders"
    topics: ClassVar[frozenset[str] | None] = frozenset(event.TOPIC for event in EVENTS)

    def define_tables(self, metadata: MetaData, suffix: str) -> dict[str, Table]:
        table = Table(
            f"sales_orders{suffix}", metadata,
            Column("order_id", Text, primary_key=True),
            Column("customer", Text, nullable=False),
            Column("status", Text, nullable=False),
            Column("review", Text),
            Column("cancelled", Integer, nullable=False),
            Column("reference", Text),
            Column("note", Text),
            Column("possible_duplicate_of", Text, nullable=False),
            Column("placed_at", Text, nullable=False),
            Column("lines", Text, nullable=False),
            Column("invoiced_total_e2", BigInteger, nullable=False),
            Column("credited_total_e2", BigInteger, nullable=False),
            Column("paid_e2", BigInteger, nullable=False),
            Column("timeline", Text, nullable=False),
            Column("version", Integer, nullable=False),
            Column("created_position", BigInteger, nullable=False),
            Column("updated_position", BigInteger, nullable=False),
        )
        Index(f"ix_sales_orders{suffix}_status", table.c.status, table.c.created_position)
        Index(f"ix_sales_orders{suffix}_customer", table.c.customer, table.c.created_position)
        return {"sales_orders": table}

    def key(self, envelope: Envelope) -> tuple[Hashable, ...]:
        return (str(envelope.event.originator_id),)

    def fold(self, row: Row | None, envelope: Envelope) -> Row:
        event = envelope.event
        if isinstance(event, S.Placed):
            row = _placed(event, envelope.position)
        assert row is not None, "an order's events follow its placement"
        figures = figures_of(row)
        if not isinstance(event, S.Placed):
            event.apply(figures)
        timeline = [*json.loads(row["timeline"]), _moment(event, envelope.position)]
        return {**row, **_stored(figures), "timeline": _dump(timeline),
                "version": event.originator_version, "updated_position": envelope.position}


def figures_of(row: Row) -> SalesFigures:
    """The order's figures as the read model holds them."""
    figures = SalesFigures([])
    figures.lines = {int(line["line_number"]): _decimals(line)
                     for line in json.loads(row["lines"])}
    figures.review_outcome = row["review"]
    figures.cancelled = bool(row["cancelled"])
    figures.invoiced_total = money_of(row["invoiced_total_e2"])
    figures.credited_total = money_of(row["credited_total_e2"])
    figures.paid = money_of(row["paid_e2"])
    return figures


def _decimals(line: dict[str, Any]) -> dict[str, Any]:
    numeric = ("quantity", "unit_price", *FIGURES, *MONEY_FIGURES)
    return {key: Decimal(value) if key in numeric and value is not None else value
            for key, value in line.items()}


def _stored(figures: SalesFigures) -> Row:
    lines = [{key: str(value) if isinstance(value, Decimal) else value
              for key, value in line.items()} for line in figures.lines.values()]
    return {"lines": _dump(lines), "review": figures.review_outcome,
            "cancelled": int(figures.cancelled), "status": figures.status,
            "invoiced_total_e2": e2(figures.invoiced_total),
            "credited_total_e2": e2(figures.credited_total), "paid_e2": e2(figures.paid)}


def _placed(event: Any, position: int) -> Row:
    figures = SalesFigures(event.lines)
    return {"order_id": str(event.originator_id), "customer": event.customer,
            "reference": event.reference, "note": event.note,
            "possible_duplicate_of": _dump([str(other) for other in event.possible_duplicate_of]),
            "placed_at": instant(event.timestamp), "timeline": "[]",
            "created_position": position, **_stored(figures)}


def _moment(event: Any, position: int) -> dict[str, Any]:
    """One timeline entry: the event, its position, when it was recorded, who, and what."""
    actor = event.reviewer if isinstance(event, S.Reviewed) else event.actor
    moment: dict[str, Any] = {"position": position, "event": type(event).__name__,
                              "recorded_at": instant(event.timestamp), "actor": actor}
    for name in DETAILS:
        value = getattr(event, name, None)
        if value is not None:
            moment[name] = _plain(value)
    if hasattr(event, "lines") and not isinstance(event, S.Placed):
        moment["lines"] = [{key: _plain(line[key]) for key in LINE_DETAILS if key in line}
                           for line in event.lines]
    return moment


def _plain(value: Any) -> Any:
    if isinstance(value, datetime):
        return instant(value)
    if isinstance(value, Decimal | UUID):
        return str(value)
    return value


def _dump(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))
