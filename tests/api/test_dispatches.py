"""POST /dispatches (出库): stock goes out at cost, never beyond what is available."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from api_support import AVERAGE_SKU, FIFO_SKU, STORE, WAREHOUSE, Api, assert_problem


def dispatch(*lines: tuple[str, Any], location: str = WAREHOUSE, **header: Any) -> dict[str, Any]:
    return {"location": location,
            "lines": [{"sku": sku, "quantity": quantity} for sku, quantity in lines], **header}


def test_fifo_takes_the_oldest_layers_first(seeded: Api) -> None:
    seeded.receive(WAREHOUSE, (FIFO_SKU, "10", "4.20"), (FIFO_SKU, "5", "4.50"))

    result = seeded.dispatch(WAREHOUSE, (FIFO_SKU, "12"), reason="sales order 1")

    # 10 × 4.20 + 2 × 4.50 = 51.00
    assert result["lines"] == [
        {"sku": FIFO_SKU, "location": WAREHOUSE, "quantity": "12.000", "unit_cost": "4.250000",
         "value": "51.00", "quantity_on_hand_after": "3.000", "value_after": "13.50"},
    ]
    assert result["position"] == seeded.head()


def test_fifo_then_takes_the_next_layer(seeded: Api) -> None:
    seeded.receive(WAREHOUSE, (FIFO_SKU, "10", "4.20"), (FIFO_SKU, "5", "4.50"))
    seeded.dispatch(WAREHOUSE, (FIFO_SKU, "12"))

    result = seeded.dispatch(WAREHOUSE, (FIFO_SKU, "3"))

    assert result["lines"][0]["unit_cost"] == "4.500000"
    assert result["lines"][0]["value"] == "13.50"
    assert result["lines"][0]["quantity_on_hand_after"] == "0.000"
    assert result["lines"][0]["value_after"] == "0.00"


def test_moving_average_takes_stock_out_at_the_average_cost(seeded: Api) -> None:
    seeded.receive(WAREHOUSE, (AVERAGE_SKU, "10", "4"), (AVERAGE_SKU, "10", "5"))

    result = seeded.dispatch(WAREHOUSE, (AVERAGE_SKU, "5"))

    assert result["lines"][0] == {
        "sku": AVERAGE_SKU, "location": WAREHOUSE, "quantity": "5.000", "unit_cost": "4.500000",
        "value": "22.50", "quantity_on_hand_after": "15.000", "value_after": "67.50"}


def test_emptying_a_moving_average_bin_takes_exactly_the_value_left(seeded: Api) -> None:
    seeded.receive(WAREHOUSE, (AVERAGE_SKU, "3", "3.333333"))  # worth 10.00
    first = seeded.dispatch(WAREHOUSE, (AVERAGE_SKU, "1"))

    last = seeded.dispatch(WAREHOUSE, (AVERAGE_SKU, "2"))

    assert first["lines"][0]["value"] == "3.33"
    assert last["lines"][0]["value"] == "6.67"
    assert last["lines"][0]["value_after"] == "0.00"


def test_several_lines_on_one_bin_see_each_other(seeded: Api) -> None:
    seeded.receive(WAREHOUSE, (FIFO_SKU, "10", "1"), (FIFO_SKU, "10", "2"))

    result = seeded.dispatch(WAREHOUSE, (FIFO_SKU, "6"), (FIFO_SKU, "6"))

    assert [recorded["value"] for recorded in result["lines"]] == ["6.00", "8.00"]
    assert result["lines"][1]["quantity_on_hand_after"] == "8.000"


def test_taking_more_than_is_available_is_refused_with_the_facts(seeded: Api) -> None:
    seeded.receive(WAREHOUSE, (FIFO_SKU, "3", "4.20"))
    head = seeded.head()

    response = seeded.post("/dispatches", dispatch((FIFO_SKU, "99")))

    problem = assert_problem(response, 409, "insufficient_stock")
    assert {key: problem[key] for key in ("sku", "location", "requested", "available")} == {
        "sku": FIFO_SKU, "location": WAREHOUSE, "requested": "99.000", "available": "3.000"}
    assert seeded.head() == head


def test_a_bin_that_never_held_stock_has_none_available(seeded: Api) -> None:
    seeded.receive(WAREHOUSE, (FIFO_SKU, "3", "4.20"))

    response = seeded.post("/dispatches", dispatch((FIFO_SKU, "1"), location=STORE))

    problem = assert_problem(response, 409, "insufficient_stock")
    assert problem["location"] == STORE
    assert Decimal(problem["available"]) == 0


def test_one_short_line_refuses_the_whole_dispatch(seeded: Api) -> None:
    seeded.receive(WAREHOUSE, (FIFO_SKU, "10", "1"), (AVERAGE_SKU, "10", "1"))
    head = seeded.head()

    response = seeded.post("/dispatches", dispatch((AVERAGE_SKU, "4"), (FIFO_SKU, "6"),
                                                   (FIFO_SKU, "6")))

    problem = assert_problem(response, 409, "insufficient_stock")
    assert (problem["requested"], problem["available"]) == ("6.000", "4.000")
    assert seeded.head() == head
    assert seeded.available(AVERAGE_SKU, WAREHOUSE) == Decimal("10")
    assert seeded.available(FIFO_SKU, WAREHOUSE) == Decimal("10")


def test_exactly_what_is_available_can_be_taken(seeded: Api) -> None:
    seeded.receive(WAREHOUSE, (FIFO_SKU, "2.5", "1"))

    result = seeded.dispatch(WAREHOUSE, (FIFO_SKU, "2.5"))

    assert result["lines"][0]["quantity_on_hand_after"] == "0.000"
    assert_problem(seeded.post("/dispatches", dispatch((FIFO_SKU, "0.001"))), 409,
                   "insufficient_stock")


@pytest.mark.parametrize(("body", "code"), [
    (dispatch(("NOPE-1", "1")), "unknown_item"),
    (dispatch((FIFO_SKU, "1"), location="NOWHERE"), "unknown_location"),
])
def test_unknown_reference_data_is_refused(seeded: Api, body: dict[str, Any], code: str) -> None:
    head = seeded.head()

    assert_problem(seeded.post("/dispatches", body), 422, code)
    assert seeded.head() == head


@pytest.mark.parametrize("body", [
    dispatch((FIFO_SKU, "0")),
    dispatch((FIFO_SKU, "-1")),
    dispatch((FIFO_SKU, "1"), reason=""),
    {"location": WAREHOUSE, "lines": [{"sku": FIFO_SKU, "quantity": "1", "unit_cost": "1"}]},
], ids=["zero", "negative", "empty-reason", "unit-cost-not-a-dispatch-field"])
def test_a_malformed_dispatch_is_refused(seeded: Api, body: dict[str, Any]) -> None:
    seeded.receive(WAREHOUSE, (FIFO_SKU, "3", "4.20"))
    head = seeded.head()

    assert_problem(seeded.post("/dispatches", body), 422, "validation_error")
    assert seeded.head() == head
