"""Cost state of a stock bin and the pure rules that decide what goes in and out.

Every movement is described the same way: cost layers removed from the front of
the bin and cost layers added at its back. For FIFO the bin keeps its layers; for
moving average it keeps only totals, and a "layer" is just a quantity with its
value. Deciding a movement (`take`, `revalue`, …) happens before an event is
triggered; applying one (`apply_movement`) only adds and subtracts recorded facts,
so a replay reproduces the state exactly.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from decimal import Decimal
from typing import Literal

from ledger.numbers import ZERO, ZERO_MONEY, ZERO_QUANTITY, ZERO_UNIT_COST, average, extend

ValuationMethod = Literal["fifo", "moving_average"]
VALUATION_METHODS: tuple[ValuationMethod, ...] = ("fifo", "moving_average")


@dataclass(frozen=True)
class Layer:
    """A quantity at a unit cost, with the money value it carries."""

    quantity: Decimal
    unit_cost: Decimal
    value: Decimal


@dataclass(frozen=True)
class CostState:
    """What a bin holds and what it is worth."""

    method: ValuationMethod
    quantity: Decimal = ZERO_QUANTITY
    value: Decimal = ZERO_MONEY
    last_unit_cost: Decimal = ZERO_UNIT_COST
    layers: tuple[Layer, ...] = ()

    @property
    def unit_cost(self) -> Decimal:
        """Value ÷ quantity, or the last unit cost when the bin is empty."""
        if self.quantity > ZERO:
            return average(self.value, self.quantity)
        return self.last_unit_cost


def layer_at(quantity_in: Decimal, cost_per_unit: Decimal) -> Layer:
    """A new layer of `quantity_in` at `cost_per_unit`."""
    return Layer(quantity_in, cost_per_unit, extend(quantity_in, cost_per_unit))


def take(state: CostState, quantity_out: Decimal) -> tuple[Layer, ...]:
    """Decide the layers that taking `quantity_out` removes (the caller checked stock)."""
    assert ZERO < quantity_out <= state.quantity, "take beyond what the bin holds"
    if state.method == "fifo":
        return _take_fifo(state.layers, quantity_out)
    if quantity_out == state.quantity:
        # Emptying the bin takes exactly the value left, so no residue remains.
        return (Layer(quantity_out, state.unit_cost, state.value),)
    cost_per_unit = state.unit_cost
    value_out = min(extend(quantity_out, cost_per_unit), state.value)
    return (Layer(quantity_out, cost_per_unit, value_out),)


def _take_fifo(layers: tuple[Layer, ...], quantity_out: Decimal) -> tuple[Layer, ...]:
    taken: list[Layer] = []
    remaining = quantity_out
    for layer in layers:
        if remaining == ZERO:
            break
        if remaining >= layer.quantity:
            taken.append(layer)
            remaining -= layer.quantity
            continue
        value_out = min(extend(remaining, layer.unit_cost), layer.value)
        taken.append(Layer(remaining, layer.unit_cost, value_out))
        remaining = ZERO
    assert remaining == ZERO, "FIFO layers hold less than the bin's quantity"
    return tuple(taken)


def everything(state: CostState) -> tuple[Layer, ...]:
    """The layers that removing the whole content of the bin takes out."""
    if state.quantity == ZERO:
        return ()
    if state.method == "fifo":
        return state.layers
    return (Layer(state.quantity, state.unit_cost, state.value),)


# The last movement applied, by the identity of its (immutable) inputs: a command computes
# the state after its movement (`StockBin._move`, for the event's "after" fields) and then
# applies the event it recorded, which holds the very same objects; the second call is
# answered from here. One tuple, replaced whole: a thread reads it in one step.
_last_applied: tuple[object, object, object, CostState | None] = (None, None, None, None)


def apply_movement(
    state: CostState, removed: tuple[Layer, ...], added: tuple[Layer, ...]
) -> CostState:
    """The state after removing `removed` from the front and adding `added` at the back."""
    global _last_applied
    last_state, last_removed, last_added, last_after = _last_applied
    if state is last_state and removed is last_removed and added is last_added:
        assert last_after is not None
        return last_after
    after = _apply_movement(state, removed, added)
    _last_applied = (state, removed, added, after)
    return after


def _apply_movement(
    state: CostState, removed: tuple[Layer, ...], added: tuple[Layer, ...]
) -> CostState:
    quantity_held = state.quantity - total_quantity(removed) + total_quantity(added)
    value_held = state.value - total_value(removed) + total_value(added)
    layers = state.layers
    if state.method == "fifo":
        layers = _remove(layers, removed) + tuple(layer for layer in added)
    touched = added or removed
    last = state.last_unit_cost
    if quantity_held > ZERO:
        last = average(value_held, quantity_held)
    elif touched:
        last = touched[-1].unit_cost
    return replace(
        state, quantity=quantity_held, value=value_held, last_unit_cost=last, layers=layers
    )


def _remove(layers: tuple[Layer, ...], removed: tuple[Layer, ...]) -> tuple[Layer, ...]:
    """Take each removed layer out of the first layer held at its unit cost.

    An ordinary FIFO take removes from the front, which is always that first layer; a
    return to a supplier removes from the oldest layers at the receipt's cost.
    """
    remaining = list(layers)
    for out in removed:
        index = next(i for i, held in enumerate(remaining) if held.unit_cost == out.unit_cost)
        held = remaining[index]
        if out.quantity == held.quantity:
            remaining.pop(index)
            continue
        remaining[index] = Layer(held.quantity - out.quantity, held.unit_cost,
                                 held.value - out.value)
    return tuple(remaining)


def take_at_cost(state: CostState, quantity_out: Decimal,
                 cost_per_unit: Decimal) -> tuple[Layer, ...]:
    """Decide the layers a return to a supplier removes: at the cost the goods came in at.

    FIFO takes the oldest layers held at that cost first, then, if they hold too little
    (the rest was sold), the oldest layers of all. Moving average takes the quantity at
    that cost, never more than the bin's value, and exactly the value left when emptying.
    """
    assert ZERO < quantity_out <= state.quantity, "take beyond what the bin holds"
    if state.method == "moving_average":
        if quantity_out == state.quantity:
            return (Layer(quantity_out, state.unit_cost, state.value),)
        value_out = min(extend(quantity_out, cost_per_unit), state.value)
        return (Layer(quantity_out, cost_per_unit, value_out),)
    at_cost = tuple(layer for layer in state.layers if layer.unit_cost == cost_per_unit)
    from_cost = _take_fifo(at_cost, min(quantity_out, total_quantity(at_cost))) \
        if at_cost else ()
    rest = quantity_out - total_quantity(from_cost)
    if rest == ZERO:
        return from_cost
    left = _remove(state.layers, from_cost)
    return from_cost + _take_fifo(left, rest)


def total_quantity(layers: tuple[Layer, ...]) -> Decimal:
    return sum((layer.quantity for layer in layers), ZERO_QUANTITY)


def total_value(layers: tuple[Layer, ...]) -> Decimal:
    return sum((layer.value for layer in layers), ZERO_MONEY)


def unit_cost_of(layers: tuple[Layer, ...], fallback: Decimal) -> Decimal:
    """The average unit cost of some layers (the movement's unit cost)."""
    quantity_moved = total_quantity(layers)
    if quantity_moved == ZERO:
        return fallback
    return average(total_value(layers), quantity_moved)
