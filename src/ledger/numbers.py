"""Decimal rules for quantities, money and unit costs (DESIGN decision 6).

Quantities carry 3 places, money 2 and unit costs 6. Rounding is explicit and
always ROUND_HALF_UP; nothing in the ledger ever touches a float.
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

QUANTITY_PLACES = Decimal("0.001")
MONEY_PLACES = Decimal("0.01")
UNIT_COST_PLACES = Decimal("0.000001")
ZERO = Decimal("0")


def quantity(value: Decimal) -> Decimal:
    """Round a quantity to 3 places."""
    return value.quantize(QUANTITY_PLACES, rounding=ROUND_HALF_UP)


def money(value: Decimal) -> Decimal:
    """Round an amount of money to 2 places."""
    return value.quantize(MONEY_PLACES, rounding=ROUND_HALF_UP)


def unit_cost(value: Decimal) -> Decimal:
    """Round a unit cost to 6 places."""
    return value.quantize(UNIT_COST_PLACES, rounding=ROUND_HALF_UP)


def extend(quantity_moved: Decimal, cost_per_unit: Decimal) -> Decimal:
    """The money value of a quantity at a unit cost."""
    return money(quantity_moved * cost_per_unit)


def average(value: Decimal, quantity_held: Decimal) -> Decimal:
    """The unit cost of a holding: value divided by quantity, 6 places."""
    assert quantity_held > ZERO, "average of an empty holding"
    return unit_cost(value / quantity_held)


def places(value: Decimal) -> int:
    """How many decimal places a finite Decimal is written with."""
    exponent = value.normalize().as_tuple().exponent
    assert isinstance(exponent, int), "places of a non-finite decimal"
    return max(0, -exponent)
