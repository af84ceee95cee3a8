"""API keys and roles: every role reads; only operations and admin write; no key, no answer."""

from __future__ import annotations

from typing import Any

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
    Api,
    assert_problem,
    bearer,
)

READS = ["/items", f"/items/{FIFO_SKU}", "/locations", f"/locations/{WAREHOUSE}"]

# Each write, with a body that would be accepted from a key allowed to send it.
WRITES: list[tuple[str, str, dict[str, Any]]] = [
    ("PUT", "/items/NEW-1", {"name": "New", "uom": "ea", "valuation_method": "fifo"}),
    ("PUT", f"/items/{FIFO_SKU}", {"name": "Renamed", "uom": "ea", "valuation_method": "fifo"}),
    ("PUT", "/locations/NEW-LOC", {"name": "New location"}),
    ("POST", "/receipts", {"location": WAREHOUSE,
                           "lines": [{"sku": FIFO_SKU, "quantity": "1", "unit_cost": "1"}]}),
    ("POST", "/dispatches", {"location": WAREHOUSE,
                             "lines": [{"sku": AVERAGE_SKU, "quantity": "1"}]}),
    ("POST", "/transfers", {"from_location": WAREHOUSE, "to_location": STORE,
                            "lines": [{"sku": AVERAGE_SKU, "quantity": "1"}]}),
    ("POST", "/adjustments", {"location": WAREHOUSE, "reason": "cycle count",
                              "lines": [{"sku": FIFO_SKU, "counted_quantity": "3"}]}),
]
WRITE_IDS = [f"{method} {path}" for method, path, _ in WRITES]


@pytest.fixture
def stocked(seeded: Api) -> Api:
    """Seeded, with moving-average stock to dispatch and transfer."""
    seeded.receive(WAREHOUSE, (AVERAGE_SKU, "10", "2"))
    return seeded


def send(api: Api, method: str, path: str, body: Any, headers: dict[str, str]) -> Any:
    return api.client.request(method, path, json=body, headers=headers)


def test_health_answers_without_a_key(api: Api) -> None:
    response = api.client.get("/health")

    assert response.status_code == 200
    assert response.json() == {"status": "ok", "position": 0}


@pytest.mark.parametrize("path", READS)
def test_a_read_without_a_key_is_unauthorized(seeded: Api, path: str) -> None:
    response = seeded.client.get(path)

    assert_problem(response, 401, "unauthorized")
    assert response.headers["www-authenticate"] == "Bearer"


@pytest.mark.parametrize(("method", "path", "body"), WRITES, ids=WRITE_IDS)
def test_a_write_without_a_key_is_unauthorized_and_appends_nothing(
        stocked: Api, method: str, path: str, body: dict[str, Any]) -> None:
    head = stocked.head()

    response = send(stocked, method, path, body, {})

    assert_problem(response, 401, "unauthorized")
    assert stocked.head() == head


@pytest.mark.parametrize("authorization", [
    "Bearer not-a-configured-key",
    "Bearer ",
    "Basic b3BzLWtleTo=",
    "ops-key",
    f"Token {OPERATIONS}",
])
def test_a_key_that_is_unknown_or_not_a_bearer_token_is_unauthorized(
        seeded: Api, authorization: str) -> None:
    response = seeded.client.get("/items", headers={"Authorization": authorization})

    assert_problem(response, 401, "unauthorized")


@pytest.mark.parametrize("key", [OPERATIONS, FINANCE, AUDITOR, ADMIN])
@pytest.mark.parametrize("path", READS)
def test_every_role_may_read(seeded: Api, key: str, path: str) -> None:
    response = seeded.get(path, key=key)

    assert response.status_code == 200, response.text


@pytest.mark.parametrize("key", [FINANCE, AUDITOR])
@pytest.mark.parametrize(("method", "path", "body"), WRITES, ids=WRITE_IDS)
def test_finance_and_auditor_may_not_write(stocked: Api, key: str, method: str, path: str,
                                           body: dict[str, Any]) -> None:
    head = stocked.head()

    response = send(stocked, method, path, body, bearer(key))

    problem = assert_problem(response, 403, "forbidden")
    assert problem["role"] in ("finance", "auditor")
    assert stocked.head() == head


@pytest.mark.parametrize("key", [OPERATIONS, ADMIN])
@pytest.mark.parametrize(("method", "path", "body"), WRITES, ids=WRITE_IDS)
def test_operations_and_admin_may_write(stocked: Api, key: str, method: str, path: str,
                                        body: dict[str, Any]) -> None:
    head = stocked.head()

    response = send(stocked, method, path, body, bearer(key))

    assert response.status_code in (200, 201), response.text
    assert stocked.head() > head


def test_a_refused_role_leaves_reference_data_unregistered(seeded: Api) -> None:
    seeded.put("/items/NEW-1", {"name": "New", "uom": "ea", "valuation_method": "fifo"},
               key=AUDITOR)

    assert_problem(seeded.get("/items/NEW-1"), 404, "unknown_item")


def test_a_request_without_a_key_is_unauthorized_whatever_its_body(seeded: Api) -> None:
    # The contract: no key → 401. An anonymous caller should learn nothing about the body
    # and should not get the server to parse it.
    response = seeded.client.post("/receipts", content=b'{"location": ',
                                  headers={"Content-Type": "application/json"})

    assert_problem(response, 401, "unauthorized")
