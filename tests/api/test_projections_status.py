"""GET /projections: each read model's generation, position, the log's head, lag and digest."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator

import pytest
from api_support import FIFO_SKU, STORE, WAREHOUSE, Body, assert_problem, seed
from read_support import AUDITOR, READ_WAIT_SECONDS, ReadApi, serving_reads

from projections import registry

NAMES = list(registry.NAMES)
SHA256_HEX = re.compile(r"[0-9a-f]{64}")
# The projection runner idles up to 5 s between polls; stopping must cut that short.
STOP_SECONDS_MAX = 2.0


@pytest.fixture
def ledger_api(sqlite_url: str) -> Iterator[ReadApi]:
    with serving_reads(sqlite_url) as api:
        yield api


def caught_up(api: ReadApi, position: int) -> Body:
    """GET /projections once the read models reached `position` (waited for by the queries)."""
    api.low_stock(min_position=position)
    api.movements(FIFO_SKU, min_position=position)
    return api.projections()


def by_name(status: Body) -> dict[str, Body]:
    return {row["name"]: row for row in status["items"]}


def test_an_empty_ledger_has_every_projection_at_position_zero(ledger_api: ReadApi) -> None:
    status = ledger_api.projections()

    assert status["head"] == 0
    assert [row["name"] for row in status["items"]] == NAMES
    for row in status["items"]:
        assert (row["generation"], row["position"], row["head"], row["lag"]) == (1, 0, 0, 0)
        assert SHA256_HEX.fullmatch(row["digest"]), row


def test_caught_up_projections_are_at_the_head_with_no_lag(ledger_api: ReadApi) -> None:
    seed(ledger_api)
    ledger_api.receive(WAREHOUSE, (FIFO_SKU, "10", "4.20"))
    position = ledger_api.transfer(WAREHOUSE, STORE, (FIFO_SKU, "4"))["position"]

    status = caught_up(ledger_api, position)

    assert status["head"] == ledger_api.head() == position
    assert [row["name"] for row in status["items"]] == NAMES
    for row in status["items"]:
        assert (row["generation"], row["position"], row["head"], row["lag"]) == (
            1, position, position, 0), row
        assert SHA256_HEX.fullmatch(row["digest"]), row


def test_a_digest_changes_only_when_its_rows_change(ledger_api: ReadApi) -> None:
    seed(ledger_api)
    before = by_name(caught_up(ledger_api, ledger_api.head()))

    position = ledger_api.receive(WAREHOUSE, (FIFO_SKU, "10", "4.20"))["position"]
    after_receipt = by_name(caught_up(ledger_api, position))
    position = ledger_api.register_location("BJ-WH2")["position"]
    after_location = by_name(caught_up(ledger_api, position))

    def changed(first: dict[str, Body], second: dict[str, Body]) -> set[str]:
        return {name for name in NAMES if first[name]["digest"] != second[name]["digest"]}

    # The audit log holds every event, so it changes with each of them.
    assert changed(before, after_receipt) == {"stock_levels", "stock_card", "audit_log", "journal",
                                              "cost_layers"}
    assert changed(after_receipt, after_location) == {"locations", "audit_log"}


def test_positions_and_digests_survive_a_restart(sqlite_url: str) -> None:
    with serving_reads(sqlite_url) as api:
        seed(api)
        position = api.receive(WAREHOUSE, (FIFO_SKU, "10", "4.20"))["position"]
        before = caught_up(api, position)

    with serving_reads(sqlite_url) as api:
        after = api.projections()

    assert after == before


def test_projections_run_elsewhere_show_their_lag_and_queries_refuse_to_wait_forever(
        sqlite_url: str) -> None:
    with serving_reads(sqlite_url, projections="external") as api:
        seed(api)
        position = api.receive(WAREHOUSE, (FIFO_SKU, "10", "4.20"))["position"]

        status = api.projections()
        lagging = api.get("/stock", min_position=position)
        unwaited = api.stock()

    assert status["head"] == position
    assert {(row["position"], row["lag"]) for row in status["items"]} == {(0, position)}
    body = assert_problem(lagging, 503, "projection_lag")
    assert (body["min_position"], body["waited_seconds"]) == (position, READ_WAIT_SECONDS)
    assert unwaited["items"] == [] and unwaited["position"] == 0

    with serving_reads(sqlite_url) as api:
        levels = api.stock(min_position=position)["items"]
        status = caught_up(api, position)

    assert [(row["sku"], row["quantity_on_hand"]) for row in levels] == [(FIFO_SKU, "10.000")]
    assert {(row["position"], row["lag"]) for row in status["items"]} == {(position, 0)}


def test_the_status_waits_for_min_position_like_every_query(ledger_api: ReadApi) -> None:
    beyond = ledger_api.head() + 1

    response = ledger_api.get("/projections", min_position=beyond)

    body = assert_problem(response, 503, "projection_lag")
    assert body["min_position"] == beyond


def test_stopping_the_api_does_not_wait_out_the_runners_idle_time(database_url: str) -> None:
    with serving_reads(database_url) as api:
        seed(api)
        position = api.receive(WAREHOUSE, (FIFO_SKU, "10", "4.20"))["position"]
        caught_up(api, position)
        stopping = time.monotonic()
    stopped_in = time.monotonic() - stopping

    assert stopped_in < STOP_SECONDS_MAX, f"the API took {stopped_in:.2f} s to stop"


def test_the_status_needs_a_key_and_every_role_may_read(ledger_api: ReadApi) -> None:
    assert_problem(ledger_api.client.get("/projections"), 401, "unauthorized")
    assert_problem(ledger_api.get("/projections", key="wrong-key"), 401, "unauthorized")

    as_auditor = ledger_api.projections(key=AUDITOR)

    assert [row["name"] for row in as_auditor["items"]] == NAMES
