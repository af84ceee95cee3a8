"""The checks every stock command passes before it is decided, whatever its entry point."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from ledger.commands import (
    Count,
    CountLine,
    Dispatch,
    DispatchLine,
    Receipt,
    ReceiptLine,
    Transfer,
    checked_count,
    checked_dispatch,
    checked_effective_at,
    checked_receipt,
    checked_transfer,
)
from ledger.errors import FutureEffectiveTime, InvalidCost, InvalidInput, InvalidQuantity

D = Decimal
NOW = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


def receipt_of(quantity_in: str = "1", cost: str = "1", sku: str = "SKU-1",
               location: str = "WH-1", reference: str | None = None) -> Receipt:
    return Receipt(location=location, reference=reference,
                   lines=(ReceiptLine(sku, D(quantity_in), D(cost)),))


@pytest.mark.parametrize(
    "quantity_in",
    ["0", "0.000", "-1", "-0.001", "1.0005", "0.0001", "NaN", "sNaN", "Infinity", "-Infinity",
     "1000000000.001", "1E+10"],
)
def test_a_quantity_must_be_positive_finite_and_of_at_most_three_places(
        quantity_in: str) -> None:
    with pytest.raises(InvalidQuantity) as refusal:
        checked_receipt(receipt_of(quantity_in=quantity_in))

    assert refusal.value.field == "lines[0].quantity"
    assert refusal.value.code == "validation_error"


@pytest.mark.parametrize(
    ("quantity_in", "normalised"),
    [("1", "1.000"), ("1.5", "1.500"), ("1.0000", "1.000"), ("1E+2", "100.000"),
     ("0.001", "0.001"), ("1000000000", "1000000000.000")],
)
def test_an_accepted_quantity_is_written_with_three_places(
        quantity_in: str, normalised: str) -> None:
    [line] = checked_receipt(receipt_of(quantity_in=quantity_in)).lines

    assert str(line.quantity) == normalised


@pytest.mark.parametrize("cost", ["-0.01", "-1", "1.0000001", "0.0000001", "NaN", "Infinity",
                                  "1000000000.01"])
def test_a_unit_cost_must_be_non_negative_finite_and_of_at_most_six_places(cost: str) -> None:
    with pytest.raises(InvalidCost) as refusal:
        checked_receipt(receipt_of(cost=cost))

    assert refusal.value.field == "lines[0].unit_cost"


@pytest.mark.parametrize(("cost", "normalised"),
                         [("0", "0.000000"), ("2.5", "2.500000"), ("0.000001", "0.000001"),
                          ("-0", "0.000000")])
def test_an_accepted_unit_cost_is_written_with_six_places(cost: str, normalised: str) -> None:
    [line] = checked_receipt(receipt_of(cost=cost)).lines

    assert str(line.unit_cost) == normalised


@pytest.mark.parametrize(
    "sku",
    ["", " SKU", "SKU 1", "-SKU", ".SKU", "SKU/1", "SKÜ", "S" * 65, "SKU-1\n", "SKU-1\r\n"],
    ids=repr,
)
def test_a_sku_code_must_be_letters_digits_dot_underscore_or_dash(sku: str) -> None:
    with pytest.raises(InvalidInput) as refusal:
        checked_receipt(receipt_of(sku=sku))

    assert refusal.value.field == "lines[0].sku"


@pytest.mark.parametrize("sku", ["S", "SKU-1", "sku_1.b", "9" * 64])
def test_well_formed_sku_codes_are_accepted(sku: str) -> None:
    assert checked_receipt(receipt_of(sku=sku)).lines[0].sku == sku


def test_a_location_code_follows_the_same_rule() -> None:
    with pytest.raises(InvalidInput) as refusal:
        checked_receipt(receipt_of(location="WH 1"))

    assert refusal.value.field == "location"


@pytest.mark.parametrize("line_count", [0, 1001])
def test_a_document_has_one_to_a_thousand_lines(line_count: int) -> None:
    lines = tuple(DispatchLine(f"SKU-{n}", D("1")) for n in range(line_count))

    with pytest.raises(InvalidInput) as refusal:
        checked_dispatch(Dispatch(location="WH-1", lines=lines))

    assert refusal.value.field == "lines"


def test_a_document_of_a_thousand_lines_is_accepted() -> None:
    lines = tuple(DispatchLine(f"SKU-{n}", D("1")) for n in range(1000))

    assert len(checked_dispatch(Dispatch(location="WH-1", lines=lines)).lines) == 1000


def test_a_header_text_longer_than_five_hundred_characters_is_refused() -> None:
    with pytest.raises(InvalidInput) as refusal:
        checked_receipt(receipt_of(reference="R" * 501))

    assert refusal.value.field == "reference"


def test_a_transfer_moves_between_two_different_locations() -> None:
    with pytest.raises(InvalidInput) as refusal:
        checked_transfer(Transfer(from_location="WH-1", to_location="WH-1",
                                  lines=(DispatchLine("SKU-1", D("1")),)))

    assert refusal.value.field == "to_location"


def count_of(*lines: CountLine, reason: str | None = "cycle count") -> Count:
    return Count(location="WH-1", reason=reason, lines=lines)


@pytest.mark.parametrize("reason", [None, ""])
def test_a_count_needs_a_reason(reason: str | None) -> None:
    with pytest.raises(InvalidInput) as refusal:
        checked_count(count_of(CountLine("SKU-1", D("1")), reason=reason))

    assert refusal.value.field == "reason"


def test_a_count_lists_each_sku_once() -> None:
    with pytest.raises(InvalidInput) as refusal:
        checked_count(count_of(CountLine("SKU-1", D("1")), CountLine("SKU-1", D("2"))))

    assert refusal.value.field == "lines"


def test_a_count_may_find_nothing_but_never_less() -> None:
    [line] = checked_count(count_of(CountLine("SKU-1", D("0")))).lines
    assert str(line.counted_quantity) == "0.000"

    with pytest.raises(InvalidQuantity) as refusal:
        checked_count(count_of(CountLine("SKU-1", D("-1"))))
    assert refusal.value.field == "lines[0].counted_quantity"


def test_a_count_unit_cost_is_checked_like_a_receipt_cost() -> None:
    with pytest.raises(InvalidCost) as refusal:
        checked_count(count_of(CountLine("SKU-1", D("1"), D("-0.5"))))

    assert refusal.value.field == "lines[0].unit_cost"


def test_effective_at_in_the_future_is_refused() -> None:
    with pytest.raises(FutureEffectiveTime) as refusal:
        checked_effective_at(NOW + timedelta(microseconds=1), NOW)

    assert refusal.value.field == "effective_at"


def test_effective_at_without_a_time_zone_is_refused() -> None:
    with pytest.raises(InvalidInput) as refusal:
        checked_effective_at(datetime(2025, 1, 1, 9, 0), NOW)

    assert refusal.value.field == "effective_at"
    assert not isinstance(refusal.value, FutureEffectiveTime)


def test_effective_at_defaults_to_now_and_may_be_in_the_past() -> None:
    earlier = NOW - timedelta(days=30)

    assert checked_effective_at(None, NOW) == NOW
    assert checked_effective_at(NOW, NOW) == NOW
    assert checked_effective_at(earlier, NOW) == earlier
