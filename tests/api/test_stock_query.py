"""GET /stock: current stock per bin, and stock as of an effective moment (as_of)."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from datetime import timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest
from api_support import AVERAGE_SKU, FIFO_SKU, STORE, WAREHOUSE, Body, assert_problem, bearer, seed
from read_support import AUDITOR, ONE_MICROSECOND, OPERATIONS, ReadApi, at, iso, serving_reads


@pytest.fixture
def ledger_api(sqlite_url: str) -> Iterator[ReadApi]:
    with serving_reads(sqlite_url) as api:
        yield api


@pytest.fixture
def history(ledger_api: ReadApi) -> dict[str, Body]:
    """FIFO stock in the warehouse received twice, dispatched, then partly moved to the store;
    average-cost stock received twice in the store. Every movement at a known past moment."""
    seed(ledger_api)
    return {
        "first_receipt": ledger_api.receive(WAREHOUSE, (FIFO_SKU, "10", "4.20"),
                                            effective_at=iso(at(10))),
        "store_receipt": ledger_api.receive(STORE, (AVERAGE_SKU, "10", "2"),
                                            effective_at=iso(at(1, month=2))),
        "second_receipt": ledger_api.receive(WAREHOUSE, (FIFO_SKU, "5", "5.00"),
                                             effective_at=iso(at(10, month=2))),
        "second_store_receipt": ledger_api.receive(STORE, (AVERAGE_SKU, "10", "3"),
                                                   effective_at=iso(at(15, month=2))),
        "dispatch": ledger_api.dispatch(WAREHOUSE, (FIFO_SKU, "12"),
                                        effective_at=iso(at(10, month=3))),
        "transfer": ledger_api.transfer(WAREHOUSE, STORE, (FIFO_SKU, "1"),
                                        effective_at=iso(at(20, month=3))),
    }


def level(sku: str, location: str, on_hand: str, unit_cost: str, value: str) -> Body:
    """A current bin as GET /stock shows it (nothing is reserved or in transit yet)."""
    return {"sku": sku, "location": location, "quantity_on_hand": on_hand,
            "quantity_reserved": "0.000", "quantity_available": on_hand,
            "quantity_in_transit": "0.000", "unit_cost": unit_cost, "value": value,
            "as_of_position": None}


def snapshot(sku: str, location: str, on_hand: str, unit_cost: str, value: str,
             position: int) -> Body:
    """A bin as of a moment: the stock card's running balance, and the card row it came from."""
    return {"sku": sku, "location": location, "quantity_on_hand": on_hand,
            "quantity_reserved": None, "quantity_available": None, "quantity_in_transit": None,
            "unit_cost": unit_cost, "value": value, "as_of_position": position}


def latest(history: dict[str, Body]) -> int:
    positions: list[int] = [result["position"] for result in history.values()]
    return max(positions)


def test_stock_lists_every_bin_with_its_balances_in_sku_then_location_order(
        ledger_api: ReadApi, history: dict[str, Body]) -> None:
    page = ledger_api.stock(min_position=latest(history))

    assert page["items"] == [
        level(FIFO_SKU, STORE, "1.000", "5.000000", "5.00"),
        level(FIFO_SKU, WAREHOUSE, "2.000", "5.000000", "10.00"),
        level(AVERAGE_SKU, STORE, "20.000", "2.500000", "50.00"),
    ]
    assert page["position"] >= latest(history)
    assert page["next_cursor"] is None


def test_unit_cost_is_value_divided_by_quantity_on_hand(ledger_api: ReadApi) -> None:
    seed(ledger_api)
    ledger_api.receive(WAREHOUSE, (FIFO_SKU, "10", "4.20"))
    result = ledger_api.receive(WAREHOUSE, (FIFO_SKU, "5", "5.00"))

    [bin_] = ledger_api.stock(sku=FIFO_SKU, min_position=result["position"])["items"]

    assert bin_["value"] == "67.00" and bin_["quantity_on_hand"] == "15.000"
    assert bin_["unit_cost"] == "4.466667"
    assert Decimal(bin_["unit_cost"]) == (Decimal("67") / 15).quantize(Decimal("0.000001"))


def test_an_emptied_bin_stays_listed_at_zero_with_its_last_unit_cost(ledger_api: ReadApi) -> None:
    seed(ledger_api)
    ledger_api.receive(WAREHOUSE, (FIFO_SKU, "10", "4.20"))
    result = ledger_api.dispatch(WAREHOUSE, (FIFO_SKU, "10"))

    page = ledger_api.stock(min_position=result["position"])

    assert page["items"] == [level(FIFO_SKU, WAREHOUSE, "0.000", "4.200000", "0.00")]


