"""Read model of items: SKU, name, unit, valuation method and reorder point."""

from __future__ import annotations

from collections.abc import Hashable
from typing import ClassVar

from sqlalchemy import BigInteger, Column, Integer, MetaData, Table, Text

from ledger.domain.item import Item
from projections.base import Envelope, KeyedProjection, Row
from projections.encoding import e3


class ItemsProjection(KeyedProjection):
    name = "items"
    table_name = "items"
    topics: ClassVar[frozenset[str]] = frozenset({Item.Registered.TOPIC, Item.Updated.TOPIC})

    def define_tables(self, metadata: MetaData, suffix: str) -> dict[str, Table]:
        return {"items": Table(
            f"items{suffix}", metadata,
            Column("sku", Text, primary_key=True),
            Column("item_id", Text, nullable=False, unique=True),
            Column("name", Text, nullable=False),
            Column("uom", Text, nullable=False),
            Column("valuation_method", Text, nullable=False),
            Column("reorder_point_e3", BigInteger),
            Column("version", Integer, nullable=False),
            Column("registered_position", BigInteger, nullable=False),
        )}

    def key(self, envelope: Envelope) -> tuple[Hashable, ...]:
        return (envelope.event.sku,)

    def fold(self, row: Row | None, envelope: Envelope) -> Row:
        event = envelope.event
        reorder_point = None if event.reorder_point is None else e3(event.reorder_point)
        if isinstance(event, Item.Registered):
            return {"sku": event.sku, "item_id": str(event.originator_id), "name": event.name,
                    "uom": event.uom, "valuation_method": event.valuation_method,
                    "reorder_point_e3": reorder_point, "version": event.originator_version,
                    "registered_position": envelope.position}
        assert row is not None, "an item is updated after it is registered"
        return {**row, "name": event.name, "uom": event.uom, "reorder_point_e3": reorder_point,
                "version": event.originator_version}

