"""Read model of each FIFO bin's cost layers (what the valuation lists), folded from movements.

Applying a movement is the write side's own arithmetic (`costing.apply_movement`): remove
the recorded layers, add the recorded layers. Moving-average bins keep no layers.
"""

from __future__ import annotations

import json
import operator
from collections.abc import Hashable, Sequence
from decimal import Decimal
from typing import Any, ClassVar

from sqlalchemy import BigInteger, Column, Connection, MetaData, Table, Text

from ledger.costing import CostState, Layer, apply_movement
from ledger.domain.stock_bin import StockBin
from projections.base import Carried, Envelope, KeyedProjection, Row
from projections.bulk import KeyedFold
from projections.stock_levels import MOVEMENT_TOPICS

# How far from the ends of a bin's layers `layer_texts` looks for the run a movement left.
RUN_SEARCH_MAX = 8


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
        held = () if row is None else layers_of(row["layers"])
        moved, layers = advance(row, held, envelope)
        return {**moved, "layers": dump_layers(layers)}

    def fold_page(self, rows: dict[tuple[Hashable, ...], Row], envelopes: Sequence[Envelope],
                  carried: Carried | None) -> None:
        """As `fold` event by event, each bin's layers read once a page (or not at all, when
        the runner carries them decoded from its previous page) and written once."""
        decoded = {} if carried is None else carried.decoded
        touched: dict[tuple[Hashable, ...], tuple[Layer, ...]] = {}
        for envelope in envelopes:
            at = self.key(envelope)
            row = rows.get(at)
            layers = touched.get(at)
            if layers is None:
                layers = () if row is None else _layers(decoded, at, row["layers"])
            rows[at], touched[at] = advance(row, layers, envelope)
        for at, layers in touched.items():
            texts = layer_texts(layers, _known(decoded, at, rows[at]["layers"]))
            text = "[" + ",".join(texts) + "]"
            rows[at] = {**rows[at], "layers": text}
            decoded[at] = (text, layers, texts)

    def bulk_fold(self) -> CostLayersFold:
        return CostLayersFold(self)


class CostLayersFold(KeyedFold):
    """A rebuild's fold: each bin's layers stay decoded in memory, written as text once."""

    def __init__(self, projection: CostLayersProjection) -> None:
        super().__init__(projection)
        self.layers: dict[tuple[Hashable, ...], tuple[Layer, ...]] = {}

    def add(self, envelopes: Sequence[Envelope]) -> None:
        rows, layers = self.rows, self.layers
        for envelope in envelopes:
            key = (envelope.event.sku, envelope.event.location)
            rows[key], layers[key] = advance(rows.get(key), layers.get(key, ()), envelope)

    def flush(self, connection: Connection, tables: dict[str, Table], *, final: bool) -> None:
        if final:
            for key, row in self.rows.items():
                row["layers"] = dump_layers(self.layers[key])
        super().flush(connection, tables, final=final)


def advance(row: Row | None, layers: tuple[Layer, ...],
            envelope: Envelope) -> tuple[Row, tuple[Layer, ...]]:
    """A bin's row (its layers column aside) and its layers after one event (pure)."""
    event = envelope.event
    if isinstance(event, StockBin.Opened):
        return {"sku": event.sku, "location": event.location,
                "valuation_method": event.valuation_method, "layers": "[]",
                "updated_position": envelope.position}, ()
    assert row is not None, "a bin is opened before it moves"
    moved = {**row, "updated_position": envelope.position}
    if row["valuation_method"] != "fifo":
        return moved, layers
    held = CostState(method="fifo", layers=layers)
    return moved, apply_movement(held, tuple(event.removed), tuple(event.added)).layers


def _layers(decoded: dict[tuple[Hashable, ...], Any], at: tuple[Hashable, ...],
            text: str) -> tuple[Layer, ...]:
    """A bin's layers from its row's text, or as decoded when that text was written."""
    known = decoded.get(at)
    if known is not None and known[0] == text:
        return known[1]  # type: ignore[no-any-return]
    return layers_of(text)


def _known(decoded: dict[tuple[Hashable, ...], Any], at: tuple[Hashable, ...],
           text: str) -> tuple[tuple[Layer, ...], tuple[str, ...]] | None:
    """A bin's layers and their texts as last written, when `text` is still what was."""
    known = decoded.get(at)
    if known is None or known[0] != text:
        return None
    return known[1], known[2]


def layer_texts(layers: tuple[Layer, ...],
                before: tuple[tuple[Layer, ...], tuple[str, ...]] | None = None
                ) -> tuple[str, ...]:
    """Each layer's JSON text (`dump_layers` joins them), reusing those of `before`'s
    layers that are still held: the bin's column is written again on every page that moves
    it, and a bin can hold many layers. A movement takes from the front (changing the
    first layer it leaves) and adds at the back, so the layers it leaves are the same
    objects as before, a run that ends with `before`'s last; found by identity (checked
    in C: `map(operator.is_, …)`), those cost nothing to write again. Any other change (a
    return to a supplier takes from the middle) is matched layer by layer."""
    if before is None or not before[0]:
        return tuple(map(_layer_text, layers))
    old, old_texts = before
    kept = _kept_run(layers, old)
    if kept is None:  # by id: `before`'s layers are alive here, no other object has theirs
        known = {id(layer): text for layer, text in zip(old, old_texts, strict=True)}
        return tuple(known.get(id(layer)) or _layer_text(layer) for layer in layers)
    start, length = kept
    return (tuple(map(_layer_text, layers[:start])) + old_texts[len(old) - length:]
            + tuple(map(_layer_text, layers[start + length:])))


def _kept_run(layers: tuple[Layer, ...], old: tuple[Layer, ...]) -> tuple[int, int] | None:
    """Where in `layers` the run of `old`'s last layers sits, and its length: the longest
    run of the very same objects (identity, never equality: equal decimals can be written
    differently) that ends with `old`'s last layer, starting within a few layers of each
    end; None if there is none."""
    last = old[-1]
    for end in range(len(layers) - 1, max(len(layers) - 1 - RUN_SEARCH_MAX, -1), -1):
        if layers[end] is last:
            break
    else:
        return None
    for start in range(min(RUN_SEARCH_MAX, end + 1)):
        first = len(old) - (end + 1 - start)  # the layer of `old` level with `start`
        if first >= 0 and layers[start] is old[first] and all(
                map(operator.is_, layers[start:end + 1], old[first:])):
            return start, end + 1 - start
    return None


def _layer_text(layer: Layer) -> str:
    return json.dumps([str(layer.quantity), str(layer.unit_cost), str(layer.value)],
                      separators=(",", ":"))


def layers_of(text: str) -> tuple[Layer, ...]:
    return tuple(Layer(Decimal(q), Decimal(c), Decimal(v)) for q, c, v in json.loads(text))


def dump_layers(layers: tuple[Layer, ...]) -> str:
    return json.dumps([[str(layer.quantity), str(layer.unit_cost), str(layer.value)]
                       for layer in layers], separators=(",", ":"))