@pytest.mark.parametrize(("filters", "expected"), [
    ({"sku": FIFO_SKU}, [(FIFO_SKU, STORE), (FIFO_SKU, WAREHOUSE)]),
    ({"location": STORE}, [(FIFO_SKU, STORE), (AVERAGE_SKU, STORE)]),
    ({"sku": AVERAGE_SKU, "location": STORE}, [(AVERAGE_SKU, STORE)]),
    ({"sku": AVERAGE_SKU, "location": WAREHOUSE}, []),
    ({"sku": "NEVER-REGISTERED"}, []),
])
def test_stock_filters_by_sku_and_location(ledger_api: ReadApi, history: dict[str, Body],
                                           filters: dict[str, str],
                                           expected: list[tuple[str, str]]) -> None:
    page = ledger_api.stock(min_position=latest(history), **filters)

    assert [(row["sku"], row["location"]) for row in page["items"]] == expected


def test_as_of_answers_from_the_stock_card_at_and_between_movements(
        ledger_api: ReadApi, history: dict[str, Body]) -> None:
    first, second = history["first_receipt"]["position"], history["second_receipt"]["position"]
    dispatched = history["dispatch"]["position"]

    def warehouse_as_of(moment: Any) -> list[Body]:
        page = ledger_api.stock(as_of=iso(moment), sku=FIFO_SKU, location=WAREHOUSE,
                                min_position=latest(history))
        items: list[Body] = page["items"]
        return items

    assert warehouse_as_of(at(10) - ONE_MICROSECOND) == []
    assert warehouse_as_of(at(10)) == [
        snapshot(FIFO_SKU, WAREHOUSE, "10.000", "4.200000", "42.00", first)]
    assert warehouse_as_of(at(1, month=2)) == [
        snapshot(FIFO_SKU, WAREHOUSE, "10.000", "4.200000", "42.00", first)]
    assert warehouse_as_of(at(10, month=2) - ONE_MICROSECOND) == [
        snapshot(FIFO_SKU, WAREHOUSE, "10.000", "4.200000", "42.00", first)]
    assert warehouse_as_of(at(10, month=2)) == [
        snapshot(FIFO_SKU, WAREHOUSE, "15.000", "4.466667", "67.00", second)]
    assert warehouse_as_of(at(10, month=3)) == [
        snapshot(FIFO_SKU, WAREHOUSE, "3.000", "5.000000", "15.00", dispatched)]


def test_as_of_leaves_out_bins_with_no_movement_by_then(
        ledger_api: ReadApi, history: dict[str, Body]) -> None:
    def bins_as_of(moment: Any) -> list[tuple[str, str, str]]:
        page = ledger_api.stock(as_of=iso(moment), min_position=latest(history))
        return [(row["sku"], row["location"], row["quantity_on_hand"]) for row in page["items"]]

    assert bins_as_of(at(1)) == []
    assert bins_as_of(at(20)) == [(FIFO_SKU, WAREHOUSE, "10.000")]
    assert bins_as_of(at(1, month=2)) == [(FIFO_SKU, WAREHOUSE, "10.000"),
                                          (AVERAGE_SKU, STORE, "10.000")]
    assert bins_as_of(at(20, month=3)) == [(FIFO_SKU, STORE, "1.000"),
                                           (FIFO_SKU, WAREHOUSE, "2.000"),
                                           (AVERAGE_SKU, STORE, "20.000")]


def test_as_of_after_the_last_movement_matches_current_stock(
        ledger_api: ReadApi, history: dict[str, Body]) -> None:
    current = ledger_api.stock(min_position=latest(history))["items"]

    then = ledger_api.stock(as_of=iso(at(1, month=12)), min_position=latest(history))["items"]

    keep = ("sku", "location", "quantity_on_hand", "unit_cost", "value")
    assert [{k: row[k] for k in keep} for row in then] == [
        {k: row[k] for k in keep} for row in current]
    assert all(row["as_of_position"] is not None for row in then)


def test_as_of_compares_instants_whatever_their_offset(
        ledger_api: ReadApi, history: dict[str, Body]) -> None:
    shanghai = timezone(timedelta(hours=8))
    on_the_receipt = at(10).astimezone(shanghai)  # 2025-01-10T17:00:00+08:00

    def on_hand_as_of(moment: Any) -> list[str]:
        page = ledger_api.stock(as_of=iso(moment), sku=FIFO_SKU, min_position=latest(history))
        return [row["quantity_on_hand"] for row in page["items"]]

    assert on_hand_as_of(on_the_receipt) == ["10.000"]
    assert on_hand_as_of(on_the_receipt - ONE_MICROSECOND) == []


def test_as_of_shows_an_emptied_bin_at_zero_with_its_last_cost(ledger_api: ReadApi) -> None:
    seed(ledger_api)
    ledger_api.receive(WAREHOUSE, (FIFO_SKU, "10", "4.20"), effective_at=iso(at(10)))
    result = ledger_api.dispatch(WAREHOUSE, (FIFO_SKU, "10"), effective_at=iso(at(11)))

    page = ledger_api.stock(as_of=iso(at(12)), min_position=result["position"])

    assert page["items"] == [
        snapshot(FIFO_SKU, WAREHOUSE, "0.000", "4.200000", "0.00", result["position"])]


