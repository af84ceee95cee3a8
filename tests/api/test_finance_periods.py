"""POST /finance/periods/close (结账) and GET /finance/periods.

Only the finance and admin roles close periods (operations and auditor get 403). A close
through a day refuses, from then on, commands dated on or before it (409 `period_closed`);
the day after, from 00:00 UTC, is open.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from api_support import (
    ADMIN,
    AUDITOR,
    FIFO_SKU,
    FINANCE,
    OPERATIONS,
    PROBLEM_JSON,
    WAREHOUSE,
    Api,
    assert_problem,
)


def today() -> date:
    return datetime.now(UTC).date()


def actor(key: str, role: str) -> str:
    """The actor recorded for a key without a name: its role and a digest prefix."""
    return f"{role}-{hashlib.sha256(key.encode()).hexdigest()[:8]}"


def close(api: Api, until: date | str, key: str = FINANCE, **fields: Any) -> Any:
    return api.post("/finance/periods/close", {"until": str(until), **fields}, key=key)


def receipt(effective_at: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"location": WAREHOUSE,
                            "lines": [{"sku": FIFO_SKU, "quantity": "1", "unit_cost": "2.50"}]}
    if effective_at is not None:
        body["effective_at"] = effective_at
    return body


def test_finance_and_admin_keys_close_periods(api: Api) -> None:
    first, second = today() - timedelta(days=3), today() - timedelta(days=2)

    response = close(api, first, reason="week 1")
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["closed_until"] == first.isoformat()
    assert datetime.fromisoformat(body["open_from"]) == datetime.combine(
        first + timedelta(days=1), datetime.min.time(), tzinfo=UTC)
    assert body["position"] == api.head()
    assert isinstance(body["document_id"], str) and body["document_id"]

    response = close(api, second, key=ADMIN)
    assert response.status_code == 201, response.text
    assert response.json()["closed_until"] == second.isoformat()


@pytest.mark.parametrize("key", [OPERATIONS, AUDITOR], ids=["operations", "auditor"])
def test_operations_and_auditor_keys_may_not_close_periods(api: Api, key: str) -> None:
    head = api.head()

    problem = assert_problem(close(api, today() - timedelta(days=3), key=key), 403, "forbidden")

    assert api.head() == head
    assert problem["detail"]
    periods = api.get("/finance/periods", key=key)
    assert periods.status_code == 200, periods.text
    assert periods.json() == {"closed_until": None, "open_from": None, "closes": []}


@pytest.mark.parametrize("body", [
    pytest.param({"until": "2025-02-30"}, id="no such day"),
    pytest.param({"until": "yesterday"}, id="not a date"),
    pytest.param({"until": ""}, id="empty"),
    pytest.param({}, id="missing"),
    pytest.param({"until": "2025-01-31", "reason": "month end", "lock": True},
                 id="unknown field"),
])
def test_a_bad_close_request_is_422(api: Api, body: dict[str, Any]) -> None:
    head = api.head()

    assert_problem(api.post("/finance/periods/close", body, key=FINANCE), 422,
                   "validation_error")

    assert api.head() == head


def test_a_close_through_today_or_backwards_is_422(api: Api) -> None:
    for until in (today(), today() + timedelta(days=1)):
        problem = assert_problem(close(api, until), 422, "validation_error")
        assert problem["field"] == "until"
    assert close(api, today() - timedelta(days=3)).status_code == 201
    head = api.head()
    for until in (today() - timedelta(days=3), today() - timedelta(days=4)):
        problem = assert_problem(close(api, until, key=ADMIN), 422, "validation_error")
        assert problem["field"] == "until"
    assert api.head() == head


def test_a_receipt_dated_in_the_closed_period_is_409_period_closed(seeded: Api) -> None:
    closed_day = today() - timedelta(days=3)
    assert close(seeded, closed_day, reason="week 1").status_code == 201
    head = seeded.head()
    last_instant = f"{closed_day.isoformat()}T23:59:59.999999Z"

    response = seeded.post("/receipts", receipt(last_instant))

    assert response.headers["content-type"].startswith(PROBLEM_JSON)
    problem = assert_problem(response, 409, "period_closed")
    assert problem["closed_until"] == closed_day.isoformat()
    assert datetime.fromisoformat(problem["effective_at"]) == datetime.fromisoformat(
        last_instant)
    # Another zone, the same closed instant: 01:00 at +02:00 the next day.
    next_day = closed_day + timedelta(days=1)
    assert_problem(seeded.post("/receipts", receipt(f"{next_day.isoformat()}T01:00:00+02:00")),
                   409, "period_closed")
    assert seeded.head() == head

    # The next day from 00:00 UTC is open, and so is a defaulted time.
    seeded.command("/receipts", receipt(f"{next_day.isoformat()}T00:00:00Z"))
    seeded.command("/receipts", receipt())


def test_the_periods_list_every_close(api: Api) -> None:
    first, second = today() - timedelta(days=5), today() - timedelta(days=2)
    before = datetime.now(UTC)
    assert close(api, first, reason="week 1").status_code == 201
    assert close(api, second, key=ADMIN).status_code == 201
    after = datetime.now(UTC)

    response = api.get("/finance/periods", key=AUDITOR)

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["closed_until"] == second.isoformat()
    assert datetime.fromisoformat(body["open_from"]) == datetime.combine(
        second + timedelta(days=1), datetime.min.time(), tzinfo=UTC)
    assert [{key: close[key] for key in ("until", "reason", "actor")}
            for close in body["closes"]] == [
        {"until": first.isoformat(), "reason": "week 1", "actor": actor(FINANCE, "finance")},
        {"until": second.isoformat(), "reason": None, "actor": actor(ADMIN, "admin")},
    ]
    closed_at = [datetime.fromisoformat(entry["closed_at"]) for entry in body["closes"]]
    assert before <= closed_at[0] <= closed_at[1] <= after
