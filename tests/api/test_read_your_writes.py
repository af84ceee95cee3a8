"""Read your writes: a query given a command's `position` as `min_position` sees that command.

Queries wait (at most `read_wait_seconds`) for the read models to reach `min_position`, then
answer; if they do not reach it in time the answer is 503 `projection_lag`. The main flow runs on
SQLite and PostgreSQL.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from typing import Any

import pytest
from api_support import AVERAGE_SKU, FIFO_SKU, STORE, WAREHOUSE, Body, assert_problem, seed
from read_support import READ_WAIT_SECONDS, ReadApi, at, iso, serving_reads

QUERIES = [
    pytest.param("/stock", {}, id="stock"),
    pytest.param("/stock", {"as_of": "2025-06-01T00:00:00Z"}, id="stock-as-of"),
    pytest.param(f"/stock/{FIFO_SKU}/movements", {}, id="movements"),
    pytest.param("/alerts/low-stock", {}, id="low-stock"),
]
DEFAULT_WAIT_SECONDS = 5.0


@pytest.fixture
def ledger_api(sqlite_url: str) -> Iterator[ReadApi]:
    with serving_reads(sqlite_url) as api:
        seed(api)
        yield api


def bin_at(api: ReadApi, sku: str, location: str, position: int) -> tuple[str, str]:
    """A bin's on-hand and value as GET /stock shows them once it reached `position`."""
    page = api.stock(sku=sku, location=location, min_position=position)
    assert page["position"] >= position, page
    [row] = page["items"]
    return row["quantity_on_hand"], row["value"]


def test_each_command_is_seen_by_the_next_query_given_its_position(ledger_api: ReadApi) -> None:
    commands: list[Callable[[], Body]] = [
        lambda: ledger_api.receive(WAREHOUSE, (FIFO_SKU, "10", "4.20")),
        lambda: ledger_api.dispatch(WAREHOUSE, (FIFO_SKU, "3")),
        lambda: ledger_api.transfer(WAREHOUSE, STORE, (FIFO_SKU, "2")),
        lambda: ledger_api.count(WAREHOUSE, {"sku": FIFO_SKU, "counted_quantity": "4"}),
    ]
    card_rows = 0
    for round_ in range(4):
        for number, command in enumerate(commands):
            result = command()
            [line] = result["lines"]
            assert isinstance(result["position"], int) and result["position"] == ledger_api.head()

            assert bin_at(ledger_api, FIFO_SKU, line["location"], result["position"]) == (
                line["quantity_on_hand_after"], line["value_after"]), (round_, number)
            if "to_location" in line:
                assert bin_at(ledger_api, FIFO_SKU, line["to_location"], result["position"]) == (
                    line["to_quantity_on_hand_after"], line["to_value_after"])
            card_rows += 2 if "to_location" in line else 1
            card = ledger_api.movements(FIFO_SKU, min_position=result["position"], limit=200)
            assert len(card["items"]) == card_rows, (round_, number)
            assert max(row["position"] for row in card["items"]) == result["position"]


@pytest.mark.parametrize(("path", "params"), QUERIES)
def test_a_position_not_reached_in_time_is_a_projection_lag(
        ledger_api: ReadApi, path: str, params: dict[str, Any]) -> None:
    beyond = ledger_api.head() + 1

    started = time.monotonic()
    response = ledger_api.get(path, min_position=beyond, **params)
    waited = time.monotonic() - started

    body = assert_problem(response, 503, "projection_lag")
    assert (body["min_position"], body["waited_seconds"]) == (beyond, READ_WAIT_SECONDS)
    # It waited for the configured time, not the default.
    assert READ_WAIT_SECONDS <= waited < DEFAULT_WAIT_SECONDS


@pytest.mark.parametrize(("path", "params"), QUERIES)
@pytest.mark.parametrize("min_position", ["-1", str(2**62 + 1), "3.5", "latest"])
def test_a_min_position_that_is_not_a_position_is_a_validation_problem(
        ledger_api: ReadApi, path: str, params: dict[str, Any], min_position: str) -> None:
    response = ledger_api.get(path, min_position=min_position, **params)

    body = assert_problem(response, 422, "validation_error")
    assert body["errors"][0]["loc"] == ["query", "min_position"]


def test_an_idempotent_replay_is_read_at_the_original_position(ledger_api: ReadApi) -> None:
    receipt = {"location": WAREHOUSE, "lines": [{"sku": FIFO_SKU, "quantity": "10",
                                                 "unit_cost": "4.20"}]}
    first = ledger_api.post("/receipts", receipt, idempotency_key="po-77")
    replayed = ledger_api.post("/receipts", receipt, idempotency_key="po-77")
    assert replayed.headers.get("idempotent-replayed") == "true", replayed.text
    position = replayed.json()["position"]
    assert position == first.json()["position"]

    assert bin_at(ledger_api, FIFO_SKU, WAREHOUSE, position) == ("10.000", "42.00")
    assert len(ledger_api.movements(FIFO_SKU, min_position=position)["items"]) == 1


