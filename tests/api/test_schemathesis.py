"""Every operation of the OpenAPI schema, fuzzed by schemathesis with an admin key.

Whatever a generated request holds, valid or not, the answer is never a server error, and every
4xx answer is `application/problem+json` with a `code`. The one 5xx the API documents, 503
`projection_lag`, is allowed only as the answer to a request that asked to wait for a position
beyond the store's head.

Each operation runs against its own app on a fresh SQLite file, seeded with the reference data
the schema's examples name, so that the examples reach the ledger and not only the validators.
Requests go through schemathesis' ASGI transport, which runs the app's lifespan (the ledger and
the embedded projections) until the test ends. The examples are bounded and derandomized: every
run sends the same requests, and the module finishes well within 90 seconds.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from api_support import ADMIN, API_KEYS, PROBLEM_JSON, Api, bearer
from fastapi import FastAPI
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, Phase, settings

from api.app import create_app
from ledger.application import Ledger
from ledger.config import Settings

# Long enough for the embedded projections to catch up with a write just made; short enough
# that requests for a position beyond the head, which wait it out, stay cheap.
READ_WAIT_SECONDS = 0.3
# The code the schema gives as the example of every SKU, location and party code.
EXAMPLE_CODE = "SKU-001"

# The schema is read from an app that is built but never started: `create_app` only wires
# routes, so collecting this module opens no database. Each test starts an app of its own.
OPENAPI = create_app(Settings(api_keys=API_KEYS)).openapi()
schema = schemathesis.openapi.from_dict(OPENAPI)
# The module's time is bounded by a budget of examples shared by the operations, so that it
# stays well under 90 seconds as routes are added: 25 per operation while there are at most
# 40 operations, never fewer than 10.
EXAMPLES_TOTAL = 1000
OPERATIONS = sum(len(operations) for operations in OPENAPI["paths"].values())
EXAMPLES_PER_OPERATION = max(10, min(25, EXAMPLES_TOTAL // OPERATIONS))


@pytest.fixture
def ledger_app(sqlite_url: str) -> Iterator[FastAPI]:
    """An app on a fresh SQLite file with the example item, location, party and some stock."""
    app = create_app(Settings(database_url=sqlite_url, api_keys=API_KEYS,
                              read_wait_seconds=READ_WAIT_SECONDS))
    with TestClient(app) as client:
        api = Api(client)
        api.register_item(EXAMPLE_CODE, "moving_average")
        api.register_location(EXAMPLE_CODE)
        api.receive(EXAMPLE_CODE, (EXAMPLE_CODE, "100", "2.50"))
        supplier = api.put(f"/parties/{EXAMPLE_CODE}",
                           {"name": "Example supplier", "roles": ["supplier", "customer"]})
        assert supplier.status_code == 201, supplier.text
    yield app


def waited_beyond_the_head(case: Any, answer: dict[str, Any], head: int) -> bool:
    """Whether a 503 `projection_lag` answers a request for a position past the head.

    `head` is read after the answer: the head only grows, so a position past it now was past
    it for the whole wait.
    """
    query = case.query or {}
    asked = {str(query.get("min_position")), str(query.get("position"))}
    return (answer.get("code") == "projection_lag"
            and answer.get("min_position", -1) > head
            and str(answer["min_position"]) in asked)


@schema.parametrize()
@settings(max_examples=EXAMPLES_PER_OPERATION, deadline=None, derandomize=True, database=None,
          phases=[Phase.explicit, Phase.generate],
          # One app per operation, shared by its examples on purpose: later requests meet the
          # items, locations and stock that earlier ones registered.
          suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_no_request_gets_a_server_error_and_every_refusal_is_a_problem(
        case: Any, ledger_app: FastAPI) -> None:
    response = case.call(app=ledger_app, headers=bearer(ADMIN))

    ledger: Ledger = ledger_app.state.ledger
    described = (f"{case.method} {case.formatted_path} query={case.query} "
                 f"headers={case.headers} body={case.body!r}\n"
                 f"-> {response.status_code} {response.text}")
    [content_type] = response.headers.get("content-type", [""])
    if response.status_code >= 500:
        assert content_type.startswith(PROBLEM_JSON), described
        assert waited_beyond_the_head(case, response.json(), ledger.head_position()), described
    if 400 <= response.status_code < 500:
        assert content_type.startswith(PROBLEM_JSON), described
        answer = response.json()
        assert isinstance(answer.get("code"), str) and answer["code"], described
        assert answer["status"] == response.status_code, described
