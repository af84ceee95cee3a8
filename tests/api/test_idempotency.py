"""Idempotency-Key: a repeated command is answered, not repeated; a reused key is refused."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from typing import Any

import httpx
import pytest
from api_support import (
    ADMIN,
    AVERAGE_SKU,
    FIFO_SKU,
    STORE,
    WAREHOUSE,
    Api,
    assert_problem,
    seed,
    serving,
)

RECEIPT = {"location": WAREHOUSE,
           "lines": [{"sku": FIFO_SKU, "quantity": "10", "unit_cost": "4.20"}]}

# One accepted body per command, on a ledger that holds 10 of AVERAGE_SKU at WAREHOUSE.
COMMANDS: list[tuple[str, dict[str, Any]]] = [
    ("/receipts", RECEIPT),
    ("/dispatches", {"location": WAREHOUSE, "lines": [{"sku": AVERAGE_SKU, "quantity": "1"}]}),
    ("/transfers", {"from_location": WAREHOUSE, "to_location": STORE,
                    "lines": [{"sku": AVERAGE_SKU, "quantity": "1"}]}),
    ("/adjustments", {"location": WAREHOUSE, "reason": "cycle count",
                      "lines": [{"sku": AVERAGE_SKU, "counted_quantity": "7"}]}),
]
BARRIER_TIMEOUT_S = 10
RACE_ROUNDS = 5


@pytest.fixture
def stocked(seeded: Api) -> Api:
    seeded.receive(WAREHOUSE, (AVERAGE_SKU, "10", "2"))
    return seeded


def assert_replayed(original: httpx.Response, repeated: httpx.Response) -> None:
    assert repeated.status_code == 201, repeated.text
    assert repeated.json() == original.json()
    assert repeated.headers["idempotent-replayed"] == "true"


@pytest.mark.parametrize(("path", "body"), COMMANDS, ids=[path for path, _ in COMMANDS])
def test_a_repeated_command_gets_the_original_answer_and_appends_nothing(
        stocked: Api, path: str, body: dict[str, Any]) -> None:
    original = stocked.post(path, body, idempotency_key="key-1")
    assert original.status_code == 201, original.text
    assert "idempotent-replayed" not in original.headers
    head = stocked.head()

    repeated = stocked.post(path, body, idempotency_key="key-1")

    assert_replayed(original, repeated)
    assert repeated.json()["position"] == head
    assert stocked.head() == head


def test_the_replay_is_the_answer_as_first_given_not_as_of_now(stocked: Api) -> None:
    original = stocked.post("/receipts", RECEIPT, idempotency_key="po-77")
    stocked.dispatch(WAREHOUSE, (FIFO_SKU, "4"))

    repeated = stocked.post("/receipts", RECEIPT, idempotency_key="po-77")

    assert_replayed(original, repeated)
    assert repeated.json()["lines"][0]["quantity_on_hand_after"] == "10.000"
    assert stocked.available(FIFO_SKU, WAREHOUSE) == Decimal("6")


def test_the_same_command_written_differently_is_the_same_command(stocked: Api) -> None:
    original = stocked.post("/receipts", RECEIPT, idempotency_key="po-77")
    same = {"location": WAREHOUSE,
            "lines": [{"sku": FIFO_SKU, "quantity": 10.0, "unit_cost": "4.200000"}]}

    assert_replayed(original, stocked.post("/receipts", same, idempotency_key="po-77"))


def test_one_instant_written_in_two_zones_is_the_same_command(seeded: Api) -> None:
    original = seeded.post("/receipts", {**RECEIPT, "effective_at": "2024-01-01T08:00:00+08:00"},
                           idempotency_key="po-78")

    repeated = seeded.post("/receipts", {**RECEIPT, "effective_at": "2024-01-01T00:00:00Z"},
                           idempotency_key="po-78")

    assert original.status_code == 201, original.text
    assert_replayed(original, repeated)


@pytest.mark.parametrize("different", [
    {**RECEIPT, "lines": [{"sku": FIFO_SKU, "quantity": "11", "unit_cost": "4.20"}]},
    {**RECEIPT, "location": STORE},
    {**RECEIPT, "note": "the same goods, I promise"},
], ids=["quantity", "location", "note"])
def test_the_same_key_with_another_command_is_a_conflict(stocked: Api,
                                                         different: dict[str, Any]) -> None:
    stocked.post("/receipts", RECEIPT, idempotency_key="po-77")
    head = stocked.head()

    response = stocked.post("/receipts", different, idempotency_key="po-77")

    problem = assert_problem(response, 409, "idempotency_conflict")
    assert problem["idempotency_key"] == "po-77"
    assert stocked.head() == head
    assert stocked.available(FIFO_SKU, WAREHOUSE) == Decimal("10")


def test_a_key_used_for_a_receipt_cannot_be_used_for_a_dispatch(stocked: Api) -> None:
    stocked.post("/receipts", RECEIPT, idempotency_key="k")
    head = stocked.head()

    response = stocked.post("/dispatches", COMMANDS[1][1], idempotency_key="k")

    assert_problem(response, 409, "idempotency_conflict")
    assert stocked.head() == head


def test_keys_belong_to_the_caller(stocked: Api) -> None:
    mine = stocked.post("/receipts", RECEIPT, idempotency_key="k")

    theirs = stocked.post("/receipts", RECEIPT, idempotency_key="k", key=ADMIN)

    assert theirs.status_code == 201
    assert "idempotent-replayed" not in theirs.headers
    assert theirs.json()["document_id"] != mine.json()["document_id"]


def test_a_refused_command_does_not_use_up_its_key(stocked: Api) -> None:
    dispatch = {"location": WAREHOUSE, "lines": [{"sku": FIFO_SKU, "quantity": "5"}]}
    assert_problem(stocked.post("/dispatches", dispatch, idempotency_key="so-1"), 409,
                   "insufficient_stock")
    stocked.receive(WAREHOUSE, (FIFO_SKU, "5", "1"))

    response = stocked.post("/dispatches", dispatch, idempotency_key="so-1")

    assert response.status_code == 201, response.text
    assert "idempotent-replayed" not in response.headers


@pytest.mark.parametrize("key", ["k" * 300, "k" * 201, "two words", "tab\there", ""],
                         ids=["300-chars", "201-chars", "space", "tab", "empty"])
def test_a_malformed_key_is_refused(stocked: Api, key: str) -> None:
    head = stocked.head()

    problem = assert_problem(stocked.post("/receipts", RECEIPT, idempotency_key=key), 422,
                             "validation_error")

    assert problem["field"] == "Idempotency-Key"
    assert stocked.head() == head


def test_a_key_of_200_visible_characters_is_accepted(stocked: Api) -> None:
    key = ("!~" + "x" * 198)[:200]

    first = stocked.post("/receipts", RECEIPT, idempotency_key=key)
    again = stocked.post("/receipts", RECEIPT, idempotency_key=key)

    assert first.status_code == 201, first.text
    assert_replayed(first, again)


def test_a_key_is_remembered_across_a_restart(sqlite_url: str) -> None:
    with serving(sqlite_url) as before:
        seed(before)
        original = before.post("/receipts", RECEIPT, idempotency_key="po-77")
        head = before.head()

    with serving(sqlite_url) as after:
        repeated = after.post("/receipts", RECEIPT, idempotency_key="po-77")

        assert_replayed(original, repeated)
        assert after.head() == head


def race(api: Api, path: str, body: dict[str, Any], key: str) -> list[httpx.Response]:
    """Send the same request from two threads released together by a barrier."""
    barrier = threading.Barrier(2, timeout=BARRIER_TIMEOUT_S)

    def send() -> httpx.Response:
        barrier.wait()
        return api.post(path, body, idempotency_key=key)

    with ThreadPoolExecutor(max_workers=2) as pool:
        futures = [pool.submit(send) for _ in range(2)]
        return [future.result(timeout=BARRIER_TIMEOUT_S * 6) for future in futures]


def test_two_racing_requests_with_one_key_record_one_command(database_url: str) -> None:
    body = {"location": WAREHOUSE,
            "lines": [{"sku": AVERAGE_SKU, "quantity": "2", "unit_cost": "3"}]}
    with serving(database_url) as api:
        seed(api)
        api.receive(WAREHOUSE, (AVERAGE_SKU, "1", "3"))  # so each receipt is exactly 2 events
        for round_number in range(RACE_ROUNDS):
            head = api.head()

            responses = race(api, "/receipts", body, key=f"race-{round_number}")

            assert [response.status_code for response in responses] == [201, 201], [
                response.text for response in responses]
            first, second = (response.json() for response in responses)
            assert first == second
            replayed = [response.headers.get("idempotent-replayed") for response in responses]
            assert sorted(map(str, replayed)) == ["None", "true"], replayed
            # One Received and one CommandRecord.Recorded: the head advanced once, to the
            # answer. (PostgreSQL may leave gaps in positions after a refused insert.)
            assert api.head() == first["position"]
            if database_url.startswith("sqlite"):
                assert first["position"] == head + 2
        assert api.available(AVERAGE_SKU, WAREHOUSE) == 1 + 2 * RACE_ROUNDS
