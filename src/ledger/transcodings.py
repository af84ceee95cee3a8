"""How domain values that JSON does not know are written into stored events."""

from __future__ import annotations

from typing import Any

from eventsourcing.persistence import Transcoding

from ledger.costing import CostState, Layer


class LayerAsDict(Transcoding):
    """A cost layer as {"quantity", "unit_cost", "value"} (decimals as strings)."""

    type = Layer
    name = "cost_layer"

    def encode(self, obj: Layer) -> dict[str, Any]:
        return {"quantity": obj.quantity, "unit_cost": obj.unit_cost, "value": obj.value}

    def decode(self, data: dict[str, Any]) -> Layer:
        return Layer(data["quantity"], data["unit_cost"], data["value"])


class CostStateAsDict(Transcoding):
    """A bin's cost state, for snapshots: the totals and (FIFO) the layers, in order."""

    type = CostState
    name = "cost_state"

    def encode(self, obj: CostState) -> dict[str, Any]:
        return {"method": obj.method, "quantity": obj.quantity, "value": obj.value,
                "last_unit_cost": obj.last_unit_cost, "layers": list(obj.layers)}

    def decode(self, data: dict[str, Any]) -> CostState:
        return CostState(method=data["method"], quantity=data["quantity"], value=data["value"],
                         last_unit_cost=data["last_unit_cost"], layers=tuple(data["layers"]))
