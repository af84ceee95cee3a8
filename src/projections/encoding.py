"""How read-model rows hold numbers and instants, exactly and in a sortable form.

Quantities, money and unit costs are stored as integers scaled by 10^3, 10^2 and
10^6. Integers are exact on SQLite and PostgreSQL alike, sum in SQL, and hash the
same on both, which is what digests compare. Instants are fixed-width UTC text,
so text order is time order.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

QUANTITY_SCALE = 3
MONEY_SCALE = 2
UNIT_COST_SCALE = 6


def scaled(value: Decimal, scale: int) -> int:
    """`value` × 10^scale as an exact integer (the value must have at most `scale` places)."""
    shifted = value.scaleb(scale)
    integer = int(shifted)
    assert integer == shifted, f"{value} has more than {scale} places"
    return integer


def unscaled(value: int, scale: int) -> Decimal:
    """The decimal an integer scaled by 10^scale stands for, written with `scale` places."""
    return Decimal(value).scaleb(-scale)


# A fold scales a dozen and more decimals an event, most of them recurring (a document's
# quantities and prices, a bin's unit cost): the integers of recent ones are kept, one table
# per scale. Equal decimals scale equally whatever their exponent ("5" and "5.000"), so they
# share an entry. 0.40 → 0.09 µs a call when found (timeit).
_SCALED_MAX = 65_536
_E2: dict[Decimal, int] = {}
_E3: dict[Decimal, int] = {}
_E6: dict[Decimal, int] = {}


def _remembered(value: Decimal, scale: int, known: dict[Decimal, int]) -> int:
    integer = known.get(value)
    if integer is None:
        integer = scaled(value, scale)
        if len(known) >= _SCALED_MAX:
            known.clear()
        known[value] = integer
    return integer


def e3(value: Decimal) -> int:
    return _remembered(value, QUANTITY_SCALE, _E3)


def e2(value: Decimal) -> int:
    return _remembered(value, MONEY_SCALE, _E2)


def e6(value: Decimal) -> int:
    return _remembered(value, UNIT_COST_SCALE, _E6)


def quantity_of(value: int) -> Decimal:
    return unscaled(value, QUANTITY_SCALE)


def money_of(value: int) -> Decimal:
    return unscaled(value, MONEY_SCALE)


def unit_cost_of(value: int) -> Decimal:
    return unscaled(value, UNIT_COST_SCALE)


# Consecutive events share their moments (the lines of a document, effective and recorded
# time): the text of recent moments is kept. Equal datetimes are the same instant, whatever
# their zones, so they share a text.
_INSTANTS: dict[datetime, str] = {}
_INSTANTS_MAX = 4096


def instant(moment: datetime) -> str:
    """A timezone-aware moment as fixed-width UTC text: 2026-03-03T17:00:00.000000Z."""
    text = _INSTANTS.get(moment)
    if text is None:
        if len(_INSTANTS) >= _INSTANTS_MAX:
            _INSTANTS.clear()
        text = _INSTANTS[moment] = _instant(moment)
    return text


def _instant(moment: datetime) -> str:
    assert moment.utcoffset() is not None, "instants are timezone-aware"
    utc = moment.astimezone(UTC)
    # strftime's %Y does not pad years before 1000 on every platform; text order must be
    # time order, so every field is written at a fixed width by hand.
    return (f"{utc.year:04d}-{utc.month:02d}-{utc.day:02d}T{utc.hour:02d}:{utc.minute:02d}:"
            f"{utc.second:02d}.{utc.microsecond:06d}Z")


def moment_of(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
