"""Commands the ledger accepts, and the checks every one passes before it is decided.

Checking here (not in the API) means every entry point — HTTP, CLI, demo loader,
benchmarks — gets the same refusals. Decimals are normalised to their places
(quantities 3, unit costs 6) so that equal commands are equal, which is what
idempotency fingerprints compare.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime
from decimal import Decimal
from typing import Generic, TypeVar

from ledger.costing import VALUATION_METHODS
from ledger.domain.identity import check_code
from ledger.domain.item import ItemDetails
from ledger.domain.party import PARTY_ROLES, PartyDetails
from ledger.errors import FutureEffectiveTime, InvalidCost, InvalidInput, InvalidQuantity
from ledger.numbers import ZERO, money, places, quantity, unit_cost

LINES_MAX = 1000
TEXT_LENGTH_MAX = 500
QUANTITY_MAX = Decimal("1000000000")
UNIT_COST_MAX = Decimal("1000000000")
EFFECTIVE_AT_MIN = datetime(1900, 1, 1, tzinfo=UTC)
MONEY_MAX = Decimal("1000000000000")


@dataclass(frozen=True)
class ReceiptLine:
    sku: str
    quantity: Decimal
    unit_cost: Decimal


@dataclass(frozen=True)
class DispatchLine:
    sku: str
    quantity: Decimal


@dataclass(frozen=True)
class CountLine:
    sku: str
    counted_quantity: Decimal
    unit_cost: Decimal | None = None


LineT = TypeVar("LineT", ReceiptLine, DispatchLine, CountLine)


@dataclass(frozen=True, kw_only=True)
class Document(Generic[LineT]):
    """Header fields every stock document shares, and its lines."""

    lines: tuple[LineT, ...]
    reference: str | None = None
    note: str | None = None
    reason: str | None = None
    effective_at: datetime | None = None


@dataclass(frozen=True, kw_only=True)
class Receipt(Document[ReceiptLine]):
    location: str


@dataclass(frozen=True, kw_only=True)
class Dispatch(Document[DispatchLine]):
    location: str


@dataclass(frozen=True, kw_only=True)
class Transfer(Document[DispatchLine]):
    from_location: str
    to_location: str


@dataclass(frozen=True, kw_only=True)
class Count(Document[CountLine]):
    location: str


def checked_quantity(value: Decimal, field: str, *, allow_zero: bool = False) -> Decimal:
    """A positive (or, for counts, non-negative) decimal of at most 3 places."""
    if not value.is_finite() or value < ZERO or (value == ZERO and not allow_zero):
        adjective = "non-negative" if allow_zero else "positive"
        raise InvalidQuantity(f"{field} must be a {adjective} decimal; got {value}.", field)
    if places(value) > 3 or value > QUANTITY_MAX:
        raise InvalidQuantity(
            f"{field} must have at most 3 decimal places and be at most {QUANTITY_MAX}; "
            f"got {value}.", field)
    return quantity(value)


def checked_unit_cost(value: Decimal, field: str) -> Decimal:
    """A non-negative decimal of at most 6 places."""
    if not value.is_finite() or value < ZERO or places(value) > 6 or value > UNIT_COST_MAX:
        raise InvalidCost(
            f"{field} must be a non-negative decimal of at most 6 places, at most "
            f"{UNIT_COST_MAX}; got {value}.", field)
    return unit_cost(value)


def checked_text(value: str | None, field: str, *, required: bool = False) -> str | None:
    if value is None or value == "":
        if required:
            raise InvalidInput(f"{field} is required.", field)
        return None
    if len(value) > TEXT_LENGTH_MAX:
        raise InvalidInput(f"{field} must be at most {TEXT_LENGTH_MAX} characters.", field)
    return value


def checked_effective_at(value: datetime | None, now: datetime) -> datetime:
    """When the movement happened in business time: not in the future; defaults to now."""
    if value is None:
        return now
    if value.tzinfo is None or value.utcoffset() is None:
        raise InvalidInput("effective_at must carry a time zone offset.", "effective_at")
    if value < EFFECTIVE_AT_MIN:
        raise InvalidInput(f"effective_at must be on or after {EFFECTIVE_AT_MIN.date()}.",
                           "effective_at")
    if value > now:
        raise FutureEffectiveTime(
            f"effective_at {value.isoformat()} is in the future.", "effective_at")
    return value


def checked_lines(count: int) -> None:
    if count < 1 or count > LINES_MAX:
        raise InvalidInput(f"A document has 1 to {LINES_MAX} lines; got {count}.", "lines")


def checked_item_details(details: ItemDetails) -> ItemDetails:
    if details.valuation_method not in VALUATION_METHODS:
        raise InvalidInput(
            f"valuation_method must be one of {', '.join(VALUATION_METHODS)}.",
            "valuation_method")
    name = checked_text(details.name, "name", required=True)
    uom = checked_text(details.uom, "uom", required=True)
    assert name is not None and uom is not None
    reorder_point = details.reorder_point
    if reorder_point is not None:
        reorder_point = checked_quantity(reorder_point, "reorder_point", allow_zero=True)
    return ItemDetails(name, uom, details.valuation_method, reorder_point)


def _utc(moment: datetime | None) -> datetime | None:
    """The same instant in UTC, so one moment written in two zones is one command."""
    return None if moment is None else moment.astimezone(UTC)


def check_header(document: Document[LineT]) -> None:
    checked_lines(len(document.lines))
    if document.effective_at is not None and document.effective_at.utcoffset() is None:
        raise InvalidInput("effective_at must carry a time zone offset.", "effective_at")
    checked_text(document.reference, "reference")
    checked_text(document.note, "note")
    checked_text(document.reason, "reason")


def checked_receipt(receipt: Receipt) -> Receipt:
    check_header(receipt)
    check_code(receipt.location, "location")
    lines = tuple(
        ReceiptLine(
            check_code(line.sku, f"lines[{n}].sku"),
            checked_quantity(line.quantity, f"lines[{n}].quantity"),
            checked_unit_cost(line.unit_cost, f"lines[{n}].unit_cost"),
        )
        for n, line in enumerate(receipt.lines)
    )
    for n, line in enumerate(lines):
        checked_value(line.quantity, line.unit_cost, f"lines[{n}]")
    return replace(receipt, lines=lines, effective_at=_utc(receipt.effective_at))


def checked_value(quantity_moved: Decimal, cost: Decimal | None, field: str) -> None:
    """A line's value (quantity × unit cost or price) is at most MONEY_MAX, so every figure
    the ledger and its read models keep holds it exactly."""
    if cost is not None and quantity_moved * cost > MONEY_MAX:
        raise InvalidInput(f"A line's quantity × unit cost or price is at most {MONEY_MAX}.",
                           field)


def _checked_dispatch_lines(lines: tuple[DispatchLine, ...]) -> tuple[DispatchLine, ...]:
    return tuple(
        DispatchLine(
            check_code(line.sku, f"lines[{n}].sku"),
            checked_quantity(line.quantity, f"lines[{n}].quantity"),
        )
        for n, line in enumerate(lines)
    )


def checked_dispatch(dispatch: Dispatch) -> Dispatch:
    check_header(dispatch)
    check_code(dispatch.location, "location")
    return replace(dispatch, lines=_checked_dispatch_lines(dispatch.lines),
                   effective_at=_utc(dispatch.effective_at))


def checked_transfer(transfer: Transfer) -> Transfer:
    check_header(transfer)
    check_code(transfer.from_location, "from_location")
    check_code(transfer.to_location, "to_location")
    if transfer.from_location == transfer.to_location:
        raise InvalidInput("A transfer moves stock between two different locations.",
                           "to_location")
    return replace(transfer, lines=_checked_dispatch_lines(transfer.lines),
                   effective_at=_utc(transfer.effective_at))


def checked_count(count: Count) -> Count:
    check_header(count)
    check_code(count.location, "location")
    checked_text(count.reason, "reason", required=True)
    lines = tuple(
        CountLine(
            check_code(line.sku, f"lines[{n}].sku"),
            checked_quantity(line.counted_quantity, f"lines[{n}].counted_quantity",
                             allow_zero=True),
            None if line.unit_cost is None
            else checked_unit_cost(line.unit_cost, f"lines[{n}].unit_cost"),
        )
        for n, line in enumerate(count.lines)
    )
    skus = [line.sku for line in lines]
    if len(set(skus)) != len(skus):
        raise InvalidInput("A count lists each SKU once.", "lines")
    for n, line in enumerate(lines):
        checked_value(line.counted_quantity, line.unit_cost, f"lines[{n}]")
    return replace(count, lines=lines, effective_at=_utc(count.effective_at))


def checked_party_details(details: PartyDetails) -> PartyDetails:
    """A name, one or more known roles (each once, in a fixed order), a non-negative limit."""
    name = checked_text(details.name, "name", required=True)
    assert name is not None
    unknown = sorted(set(details.roles) - set(PARTY_ROLES))
    if not details.roles or unknown:
        raise InvalidInput(f"roles are one or more of {', '.join(PARTY_ROLES)}.", "roles")
    roles = tuple(role for role in PARTY_ROLES if role in details.roles)
    credit_limit = details.credit_limit
    if credit_limit is not None:
        if not credit_limit.is_finite() or credit_limit < ZERO or places(credit_limit) > 2 \
                or credit_limit > MONEY_MAX:
            raise InvalidInput(
                f"credit_limit is a non-negative amount of at most 2 places, at most "
                f"{MONEY_MAX}.", "credit_limit")
        credit_limit = money(credit_limit)
    return PartyDetails(name, roles, credit_limit)
