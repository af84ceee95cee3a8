"""POST /transfers (调拨): stock leaves one location and arrives at another, carrying its cost."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from api_support import AVERAGE_SKU, FIFO_SKU, STORE, WAREHOUSE, Api, assert_problem


def transfer(*lines: tuple[str, Any], from_location: str = WAREHOUSE,
             to_location: str = STORE) -> dict[str, Any]:
    return {"from_location": from_location, "to_location": to_location,
            "lines": [{"sku": sku, "quantity": quantity} for sku, quantity in lines]}


def test_a_transfer_reports_both_bins(seeded: Api) -> None:
    seeded.receive(WAREHOUSE, (FIFO_SKU, "10", "4.20"), (FIFO_SKU, "5", "4.50"))

    result = seeded.transfer(WAREHOUSE, STORE, (FIFO_SKU, "12"))

    assert result["lines"] == [{
        "sku": FIFO_SKU, "location": WAREHOUSE, "quantity": "12.000", "unit_cost": "4.250000",
        "value": "51.00", "quantity_on_hand_after": "3.000", "value_after": "13.50",
        "to_location": STORE, "to_quantity_on_hand_after": "12.000", "to_value_after": "51.00",
    }]
    assert result["position"] == seeded.head()


def test_fifo_layers_keep_their_costs_at_the_destination(seeded: Api) -> None:
    seeded.receive(WAREHOUSE, (FIFO_SKU, "10", "4.20"), (FIFO_SKU, "5", "4.50"))
    seeded.transfer(WAREHOUSE, STORE, (FIFO_SKU, "12"))

    result = seeded.dispatch(STORE, (FIFO_SKU, "11"))

    # The store holds 10 at 4.20 then 2 at 4.50: 42.00 + 4.50.
    assert result["lines"][0]["value"] == "46.50"
    assert result["lines"][0]["value_after"] == "4.50"


def test_moving_average_stock_blends_into_the_destination(seeded: Api) -> None:
    seeded.receive(WAREHOUSE, (AVERAGE_SKU, "10", "4"), (AVERAGE_SKU, "10", "5"))
    seeded.receive(STORE, (AVERAGE_SKU, "10", "6"))

    result = seeded.transfer(WAREHOUSE, STORE, (AVERAGE_SKU, "5"))

    moved = result["lines"][0]
    assert (moved["value"], moved["unit_cost"]) == ("22.50", "4.500000")
    assert (moved["to_quantity_on_hand_after"], moved["to_value_after"]) == ("15.000", "82.50")
    assert seeded.dispatch(STORE, (AVERAGE_SKU, "15"))["lines"][0]["value"] == "82.50"


def test_a_transfer_without_enough_stock_moves_nothing(seeded: Api) -> None:
    seeded.receive(WAREHOUSE, (FIFO_SKU, "3", "1"), (AVERAGE_SKU, "3", "1"))
    head = seeded.head()

    response = seeded.post("/transfers", transfer((AVERAGE_SKU, "2"), (FIFO_SKU, "4")))

    problem = assert_problem(response, 409, "insufficient_stock")
    assert (problem["sku"], problem["location"]) == (FIFO_SKU, WAREHOUSE)
    assert (problem["requested"], problem["available"]) == ("4.000", "3.000")
    assert seeded.head() == head
    assert seeded.available(AVERAGE_SKU, WAREHOUSE) == Decimal("3")
    assert seeded.available(AVERAGE_SKU, STORE) == Decimal("0")


def test_a_transfer_to_the_same_location_is_refused(seeded: Api) -> None:
    seeded.receive(WAREHOUSE, (FIFO_SKU, "3", "1"))
    head = seeded.head()

    response = seeded.post("/transfers", transfer((FIFO_SKU, "1"), to_location=WAREHOUSE))

    problem = assert_problem(response, 422, "validation_error")
    assert problem["field"] == "to_location"
    assert seeded.head() == head


@pytest.mark.parametrize(("body", "code", "fact"), [
    (transfer((FIFO_SKU, "1"), to_location="NOWHERE"), "unknown_location", "location"),
    (transfer((FIFO_SKU, "1"), from_location="NOWHERE"), "unknown_location", "location"),
    (transfer(("NOPE-1", "1")), "unknown_item", "sku"),
], ids=["unknown-destination", "unknown-source", "unknown-item"])
def test_unknown_reference_data_is_refused(seeded: Api, body: dict[str, Any], code: str,
                                           fact: str) -> None:
    seeded.receive(WAREHOUSE, (FIFO_SKU, "3", "1"))
    head = seeded.head()

    problem = assert_problem(seeded.post("/transfers", body), 422, code)
    assert problem[fact] in ("NOWHERE", "NOPE-1")
    assert seeded.head() == head
    assert seeded.available(FIFO_SKU, WAREHOUSE) == Decimal("3")


@pytest.mark.parametrize("body", [
    transfer((FIFO_SKU, "0")),
    transfer((FIFO_SKU, "1.0001")),
    {"from_location": WAREHOUSE, "lines": [{"sku": FIFO_SKU, "quantity": "1"}]},
    {**transfer((FIFO_SKU, "1")), "location": WAREHOUSE},
], ids=["zero", "four-places", "no-destination", "unknown-field"])
def test_a_malformed_transfer_is_refused(seeded: Api, body: dict[str, Any]) -> None:
    seeded.receive(WAREHOUSE, (FIFO_SKU, "3", "1"))
    head = seeded.head()

    assert_problem(seeded.post("/transfers", body), 422, "validation_error")
    assert seeded.head() == head
