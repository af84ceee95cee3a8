"""`Item`: a SKU's reference data (name, unit of measure, valuation method, reorder point)."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from eventsourcing.domain import Aggregate

from ledger.costing import ValuationMethod
from ledger.domain.identity import item_id
from ledger.errors import ImmutableField


@dataclass(frozen=True)
class ItemDetails:
    """What a client registers about an item."""

    name: str
    uom: str
    valuation_method: ValuationMethod
    reorder_point: Decimal | None = None


class Item(Aggregate):
    """An item; re-registering the same details is a no-op, other details an update."""

    TOPIC = "ledger:Item"

    class Event(Aggregate.Event):
        TOPIC = "ledger:Item.Event"

    class Registered(Aggregate.Created):
        TOPIC = "ledger:Item.Registered"
        sku: str
        name: str
        uom: str
        valuation_method: str
        reorder_point: Decimal | None
        actor: str

    class Updated(Event):
        TOPIC = "ledger:Item.Updated"
        sku: str
        name: str
        uom: str
        reorder_point: Decimal | None
        actor: str

        def apply(self, aggregate: Item) -> None:
            aggregate.name = self.name
            aggregate.uom = self.uom
            aggregate.reorder_point = self.reorder_point

    def __init__(self, sku: str, name: str, uom: str, valuation_method: str,
                 reorder_point: Decimal | None) -> None:
        self.sku = sku
        self.name = name
        self.uom = uom
        self.valuation_method: ValuationMethod = (
            "fifo" if valuation_method == "fifo" else "moving_average"
        )
        self.reorder_point = reorder_point

    @classmethod
    def register(cls, sku: str, details: ItemDetails, actor: str) -> Item:
        return cls._create(
            cls.Registered,
            id=item_id(sku),
            sku=sku,
            name=details.name,
            uom=details.uom,
            valuation_method=details.valuation_method,
            reorder_point=details.reorder_point,
            actor=actor,
        )

    @property
    def details(self) -> ItemDetails:
        return ItemDetails(self.name, self.uom, self.valuation_method, self.reorder_point)

    def update(self, details: ItemDetails, actor: str) -> None:
        """Record new details; nothing when they are the same. The valuation method is fixed."""
        if details.valuation_method != self.valuation_method:
            raise ImmutableField(
                "valuation_method",
                f"Item {self.sku!r} is valued by {self.valuation_method}; the valuation "
                "method cannot change once an item is registered.",
            )
        if details == self.details:
            return
        self.trigger_event(self.Updated, sku=self.sku, name=details.name, uom=details.uom,
                           reorder_point=details.reorder_point, actor=actor)
