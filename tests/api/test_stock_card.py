"""GET /stock/{sku}/movements: the stock card (库存台账), movements with running balances."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from datetime import timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest
from api_support import (
    AVERAGE_SKU,
    FIFO_SKU,
    STORE,
    WAREHOUSE,
    Body,
    assert_problem,
    bearer,
    seed,
)
from read_support import (
    AUDITOR,
    OPERATIONS,
    OPERATIONS_ACTOR,
    ReadApi,
    at,
    card_instant,
    iso,
    serving_reads,
)

CARD = f"/stock/{FIFO_SKU}/movements"


@pytest.fixture
def ledger_api(sqlite_url: str) -> Iterator[ReadApi]:
    with serving_reads(sqlite_url) as api:
        yield api


def record_history(api: ReadApi) -> dict[str, Body]:
    """Every kind of movement of the FIFO item in two locations, each at a known moment.

    The store's receipt is recorded after the warehouse's first one but is effective earlier,
    so effective-time order differs from log order.
    """
    seed(api)
    return {
        "receipt": api.receive(WAREHOUSE, (FIFO_SKU, "10", "4.20"), effective_at=iso(at(10)),
                               reference="PO-1", note="first delivery"),
        "store_receipt": api.receive(STORE, (FIFO_SKU, "2", "4.00"), effective_at=iso(at(5)),
                                     reference="PO-2"),
        "second_receipt": api.receive(WAREHOUSE, (FIFO_SKU, "5", "5"),
                                      effective_at=iso(at(10, month=2))),
        "dispatch": api.dispatch(WAREHOUSE, (FIFO_SKU, "12"), effective_at=iso(at(10, month=3)),
                                 reason="sale", reference="SO-1"),
        "transfer": api.transfer(WAREHOUSE, STORE, (FIFO_SKU, "1"),
                                 effective_at=iso(at(20, month=3)), reference="TR-1"),
        "count": api.count(WAREHOUSE, {"sku": FIFO_SKU, "counted_quantity": "4"},
                           effective_at=iso(at(1, month=4))),
        "store_count": api.count(STORE, {"sku": FIFO_SKU, "counted_quantity": "1"},
                                 effective_at=iso(at(1, month=4))),
    }


@pytest.fixture
def history(ledger_api: ReadApi) -> dict[str, Body]:
    return record_history(ledger_api)


def latest(history: dict[str, Body]) -> int:
    positions: list[int] = [result["position"] for result in history.values()]
    return max(positions)


FLOWS = ("location", "kind", "quantity_in", "quantity_out", "unit_cost", "value_in", "value_out",
         "quantity_on_hand_after", "value_after", "unit_cost_after")
EXPECTED_CARD = [
    (STORE, "received", "2.000", "0.000", "4.000000", "8.00", "0.00", "2.000", "8.00", "4.000000"),
    (WAREHOUSE, "received", "10.000", "0.000", "4.200000", "42.00", "0.00", "10.000", "42.00",
     "4.200000"),
    (WAREHOUSE, "received", "5.000", "0.000", "5.000000", "25.00", "0.00", "15.000", "67.00",
     "4.466667"),
    # FIFO: 10 at 4.20 and 2 at 5.00 go out.
    (WAREHOUSE, "dispatched", "0.000", "12.000", "4.333333", "0.00", "52.00", "3.000", "15.00",
     "5.000000"),
    (WAREHOUSE, "transferred_out", "0.000", "1.000", "5.000000", "0.00", "5.00", "2.000", "10.00",
     "5.000000"),
    (STORE, "transferred_in", "1.000", "0.000", "5.000000", "5.00", "0.00", "3.000", "13.00",
     "4.333333"),
    (WAREHOUSE, "counted", "2.000", "0.000", "5.000000", "10.00", "0.00", "4.000", "20.00",
     "5.000000"),
    # Counting down takes the oldest layer first, as a dispatch would.
    (STORE, "counted", "0.000", "2.000", "4.000000", "0.00", "8.00", "1.000", "5.00", "5.000000"),
]


def flows(rows: list[Body]) -> list[tuple[str, ...]]:
    return [tuple(row[field] for field in FLOWS) for row in rows]


def test_the_stock_card_lists_every_movement_with_running_balances(
        ledger_api: ReadApi, history: dict[str, Body]) -> None:
    page = ledger_api.movements(FIFO_SKU, min_position=latest(history))

    assert flows(page["items"]) == EXPECTED_CARD
    assert page["position"] >= latest(history)
    assert page["next_cursor"] is None


def test_running_balances_follow_from_the_flows_in_each_location(
        ledger_api: ReadApi, history: dict[str, Body]) -> None:
    rows = ledger_api.movements(FIFO_SKU, min_position=latest(history))["items"]

    balances: dict[str, tuple[Decimal, Decimal]] = {}
    for row in rows:
        on_hand, value = balances.get(row["location"], (Decimal(0), Decimal(0)))
        on_hand += Decimal(row["quantity_in"]) - Decimal(row["quantity_out"])
        value += Decimal(row["value_in"]) - Decimal(row["value_out"])
        assert (Decimal(row["quantity_on_hand_after"]), Decimal(row["value_after"])) == (
            on_hand, value), row
        balances[row["location"]] = (on_hand, value)
    final = ledger_api.stock(sku=FIFO_SKU, min_position=latest(history))["items"]
    assert {row["location"]: (Decimal(row["quantity_on_hand"]), Decimal(row["value"]))
            for row in final} == balances


def test_each_movement_names_its_document_and_who_recorded_it_when(
        ledger_api: ReadApi, history: dict[str, Body]) -> None:
    rows = ledger_api.movements(FIFO_SKU, min_position=latest(history))["items"]
    receipt, dispatch = rows[1], rows[3]
    transferred_out, transferred_in = rows[4], rows[5]

    assert receipt["position"] == history["receipt"]["position"]
    assert receipt["sku"] == FIFO_SKU
    assert receipt["document_id"] == history["receipt"]["document_id"]
    assert receipt["line_number"] == 1
    assert (receipt["reference"], receipt["note"], receipt["reason"]) == (
        "PO-1", "first delivery", None)
    assert receipt["actor"] == OPERATIONS_ACTOR
    assert receipt["counterpart_location"] is None
    assert receipt["effective_at"] == card_instant(at(10))
    # Recorded now, in the same fixed-width UTC form, long after it took effect.
    assert len(receipt["recorded_at"]) == len(receipt["effective_at"])
    assert receipt["recorded_at"].endswith("Z")
    assert receipt["recorded_at"] > card_instant(at(1, month=12))
    assert (dispatch["reference"], dispatch["reason"]) == ("SO-1", "sale")
    assert dispatch["document_id"] == history["dispatch"]["document_id"]
    assert transferred_out["document_id"] == transferred_in["document_id"] == (
        history["transfer"]["document_id"])
    assert (transferred_out["counterpart_location"], transferred_in["counterpart_location"]) == (
        STORE, WAREHOUSE)
    assert rows[6]["reason"] == "cycle count"


def test_movements_are_ordered_by_effective_time_then_log_position(
        ledger_api: ReadApi, history: dict[str, Body]) -> None:
    rows = ledger_api.movements(FIFO_SKU, min_position=latest(history))["items"]

    # The store's receipt was recorded second but took effect first.
    assert rows[0]["position"] == history["store_receipt"]["position"]
    assert rows[0]["position"] > rows[1]["position"]
    keys = [(row["effective_at"], row["position"]) for row in rows]
    assert keys == sorted(keys)
    assert len({row["position"] for row in rows}) == len(rows)


def test_the_card_of_one_location(ledger_api: ReadApi, history: dict[str, Body]) -> None:
    page = ledger_api.movements(FIFO_SKU, location=STORE, min_position=latest(history))

    assert flows(page["items"]) == [row for row in EXPECTED_CARD if row[0] == STORE]


def test_from_is_inclusive_and_to_is_exclusive(
        ledger_api: ReadApi, history: dict[str, Body]) -> None:
    def kinds(start: Any = None, end: Any = None) -> list[tuple[str, str]]:
        page = ledger_api.movements(FIFO_SKU, start=start and iso(start),
                                    end=end and iso(end), min_position=latest(history))
        return [(row["location"], row["kind"]) for row in page["items"]]

    assert kinds(at(10, month=2), at(20, month=3)) == [(WAREHOUSE, "received"),
                                                       (WAREHOUSE, "dispatched")]
    assert kinds(at(20, month=3), at(1, month=4)) == [(WAREHOUSE, "transferred_out"),
                                                      (STORE, "transferred_in")]
    assert kinds(start=at(1, month=4)) == [(WAREHOUSE, "counted"), (STORE, "counted")]
    assert kinds(end=at(10)) == [(STORE, "received")]
    assert kinds(at(10), at(10)) == []
    assert kinds(at(11), at(9, month=2)) == []


def test_from_and_to_compare_instants_whatever_their_offset(
        ledger_api: ReadApi, history: dict[str, Body]) -> None:
    new_york = timezone(timedelta(hours=-5))
    page = ledger_api.movements(FIFO_SKU, start=iso(at(10).astimezone(new_york)),
                                end=iso(at(10, month=2).astimezone(new_york)),
                                min_position=latest(history))

    assert [row["position"] for row in page["items"]] == [history["receipt"]["position"]]


def test_a_to_earlier_than_from_is_a_validation_problem(ledger_api: ReadApi) -> None:
    seed(ledger_api)

    response = ledger_api.get(CARD, **{"from": iso(at(10)), "to": iso(at(9))})

    body = assert_problem(response, 422, "validation_error")
    assert body["field"] == "to"


def test_an_unknown_sku_has_no_stock_card(ledger_api: ReadApi) -> None:
    seed(ledger_api)

    body = assert_problem(ledger_api.get("/stock/NEVER-REGISTERED/movements"), 404,
                          "unknown_item")

    assert body["sku"] == "NEVER-REGISTERED"


def test_a_registered_sku_without_movements_has_an_empty_card(
        ledger_api: ReadApi, history: dict[str, Body]) -> None:
    page = ledger_api.movements(AVERAGE_SKU, min_position=latest(history))

    assert page["items"] == []
    assert page["next_cursor"] is None


@pytest.mark.parametrize("params", [
    {}, {"location": WAREHOUSE},
    {"from": iso(at(10)), "to": iso(at(1, month=4))},
])
def test_next_cursor_walks_every_movement_exactly_once(
        ledger_api: ReadApi, history: dict[str, Body], params: dict[str, str]) -> None:
    everything = ledger_api.query(CARD, min_position=latest(history), **params)["items"]
    assert everything

    for limit in (1, 2, 3):
        walked = ledger_api.walk(CARD, limit, min_position=latest(history), **params)
        assert walked == everything, f"limit={limit}"


def cursor_of(key: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(key).encode()).decode()


@pytest.mark.parametrize("cursor", [
    pytest.param("not a cursor", id="not-base64-json"),
    pytest.param(cursor_of(["2025-01-10T09:00:00.000000Z"]), id="one-part"),
    pytest.param(cursor_of(["2025-01-10T09:00:00.000000Z", "7"]), id="text-position"),
    pytest.param(cursor_of(["2025-01-10T09:00:00.000000Z", True]), id="boolean-position"),
    pytest.param(cursor_of([FIFO_SKU, WAREHOUSE]), id="a-stock-cursor"),
    pytest.param(cursor_of(["2025-01-10T09:00:00.000000Z", 2**64]), id="position-beyond-int64"),
    pytest.param("A" * 401, id="too-long"),
])
def test_a_malformed_cursor_is_a_validation_problem(
        ledger_api: ReadApi, history: dict[str, Body], cursor: str) -> None:
    response = ledger_api.without_raising().get(CARD, headers=bearer(OPERATIONS),
                                                params={"cursor": cursor})

    assert_problem(response, 422, "validation_error")


@pytest.mark.parametrize("params", [
    {"limit": 0}, {"limit": 201},
    {"from": "2025-01-10T09:00:00"},  # no offset: not an instant
    {"to": "next week"},
    {"min_position": -1},
    {"location": ""},
])
def test_bad_query_parameters_are_a_validation_problem(
        ledger_api: ReadApi, history: dict[str, Body], params: dict[str, Any]) -> None:
    body = assert_problem(ledger_api.get(CARD, **params), 422, "validation_error")

    assert body["errors"][0]["loc"] == ["query", next(iter(params))]


@pytest.mark.parametrize("params", [
    pytest.param({"from": "0001-01-01T00:00:00+14:00"}, id="from-before-year-1-in-utc"),
    pytest.param({"from": "0999-12-31T00:00:00Z"}, id="from-a-three-digit-year"),
    pytest.param({"to": "9999-12-31T23:59:59-12:00"}, id="to-year-10000-in-utc"),
])
def test_a_range_reaching_the_edges_of_the_calendar_covers_everything_or_is_refused(
        ledger_api: ReadApi, history: dict[str, Body], params: dict[str, str]) -> None:
    response = ledger_api.without_raising().get(
        CARD, headers=bearer(OPERATIONS), params={"min_position": latest(history), **params})

    if response.status_code != 422:
        assert response.status_code == 200, response.text
        assert flows(response.json()["items"]) == EXPECTED_CARD


def test_a_nul_character_in_a_filter_or_cursor_is_answered_or_refused(database_url: str) -> None:
    with serving_reads(database_url) as api:
        result = seed(api).receive(WAREHOUSE, (FIFO_SKU, "1", "1"), effective_at=iso(at(10)))
        client = api.without_raising()

        def outcome(**params: str) -> str:
            response = client.get(CARD, headers=bearer(OPERATIONS),
                                  params={"min_position": result["position"], **params})
            if response.status_code != 200:
                return str(response.status_code)
            return f"200 with {len(response.json()['items'])} items"

        outcomes = {
            "location": outcome(location="SZ\x00WH3"),
            "cursor": outcome(cursor=cursor_of(["2025-01-10T09:00:00.000000Z\x00", 1])),
        }

    assert outcomes["location"] in ("200 with 0 items", "422"), outcomes
    assert outcomes["cursor"].startswith(("200", "422")), outcomes


def test_the_stock_card_needs_a_key_and_every_role_may_read(
        ledger_api: ReadApi, history: dict[str, Body]) -> None:
    assert_problem(ledger_api.client.get(CARD), 401, "unauthorized")
    assert_problem(ledger_api.get(CARD, key="wrong-key"), 401, "unauthorized")

    as_auditor = ledger_api.movements(FIFO_SKU, key=AUDITOR, min_position=latest(history))

    assert flows(as_auditor["items"]) == EXPECTED_CARD
