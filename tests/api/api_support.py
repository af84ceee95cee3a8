"""What the HTTP tests share: the configured keys, the seeded reference data, and a thin client.

`Api` wraps a `TestClient` with the operations key by default, so a test reads like the calls a
user makes. `assert_problem` checks the RFC 9457 body every refusal must have.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal
from typing import Any

import httpx
from fastapi.testclient import TestClient

from api.app import create_app
from ledger.config import Settings

OPERATIONS = "ops-key"
FINANCE = "fin-key"
AUDITOR = "aud-key"
ADMIN = "adm-key"
API_KEYS = f"{OPERATIONS}:operations,{FINANCE}:finance,{AUDITOR}:auditor,{ADMIN}:admin"

# The reference data the `seeded` fixture registers.
FIFO_SKU = "INK-9"
AVERAGE_SKU = "PAPER-A4"
WAREHOUSE = "SZ-WH3"
STORE = "SH-WH1"

PROBLEM_JSON = "application/problem+json"
# The largest quantity the ledger accepts: asking for it is a refusal that reports what is there.
QUANTITY_MAX = "1000000000"

Body = dict[str, Any]


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@contextmanager
def serving(database_url: str, **settings: Any) -> Iterator[Api]:
    """An `Api` on a fresh app for `database_url`, with its lifespan running."""
    app = create_app(Settings(database_url=database_url, api_keys=API_KEYS, **settings))
    with TestClient(app) as client:
        yield Api(client)


def seed(api: Api) -> Api:
    """Register the two items (one per valuation method) and the two locations."""
    api.register_item(FIFO_SKU, "fifo")
    api.register_item(AVERAGE_SKU, "moving_average")
    api.register_location(WAREHOUSE, "Shenzhen warehouse 3")
    api.register_location(STORE, "Shanghai warehouse 1")
    return api


def assert_problem(response: httpx.Response, status: int, code: str) -> Body:
    """Assert `response` is an RFC 9457 problem with `status` and `code`; return its body."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM_JSON), response.headers
    body: Body = response.json()
    assert body["type"] == f"/problems/{code}", body
    assert body["status"] == status, body
    assert body["code"] == code, body
    assert isinstance(body["title"], str) and body["title"], body
    assert isinstance(body["detail"], str) and body["detail"], body
    return body


class Api:
    """HTTP calls as the operations key unless another key is named."""

    def __init__(self, client: TestClient) -> None:
        self.client = client

    def without_raising(self) -> TestClient:
        """A client on the same running app that answers a server error as a 500 response
        instead of raising it, so that one test can report every failing request."""
        return TestClient(self.client.app, raise_server_exceptions=False)

    def head(self) -> int:
        """The event store's head position, from `GET /health` (no key)."""
        response = self.client.get("/health")
        assert response.status_code == 200, response.text
        position: int = response.json()["position"]
        return position

    def get(self, path: str, key: str = OPERATIONS, **params: Any) -> httpx.Response:
        return self.client.get(path, headers=bearer(key), params=params)

    def put(self, path: str, body: Body, key: str = OPERATIONS) -> httpx.Response:
        return self.client.put(path, json=body, headers=bearer(key))

    def post(self, path: str, body: Any, key: str = OPERATIONS,
             idempotency_key: str | None = None) -> httpx.Response:
        headers = bearer(key)
        if idempotency_key is not None:
            headers["Idempotency-Key"] = idempotency_key
        return self.client.post(path, json=body, headers=headers)

    def register_item(self, sku: str, valuation_method: str = "fifo", **fields: Any) -> Body:
        body = {"name": f"Item {sku}", "uom": "ea", "valuation_method": valuation_method, **fields}
        response = self.put(f"/items/{sku}", body)
        assert response.status_code in (200, 201), response.text
        result: Body = response.json()
        return result

    def register_location(self, code: str, name: str | None = None) -> Body:
        response = self.put(f"/locations/{code}", {"name": name or f"Location {code}"})
        assert response.status_code in (200, 201), response.text
        result: Body = response.json()
        return result

    def command(self, path: str, body: Body, **options: Any) -> Body:
        """POST a stock document that must be accepted; return the response body."""
        response = self.post(path, body, **options)
        assert response.status_code == 201, response.text
        result: Body = response.json()
        return result

    def receive(self, location: str, *lines: tuple[str, Any, Any], **header: Any) -> Body:
        return self.command("/receipts", {
            "location": location,
            "lines": [{"sku": sku, "quantity": quantity, "unit_cost": unit_cost}
                      for sku, quantity, unit_cost in lines],
            **header,
        })

    def dispatch(self, location: str, *lines: tuple[str, Any], **header: Any) -> Body:
        return self.command("/dispatches", {
            "location": location,
            "lines": [{"sku": sku, "quantity": quantity} for sku, quantity in lines],
            **header,
        })

    def transfer(self, from_location: str, to_location: str, *lines: tuple[str, Any]) -> Body:
        return self.command("/transfers", {
            "from_location": from_location,
            "to_location": to_location,
            "lines": [{"sku": sku, "quantity": quantity} for sku, quantity in lines],
        })

    def count(self, location: str, *lines: Body, reason: str = "cycle count") -> Body:
        return self.command("/adjustments", {"location": location, "reason": reason,
                                             "lines": list(lines)})

    def available(self, sku: str, location: str) -> Decimal:
        """What a bin holds, read without changing it: the refusal of an oversized dispatch."""
        response = self.post("/dispatches", {"location": location,
                                             "lines": [{"sku": sku, "quantity": QUANTITY_MAX}]})
        body = assert_problem(response, 409, "insufficient_stock")
        return Decimal(body["available"])
