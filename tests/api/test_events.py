"""GET /events, /events/{position} and /audit/digest: the event log as an auditor reads it.

The stream is the store's log in order, every event with its data as JSON (decimals as
strings) and its hash-chain link; the links are checked against a chain recomputed here from
the raw store. Auditors and finance read all of it and change none of it.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Any
from uuid import UUID

import pytest
from api_support import (
    ADMIN,
    AUDITOR,
    AVERAGE_SKU,
    FIFO_SKU,
    FINANCE,
    OPERATIONS,
    STORE,
    WAREHOUSE,
    Body,
    assert_problem,
    bearer,
)
from audit_support import (
    WRITE_IDS,
    WRITES,
    ledger_of,
    recomputed_chain,
    record_history,
    send,
    serving_audit,
)
from read_support import OPERATIONS_ACTOR, ReadApi, at, card_instant

from ledger.domain.identity import bin_id, event_id, item_id, location_id

FIELDS = {"position", "event_id", "aggregate_id", "aggregate_version", "type", "recorded_at",
          "effective_at", "actor", "link", "data"}
ADMIN_ACTOR_PREFIX = "admin-"
# Routes about one resource whose resource `record_history` creates (see `fill_path`).
IN_HISTORY = {"/items/{sku}", "/locations/{code}", "/events/{position}", "/stock/{sku}/movements"}


@pytest.fixture
def ledger_api(sqlite_url: str) -> Iterator[ReadApi]:
    with serving_audit(sqlite_url) as api:
        yield api


@pytest.fixture
def history(ledger_api: ReadApi) -> dict[str, Body]:
    return record_history(ledger_api)


def all_events(api: ReadApi, head: int, **params: Any) -> list[Body]:
    """Every event matching `params`, in one page (the history is well under 200 events)."""
    page = api.query("/events", limit=200, min_position=head, **params)
    assert page["next_cursor"] is None, page
    items: list[Body] = page["items"]
    return items


def instant(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def floats_in(value: Any) -> list[Any]:
    """Every float anywhere in a decoded JSON value (there should be none)."""
    if isinstance(value, float):
        return [value]
    if isinstance(value, dict):
        return [found for item in value.values() for found in floats_in(item)]
    if isinstance(value, list):
        return [found for item in value for found in floats_in(item)]
    return []


# The stream.


def test_the_stream_is_every_stored_event_in_log_order(ledger_api: ReadApi,
                                                       history: dict[str, Body]) -> None:
    head = history["head"]["position"]

    events = all_events(ledger_api, head)

    stored = ledger_of(ledger_api).recorder.select_notifications(start=1, limit=1000)
    assert [event["position"] for event in events] == [n.id for n in stored]
    assert [event["position"] for event in events] == list(range(1, head + 1))
    for event, notification in zip(events, stored, strict=True):
        assert set(event) == FIELDS, event
        assert event["aggregate_id"] == str(notification.originator_id)
        assert event["aggregate_version"] == notification.originator_version
        assert event["type"] == notification.topic
        assert event["event_id"] == str(event_id(UUID(str(notification.originator_id)),
                                                 notification.originator_version))
    assert len({event["event_id"] for event in events}) == head


def test_each_aggregate_appears_with_consecutive_versions(ledger_api: ReadApi,
                                                          history: dict[str, Body]) -> None:
    events = all_events(ledger_api, history["head"]["position"])

    versions: dict[str, list[int]] = {}
    for event in events:
        versions.setdefault(event["aggregate_id"], []).append(event["aggregate_version"])

    assert all(found == list(range(1, len(found) + 1)) for found in versions.values()), versions
    assert {str(item_id(FIFO_SKU)), str(location_id(STORE)),
            str(bin_id(FIFO_SKU, WAREHOUSE)), str(bin_id(AVERAGE_SKU, STORE))} <= set(versions)


def test_the_types_are_the_topics_of_what_happened(ledger_api: ReadApi,
                                                   history: dict[str, Body]) -> None:
    events = all_events(ledger_api, history["head"]["position"])

    assert [event["type"] for event in events] == [
        "ledger:Item.Registered", "ledger:Item.Registered",
        "ledger:Location.Registered", "ledger:Location.Registered",
        # The receipt opens both bins and receives into them.
        "ledger:StockBin.Opened", "ledger:StockBin.Received",
        "ledger:StockBin.Opened", "ledger:StockBin.Received",
        "ledger:StockBin.Dispatched",
        # The transfer takes from the warehouse and opens the store's bin.
        "ledger:StockBin.TransferredOut", "ledger:StockBin.Opened",
        "ledger:StockBin.TransferredIn",
        "ledger:StockBin.Counted",
        "ledger:Location.Renamed",
    ]


def test_a_receipt_event_carries_what_the_receipt_recorded(ledger_api: ReadApi,
                                                           history: dict[str, Body]) -> None:
    receipt = history["receipt"]
    [line, _] = receipt["lines"]

    [event] = all_events(ledger_api, receipt["position"], type="StockBin.Received",
                         aggregate_id=str(bin_id(FIFO_SKU, WAREHOUSE)))

    data = event["data"]
    assert (data["sku"], data["location"]) == (FIFO_SKU, WAREHOUSE)
    assert (data["quantity"], data["unit_cost"], data["value"]) == (
        line["quantity"], line["unit_cost"], line["value"]) == ("10.000", "4.200000", "42.00")
    assert (data["quantity_on_hand_after"], data["value_after"]) == (
        line["quantity_on_hand_after"], line["value_after"])
    assert data["document_id"] == receipt["document_id"]
    assert (data["reference"], data["line_number"]) == ("PO-1", 1)
    assert data["added"] == [{"quantity": "10.000", "unit_cost": "4.200000", "value": "42.00"}]
    assert event["effective_at"] == card_instant(at(2))
    assert event["actor"] == data["actor"] == OPERATIONS_ACTOR


def test_data_holds_decimals_as_strings_never_floats(ledger_api: ReadApi,
                                                     history: dict[str, Body]) -> None:
    events = all_events(ledger_api, history["head"]["position"])

    assert floats_in([event["data"] for event in events]) == []
    [counted] = [event for event in events if event["type"] == "ledger:StockBin.Counted"]
    data = counted["data"]
    assert (data["quantity_counted"], data["quantity_difference"]) == ("6.000", "-1.000")
    assert Decimal(data["value_difference"]) == Decimal("-4.20")
    [moved_out] = [event for event in events if event["type"] == "ledger:StockBin.TransferredOut"]
    assert (moved_out["data"]["quantity"], moved_out["data"]["to_location"]) == ("5.000", STORE)


def test_reference_data_events_carry_their_fields_and_actor(ledger_api: ReadApi,
                                                            history: dict[str, Body]) -> None:
    events = all_events(ledger_api, history["head"]["position"])

    registered = events[0]
    assert registered["data"] == {"sku": FIFO_SKU, "name": f"Item {FIFO_SKU}", "uom": "ea",
                                  "valuation_method": "fifo", "reorder_point": None,
                                  "actor": OPERATIONS_ACTOR}
    assert registered["effective_at"] is None
    renamed = events[-1]
    assert renamed["data"]["name"] == "Shanghai warehouse 1b"
    assert renamed["actor"].startswith(ADMIN_ACTOR_PREFIX)
    # Opening a bin is no one's act: it has no actor.
    assert {event["actor"] for event in events if event["type"].endswith(".Opened")} == {None}


def test_recorded_at_is_a_utc_instant(ledger_api: ReadApi, history: dict[str, Body]) -> None:
    events = all_events(ledger_api, history["head"]["position"])

    for event in events:
        assert event["recorded_at"].endswith("Z"), event
        assert instant(event["recorded_at"]).utcoffset() is not None


# Paging.


@pytest.mark.parametrize("limit", [1, 2, 3, 5, 13, 14, 200])
def test_the_cursor_walks_every_event_exactly_once_in_order(ledger_api: ReadApi,
                                                            history: dict[str, Body],
                                                            limit: int) -> None:
    head = history["head"]["position"]

    walked = ledger_api.walk("/events", limit=limit, min_position=head)

    assert [event["position"] for event in walked] == list(range(1, head + 1))
    assert walked == all_events(ledger_api, head)


def test_a_full_last_page_has_no_next_cursor_pointing_past_the_end(
        ledger_api: ReadApi, history: dict[str, Body]) -> None:
    head = history["head"]["position"]

    page = ledger_api.query("/events", limit=head, min_position=head)

    assert len(page["items"]) == head
    assert page["next_cursor"] is None
    assert page["position"] == head


def test_the_cursor_walks_a_filtered_stream(ledger_api: ReadApi,
                                            history: dict[str, Body]) -> None:
    head = history["head"]["position"]

    walked = ledger_api.walk("/events", limit=1, type="StockBin.Opened", min_position=head)

    assert [event["type"] for event in walked] == ["ledger:StockBin.Opened"] * 3
    assert walked == all_events(ledger_api, head, type="StockBin.Opened")


def test_after_starts_past_a_position(ledger_api: ReadApi, history: dict[str, Body]) -> None:
    head = history["head"]["position"]

    events = all_events(ledger_api, head, after=5)

    assert [event["position"] for event in events] == list(range(6, head + 1))
    assert all_events(ledger_api, head, after=head) == []


def test_a_page_ends_where_its_read_model_stood(ledger_api: ReadApi,
                                                history: dict[str, Body]) -> None:
    head = history["head"]["position"]

    page = ledger_api.query("/events", limit=2, min_position=head)

    assert page["position"] == head
    assert [event["position"] for event in page["items"]] == [1, 2]
    assert page["next_cursor"] is not None


# Filters.


@pytest.mark.parametrize("written", ["StockBin.Received", "ledger:StockBin.Received"])
def test_type_filters_with_or_without_the_prefix(ledger_api: ReadApi, history: dict[str, Body],
                                                 written: str) -> None:
    head = history["head"]["position"]

    events = all_events(ledger_api, head, type=written)

    assert [event["type"] for event in events] == ["ledger:StockBin.Received"] * 2
    assert events == [event for event in all_events(ledger_api, head)
                      if event["type"] == "ledger:StockBin.Received"]


def test_an_unknown_type_matches_nothing(ledger_api: ReadApi, history: dict[str, Body]) -> None:
    assert all_events(ledger_api, history["head"]["position"], type="StockBin.Stolen") == []


def test_aggregate_id_gives_one_aggregate_history(ledger_api: ReadApi,
                                                  history: dict[str, Body]) -> None:
    head = history["head"]["position"]
    warehouse_bin = str(bin_id(FIFO_SKU, WAREHOUSE))

    events = all_events(ledger_api, head, aggregate_id=warehouse_bin)

    assert [event["type"] for event in events] == [
        "ledger:StockBin.Opened", "ledger:StockBin.Received", "ledger:StockBin.Dispatched",
        "ledger:StockBin.Counted"]
    assert [event["aggregate_version"] for event in events] == [1, 2, 3, 4]
    assert {event["aggregate_id"] for event in events} == {warehouse_bin}
    assert all_events(ledger_api, head, aggregate_id=str(UUID(int=1))) == []


def test_from_and_to_split_the_stream_by_record_time(ledger_api: ReadApi,
                                                     history: dict[str, Body]) -> None:
    head = history["head"]["position"]
    events = all_events(ledger_api, head)
    pivot = events[history["dispatch"]["position"] - 1]["recorded_at"]

    since = all_events(ledger_api, head, **{"from": pivot})
    before = all_events(ledger_api, head, to=pivot)

    assert since == [e for e in events if instant(e["recorded_at"]) >= instant(pivot)]
    assert before == [e for e in events if instant(e["recorded_at"]) < instant(pivot)]
    assert since and before
    assert sorted(before + since, key=lambda event: event["position"]) == events


def test_from_and_to_take_any_offset(ledger_api: ReadApi, history: dict[str, Body]) -> None:
    head = history["head"]["position"]
    events = all_events(ledger_api, head)
    pivot = instant(events[history["dispatch"]["position"] - 1]["recorded_at"])
    east = pivot.astimezone(timezone(timedelta(hours=8)))

    assert all_events(ledger_api, head, **{"from": east.isoformat()}) == all_events(
        ledger_api, head, **{"from": pivot.isoformat()})


def test_filters_combine(ledger_api: ReadApi, history: dict[str, Body]) -> None:
    head = history["head"]["position"]
    events = all_events(ledger_api, head)
    warehouse_bin = str(bin_id(FIFO_SKU, WAREHOUSE))
    pivot = events[history["dispatch"]["position"] - 1]["recorded_at"]

    found = all_events(ledger_api, head, type="StockBin.Counted", aggregate_id=warehouse_bin,
                       **{"from": pivot}, after=1)
    none_before = all_events(ledger_api, head, type="StockBin.Counted",
                             aggregate_id=warehouse_bin, to=pivot)

    assert [event["position"] for event in found] == [history["count"]["position"]]
    assert none_before == []
    assert all_events(ledger_api, head, type="StockBin.Received", aggregate_id=warehouse_bin,
                      after=history["receipt"]["position"]) == []


@pytest.mark.parametrize("params", [
    {"limit": 0}, {"limit": 201}, {"limit": -1}, {"limit": "ten"},
    {"after": -1}, {"min_position": -1},
    {"type": "StockBin Received"}, {"type": "x" * 201}, {"type": ""},
    {"aggregate_id": "not-a-uuid"},
    {"from": "2025-01-01T00:00:00"}, {"to": "yesterday"},
    {"cursor": "not a cursor"},
    {"cursor": base64.urlsafe_b64encode(json.dumps(["x"]).encode()).decode()},
    {"cursor": base64.urlsafe_b64encode(json.dumps([-1]).encode()).decode()},
], ids=lambda params: json.dumps(params)[:40])
def test_a_malformed_query_is_a_validation_error(ledger_api: ReadApi,
                                                 history: dict[str, Body],
                                                 params: dict[str, Any]) -> None:
    response = ledger_api.get("/events", **params)

    assert_problem(response, 422, "validation_error")


# One event.


def test_one_event_by_position_is_the_same_as_in_the_stream(ledger_api: ReadApi,
                                                            history: dict[str, Body]) -> None:
    head = history["head"]["position"]

    for event in all_events(ledger_api, head):
        assert ledger_api.query(f"/events/{event['position']}") == event


@pytest.mark.parametrize("beyond", [1, 1000, 2**62 - 100])
def test_a_position_beyond_the_head_is_an_unknown_event(ledger_api: ReadApi,
                                                        history: dict[str, Body],
                                                        beyond: int) -> None:
    position = history["head"]["position"] + beyond

    problem = assert_problem(ledger_api.get(f"/events/{position}"), 404, "unknown_event")

    assert problem["position"] == position


@pytest.mark.parametrize("position", ["0", "-1", "one", str(2**62 + 1)])
def test_a_position_that_cannot_exist_is_a_validation_error(ledger_api: ReadApi,
                                                            position: str) -> None:
    assert_problem(ledger_api.get(f"/events/{position}"), 422, "validation_error")


# The hash chain.


def test_every_link_is_the_chain_recomputed_from_the_raw_store(ledger_api: ReadApi,
                                                               history: dict[str, Body]) -> None:
    head = history["head"]["position"]

    events = all_events(ledger_api, head)

    assert [(event["position"], event["link"]) for event in events] == recomputed_chain(
        ledger_of(ledger_api))


def test_the_digest_is_the_head_of_the_chain(ledger_api: ReadApi,
                                             history: dict[str, Body]) -> None:
    head = history["head"]["position"]

    digest = ledger_api.query("/audit/digest", min_position=head)

    [*_, (last_position, last_link)] = recomputed_chain(ledger_of(ledger_api))
    assert digest == {"position": head, "hash": last_link, "algorithm": "sha256-chain-v1"}
    assert last_position == head
    assert digest["hash"] == all_events(ledger_api, head)[-1]["link"]


def test_the_digest_at_a_position_is_the_link_there(ledger_api: ReadApi,
                                                    history: dict[str, Body]) -> None:
    head = history["head"]["position"]

    for position, link in recomputed_chain(ledger_of(ledger_api)):
        digest = ledger_api.query("/audit/digest", position=position, min_position=head)
        assert (digest["position"], digest["hash"]) == (position, link)


def test_a_kept_digest_stays_valid_as_the_log_grows(ledger_api: ReadApi,
                                                    history: dict[str, Body]) -> None:
    head = history["head"]["position"]
    kept = ledger_api.query("/audit/digest", min_position=head)

    later = ledger_api.receive(STORE, (AVERAGE_SKU, "1", "1.5"))

    grown = ledger_api.query("/audit/digest", min_position=later["position"])
    assert grown["position"] == later["position"] > head
    assert grown["hash"] != kept["hash"]
    assert ledger_api.query("/audit/digest", position=head)["hash"] == kept["hash"]
    assert recomputed_chain(ledger_of(ledger_api))[-1] == (grown["position"], grown["hash"])


def test_an_empty_log_has_the_genesis_digest_and_no_events(ledger_api: ReadApi) -> None:
    assert ledger_api.query("/audit/digest") == {"position": 0, "hash": "0" * 64,
                                                 "algorithm": "sha256-chain-v1"}
    assert ledger_api.query("/events") == {"items": [], "position": 0, "next_cursor": None}
    assert_problem(ledger_api.get("/events/1"), 404, "unknown_event")


# Who may read and write.


@pytest.mark.parametrize("key", [AUDITOR, FINANCE, ADMIN])
def test_every_role_reads_the_same_log(ledger_api: ReadApi, history: dict[str, Body],
                                       key: str) -> None:
    head = history["head"]["position"]
    reads = [("/events", {"limit": 200, "min_position": head}), ("/events/3", {}),
             ("/audit/digest", {"min_position": head}), ("/audit/digest", {"position": 2})]

    for path, params in reads:
        assert ledger_api.query(path, key=key, **params) == ledger_api.query(
            path, key=OPERATIONS, **params), path


def fill_path(path: str) -> str:
    """`path` with its parameters filled: the seeded SKU and location, position 1, a new id."""
    path = path.replace("{sku}", FIFO_SKU).replace("{code}", WAREHOUSE)
    path = path.replace("{position}", "1")
    return re.sub(r"\{[a-z_]+\}", str(UUID(int=7)), path)


@pytest.mark.parametrize("key", [AUDITOR, FINANCE])
def test_auditor_and_finance_read_every_route(ledger_api: ReadApi, history: dict[str, Body],
                                              key: str) -> None:
    schema = ledger_api.client.app.openapi()  # type: ignore[attr-defined]
    reads = [path for path, operations in schema["paths"].items() if "get" in operations]

    for path in reads:
        response = ledger_api.get(fill_path(path), key=key,
                                  min_position=history["head"]["position"])
        # A route about a kind of resource this history lacks answers 404; none refuses the role.
        found = "{" not in path or path in IN_HISTORY
        assert response.status_code in ((200,) if found else (200, 404)), (path, response.text)
    assert {"/events", "/events/{position}", "/audit/digest", "/stock"} <= set(reads)


def test_the_auditor_is_refused_every_write_whatever_the_body(ledger_api: ReadApi,
                                                              history: dict[str, Body]) -> None:
    head = history["head"]["position"]
    schema = ledger_api.client.app.openapi()  # type: ignore[attr-defined]
    writes = [(method.upper(), path) for path, operations in schema["paths"].items()
              for method in operations if method != "get"]

    for method, path in writes:
        response = send(ledger_api, method, fill_path(path), {}, AUDITOR)
        assert_problem(response, 403, "forbidden")
    assert {("PUT", "/items/{sku}"), ("PUT", "/locations/{code}"), ("POST", "/receipts"),
            ("POST", "/dispatches"), ("POST", "/transfers"), ("POST", "/adjustments")} <= set(
        writes)
    assert ledger_api.head() == head


@pytest.mark.parametrize("path", ["/events", "/events/1", "/audit/digest"])
def test_the_log_is_not_read_without_a_key(ledger_api: ReadApi, history: dict[str, Body],
                                           path: str) -> None:
    assert_problem(ledger_api.client.get(path), 401, "unauthorized")
    assert_problem(ledger_api.client.get(path, headers=bearer("not-a-key")), 401,
                   "unauthorized")


@pytest.mark.parametrize("key", [AUDITOR, FINANCE])
@pytest.mark.parametrize(("method", "path", "body"), WRITES, ids=WRITE_IDS)
def test_auditor_and_finance_write_nothing(ledger_api: ReadApi, history: dict[str, Body],
                                           key: str, method: str, path: str,
                                           body: Body) -> None:
    head = history["head"]["position"]
    digest = ledger_api.query("/audit/digest", min_position=head)

    response = send(ledger_api, method, path, body, key)

    problem = assert_problem(response, 403, "forbidden")
    assert problem["role"] == ("auditor" if key == AUDITOR else "finance")
    assert ledger_api.head() == head
    assert ledger_api.query("/audit/digest", min_position=head) == digest
    assert len(all_events(ledger_api, head)) == head