def test_writers_in_several_threads_each_read_their_own_writes(ledger_api: ReadApi) -> None:
    locations = [f"BIN-{number}" for number in range(4)]
    for location in locations:
        ledger_api.register_location(location)

    def receive_and_read(location: str) -> list[tuple[str, str]]:
        seen = []
        for _ in range(5):
            result = ledger_api.receive(location, (AVERAGE_SKU, "1", "2"))
            seen.append(bin_at(ledger_api, AVERAGE_SKU, location, result["position"]))
        return seen

    with ThreadPoolExecutor(max_workers=len(locations)) as pool:
        seen = list(pool.map(receive_and_read, locations))

    expected = [(f"{count}.000", f"{2 * count}.00") for count in range(1, 6)]
    assert seen == [expected] * len(locations)


def test_positions_from_before_a_restart_are_read_at_once(sqlite_url: str) -> None:
    with serving_reads(sqlite_url) as api:
        seed(api)
        position = api.receive(WAREHOUSE, (FIFO_SKU, "10", "4.20"))["position"]
        api.stock(min_position=position)

    with serving_reads(sqlite_url) as api:
        assert bin_at(api, FIFO_SKU, WAREHOUSE, position) == ("10.000", "42.00")
        assert len(api.movements(FIFO_SKU, min_position=position)["items"]) == 1


def run_main_flow(api: ReadApi) -> None:
    """Register, receive, dispatch, transfer and count in the past, reading every write back."""
    seed(api)
    reorder = api.register_item(AVERAGE_SKU, "moving_average", reorder_point="8")
    assert api.low_stock(min_position=reorder["position"])["items"] == []

    received = api.receive(WAREHOUSE, (FIFO_SKU, "10", "4.20"), (AVERAGE_SKU, "10", "2"),
                           effective_at=iso(at(10)), reference="PO-77")
    assert bin_at(api, FIFO_SKU, WAREHOUSE, received["position"]) == ("10.000", "42.00")

    dispatched = api.dispatch(WAREHOUSE, (AVERAGE_SKU, "3"), effective_at=iso(at(20)))
    alerts = api.low_stock(min_position=dispatched["position"])["items"]
    assert [(row["sku"], row["quantity_available"], row["shortfall"]) for row in alerts] == [
        (AVERAGE_SKU, "7.000", "1.000")]

    moved = api.transfer(WAREHOUSE, STORE, (FIFO_SKU, "4"), effective_at=iso(at(1, month=2)))
    assert bin_at(api, FIFO_SKU, STORE, moved["position"]) == ("4.000", "16.80")

    counted = api.count(WAREHOUSE, {"sku": FIFO_SKU, "counted_quantity": "5"},
                        effective_at=iso(at(1, month=3)))
    card = api.movements(FIFO_SKU, min_position=counted["position"])
    assert [(row["location"], row["kind"], row["quantity_on_hand_after"])
            for row in card["items"]] == [
        (WAREHOUSE, "received", "10.000"), (WAREHOUSE, "transferred_out", "6.000"),
        (STORE, "transferred_in", "4.000"), (WAREHOUSE, "counted", "5.000")]
    assert card["items"][0]["reference"] == "PO-77"

    then = api.stock(as_of=iso(at(15)), min_position=counted["position"])["items"]
    assert [(row["sku"], row["location"], row["quantity_on_hand"], row["as_of_position"])
            for row in then] == [
        (FIFO_SKU, WAREHOUSE, "10.000", card["items"][0]["position"]),
        (AVERAGE_SKU, WAREHOUSE, "10.000", received["position"])]

    now = {(row["sku"], row["location"]): row for row in
           api.stock(min_position=counted["position"])["items"]}
    assert {key: (row["quantity_available"], row["value"]) for key, row in now.items()} == {
        (FIFO_SKU, STORE): ("4.000", "16.80"), (FIFO_SKU, WAREHOUSE): ("5.000", "21.00"),
        (AVERAGE_SKU, WAREHOUSE): ("7.000", "14.00")}
    assert Decimal(now[(FIFO_SKU, WAREHOUSE)]["unit_cost"]) == Decimal("4.2")

    status = api.projections()
    assert {(row["position"], row["lag"]) for row in status["items"]} == {
        (counted["position"], 0)}


def test_the_main_flow_reads_its_writes(database_url: str) -> None:
    with serving_reads(database_url) as api:
        run_main_flow(api)
