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
ZERO_QUANTITY = Decimal("0.000")
ZERO_MONEY = Decimal("0.00")
ZERO_UNIT_COST = Decimal("0.000000")


def _rounded(value: Decimal, exponent: Decimal) -> Decimal:
    rounded = value.quantize(exponent, rounding=ROUND_HALF_UP)
    # A negative zero ("-0.00") is still zero: write it without the sign.
    return rounded.copy_abs() if rounded.is_zero() else rounded


def quantity(value: Decimal) -> Decimal:
    """Round a quantity to 3 places."""
    return _rounded(value, QUANTITY_PLACES)


def money(value: Decimal) -> Decimal:
    """Round an amount of money to 2 places."""
    return _rounded(value, MONEY_PLACES)


def unit_cost(value: Decimal) -> Decimal:
    """Round a unit cost to 6 places."""
    return _rounded(value, UNIT_COST_PLACES)


def extend(quantity_moved: Decimal, cost_per_unit: Decimal) -> Decimal:
    """The money value of a quantity at a unit cost."""
    return money(quantity_moved * cost_per_unit)


def average(value: Decimal, quantity_held: Decimal) -> Decimal:
    """The unit cost of a holding: value divided by quantity, 6 places."""
    assert quantity_held > ZERO, "average of an empty holding"
    return unit_cost(value / quantity_held)


def places(value: Decimal) -> int:
    """How many decimal places a finite Decimal needs (trailing zeros do not count).

    Read from the digits and exponent, never by arithmetic: `normalize()` would overflow
    on 1e1000000000 and round 1e-1000027 to zero in the default context.
    """
    _, digits, exponent = value.as_tuple()
    assert isinstance(exponent, int), "places of a non-finite decimal"
    if not any(digits):
        return 0
    significant = len(digits)
    while significant > 1 and digits[significant - 1] == 0:
        significant -= 1
    trailing_zeros = len(digits) - significant
    return max(0, -(exponent + trailing_zeros))


def share(total: Decimal, part: Decimal, whole: Decimal) -> Decimal:
    """`part` of `whole`'s money `total`: exactly all of it when the part is the whole."""
    if part == whole:
        return total
    if part == ZERO:
        return ZERO_MONEY
    return money(total * part / whole)
