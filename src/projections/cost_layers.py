"""Read model of each FIFO bin's cost layers (what the valuation lists), folded from movements.

Applying a movement is the write side's own arithmetic (`costing.apply_movement`): remove
the recorded layers, add the recorded layers. Moving-average bins keep no layers.
"""

from __future__ import annotations

import json
from collections.abc import Hashable
from decimal import Decimal
from typing import ClassVar

from sqlalchemy import BigInteger, Column, MetaData, Table, Text

from ledger.costing import CostState, Layer, apply_movement
from ledger.domain.stock_bin import StockBin
from projections.base import Envelope, KeyedProjection, Row
from projections.stock_levels import MOVEMENT_TOPICS


class CostLayersProjection(KeyedProjection):
    name = "cost_layers"
    table_name = "cost_layers"
    topics: ClassVar[frozenset[str]] = MOVEMENT_TOPICS | {StockBin.Opened.TOPIC}

    def define_tables(self, metadata: MetaData, suffix: str) -> dict[str, Table]:
        return {"cost_layers": Table(
            f"cost_layers{suffix}", metadata,
            Column("sku", Text, primary_key=True),
            Column("location", Text, primary_key=True),
            Column("valuation_method", Text, nullable=False),
            Column("layers", Text, nullable=False),
            Column("updated_position", BigInteger, nullable=False),
        )}

    def key(self, envelope: Envelope) -> tuple[Hashable, ...]:
        return (envelope.event.sku, envelope.event.location)

    def fold(self, row: Row | None, envelope: Envelope) -> Row:
        event = envelope.event
        if isinstance(event, StockBin.Opened):
            return {"sku": event.sku, "location": event.location,
                    "valuation_method": event.valuation_method, "layers": "[]",
                    "updated_position": envelope.position}
        assert row is not None, "a bin is opened before it moves"
        if row["valuation_method"] != "fifo":
            return {**row, "updated_position": envelope.position}
        held = CostState(method="fifo", layers=layers_of(row["layers"]))
        after = apply_movement(held, tuple(event.removed), tuple(event.added))
        return {**row, "layers": dump_layers(after.layers), "updated_position": envelope.position}


def layers_of(text: str) -> tuple[Layer, ...]:
    return tuple(Layer(Decimal(q), Decimal(c), Decimal(v)) for q, c, v in json.loads(text))


def dump_layers(layers: tuple[Layer, ...]) -> str:
    return json.dumps([[str(layer.quantity), str(layer.unit_cost), str(layer.value)]
                       for layer in layers], separators=(",", ":"))
