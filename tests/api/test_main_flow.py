"""The main flow end to end over HTTP, on the embedded SQLite store and on PostgreSQL."""

from __future__ import annotations

from decimal import Decimal

import pytest
from api_support import (
    AUDITOR,
    AVERAGE_SKU,
    FIFO_SKU,
    STORE,
    WAREHOUSE,
    assert_problem,
    seed,
    serving,
)


def run_main_flow(database_url: str) -> None:
    """Register, receive, dispatch, transfer, count, replay, refuse; then restart and replay."""
    with serving(database_url) as api:
        assert api.head() == 0
        seed(api)
        assert [item["sku"] for item in api.get("/items", key=AUDITOR).json()["items"]] == [
            FIFO_SKU, AVERAGE_SKU]

        receipt = api.post("/receipts", {
            "location": WAREHOUSE, "reference": "PO-77",
            "lines": [{"sku": FIFO_SKU, "quantity": "10", "unit_cost": "4.20"},
                      {"sku": FIFO_SKU, "quantity": 5, "unit_cost": 4.5},
                      {"sku": AVERAGE_SKU, "quantity": "20", "unit_cost": "2.25"}]},
            idempotency_key="rcpt-0001")
        assert receipt.status_code == 201, receipt.text
        assert receipt.json()["position"] == api.head()

        dispatched = api.dispatch(WAREHOUSE, (FIFO_SKU, "12"), reason="sales order 9")
        assert dispatched["lines"][0]["value"] == "51.00"

        moved = api.transfer(WAREHOUSE, STORE, (FIFO_SKU, "1"), (AVERAGE_SKU, "5"))
        assert [line["value"] for line in moved["lines"]] == ["4.50", "11.25"]
        assert moved["lines"][1]["to_quantity_on_hand_after"] == "5.000"

        counted = api.count(WAREHOUSE, {"sku": AVERAGE_SKU, "counted_quantity": "14"})
        assert (counted["lines"][0]["quantity"], counted["lines"][0]["value"]) == (
            "-1.000", "-2.25")

        head = api.head()
        replay = api.post("/receipts", {
            "location": WAREHOUSE, "reference": "PO-77",
            "lines": [{"sku": FIFO_SKU, "quantity": "10.000", "unit_cost": "4.2"},
                      {"sku": FIFO_SKU, "quantity": "5", "unit_cost": "4.500000"},
                      {"sku": AVERAGE_SKU, "quantity": 20, "unit_cost": 2.25}]},
            idempotency_key="rcpt-0001")
        assert replay.json() == receipt.json()
        assert replay.headers["idempotent-replayed"] == "true"

        refused = api.post("/dispatches", {"location": STORE,
                                           "lines": [{"sku": FIFO_SKU, "quantity": "2"}]})
        problem = assert_problem(refused, 409, "insufficient_stock")
        assert (problem["requested"], problem["available"]) == ("2.000", "1.000")
        assert api.head() == head

        assert api.available(FIFO_SKU, WAREHOUSE) == Decimal("2")
        assert api.available(AVERAGE_SKU, WAREHOUSE) == Decimal("14")
        assert api.available(AVERAGE_SKU, STORE) == Decimal("5")

    with serving(database_url) as restarted:
        assert restarted.head() == head
        again = restarted.post("/receipts", {
            "location": WAREHOUSE, "reference": "PO-77",
            "lines": [{"sku": FIFO_SKU, "quantity": "10", "unit_cost": "4.20"},
                      {"sku": FIFO_SKU, "quantity": "5", "unit_cost": "4.5"},
                      {"sku": AVERAGE_SKU, "quantity": "20", "unit_cost": "2.25"}]},
            idempotency_key="rcpt-0001")
        assert again.json() == receipt.json()
        assert restarted.dispatch(STORE, (FIFO_SKU, "1"))["lines"][0]["value"] == "4.50"


def test_main_flow_on_sqlite(sqlite_url: str) -> None:
    run_main_flow(sqlite_url)


@pytest.mark.postgres
def test_main_flow_on_postgresql(fresh_postgres_url: str) -> None:
    run_main_flow(fresh_postgres_url)
