"""`GET /stock` on the fast path (api.fast_stock) answers exactly as FastAPI's endpoint.

Every query goes to two apps over the same ledger history: the service as built, and the
same app without the fast path. Their answers must be equal in status, media type and
body. Then: which queries the fast path answers itself.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

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
)
from fastapi import FastAPI
from fastapi.testclient import TestClient

from api.app import create_app
from api.deps import get_read_models
from api.fast_path import FastPath
from api.problems import ApiProblem
from ledger.config import Settings


def _app(database_url: str, fast: bool) -> FastAPI:
    app = create_app(Settings(database_url=database_url, api_keys=API_KEYS,
                              read_wait_seconds=0.2))
    if not fast:  # the stack is built at the first request: removing it now is enough
        app.user_middleware = [m for m in app.user_middleware if m.cls is not FastPath]
    return app


def _history(api: Api) -> int:
    """Stock in four bins; the log position of the last movement."""
    seed(api)
    api.receive(WAREHOUSE, (FIFO_SKU, "10", "2.50"), (AVERAGE_SKU, "4", "1.25"))
    api.receive(STORE, (FIFO_SKU, "3", "2.75"))
    api.dispatch(WAREHOUSE, (FIFO_SKU, "1.5"))
    position: int = api.transfer(WAREHOUSE, STORE, (AVERAGE_SKU, "1"))["position"]
    return position


@pytest.fixture
def pair(tmp_path: Path) -> Iterator[tuple[TestClient, TestClient, int]]:
    """Two apps over one ledger file: one with the fast path, one without."""
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    with TestClient(_app(url, fast=True)) as fast:
        head = _history(Api(fast))
        with TestClient(_app(url, fast=False)) as full:
            yield fast, full, head


def _queries(head: int, cursor: str) -> list[tuple[str, dict[str, str]]]:
    operator, auditor = bearer(OPERATIONS), bearer(AUDITOR)
    at = f"min_position={head}"
    return [
        (f"/stock?{at}", operator),
        (f"/stock?sku={FIFO_SKU}&{at}", operator),
        (f"/stock?sku={FIFO_SKU}&location={STORE}&{at}", auditor),
        (f"/stock?location={WAREHOUSE}&limit=1&{at}", operator),
        (f"/stock?limit=1&cursor={cursor}&{at}", operator),
        (f"/stock?sku=NO-SUCH&{at}", operator),
        (f"/stock?limit=200&{at}", operator),
        (f"/stock?{at}&unknown=1", operator),
        # refused, or unusual: handed on to FastAPI
        ("/stock?limit=0", operator),
        ("/stock?limit=201", operator),
        (f"/stock?limit=050&{at}", operator),
        ("/stock?limit=abc", operator),
        ("/stock?limit=", operator),
        ("/stock?min_position=-1", operator),
        (f"/stock?min_position={2**62 + 1}", operator),
        (f"/stock?min_position={head + 1000}", operator),  # the read models never get there
        ("/stock?sku=", operator),
        ("/stock?sku=bad%20sku", operator),
        ("/stock?sku=%E4%B8%AD", operator),
        (f"/stock?sku={'A' * 65}", operator),
        (f"/stock?sku={FIFO_SKU}&sku={AVERAGE_SKU}&{at}", operator),
        ("/stock?cursor=garbage", operator),
        (f"/stock?cursor={'A' * 401}", operator),
        (f"/stock?as_of=2030-01-01T00:00:00Z&{at}", operator),
        ("/stock?as_of=yesterday", operator),
        (f"/stock?{at}", {}),
        (f"/stock?{at}", bearer("wrong-key")),
        (f"/stock?{at}", {"Authorization": "Basic b3BzOmtleQ=="}),
    ]


def _answer(client: TestClient, url: str, headers: dict[str, str]) -> tuple[int, str, Any]:
    response = client.get(url, headers=headers)
    return response.status_code, response.headers["content-type"], response.json()


def test_every_query_gets_the_answer_fastapi_gives(
        pair: tuple[TestClient, TestClient, int]) -> None:
    fast, full, head = pair
    first = fast.get(f"/stock?location={WAREHOUSE}&limit=1&min_position={head}",
                     headers=bearer(OPERATIONS)).json()
    assert first["next_cursor"], "a second page exists"
    statuses = []
    for url, headers in _queries(head, first["next_cursor"]):
        answers = [_answer(client, url, headers) for client in (fast, full)]
        assert answers[0] == answers[1], (url, headers)
        statuses.append(answers[0][0])
    assert statuses[:8] == [200] * 8
    assert {401, 422, 503} <= set(statuses)


def _bypassed() -> None:
    raise ApiProblem(418, "fastapi_answered", "FastAPI's endpoint answered this request.")


@pytest.fixture
def fast_only(tmp_path: Path) -> Iterator[tuple[Api, int]]:
    """An app whose FastAPI endpoints cannot read the read models: what the fast path does
    not answer itself gets 418."""
    app = _app(f"sqlite:///{tmp_path / 'ledger.db'}", fast=True)
    with TestClient(app) as client:
        head = _history(Api(client))
        app.dependency_overrides[get_read_models] = _bypassed
        yield Api(client), head


def test_the_ordinary_query_is_answered_by_the_fast_path(fast_only: tuple[Api, int]) -> None:
    api, head = fast_only
    page = api.get("/stock", sku=FIFO_SKU, min_position=head)
    assert page.status_code == 200, page.text
    assert {(item["location"], item["quantity_on_hand"]) for item in page.json()["items"]} == {
        (STORE, "3.000"), (WAREHOUSE, "8.500")}
    assert page.json()["position"] >= head


@pytest.mark.parametrize("params", [
    {"as_of": "2030-01-01T00:00:00Z"},
    {"limit": "050"},
    {"sku": "bad sku"},
])
def test_an_unusual_query_is_handed_on(fast_only: tuple[Api, int],
                                       params: dict[str, str]) -> None:
    api, _ = fast_only
    response = api.get("/stock", **params)
    assert (response.status_code, response.json()["code"]) == (418, "fastapi_answered")
