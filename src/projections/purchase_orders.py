"""Read model of purchase orders: status, per-line figures and money, for lists and views."""

from __future__ import annotations

import json
from collections.abc import Hashable
from decimal import Decimal
from typing import Any, ClassVar

from sqlalchemy import BigInteger, Column, Index, Integer, MetaData, Table, Text

from ledger.domain.purchase_order import PurchaseOrder, purchase_status
from projections.base import Envelope, KeyedProjection, Row
from projections.encoding import e2, money_of

P = PurchaseOrder
FIGURES = {P.GoodsReceived: "received", P.GoodsReturned: "returned", P.Invoiced: "invoiced"}
# The money each kind of line adds to (what goods received not invoiced is made of).
VALUES = {P.GoodsReceived: ("received_value", "value"),
          P.GoodsReturned: ("returned_value", "value"),
          P.Invoiced: ("grni_cleared", "grni_value")}


class PurchaseOrdersProjection(KeyedProjection):
    name = "purchase_orders"
    table_name = "purchase_orders"
    topics: ClassVar[frozenset[str] | None] = frozenset({
        P.Created.TOPIC, P.Reviewed.TOPIC, P.GoodsReceived.TOPIC, P.GoodsReturned.TOPIC,
        P.Invoiced.TOPIC, P.Paid.TOPIC, P.Ended.TOPIC})

    def define_tables(self, metadata: MetaData, suffix: str) -> dict[str, Table]:
        table = Table(
            f"purchase_orders{suffix}", metadata,
            Column("order_id", Text, primary_key=True),
            Column("supplier", Text, nullable=False),
            Column("status", Text, nullable=False),
            Column("review", Text),
            Column("ended", Text),
            Column("reference", Text),
            Column("lines", Text, nullable=False),
            Column("invoiced_total_e2", BigInteger, nullable=False),
            Column("paid_e2", BigInteger, nullable=False),
            Column("version", Integer, nullable=False),
            Column("created_position", BigInteger, nullable=False),
            Column("updated_position", BigInteger, nullable=False),
        )
        Index(f"ix_purchase_orders{suffix}_status", table.c.status, table.c.created_position)
        Index(f"ix_purchase_orders{suffix}_supplier", table.c.supplier, table.c.created_position)
        return {"purchase_orders": table}

    def key(self, envelope: Envelope) -> tuple[Hashable, ...]:
        return (str(envelope.event.originator_id),)

    def fold(self, row: Row | None, envelope: Envelope) -> Row:
        event = envelope.event
        if isinstance(event, P.Created):
            row = _created(event, envelope.position)
        assert row is not None, "an order's events follow its creation"
        row = {**row, **_changes(row, event), "version": event.originator_version,
               "updated_position": envelope.position}
        lines = json.loads(row["lines"])
        row["status"] = purchase_status(row["review"], row["ended"], lines,
                                        money_of(row["invoiced_total_e2"]),
                                        money_of(row["paid_e2"]))
        return row


def _created(event: Any, position: int) -> Row:
    lines = [{"line_number": line["line_number"], "sku": line["sku"],
              "location": line["location"], "quantity": str(line["quantity"]),
              "unit_price": str(line["unit_price"]), "received": "0.000",
              "returned": "0.000", "invoiced": "0.000", "received_value": "0.00",
              "returned_value": "0.00", "grni_cleared": "0.00"} for line in event.lines]
    return {"order_id": str(event.originator_id), "supplier": event.supplier, "review": None,
            "ended": None, "reference": event.reference, "lines": _dump(lines),
            "invoiced_total_e2": 0, "paid_e2": 0, "created_position": position}


def _changes(row: Row, event: Any) -> Row:
    if isinstance(event, P.Reviewed):
        return {"review": "approved" if event.approved else "rejected"}
    if isinstance(event, P.Ended):
        return {"ended": event.outcome}
    if isinstance(event, P.Paid):
        return {"paid_e2": row["paid_e2"] + e2(event.amount)}
    changes: Row = {}
    figure = FIGURES.get(type(event))
    if figure is not None:
        lines = {line["line_number"]: line for line in json.loads(row["lines"])}
        value_figure, value_field = VALUES[type(event)]
        for moved in event.lines:
            line = lines[moved["line_number"]]
            line[figure] = str(Decimal(line[figure]) + moved["quantity"])
            line[value_figure] = str(Decimal(line[value_figure]) + moved[value_field])
        changes["lines"] = _dump(list(lines.values()))
    if isinstance(event, P.Invoiced):
        changes["invoiced_total_e2"] = row["invoiced_total_e2"] + e2(event.total)
    return changes


def _dump(lines: list[dict[str, Any]]) -> str:
    return json.dumps(lines, sort_keys=True, separators=(",", ":"))
