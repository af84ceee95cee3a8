"""GET /alerts/low-stock (库存预警): bins whose available quantity is at or below reorder point."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from typing import Any

import pytest
from api_support import STORE, WAREHOUSE, Body, assert_problem
from read_support import AUDITOR, ReadApi, serving_reads

ALERTS = "/alerts/low-stock"
BOLT = "BOLT-1"  # FIFO, reorder point 5
NUT = "NUT-2"  # moving average, reorder point 10
WASHER = "WASHER-3"  # no reorder point


@pytest.fixture
def ledger_api(sqlite_url: str) -> Iterator[ReadApi]:
    with serving_reads(sqlite_url) as api:
        api.register_item(BOLT, "fifo", reorder_point="5")
        api.register_item(NUT, "moving_average", reorder_point="10", uom="kg")
        api.register_item(WASHER, "fifo")
        api.register_location(WAREHOUSE)
        api.register_location(STORE)
        yield api


@pytest.fixture
def stocked(ledger_api: ReadApi) -> int:
    """Bolts plenty in the warehouse and at the reorder point in the store; nuts short in the
    warehouse; washers all gone. Returns the last position."""
    ledger_api.receive(WAREHOUSE, (BOLT, "20", "1"), (NUT, "4", "2.5"), (WASHER, "1", "1"))
    ledger_api.receive(STORE, (BOLT, "5", "1"))
    position: int = ledger_api.dispatch(WAREHOUSE, (WASHER, "1"))["position"]
    return position


def alert(sku: str, location: str, reorder_point: str, on_hand: str, shortfall: str,
          uom: str = "ea") -> Body:
    return {"sku": sku, "location": location, "name": f"Item {sku}", "uom": uom,
            "reorder_point": reorder_point, "quantity_on_hand": on_hand,
            "quantity_reserved": "0.000", "quantity_available": on_hand, "shortfall": shortfall}


def test_every_bin_at_or_below_its_reorder_point_is_listed_with_its_shortfall(
        ledger_api: ReadApi, stocked: int) -> None:
    page = ledger_api.low_stock(min_position=stocked)

    assert page["items"] == [
        alert(BOLT, STORE, "5.000", "5.000", "0.000"),
        alert(NUT, WAREHOUSE, "10.000", "4.000", "6.000", uom="kg"),
    ]
    assert page["position"] >= stocked
    assert page["next_cursor"] is None


def test_one_unit_above_the_reorder_point_is_not_low(ledger_api: ReadApi, stocked: int) -> None:
    position = ledger_api.receive(STORE, (BOLT, "0.001", "1"))["position"]

    page = ledger_api.low_stock(min_position=position)

    assert [(row["sku"], row["location"]) for row in page["items"]] == [(NUT, WAREHOUSE)]


def test_an_emptied_bin_is_short_by_the_whole_reorder_point(
        ledger_api: ReadApi, stocked: int) -> None:
    position = ledger_api.dispatch(STORE, (BOLT, "5"))["position"]

    page = ledger_api.low_stock(min_position=position)

    assert page["items"][0] == alert(BOLT, STORE, "5.000", "0.000", "5.000")


def test_an_item_without_a_reorder_point_never_raises_an_alert(
        ledger_api: ReadApi, stocked: int) -> None:
    page = ledger_api.low_stock(min_position=stocked)

    assert WASHER not in {row["sku"] for row in page["items"]}
    washers = ledger_api.stock(sku=WASHER, min_position=stocked)["items"]
    assert [row["quantity_available"] for row in washers] == ["0.000"]


def test_a_receipt_above_the_reorder_point_clears_the_alert(
        ledger_api: ReadApi, stocked: int) -> None:
    position = ledger_api.receive(WAREHOUSE, (NUT, "6.001", "2.5"))["position"]

    page = ledger_api.low_stock(min_position=position)

    assert [(row["sku"], row["location"]) for row in page["items"]] == [(BOLT, STORE)]


def test_changing_reorder_points_changes_the_alerts_at_once(
        ledger_api: ReadApi, stocked: int) -> None:
    raised = ledger_api.register_item(WASHER, "fifo", reorder_point="0")
    lowered = ledger_api.register_item(NUT, "moving_average", reorder_point="3", uom="kg")
    assert raised["position"] is not None and lowered["position"] is not None

    page = ledger_api.low_stock(min_position=lowered["position"])

    assert page["items"] == [
        alert(BOLT, STORE, "5.000", "5.000", "0.000"),
        alert(WASHER, WAREHOUSE, "0.000", "0.000", "0.000"),
    ]

    removed = ledger_api.register_item(BOLT, "fifo", reorder_point=None)

    page = ledger_api.low_stock(min_position=removed["position"])

    assert [row["sku"] for row in page["items"]] == [WASHER]


def test_the_reorder_point_applies_to_each_location_separately(
        ledger_api: ReadApi, stocked: int) -> None:
    # Twenty-five bolts in all, but only five in the store.
    page = ledger_api.low_stock(min_position=stocked)

    assert (BOLT, STORE) in {(row["sku"], row["location"]) for row in page["items"]}
    assert (BOLT, WAREHOUSE) not in {(row["sku"], row["location"]) for row in page["items"]}


def test_next_cursor_walks_every_alert_exactly_once(ledger_api: ReadApi, stocked: int) -> None:
    position = ledger_api.dispatch(WAREHOUSE, (BOLT, "16"))["position"]
    everything = ledger_api.low_stock(min_position=position)["items"]
    assert len(everything) == 3

    for limit in (1, 2):
        assert ledger_api.walk(ALERTS, limit, min_position=position) == everything


def cursor_of(key: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(key).encode()).decode()


@pytest.mark.parametrize("params", [
    pytest.param({"limit": 0}, id="limit-0"),
    pytest.param({"limit": 201}, id="limit-201"),
    pytest.param({"min_position": -1}, id="negative-min-position"),
    pytest.param({"cursor": "not a cursor"}, id="cursor-not-base64-json"),
    pytest.param({"cursor": cursor_of([BOLT])}, id="cursor-one-part"),
    pytest.param({"cursor": cursor_of([BOLT, 1])}, id="cursor-number-location"),
])
def test_bad_query_parameters_are_a_validation_problem(ledger_api: ReadApi,
                                                       params: dict[str, Any]) -> None:
    assert_problem(ledger_api.get(ALERTS, **params), 422, "validation_error")


def test_alerts_need_a_key_and_every_role_may_read(ledger_api: ReadApi, stocked: int) -> None:
    assert_problem(ledger_api.client.get(ALERTS), 401, "unauthorized")
    assert_problem(ledger_api.get(ALERTS, key="wrong-key"), 401, "unauthorized")

    as_auditor = ledger_api.low_stock(key=AUDITOR, min_position=stocked)

    assert len(as_auditor["items"]) == 2
