"""The stock card (库存台账): every movement of a bin with its running balance after it.

Because a bin's effective time never goes backwards, the last row of a bin with
`effective_at ≤ T` holds the bin's quantity and value as of T: one indexed lookup,
however long the history.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from typing import ClassVar

from sqlalchemy import BigInteger, Column, Connection, Index, Integer, MetaData, Table, Text

from ledger.domain.stock_bin import StockBin
from projections.base import Carried, Envelope, Projection, Row, copy_rows
from projections.bulk import AppendFold
from projections.encoding import e2, e3, e6, instant
from projections.stock_levels import MOVEMENT_TOPICS

KINDS = {
    StockBin.Received: "received",
    StockBin.Dispatched: "dispatched",
    StockBin.TransferredOut: "transferred_out",
    StockBin.TransferredIn: "transferred_in",
    StockBin.Counted: "counted",
    StockBin.ReturnedToSupplier: "returned_to_supplier",
    StockBin.ReturnedByCustomer: "returned_by_customer",
}
ZERO = Decimal(0)


class StockCardProjection(Projection):
    name = "stock_card"
    topics: ClassVar[frozenset[str]] = MOVEMENT_TOPICS

    def define_tables(self, metadata: MetaData, suffix: str) -> dict[str, Table]:
        table = Table(
            f"stock_card{suffix}", metadata,
            Column("position", BigInteger, primary_key=True, autoincrement=False),
            Column("sku", Text, nullable=False),
            Column("location", Text, nullable=False),
            Column("effective_at", Text, nullable=False),
            Column("recorded_at", Text, nullable=False),
            Column("kind", Text, nullable=False),
            Column("document_id", Text, nullable=False),
            Column("line_number", Integer, nullable=False),
            Column("reference", Text),
            Column("note", Text),
            Column("reason", Text),
            Column("actor", Text, nullable=False),
            Column("counterpart_location", Text),
            Column("quantity_in_e3", BigInteger, nullable=False),
            Column("quantity_out_e3", BigInteger, nullable=False),
            Column("unit_cost_e6", BigInteger, nullable=False),
            Column("value_in_e2", BigInteger, nullable=False),
            Column("value_out_e2", BigInteger, nullable=False),
            Column("quantity_on_hand_after_e3", BigInteger, nullable=False),
            Column("value_after_e2", BigInteger, nullable=False),
            Column("unit_cost_after_e6", BigInteger, nullable=False),
        )
        Index(f"ix_stock_card{suffix}_bin_time", table.c.sku, table.c.location,
              table.c.effective_at, table.c.position)
        Index(f"ix_stock_card{suffix}_sku_time", table.c.sku, table.c.effective_at,
              table.c.position)
        return {"stock_card": table}

    def apply_page(self, connection: Connection, tables: dict[str, Table],
                   envelopes: Sequence[Envelope], carried: Carried | None = None) -> None:
        if envelopes:
            copy_rows(connection, tables["stock_card"], card_rows(envelopes))

    def bulk_fold(self) -> AppendFold:
        return AppendFold("stock_card", card_rows)


def card_rows(envelopes: Sequence[Envelope]) -> list[Row]:
    return [card_row(envelope) for envelope in envelopes]


def card_row(envelope: Envelope) -> Row:
    """The stock-card row of one movement (pure)."""
    event = envelope.event
    quantity_in, quantity_out, value_in, value_out = _flows(event)
    return {
        "position": envelope.position,
        "sku": event.sku,
        "location": event.location,
        "effective_at": instant(event.effective_at),
        "recorded_at": instant(event.timestamp),
        "kind": KINDS[type(event)],
        "document_id": str(event.document_id),
        "line_number": event.line_number,
        "reference": event.reference,
        "note": event.note,
        "reason": event.reason,
        "actor": event.actor,
        "counterpart_location": getattr(event, "to_location", None)
        or getattr(event, "from_location", None),
        "quantity_in_e3": e3(quantity_in),
        "quantity_out_e3": e3(quantity_out),
        "unit_cost_e6": e6(event.unit_cost),
        "value_in_e2": e2(value_in),
        "value_out_e2": e2(value_out),
        "quantity_on_hand_after_e3": e3(event.quantity_on_hand_after),
        "value_after_e2": e2(event.value_after),
        "unit_cost_after_e6": e6(event.unit_cost_after),
    }


def _flows(event: StockBin.Movement) -> tuple[Decimal, Decimal, Decimal, Decimal]:
    """Quantity and value in and out, each non-negative."""
    if isinstance(event, StockBin.Counted):
        quantity, value = event.quantity_difference, event.value_difference
        return max(quantity, ZERO), max(-quantity, ZERO), max(value, ZERO), max(-value, ZERO)
    if isinstance(event, StockBin.Received | StockBin.TransferredIn | StockBin.ReturnedByCustomer):
        return event.quantity, ZERO, event.value, ZERO
    assert isinstance(event, StockBin.Dispatched | StockBin.TransferredOut
                      | StockBin.ReturnedToSupplier)
    return ZERO, event.quantity, ZERO, event.value
