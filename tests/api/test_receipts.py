"""POST /receipts (入库): every line goes in at its unit cost, all lines or none."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID

import pytest
from api_support import AVERAGE_SKU, FIFO_SKU, STORE, WAREHOUSE, Api, assert_problem

BASE_FIELDS = {"sku", "location", "quantity", "unit_cost", "value", "quantity_on_hand_after",
               "value_after"}


def receipt(*lines: dict[str, Any], **header: Any) -> dict[str, Any]:
    return {"location": WAREHOUSE, "lines": list(lines), **header}


def line(sku: str = FIFO_SKU, quantity: Any = "1", unit_cost: Any = "1") -> dict[str, Any]:
    return {"sku": sku, "quantity": quantity, "unit_cost": unit_cost}


def test_a_receipt_records_each_line_at_its_cost(seeded: Api) -> None:
    response = seeded.post("/receipts", receipt(
        line(FIFO_SKU, "10", "4.20"), line(FIFO_SKU, "5", "4.50"), line(AVERAGE_SKU, "3", "2.5"),
        reference="PO-77", note="first delivery"))

    assert response.status_code == 201, response.text
    result = response.json()
    UUID(result["document_id"])
    assert result["position"] == seeded.head()
    assert result["lines"] == [
        {"sku": FIFO_SKU, "location": WAREHOUSE, "quantity": "10.000", "unit_cost": "4.200000",
         "value": "42.00", "quantity_on_hand_after": "10.000", "value_after": "42.00"},
        {"sku": FIFO_SKU, "location": WAREHOUSE, "quantity": "5.000", "unit_cost": "4.500000",
         "value": "22.50", "quantity_on_hand_after": "15.000", "value_after": "64.50"},
        {"sku": AVERAGE_SKU, "location": WAREHOUSE, "quantity": "3.000", "unit_cost": "2.500000",
         "value": "7.50", "quantity_on_hand_after": "3.000", "value_after": "7.50"},
    ]
    assert all(set(recorded) == BASE_FIELDS for recorded in result["lines"])
    assert "idempotent-replayed" not in response.headers


def test_a_second_receipt_adds_to_the_bin(seeded: Api) -> None:
    seeded.receive(WAREHOUSE, (AVERAGE_SKU, "3", "2.5"))

    result = seeded.receive(WAREHOUSE, (AVERAGE_SKU, "1", "3.5"))

    assert result["lines"][0]["quantity_on_hand_after"] == "4.000"
    assert result["lines"][0]["value_after"] == "11.00"
    assert seeded.available(AVERAGE_SKU, WAREHOUSE) == Decimal("4")


def test_each_receipt_is_a_new_document(seeded: Api) -> None:
    first = seeded.receive(WAREHOUSE, (FIFO_SKU, "1", "1"))
    second = seeded.receive(WAREHOUSE, (FIFO_SKU, "1", "1"))

    assert first["document_id"] != second["document_id"]
    assert first["position"] < second["position"] == seeded.head()


def test_bins_are_per_location(seeded: Api) -> None:
    seeded.receive(WAREHOUSE, (FIFO_SKU, "10", "1"))

    result = seeded.receive(STORE, (FIFO_SKU, "2", "1"))

    assert result["lines"][0]["location"] == STORE
    assert result["lines"][0]["quantity_on_hand_after"] == "2.000"
    assert seeded.available(FIFO_SKU, WAREHOUSE) == Decimal("10")


def test_stock_can_be_received_at_no_cost(seeded: Api) -> None:
    result = seeded.receive(WAREHOUSE, (FIFO_SKU, "4", "0"))

    assert result["lines"][0]["value"] == "0.00"
    assert result["lines"][0]["unit_cost"] == "0.000000"


def test_a_past_effective_time_with_an_offset_is_accepted(seeded: Api) -> None:
    when = (datetime.now(UTC) - timedelta(days=3)).isoformat()

    response = seeded.post("/receipts", receipt(line(), effective_at=when))

    assert response.status_code == 201, response.text


@pytest.mark.parametrize("effective_at", [
    (datetime.now(UTC) + timedelta(days=1)).isoformat(),
    "2024-01-01T00:00:00",
    "yesterday",
], ids=["future", "no-offset", "not-a-time"])
def test_an_unusable_effective_time_is_refused(seeded: Api, effective_at: str) -> None:
    head = seeded.head()

    response = seeded.post("/receipts", receipt(line(), effective_at=effective_at))

    assert_problem(response, 422, "validation_error")
    assert seeded.head() == head


def test_a_movement_cannot_be_effective_before_the_bins_latest_one(seeded: Api) -> None:
    seeded.receive(WAREHOUSE, (FIFO_SKU, "1", "1"))
    head = seeded.head()
    when = (datetime.now(UTC) - timedelta(days=3)).replace(microsecond=0)

    response = seeded.post("/receipts", receipt(line(AVERAGE_SKU), line(FIFO_SKU),
                                                effective_at=when.isoformat()))

    problem = assert_problem(response, 409, "backdated_movement")
    assert (problem["sku"], problem["location"]) == (FIFO_SKU, WAREHOUSE)
    assert datetime.fromisoformat(problem["effective_at"]) == when
    assert datetime.fromisoformat(problem["latest_effective_at"]) > when
    assert seeded.head() == head
    assert seeded.available(AVERAGE_SKU, WAREHOUSE) == Decimal("0")


def test_an_unknown_item_refuses_the_whole_receipt(seeded: Api) -> None:
    head = seeded.head()

    response = seeded.post("/receipts", receipt(line(FIFO_SKU, "5", "1"), line("NOPE-1", "1", "1")))

    problem = assert_problem(response, 422, "unknown_item")
    assert problem["sku"] == "NOPE-1"
    assert seeded.head() == head
    assert seeded.available(FIFO_SKU, WAREHOUSE) == Decimal("0")


def test_an_unknown_location_is_refused(seeded: Api) -> None:
    head = seeded.head()

    response = seeded.post("/receipts", {"location": "NOWHERE", "lines": [line()]})

    problem = assert_problem(response, 422, "unknown_location")
    assert problem["location"] == "NOWHERE"
    assert seeded.head() == head


def test_a_receipt_of_1000_lines_is_accepted(seeded: Api) -> None:
    lines = [line(FIFO_SKU if n % 2 else AVERAGE_SKU, "1", "0.5") for n in range(1000)]

    result = seeded.command("/receipts", receipt(*lines))

    assert len(result["lines"]) == 1000
    assert result["lines"][-1]["quantity_on_hand_after"] == "500.000"
    assert result["lines"][-1]["value_after"] == "250.00"


@pytest.mark.parametrize("lines", [[], [line()] * 1001], ids=["no-lines", "1001-lines"])
def test_a_receipt_has_1_to_1000_lines(seeded: Api, lines: list[dict[str, Any]]) -> None:
    head = seeded.head()

    assert_problem(seeded.post("/receipts", receipt(*lines)), 422, "validation_error")
    assert seeded.head() == head


@pytest.mark.parametrize("body", [
    {"lines": [line()]},
    {"location": WAREHOUSE},
    {"location": WAREHOUSE, "lines": [{"sku": FIFO_SKU, "quantity": "1"}]},
    {"location": WAREHOUSE, "lines": [{**line(), "discount": "0.1"}]},
    {"location": WAREHOUSE, "lines": [line()], "supplier": "ACME"},
    {"location": WAREHOUSE, "lines": [line()], "reference": "r" * 501},
    {"location": WAREHOUSE, "lines": line()},
    {"location": "-BAD", "lines": [line()]},
    {"location": WAREHOUSE, "lines": [line(sku="BAD SKU")]},
], ids=["no-location", "no-lines", "no-unit-cost", "unknown-line-field", "unknown-field",
        "long-reference", "lines-not-a-list", "malformed-location", "malformed-sku"])
def test_a_malformed_receipt_is_refused(seeded: Api, body: dict[str, Any]) -> None:
    head = seeded.head()

    assert_problem(seeded.post("/receipts", body), 422, "validation_error")
    assert seeded.head() == head
