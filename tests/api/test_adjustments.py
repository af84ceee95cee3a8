"""POST /adjustments (盘点): on-hand becomes the counted quantity; the difference is valued."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from api_support import AVERAGE_SKU, FIFO_SKU, STORE, WAREHOUSE, Api, assert_problem

COUNT_FIELDS = {"sku", "location", "quantity", "unit_cost", "value", "quantity_on_hand_after",
                "value_after", "counted_quantity", "revalued"}


def counted(sku: str, quantity: Any, unit_cost: Any = None) -> dict[str, Any]:
    line = {"sku": sku, "counted_quantity": quantity}
    if unit_cost is not None:
        line["unit_cost"] = unit_cost
    return line


def count(*lines: dict[str, Any], **header: Any) -> dict[str, Any]:
    return {"location": WAREHOUSE, "reason": "cycle count", "lines": list(lines), **header}


def test_a_gain_is_valued_at_the_bins_current_cost(seeded: Api) -> None:
    seeded.receive(WAREHOUSE, (AVERAGE_SKU, "10", "4"))

    result = seeded.count(WAREHOUSE, counted(AVERAGE_SKU, "12"))

    assert result["lines"] == [{
        "sku": AVERAGE_SKU, "location": WAREHOUSE, "counted_quantity": "12.000",
        "quantity": "2.000", "unit_cost": "4.000000", "value": "8.00", "revalued": False,
        "quantity_on_hand_after": "12.000", "value_after": "48.00"}]
    assert result["position"] == seeded.head()


def test_a_loss_is_valued_like_a_dispatch(seeded: Api) -> None:
    seeded.receive(WAREHOUSE, (FIFO_SKU, "10", "4.20"), (FIFO_SKU, "5", "4.50"))

    result = seeded.count(WAREHOUSE, counted(FIFO_SKU, "3"))

    line = result["lines"][0]
    # FIFO: the 12 missing are the oldest, 10 × 4.20 + 2 × 4.50.
    assert (line["quantity"], line["value"]) == ("-12.000", "-51.00")
    assert (line["quantity_on_hand_after"], line["value_after"]) == ("3.000", "13.50")
    assert set(line) == COUNT_FIELDS


def test_a_loss_reports_the_unit_cost_it_was_valued_at(seeded: Api) -> None:
    # A dispatch of the same 12 reports 4.250000 (51.00 / 12). A count line that says
    # -12 × 4.300000 (the bin's average before the count) but -51.00 contradicts itself.
    seeded.receive(WAREHOUSE, (FIFO_SKU, "10", "4.20"), (FIFO_SKU, "5", "4.50"))

    line = seeded.count(WAREHOUSE, counted(FIFO_SKU, "3"))["lines"][0]

    assert Decimal(line["quantity"]) * Decimal(line["unit_cost"]) == Decimal(line["value"])
    assert line["unit_cost"] == "4.250000"


def test_a_moving_average_loss_takes_the_average_cost(seeded: Api) -> None:
    seeded.receive(WAREHOUSE, (AVERAGE_SKU, "10", "4"), (AVERAGE_SKU, "10", "5"))

    line = seeded.count(WAREHOUSE, counted(AVERAGE_SKU, "15"))["lines"][0]

    assert (line["quantity"], line["unit_cost"], line["value"]) == ("-5.000", "4.500000", "-22.50")
    assert line["value_after"] == "67.50"


def test_a_unit_cost_revalues_the_bin(seeded: Api) -> None:
    seeded.receive(WAREHOUSE, (AVERAGE_SKU, "10", "4"))

    line = seeded.count(WAREHOUSE, counted(AVERAGE_SKU, "10", "5"))["lines"][0]

    assert (line["quantity"], line["value"], line["unit_cost"]) == ("0.000", "10.00", "5.000000")
    assert line["revalued"] is True
    assert (line["quantity_on_hand_after"], line["value_after"]) == ("10.000", "50.00")
    assert seeded.dispatch(WAREHOUSE, (AVERAGE_SKU, "1"))["lines"][0]["value"] == "5.00"


def test_counting_zero_empties_the_bin(seeded: Api) -> None:
    seeded.receive(WAREHOUSE, (AVERAGE_SKU, "10", "4"))

    line = seeded.count(WAREHOUSE, counted(AVERAGE_SKU, "0"))["lines"][0]

    assert (line["quantity"], line["value"]) == ("-10.000", "-40.00")
    assert (line["quantity_on_hand_after"], line["value_after"]) == ("0.000", "0.00")
    assert seeded.available(AVERAGE_SKU, WAREHOUSE) == Decimal("0")


def test_stock_found_where_none_was_recorded_takes_the_given_cost(seeded: Api) -> None:
    line = seeded.count(WAREHOUSE, counted(FIFO_SKU, "5", "2"))["lines"][0]

    assert (line["quantity"], line["value"], line["revalued"]) == ("5.000", "10.00", True)
    assert seeded.available(FIFO_SKU, WAREHOUSE) == Decimal("5")


def test_a_count_covers_several_items_in_one_document(seeded: Api) -> None:
    seeded.receive(WAREHOUSE, (FIFO_SKU, "10", "1"), (AVERAGE_SKU, "10", "2"))

    result = seeded.count(WAREHOUSE, counted(FIFO_SKU, "9"), counted(AVERAGE_SKU, "11"))

    assert [line["quantity"] for line in result["lines"]] == ["-1.000", "1.000"]
    assert [line["value"] for line in result["lines"]] == ["-1.00", "2.00"]


def test_a_count_at_another_location_leaves_this_one_alone(seeded: Api) -> None:
    seeded.receive(WAREHOUSE, (FIFO_SKU, "10", "1"))

    seeded.count(STORE, counted(FIFO_SKU, "0"))

    assert seeded.available(FIFO_SKU, WAREHOUSE) == Decimal("10")


@pytest.mark.parametrize(("body", "code"), [
    (count(counted("NOPE-1", "1")), "unknown_item"),
    (count(counted(FIFO_SKU, "1"), location="NOWHERE"), "unknown_location"),
], ids=["unknown-item", "unknown-location"])
def test_unknown_reference_data_is_refused(seeded: Api, body: dict[str, Any], code: str) -> None:
    head = seeded.head()

    assert_problem(seeded.post("/adjustments", body), 422, code)
    assert seeded.head() == head


@pytest.mark.parametrize("body", [
    count(counted(FIFO_SKU, "1"), counted(FIFO_SKU, "2")),
    {"location": WAREHOUSE, "lines": [counted(FIFO_SKU, "1")]},
    count(counted(FIFO_SKU, "1"), reason=""),
    count(counted(FIFO_SKU, "-1")),
    count(counted(FIFO_SKU, "1.0001")),
    count(counted(FIFO_SKU, "1", "-0.01")),
    count(counted(FIFO_SKU, "1", "0.0000001")),
    count({"sku": FIFO_SKU, "quantity": "1"}),
], ids=["same-sku-twice", "no-reason", "empty-reason", "negative", "four-places",
        "negative-cost", "seven-place-cost", "quantity-instead-of-counted"])
def test_a_malformed_count_is_refused(seeded: Api, body: dict[str, Any]) -> None:
    seeded.receive(WAREHOUSE, (FIFO_SKU, "3", "1"))
    head = seeded.head()

    assert_problem(seeded.post("/adjustments", body), 422, "validation_error")
    assert seeded.head() == head
    assert seeded.available(FIFO_SKU, WAREHOUSE) == Decimal("3")
