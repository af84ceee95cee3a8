"""`StockBin`: what one SKU holds at one location, and what it is worth.

A bin is the consistency boundary for stock: on-hand never drops below zero and
0 ≤ reserved ≤ on-hand. Cost is decided here, on the write side, and recorded on
every event (DESIGN decision 4); applying an event only adds and subtracts the
recorded layers, so replay reproduces the bin exactly.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

from eventsourcing.domain import Aggregate

from ledger.costing import (
    CostState,
    Layer,
    ValuationMethod,
    apply_movement,
    everything,
    layer_at,
    take,
    take_at_cost,
    total_quantity,
    total_value,
    unit_cost_of,
)
from ledger.domain.context import MovementContext
from ledger.domain.identity import bin_id
from ledger.errors import BackdatedMovement, InsufficientStock, StaleRead
from ledger.numbers import ZERO, ZERO_QUANTITY, average, money, quantity


class StockBin(Aggregate):
    """One (SKU, location): on-hand, reserved and the cost state."""

    TOPIC = "ledger:StockBin"

    class Event(Aggregate.Event):
        TOPIC = "ledger:StockBin.Event"

    class Opened(Aggregate.Created):
        TOPIC = "ledger:StockBin.Opened"
        sku: str
        location: str
        valuation_method: str

    class Movement(Event):
        """Fields every stock movement carries (what its readers need, DESIGN 5)."""

        TOPIC = "ledger:StockBin.Movement"
        sku: str
        location: str
        removed: tuple[Layer, ...]
        added: tuple[Layer, ...]
        quantity_on_hand_after: Decimal
        value_after: Decimal
        unit_cost_after: Decimal
        document_id: UUID
        line_number: int
        order_id: UUID | None
        order_line: int | None
        actor: str
        effective_at: datetime
        reference: str | None
        note: str | None
        reason: str | None
        idempotency_key: str | None
        correlation_id: str | None

        def apply(self, aggregate: StockBin) -> None:
            aggregate.cost = apply_movement(aggregate.cost, tuple(self.removed), tuple(self.added))
            aggregate.latest_effective_at = self.effective_at

    class Received(Movement):
        TOPIC = "ledger:StockBin.Received"
        quantity: Decimal
        unit_cost: Decimal
        value: Decimal

    class Dispatched(Movement):
        """Out at cost; for a sales order (`order_id` set) it takes the line's reserved stock."""

        TOPIC = "ledger:StockBin.Dispatched"
        quantity: Decimal
        unit_cost: Decimal
        value: Decimal

        def apply(self, aggregate: StockBin) -> None:
            super().apply(aggregate)
            if self.order_id is not None:
                aggregate.unreserve(reservation_key(self.order_id, self.order_line),
                                    self.quantity)

    class TransferredOut(Movement):
        TOPIC = "ledger:StockBin.TransferredOut"
        quantity: Decimal
        unit_cost: Decimal
        value: Decimal
        to_location: str

    class TransferredIn(Movement):
        TOPIC = "ledger:StockBin.TransferredIn"
        quantity: Decimal
        unit_cost: Decimal
        value: Decimal
        from_location: str

    class ReturnedToSupplier(Movement):
        TOPIC = "ledger:StockBin.ReturnedToSupplier"
        quantity: Decimal
        unit_cost: Decimal
        value: Decimal

    class ReturnedByCustomer(Movement):
        """A customer's return (退货) coming back at the cost it went out at."""

        TOPIC = "ledger:StockBin.ReturnedByCustomer"
        quantity: Decimal
        unit_cost: Decimal
        value: Decimal

    class Reserved(Event):
        """Stock set aside for a sales-order line (库存检查); on-hand does not change."""

        TOPIC = "ledger:StockBin.Reserved"
        sku: str
        location: str
        order_id: UUID
        order_line: int
        quantity: Decimal
        quantity_reserved_after: Decimal
        document_id: UUID
        actor: str

        def apply(self, aggregate: StockBin) -> None:
            key = reservation_key(self.order_id, self.order_line)
            aggregate.reservations[key] = aggregate.reservations.get(key, ZERO) + self.quantity

    class ReservationReleased(Event):
        """A reservation given up: the order was cancelled, or a count found less stock."""

        TOPIC = "ledger:StockBin.ReservationReleased"
        sku: str
        location: str
        order_id: UUID
        order_line: int
        quantity: Decimal
        quantity_reserved_after: Decimal
        reason: str
        document_id: UUID
        actor: str

        def apply(self, aggregate: StockBin) -> None:
            aggregate.unreserve(reservation_key(self.order_id, self.order_line), self.quantity)

    class Counted(Movement):
        TOPIC = "ledger:StockBin.Counted"
        quantity_counted: Decimal
        quantity_difference: Decimal
        value_difference: Decimal
        unit_cost: Decimal
        revalued: bool

    def __init__(self, sku: str, location: str, valuation_method: str) -> None:
        self.sku = sku
        self.location = location
        self.cost = CostState(method=_method(valuation_method))
        # What each sales-order line holds here, keyed "order-id/line", oldest first.
        self.reservations: dict[str, Decimal] = {}
        self.latest_effective_at: datetime | None = None

    @classmethod
    def open(cls, sku: str, location: str, valuation_method: ValuationMethod,
             opened_at: datetime) -> StockBin:
        """A new, empty bin (its first movement is saved with it)."""
        return cls._create(
            cls.Opened,
            id=bin_id(sku, location),
            timestamp=opened_at,
            sku=sku,
            location=location,
            valuation_method=valuation_method,
        )

    @property
    def quantity_on_hand(self) -> Decimal:
        return self.cost.quantity

    @property
    def value(self) -> Decimal:
        return self.cost.value

    @property
    def unit_cost(self) -> Decimal:
        return self.cost.unit_cost

    @property
    def quantity_reserved(self) -> Decimal:
        return sum(self.reservations.values(), ZERO_QUANTITY)

    def reserved_for(self, order_id: UUID, order_line: int) -> Decimal:
        return self.reservations.get(reservation_key(order_id, order_line), ZERO_QUANTITY)

    def unreserve(self, key: str, quantity: Decimal) -> None:
        """Take `quantity` off one reservation (applying an event; never below zero)."""
        left = self.reservations.get(key, ZERO) - quantity
        if left > ZERO:
            self.reservations[key] = left
        else:
            self.reservations.pop(key, None)

    @property
    def quantity_available(self) -> Decimal:
        return self.cost.quantity - self.quantity_reserved

    def receive(self, quantity: Decimal, unit_cost: Decimal, context: MovementContext,
                line_number: int, order_line: int | None = None) -> None:
        """Put `quantity` in at `unit_cost` (a receipt, 入库)."""
        layer = layer_at(quantity, unit_cost)
        self._move(self.Received, (), (layer,), context, line_number, order_line=order_line,
                   quantity=quantity, unit_cost=unit_cost, value=layer.value)

    def reserve(self, order_id: UUID, order_line: int, wanted: Decimal,
                context: MovementContext) -> Decimal:
        """Reserve up to `wanted` of the available stock for an order line; what it got."""
        quantity_reserved = min(wanted, max(self.quantity_available, ZERO))
        if quantity_reserved > ZERO:
            self.trigger_event(self.Reserved, **self._reservation_fields(
                order_id, order_line, quantity_reserved, context),
                quantity_reserved_after=self.quantity_reserved + quantity_reserved)
        return quantity_reserved

    def release(self, order_id: UUID, order_line: int, quantity_released: Decimal,
                reason: str, context: MovementContext) -> None:
        """Give up (part of) an order line's reservation."""
        if not ZERO < quantity_released <= self.reserved_for(order_id, order_line):
            raise StaleRead(f"order {order_id} line {order_line} holds less here")
        self.trigger_event(self.ReservationReleased, **self._reservation_fields(
            order_id, order_line, quantity_released, context),
            quantity_reserved_after=self.quantity_reserved - quantity_released, reason=reason)

    def _reservation_fields(self, order_id: UUID, order_line: int, amount: Decimal,
                            context: MovementContext) -> dict[str, Any]:
        return {"sku": self.sku, "location": self.location, "order_id": order_id,
                "order_line": order_line, "quantity": amount,
                "document_id": context.document_id, "actor": context.actor,
                "timestamp": context.recorded_at}

    def dispatch_reserved(self, quantity_out: Decimal, context: MovementContext,
                          line_number: int, order_line: int) -> None:
        """Take an order line's reserved stock out at cost (出库 for a sales order)."""
        assert context.order_id is not None
        if quantity_out > self.reserved_for(context.order_id, order_line):
            raise StaleRead(f"order {context.order_id} line {order_line} holds less here")
        removed = take(self.cost, quantity_out)
        self._move(self.Dispatched, removed, (), context, line_number, order_line=order_line,
                   quantity=quantity_out, unit_cost=unit_cost_of(removed, self.unit_cost),
                   value=total_value(removed))

    def return_from_customer(self, quantity_in: Decimal, value_in: Decimal,
                             context: MovementContext, line_number: int,
                             order_line: int) -> None:
        """Take back a customer's return at exactly the value it went out at."""
        layer = Layer(quantity_in, average(value_in, quantity_in), value_in)
        self._move(self.ReturnedByCustomer, (), (layer,), context, line_number,
                   order_line=order_line, quantity=quantity_in, unit_cost=layer.unit_cost,
                   value=value_in)

    def shortfall_releases(self, quantity_counted: Decimal) -> list[tuple[UUID, int, Decimal]]:
        """Reservations a count must give up so that reserved ≤ counted: newest first."""
        excess = self.quantity_reserved - quantity_counted
        releases = []
        for key in reversed(list(self.reservations)):
            if excess <= ZERO:
                break
            amount = min(excess, self.reservations[key])
            order_id, order_line = key.split("/")
            releases.append((UUID(order_id), int(order_line), amount))
            excess -= amount
        return releases

    def return_to_supplier(self, quantity: Decimal, receipt_cost: Decimal,
                           context: MovementContext, line_number: int,
                           order_line: int) -> None:
        """Take goods out back to their supplier, at the cost they came in at (退货)."""
        if quantity > self.quantity_available:
            raise InsufficientStock(self.sku, self.location, quantity, self.quantity_available)
        removed = take_at_cost(self.cost, quantity, receipt_cost)
        self._move(self.ReturnedToSupplier, removed, (), context, line_number,
                   order_line=order_line, quantity=quantity,
                   unit_cost=unit_cost_of(removed, receipt_cost), value=total_value(removed))

    def dispatch(self, quantity: Decimal, context: MovementContext, line_number: int) -> None:
        """Take `quantity` out at cost (a dispatch, 出库); refuses to go below available."""
        removed = self._take(quantity)
        self._move(self.Dispatched, removed, (), context, line_number,
                   quantity=quantity, unit_cost=unit_cost_of(removed, self.unit_cost),
                   value=total_value(removed))

    def transfer_out(self, quantity: Decimal, to_location: str, context: MovementContext,
                     line_number: int) -> tuple[Layer, ...]:
        """Take `quantity` out towards another location; returns the cost layers it carries."""
        removed = self._take(quantity)
        self._move(self.TransferredOut, removed, (), context, line_number,
                   quantity=quantity, unit_cost=unit_cost_of(removed, self.unit_cost),
                   value=total_value(removed), to_location=to_location)
        return removed

    def transfer_in(self, layers: tuple[Layer, ...], from_location: str,
                    context: MovementContext, line_number: int) -> None:
        """Put in what a transfer carried, at the cost it carried (FIFO layers keep order)."""
        quantity = total_quantity(layers)
        self._move(self.TransferredIn, (), layers, context, line_number,
                   quantity=quantity, unit_cost=unit_cost_of(layers, self.unit_cost),
                   value=total_value(layers), from_location=from_location)

    def count(self, quantity_counted: Decimal, unit_cost: Decimal | None,
              context: MovementContext, line_number: int) -> None:
        """Set on-hand to a counted quantity (盘点); with `unit_cost`, also revalue the bin."""
        revalued = unit_cost is not None
        removed, added = self._count_layers(quantity_counted, unit_cost)
        if unit_cost is None:
            # The cost of what the count found or lost, as a receipt or dispatch would record it.
            unit_cost = unit_cost_of(added or removed, self.unit_cost)
        self._move(self.Counted, removed, added, context, line_number,
                   quantity_counted=quantity_counted,
                   quantity_difference=quantity(quantity_counted - self.quantity_on_hand),
                   value_difference=money(total_value(added) - total_value(removed)),
                   unit_cost=unit_cost, revalued=revalued)

    def _count_layers(self, quantity_counted: Decimal,
                      unit_cost: Decimal | None) -> tuple[tuple[Layer, ...], tuple[Layer, ...]]:
        if unit_cost is not None:
            added = (layer_at(quantity_counted, unit_cost),) if quantity_counted else ()
            return everything(self.cost), added
        difference = quantity_counted - self.quantity_on_hand
        if difference > ZERO:
            return (), (layer_at(difference, self.unit_cost),)
        if difference < ZERO:
            return self._take(-difference, count=True), ()
        return (), ()

    def _take(self, quantity: Decimal, *, count: bool = False) -> tuple[Layer, ...]:
        # A count may take reserved stock: what is not on the shelf cannot stay reserved.
        available = self.quantity_on_hand if count else self.quantity_available
        if quantity > available:
            raise InsufficientStock(self.sku, self.location, quantity, available)
        return take(self.cost, quantity)

    def _move(self, event_class: type[StockBin.Movement], removed: tuple[Layer, ...],
              added: tuple[Layer, ...], context: MovementContext, line_number: int,
              order_line: int | None = None, **fields: Any) -> None:
        after = apply_movement(self.cost, removed, added)
        self.trigger_event(
            event_class,
            sku=self.sku,
            location=self.location,
            removed=removed,
            added=added,
            quantity_on_hand_after=after.quantity,
            value_after=after.value,
            unit_cost_after=after.unit_cost,
            **context.event_fields(line_number, order_line),
            **fields,
            effective_at=self._effective_at(context),
        )

    def _effective_at(self, context: MovementContext) -> datetime:
        """When the movement counts: never before the bin's latest movement.

        Cost was decided in record order; letting a movement count earlier than one already
        recorded would make the stock card's running balances disagree with effective time.
        A time the client gave is refused; the default (now) is moved up past any clock skew.
        """
        latest = self.latest_effective_at
        if latest is None or context.effective_at >= latest:
            return context.effective_at
        if context.effective_at_given:
            raise BackdatedMovement(self.sku, self.location, context.effective_at, latest)
        return latest


def reservation_key(order_id: UUID, order_line: int | None) -> str:
    return f"{order_id}/{order_line}"


def _method(valuation_method: str) -> ValuationMethod:
    assert valuation_method in ("fifo", "moving_average"), valuation_method
    return "fifo" if valuation_method == "fifo" else "moving_average"