def test_next_cursor_walks_every_bin_exactly_once(
        ledger_api: ReadApi, history: dict[str, Body]) -> None:
    everything = ledger_api.stock(min_position=latest(history))["items"]

    for limit in (1, 2):
        assert ledger_api.walk("/stock", limit, min_position=latest(history)) == everything


def test_next_cursor_walks_every_bin_as_of_a_moment_exactly_once(
        ledger_api: ReadApi, history: dict[str, Body]) -> None:
    # As of 1 February only the warehouse's FIFO bin and the store's average bin had moved;
    # the store's FIFO bin, first in order, had not. A page may hold only bins that are left out.
    moment = iso(at(1, month=2))
    everything = ledger_api.stock(as_of=moment, min_position=latest(history))["items"]
    assert len(everything) == 2

    for limit in (1, 2):
        walked = ledger_api.walk("/stock", limit, as_of=moment, min_position=latest(history))
        assert walked == everything, f"limit={limit}"


@pytest.mark.parametrize("params", [
    {"limit": 0}, {"limit": 201}, {"limit": "ten"},
    {"as_of": "2025-01-10T09:00:00"},  # no offset: not an instant
    {"as_of": "yesterday"},
    {"as_of": "2025-02-30T09:00:00Z"},
    {"min_position": -1},
    {"sku": ""},
    {"location": "L" * 65},
])
def test_bad_query_parameters_are_a_validation_problem(ledger_api: ReadApi,
                                                       params: dict[str, Any]) -> None:
    body = assert_problem(ledger_api.get("/stock", **params), 422, "validation_error")

    assert body["errors"][0]["loc"] == ["query", next(iter(params))]


def cursor_of(key: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(key).encode()).decode()


@pytest.mark.parametrize("cursor", [
    pytest.param("not a cursor", id="not-base64-json"),
    pytest.param("e30", id="unpadded-base64"),
    pytest.param(cursor_of({"sku": FIFO_SKU}), id="an-object"),
    pytest.param(cursor_of([FIFO_SKU]), id="one-part"),
    pytest.param(cursor_of([FIFO_SKU, 7]), id="number-location"),
    pytest.param(cursor_of(["2025-01-10T09:00:00.000000Z", 7]), id="a-stock-card-cursor"),
    pytest.param("A" * 401, id="too-long"),
])
def test_a_malformed_cursor_is_a_validation_problem(ledger_api: ReadApi, cursor: str) -> None:
    assert_problem(ledger_api.get("/stock", cursor=cursor), 422, "validation_error")


@pytest.mark.parametrize("as_of", [
    pytest.param("0001-01-01T00:00:00+14:00", id="before-year-1-in-utc"),
    pytest.param("0999-12-31T00:00:00Z", id="a-three-digit-year"),
])
def test_as_of_long_before_any_movement_shows_no_stock(
        ledger_api: ReadApi, history: dict[str, Body], as_of: str) -> None:
    response = ledger_api.get("/stock", as_of=as_of, min_position=latest(history))

    # Refusing such a moment would do; a server error, or today's stock, would not.
    if response.status_code != 422:
        assert response.status_code == 200, response.text
        assert response.json()["items"] == []


def test_as_of_far_in_the_future_shows_current_stock_or_is_refused(
        ledger_api: ReadApi, history: dict[str, Body]) -> None:
    response = ledger_api.get("/stock", as_of="9999-12-31T23:59:59-12:00",  # year 10000 in UTC
                              min_position=latest(history))

    if response.status_code != 422:
        assert response.status_code == 200, response.text
        assert len(response.json()["items"]) == 3


def test_a_nul_character_in_a_filter_or_cursor_is_answered_or_refused(database_url: str) -> None:
    with serving_reads(database_url) as api:
        result = seed(api).receive(WAREHOUSE, (FIFO_SKU, "1", "1"))
        client = api.without_raising()

        def outcome(**params: str) -> str:
            response = client.get("/stock", headers=bearer(OPERATIONS),
                                  params={"min_position": result["position"], **params})
            if response.status_code != 200:
                return str(response.status_code)
            return f"200 with {len(response.json()['items'])} items"

        outcomes = {"sku": outcome(sku="INK\x009"), "location": outcome(location="SZ\x00WH3"),
                    "cursor": outcome(cursor=cursor_of(["INK\x009", "A"]))}

    # No bin has such a code: an empty page or a refusal would do, a server error would not.
    assert outcomes["sku"] in ("200 with 0 items", "422"), outcomes
    assert outcomes["location"] in ("200 with 0 items", "422"), outcomes
    assert outcomes["cursor"].startswith(("200", "422")), outcomes


def test_stock_needs_a_key_and_every_role_may_read(
        ledger_api: ReadApi, history: dict[str, Body]) -> None:
    anonymous = ledger_api.client.get("/stock")
    assert_problem(anonymous, 401, "unauthorized")
    assert anonymous.headers["www-authenticate"] == "Bearer"
    assert_problem(ledger_api.get("/stock", key="wrong-key"), 401, "unauthorized")

    as_auditor = ledger_api.stock(key=AUDITOR, min_position=latest(history))

    assert len(as_auditor["items"]) == 3
