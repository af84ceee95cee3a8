"""The stock documents' fast path (api.fast_commands) answers exactly as FastAPI's endpoints.

Every request below goes, in the same order, to two apps on two fresh ledgers: the
service as built, and the same app without the fast path. Their answers must be equal in
status, media type, headers that matter and body (document ids, which are random, aside).
Then: which requests the fast path answers itself, and that what it records carries the
caller's metadata.
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from api_support import (
    API_KEYS,
    AUDITOR,
    AVERAGE_SKU,
    FIFO_SKU,
    OPERATIONS,
    STORE,
    WAREHOUSE,
    Api,
    bearer,
    seed,
    serving,
)
from fastapi import FastAPI
from fastapi.testclient import TestClient

from api.app import create_app
from api.deps import get_command_meta
from api.fast_path import FastPath
from api.problems import ApiProblem
from ledger.config import Settings

BODY_LIMIT = 4_000


def _app(database_url: str, fast: bool) -> FastAPI:
    app = create_app(Settings(database_url=database_url, api_keys=API_KEYS,
                              request_body_bytes_max=BODY_LIMIT))
    if not fast:  # the stack is built at the first request: removing it now is enough
        app.user_middleware = [m for m in app.user_middleware if m.cls is not FastPath]
    return app


@pytest.fixture
def pair(tmp_path: Path) -> Iterator[tuple[TestClient, TestClient]]:
    fast_app = _app(f"sqlite:///{tmp_path / 'fast.db'}", fast=True)
    full_app = _app(f"sqlite:///{tmp_path / 'full.db'}", fast=False)
    with TestClient(fast_app) as fast, TestClient(full_app) as full:
        seed(Api(fast))
        seed(Api(full))
        yield fast, full


def _receipt(quantity: Any = "10", unit_cost: Any = "2.50", **extra: Any) -> dict[str, Any]:
    return {"location": WAREHOUSE,
            "lines": [{"sku": FIFO_SKU, "quantity": quantity, "unit_cost": unit_cost}],
            **extra}


def _dispatch(quantity: Any = "3", **extra: Any) -> dict[str, Any]:
    return {"location": WAREHOUSE, "lines": [{"sku": FIFO_SKU, "quantity": quantity}],
            **extra}


JSON = {"Content-Type": "application/json"}
OPERATOR = {**bearer(OPERATIONS), **JSON}

# (path, raw body, headers): the ordinary requests and every kind of refusal.
CASES: list[tuple[str, bytes | str, dict[str, str]]] = [
    ("/receipts", httpx.Request("POST", "/", json=_receipt()).content, OPERATOR),
    ("/receipts", '{"location": "SZ-WH3", "lines": [{"sku": "INK-9", "quantity": 2.5, '
                  '"unit_cost": 3}]}', OPERATOR),
    ("/dispatches", httpx.Request("POST", "/", json=_dispatch()).content, OPERATOR),
    ("/dispatches", httpx.Request("POST", "/", json=_dispatch("1", reason="sample")).content,
     {**bearer(OPERATIONS)}),  # no Content-Type: read as JSON
    ("/transfers", httpx.Request("POST", "/", json={
        "from_location": WAREHOUSE, "to_location": STORE,
        "lines": [{"sku": FIFO_SKU, "quantity": "2"}]}).content, OPERATOR),
    ("/adjustments", httpx.Request("POST", "/", json={
        "location": STORE, "reason": "cycle count",
        "lines": [{"sku": FIFO_SKU, "counted_quantity": "1"}]}).content, OPERATOR),
    # refused by the ledger, after queueing: answered by the fast path
    ("/dispatches", httpx.Request("POST", "/", json=_dispatch("1000000")).content, OPERATOR),
    ("/receipts", httpx.Request("POST", "/", json={
        "location": WAREHOUSE,
        "lines": [{"sku": "NO-SUCH", "quantity": "1", "unit_cost": "1"}]}).content, OPERATOR),
    ("/receipts", httpx.Request("POST", "/", json={
        "location": "NOWHERE",
        "lines": [{"sku": FIFO_SKU, "quantity": "1", "unit_cost": "1"}]}).content, OPERATOR),
    # refused before queueing: handed on to FastAPI
    ("/receipts", httpx.Request("POST", "/", json=_receipt("0")).content, OPERATOR),
    ("/receipts", httpx.Request("POST", "/", json=_receipt("-1")).content, OPERATOR),
    ("/receipts", httpx.Request("POST", "/", json=_receipt(colour="red")).content, OPERATOR),
    ("/receipts", httpx.Request("POST", "/", json=_receipt("1_000")).content, OPERATOR),
    ("/receipts", httpx.Request("POST", "/", json=_receipt(True)).content, OPERATOR),
    ("/receipts", httpx.Request("POST", "/", json={"location": WAREHOUSE, "lines": []}).content,
     OPERATOR),
    ("/receipts", httpx.Request("POST", "/", json=[1, 2]).content, OPERATOR),
    ("/receipts", b"", OPERATOR),
    ("/receipts", b'{"location": ', OPERATOR),
    ("/receipts", b'{"location": "\xff"}', OPERATOR),
    ("/receipts", "[" * 100_000, OPERATOR),
    ("/receipts", httpx.Request("POST", "/", json=_receipt()).content,
     {**bearer(OPERATIONS), "Content-Type": "text/plain"}),
    ("/receipts", httpx.Request("POST", "/", json=_receipt()).content, JSON),
    ("/receipts", httpx.Request("POST", "/", json=_receipt()).content,
     {**bearer("wrong-key"), **JSON}),
    ("/receipts", httpx.Request("POST", "/", json=_receipt()).content,
     {"Authorization": "Basic b3BzOmtleQ==", **JSON}),
    ("/receipts", httpx.Request("POST", "/", json=_receipt()).content,
     {**bearer(AUDITOR), **JSON}),
    ("/dispatches", httpx.Request("POST", "/", json={
        "location": WAREHOUSE, "lines": [{"sku": FIFO_SKU, "quantity": "1"}] * 200}).content,
     OPERATOR),  # over the body limit
    # need a database read first: handed on to FastAPI
    ("/receipts", httpx.Request("POST", "/", json=_receipt()).content,
     {**OPERATOR, "Idempotency-Key": "grn-1"}),
    ("/receipts", httpx.Request("POST", "/", json=_receipt()).content,
     {**OPERATOR, "Idempotency-Key": "grn-1"}),  # replayed
    ("/receipts", httpx.Request("POST", "/", json=_receipt("11")).content,
     {**OPERATOR, "Idempotency-Key": "grn-1"}),  # same key, other payload
    ("/receipts", httpx.Request("POST", "/", json=_receipt()).content,
     {**OPERATOR, "Idempotency-Key": "bad key\t"}),
    ("/receipts", httpx.Request("POST", "/", json={
        "location": STORE, "effective_at": "2026-01-01T00:00:00+00:00",
        "lines": [{"sku": AVERAGE_SKU, "quantity": "1", "unit_cost": "1"}]}).content,
     OPERATOR),
    ("/receipts", httpx.Request("POST", "/", json=_receipt(
        effective_at="2020-01-01T00:00:00")).content, OPERATOR),
]


def _answer(response: httpx.Response) -> tuple[int, str | None, str | None, Any]:
    body = response.json() if response.content else None
    if isinstance(body, dict) and "document_id" in body:
        body = {**body, "document_id": "…"}  # random
    return (response.status_code, response.headers.get("content-type"),
            response.headers.get("idempotent-replayed"), body)


def test_every_request_gets_the_answer_fastapi_gives(
        pair: tuple[TestClient, TestClient]) -> None:
    fast, full = pair
    statuses = []
    for path, content, headers in CASES:
        answers = [_answer(client.post(path, content=content, headers=headers))
                   for client in (fast, full)]
        assert answers[0] == answers[1], (path, content[:200], headers)
        statuses.append(answers[0][0])
    assert statuses[:7] == [201] * 6 + [409]
    assert {401, 403, 413, 415, 422} <= set(statuses)


def test_the_stock_after_both_is_the_same(pair: tuple[TestClient, TestClient]) -> None:
    fast, full = pair
    for path, content, headers in CASES:
        for client in (fast, full):
            client.post(path, content=content, headers=headers)
    levels = [client.get("/stock", headers=bearer(OPERATIONS),
                         params={"min_position": _head(client)}).json()
              for client in (fast, full)]
    assert levels[0] == levels[1]
    assert levels[0]["items"], "the cases recorded stock"


def _head(client: TestClient) -> int:
    position: int = client.get("/health").json()["position"]
    return position


def _bypassed() -> None:
    raise ApiProblem(418, "fastapi_answered", "FastAPI's endpoint answered this request.")


@pytest.fixture
def fast_only(tmp_path: Path) -> Iterator[Api]:
    """An app whose FastAPI document endpoints cannot answer: what the fast path does not
    answer itself gets 418."""
    app = _app(f"sqlite:///{tmp_path / 'fast.db'}", fast=True)
    with TestClient(app) as client:
        seed(Api(client))
        app.dependency_overrides[get_command_meta] = _bypassed
        yield Api(client)


def test_the_ordinary_documents_are_answered_by_the_fast_path(fast_only: Api) -> None:
    fast_only.receive(WAREHOUSE, (FIFO_SKU, "10", "2.50"))
    fast_only.dispatch(WAREHOUSE, (FIFO_SKU, "4"))
    fast_only.transfer(WAREHOUSE, STORE, (FIFO_SKU, "1"))
    fast_only.count(STORE, {"sku": FIFO_SKU, "counted_quantity": "3", "unit_cost": "2.50"})
    refused = fast_only.post("/dispatches", _dispatch("100"))
    assert (refused.status_code, refused.json()["code"]) == (409, "insufficient_stock")


@pytest.mark.parametrize("body, headers", [
    (_receipt(), {"Idempotency-Key": "grn-7"}),
    (_receipt(effective_at="2026-01-01T00:00:00+00:00"), {}),
])
def test_a_document_that_needs_a_read_first_is_handed_on(
        fast_only: Api, body: dict[str, Any], headers: dict[str, str]) -> None:
    response = fast_only.client.post("/receipts", json=body,
                                     headers={**bearer(OPERATIONS), **headers})
    assert (response.status_code, response.json()["code"]) == (418, "fastapi_answered")


def test_the_fast_path_records_the_callers_actor_and_correlation_id(api: Api) -> None:
    seed(api)
    answer = api.client.post("/receipts", json=_receipt(),
                             headers={**bearer(OPERATIONS), "X-Correlation-Id": "po-4711"})
    assert answer.status_code == 201, answer.text
    event = _event(api, answer.json()["position"])
    assert event["data"]["correlation_id"] == "po-4711"
    assert event["data"]["actor"] == "operations-" + _key_tag(OPERATIONS)
    generated = api.post("/receipts", _receipt()).json()
    recorded = _event(api, generated["position"])
    assert len(recorded["data"]["correlation_id"]) == 36  # a fresh UUID when none is given


def _event(api: Api, position: int) -> dict[str, Any]:
    answer = api.get(f"/events/{position}", key=AUDITOR, min_position=position)
    assert answer.status_code == 200, answer.text
    event: dict[str, Any] = answer.json()
    return event


def _key_tag(key: str) -> str:
    import hashlib

    return hashlib.sha256(key.encode()).hexdigest()[:8]


@pytest.mark.postgres
def test_concurrent_dispatches_through_the_fast_path_never_oversell(
        fresh_postgres_url: str) -> None:
    """16 threads race 5-unit dispatches on one bin holding 100, on PostgreSQL: 20 succeed,
    the rest are refused with 409, and the bin ends at zero."""
    with serving(fresh_postgres_url) as api:
        seed(api)
        api.receive(WAREHOUSE, (FIFO_SKU, "100", "2.50"))

        def dispatch(_: int) -> int:
            return api.post("/dispatches", _dispatch("5")).status_code

        with ThreadPoolExecutor(max_workers=16) as pool:
            statuses = list(pool.map(dispatch, range(40)))
        assert sorted(statuses) == [201] * 20 + [409] * 20
        head = _head(api.client)
        stock = api.get("/stock", sku=FIFO_SKU, location=WAREHOUSE, min_position=head).json()
        assert stock["items"][0]["quantity_on_hand"] == "0.000"
