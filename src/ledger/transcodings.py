"""How domain values that JSON does not know are written into stored events."""

from __future__ import annotations

from typing import Any

from eventsourcing.persistence import Transcoding

from ledger.costing import Layer


class LayerAsDict(Transcoding):
    """A cost layer as {"quantity", "unit_cost", "value"} (decimals as strings)."""

    type = Layer
    name = "cost_layer"

    def encode(self, obj: Layer) -> dict[str, Any]:
        return {"quantity": obj.quantity, "unit_cost": obj.unit_cost, "value": obj.value}

    def decode(self, data: dict[str, Any]) -> Layer:
        return Layer(data["quantity"], data["unit_cost"], data["value"])
