"""Read model of current stock per SKU and location: on hand, reserved, in transit, value."""

from __future__ import annotations

from collections.abc import Hashable
from typing import ClassVar

from sqlalchemy import BigInteger, Column, MetaData, Table, Text

from ledger.domain.stock_bin import StockBin
from projections.base import Envelope, KeyedProjection, Row
from projections.encoding import e2, e3, e6

MOVEMENT_TOPICS = frozenset({
    StockBin.Received.TOPIC, StockBin.Dispatched.TOPIC, StockBin.TransferredOut.TOPIC,
    StockBin.TransferredIn.TOPIC, StockBin.Counted.TOPIC, StockBin.ReturnedToSupplier.TOPIC,
    StockBin.ReturnedByCustomer.TOPIC,
})
RESERVATION_TOPICS = frozenset({StockBin.Reserved.TOPIC, StockBin.ReservationReleased.TOPIC})


class StockLevelsProjection(KeyedProjection):
    name = "stock_levels"
    table_name = "stock_levels"
    topics: ClassVar[frozenset[str]] = MOVEMENT_TOPICS | RESERVATION_TOPICS

    def define_tables(self, metadata: MetaData, suffix: str) -> dict[str, Table]:
        return {"stock_levels": Table(
            f"stock_levels{suffix}", metadata,
            Column("sku", Text, primary_key=True),
            Column("location", Text, primary_key=True),
            Column("quantity_on_hand_e3", BigInteger, nullable=False),
            Column("quantity_reserved_e3", BigInteger, nullable=False),
            Column("quantity_in_transit_e3", BigInteger, nullable=False),
            Column("value_e2", BigInteger, nullable=False),
            Column("unit_cost_e6", BigInteger, nullable=False),
            Column("updated_position", BigInteger, nullable=False),
        )}

    def key(self, envelope: Envelope) -> tuple[Hashable, ...]:
        return (envelope.event.sku, envelope.event.location)

    def fold(self, row: Row | None, envelope: Envelope) -> Row:
        event = envelope.event
        if isinstance(event, StockBin.Reserved | StockBin.ReservationReleased):
            assert row is not None, "only stock that is there can be reserved"
            return {**row, "quantity_reserved_e3": e3(event.quantity_reserved_after),
                    "updated_position": envelope.position}
        row = row or {"sku": event.sku, "location": event.location, "quantity_reserved_e3": 0,
                      "quantity_in_transit_e3": 0}
        reserved = row["quantity_reserved_e3"]
        if isinstance(event, StockBin.Dispatched) and event.order_id is not None:
            # A sales-order dispatch takes the stock its line had reserved (as in the bin).
            reserved -= e3(event.quantity)
        return {
            **row,
            "quantity_on_hand_e3": e3(event.quantity_on_hand_after),
            "quantity_reserved_e3": reserved,
            "value_e2": e2(event.value_after),
            "unit_cost_e6": e6(event.unit_cost_after),
            "updated_position": envelope.position,
        }
