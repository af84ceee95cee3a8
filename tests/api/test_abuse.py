"""Limits and secrets: oversized bodies, unknown fields, unbounded pages, malformed keys, API keys
kept out of logs and compared in constant time, and read-only roles that cannot move stock.

Every refusal is a problem+json answer and appends nothing to the log.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from api_support import (
    ADMIN,
    API_KEYS,
    AUDITOR,
    AVERAGE_SKU,
    FIFO_SKU,
    FINANCE,
    OPERATIONS,
    WAREHOUSE,
    Api,
    Body,
    assert_problem,
    bearer,
    seed,
    serving,
)
from audit_support import STOCK_MOVEMENT_IDS, STOCK_MOVEMENTS, WRITE_IDS, WRITES

from api.auth import KeyRing
from api.schemas import PAGE_LIMIT_MAX
from ledger.config import ConfigurationError, Settings

MEBIBYTE = 1024 * 1024
SMALL_LIMIT = 4096
ALL_KEYS = [OPERATIONS, FINANCE, AUDITOR, ADMIN]
# Near misses of the configured keys: what a log line would most likely leak.
WRONG_KEYS = ["ops-key-2", "sk-live-0123456789abcdef", "adm-keyX"]


@pytest.fixture
def stocked(seeded: Api) -> Api:
    """Seeded, with moving-average stock in the warehouse to dispatch and transfer."""
    seeded.receive(WAREHOUSE, (AVERAGE_SKU, "10", "2"))
    return seeded


@pytest.fixture
def small_limit(sqlite_url: str) -> Iterator[Api]:
    """A stocked app whose request bodies may be at most `SMALL_LIMIT` bytes."""
    with serving(sqlite_url, request_body_bytes_max=SMALL_LIMIT) as api:
        seed(api).receive(WAREHOUSE, (AVERAGE_SKU, "10", "2"))
        yield api


def padded(body: Body, size: int) -> bytes:
    """`body` as JSON, padded with trailing whitespace to exactly `size` bytes."""
    content = json.dumps(body).encode()
    assert len(content) <= size, "the body fits before padding"
    return content + b" " * (size - len(content))


def send_bytes(api: Api, method: str, path: str, content: Any, key: str = OPERATIONS,
               **headers: str) -> Any:
    return api.client.request(method, path, content=content, headers={
        **bearer(key), "Content-Type": "application/json", **headers})


# Request bodies.


def test_the_default_body_limit_is_one_mebibyte() -> None:
    assert Settings().request_body_bytes_max == MEBIBYTE


def test_a_body_of_exactly_one_mebibyte_is_accepted_by_default(stocked: Api) -> None:
    [(_, path, body)] = [write for write in WRITES if write[1] == "/receipts"]

    response = send_bytes(stocked, "POST", path, padded(body, MEBIBYTE))

    assert response.status_code == 201, response.text


def test_a_body_one_byte_over_a_mebibyte_is_refused_by_default(stocked: Api) -> None:
    [(_, path, body)] = [write for write in WRITES if write[1] == "/receipts"]
    head = stocked.head()

    response = send_bytes(stocked, "POST", path, padded(body, MEBIBYTE + 1))

    problem = assert_problem(response, 413, "request_too_large")
    assert problem["limit_bytes"] == MEBIBYTE
    assert stocked.head() == head


@pytest.mark.parametrize(("method", "path", "body"), WRITES, ids=WRITE_IDS)
def test_a_body_at_the_configured_limit_is_accepted(small_limit: Api, method: str, path: str,
                                                    body: Body) -> None:
    head = small_limit.head()

    response = send_bytes(small_limit, method, path, padded(body, SMALL_LIMIT))

    assert response.status_code in (200, 201), response.text
    assert small_limit.head() > head


@pytest.mark.parametrize(("method", "path", "body"), WRITES, ids=WRITE_IDS)
def test_a_body_over_the_configured_limit_is_too_large(small_limit: Api, method: str,
                                                       path: str, body: Body) -> None:
    head = small_limit.head()

    response = send_bytes(small_limit, method, path, padded(body, SMALL_LIMIT + 1))

    problem = assert_problem(response, 413, "request_too_large")
    assert problem["limit_bytes"] == SMALL_LIMIT
    assert small_limit.head() == head


@pytest.mark.parametrize(("method", "path", "body"), WRITES, ids=WRITE_IDS)
def test_a_streamed_body_over_the_configured_limit_is_too_large(small_limit: Api, method: str,
                                                                path: str, body: Body) -> None:
    head = small_limit.head()
    content = padded(body, SMALL_LIMIT + 1)

    def chunks() -> Iterator[bytes]:
        # No Content-Length: the limit must be enforced while the body arrives.
        for start in range(0, len(content), 1000):
            yield content[start:start + 1000]

    response = send_bytes(small_limit, method, path, chunks())

    assert_problem(response, 413, "request_too_large")
    assert small_limit.head() == head


def test_a_large_body_is_refused_before_the_key_is_checked(small_limit: Api) -> None:
    # An anonymous caller cannot make the server read a large body either.
    response = small_limit.client.post("/receipts", content=b" " * (SMALL_LIMIT + 1),
                                       headers={"Content-Type": "application/json"})

    assert_problem(response, 413, "request_too_large")


# Unknown fields.


def with_unknown_field(body: Body, in_line: bool) -> Body:
    if not in_line:
        return {**body, "colour": "red"}
    [line, *rest] = body["lines"]
    return {**body, "lines": [{**line, "colour": "red"}, *rest]}


@pytest.mark.parametrize(("method", "path", "body"), WRITES, ids=WRITE_IDS)
def test_an_unknown_field_is_a_validation_error(stocked: Api, method: str, path: str,
                                                body: Body) -> None:
    head = stocked.head()

    response = stocked.client.request(method, path, json=with_unknown_field(body, False),
                                      headers=bearer(OPERATIONS))

    problem = assert_problem(response, 422, "validation_error")
    assert [error["loc"][-1] for error in problem["errors"]] == ["colour"], problem
    assert problem["errors"][0]["type"] == "extra_forbidden"
    assert stocked.head() == head


@pytest.mark.parametrize(("path", "body"), STOCK_MOVEMENTS, ids=STOCK_MOVEMENT_IDS)
def test_an_unknown_field_in_a_line_is_a_validation_error(stocked: Api, path: str,
                                                          body: Body) -> None:
    head = stocked.head()

    response = stocked.post(path, with_unknown_field(body, True))

    problem = assert_problem(response, 422, "validation_error")
    assert [error["loc"][-3:] for error in problem["errors"]] == [["lines", 0, "colour"]]
    assert stocked.head() == head


# Page sizes.


def page_routes(api: Api) -> dict[str, dict[str, Any]]:
    """Every GET route of the OpenAPI schema that answers a page (`next_cursor`), with the
    schema of its `limit` parameter (empty when it has none)."""
    schema = api.client.app.openapi()  # type: ignore[attr-defined]
    components = schema["components"]["schemas"]
    routes = {}
    for path, operations in schema["paths"].items():
        get = operations.get("get")
        if get is None:
            continue
        answer = get["responses"]["200"]["content"]["application/json"]["schema"]
        answer = components[answer["$ref"].rsplit("/", 1)[-1]] if "$ref" in answer else answer
        if "next_cursor" not in answer.get("properties", {}):
            continue
        [limit] = [p["schema"] for p in get.get("parameters", []) if p["name"] == "limit"] or [{}]
        routes[path.replace("{sku}", FIFO_SKU)] = limit
    return routes


def test_every_page_route_bounds_its_limit(api: Api) -> None:
    routes = page_routes(api)

    assert set(routes) >= {"/items", "/locations", "/stock", f"/stock/{FIFO_SKU}/movements",
                           "/alerts/low-stock", "/events"}
    assert {path: (limit.get("minimum"), limit.get("maximum"))
            for path, limit in routes.items()} == dict.fromkeys(routes, (1, PAGE_LIMIT_MAX))


@pytest.mark.parametrize("limit", [PAGE_LIMIT_MAX + 1, 1000, 1_000_000, 2**63, 0, -1])
def test_a_limit_out_of_range_is_refused_on_every_page_route(seeded: Api, limit: int) -> None:
    for path in page_routes(seeded):
        response = seeded.get(path, limit=limit)

        problem = assert_problem(response, 422, "validation_error")
        assert problem["errors"][0]["loc"] == ["query", "limit"], (path, problem)


def test_the_largest_limit_is_accepted_on_every_page_route(seeded: Api) -> None:
    for path in page_routes(seeded):
        response = seeded.get(path, limit=PAGE_LIMIT_MAX)

        assert response.status_code == 200, (path, response.text)


# Idempotency keys.


MALFORMED_IDEMPOTENCY_KEYS: list[str | bytes] = [
    "", " ", "two words", "tab\there", "k" * 201, "\x7f", "ключ".encode(), "é".encode("latin-1"),
]


@pytest.mark.parametrize("idempotency_key", MALFORMED_IDEMPOTENCY_KEYS,
                         ids=lambda key: repr(key)[:20])
@pytest.mark.parametrize(("path", "body"), STOCK_MOVEMENTS, ids=STOCK_MOVEMENT_IDS)
def test_a_malformed_idempotency_key_is_refused(stocked: Api, path: str, body: Body,
                                                idempotency_key: str | bytes) -> None:
    head = stocked.head()

    headers: dict[str, str | bytes] = {**bearer(OPERATIONS), "Idempotency-Key": idempotency_key}
    response = stocked.client.post(path, json=body, headers=headers)

    problem = assert_problem(response, 422, "validation_error")
    assert problem["field"] == "Idempotency-Key"
    assert stocked.head() == head


# API keys.


def requests_with_keys(api: Api) -> list[Any]:
    """Reads and writes with every key, accepted and refused, and with wrong keys."""
    responses = []
    for key in ALL_KEYS:
        responses.append(api.get("/items", key=key))
        responses.append(api.get(f"/items/{FIFO_SKU}", key=key))
        responses.append(api.post("/receipts", {"location": WAREHOUSE, "lines": [
            {"sku": FIFO_SKU, "quantity": "1", "unit_cost": "1"}]}, key=key,
            idempotency_key=f"retry-{key}"))
        responses.append(api.post("/dispatches", {"location": WAREHOUSE, "lines": [
            {"sku": FIFO_SKU, "quantity": "1000000"}]}, key=key))
        responses.append(api.post("/receipts", {"location": "NOWHERE", "lines": []}, key=key))
    for wrong in WRONG_KEYS:
        responses.append(api.get("/items", key=wrong))
        responses.append(api.post("/receipts", {}, key=wrong))
    for header in [OPERATIONS, f"Basic {ADMIN}", f"Token {AUDITOR}", f"Bearer  {FINANCE} x"]:
        responses.append(api.client.get("/items", headers={"Authorization": header}))
    return responses


def test_api_keys_never_appear_in_logs_or_answers(seeded: Api,
                                                  caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)

    responses = requests_with_keys(seeded)

    assert {response.status_code for response in responses} >= {200, 201, 401, 403, 409, 422}
    # The capture works: the HTTP client logs every request it makes.
    assert len(caplog.records) >= len(responses), caplog.text
    logged = caplog.text + "\n".join(
        f"{record.getMessage()} {record.args!r} {vars(record)!r}" for record in caplog.records)
    answered = "\n".join(response.text + repr(dict(response.headers)) for response in responses)
    for key in ALL_KEYS + WRONG_KEYS:
        assert key not in logged, key
        assert key not in answered, key


def test_a_malformed_key_list_does_not_repeat_the_keys() -> None:
    with pytest.raises(ConfigurationError) as refused:
        KeyRing.parse("sk-live-0123456789abcdef:wizard,ops-key:operations")

    assert "sk-live-0123456789abcdef" not in str(refused.value)
    assert "ops-key" not in str(refused.value)


@pytest.fixture
def comparisons(monkeypatch: pytest.MonkeyPatch) -> list[tuple[bytes, bytes]]:
    """Every `hmac.compare_digest` call from now on, as (a, b), still answered by the real one."""
    calls: list[tuple[bytes, bytes]] = []
    real: Callable[[Any, Any], bool] = hmac.compare_digest

    def counting(a: Any, b: Any) -> bool:
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", counting)
    return calls


def digest(key: str) -> bytes:
    return hashlib.sha256(key.encode()).digest()


@pytest.mark.parametrize("presented", ALL_KEYS + WRONG_KEYS)
def test_a_presented_key_is_compared_with_every_key_in_constant_time(
        seeded: Api, comparisons: list[tuple[bytes, bytes]], presented: str) -> None:
    comparisons.clear()

    response = seeded.get("/items", key=presented)

    assert response.status_code == (200 if presented in ALL_KEYS else 401), response.text
    # Each authentication (a request may authenticate more than once) compares every
    # configured key, even after a match, always as equal-length digests: neither which key
    # matched nor how long the presented key is shows in the time taken.
    rounds = [comparisons[start:start + len(ALL_KEYS)]
              for start in range(0, len(comparisons), len(ALL_KEYS))]
    assert rounds, "the key was compared with hmac.compare_digest"
    for compared in rounds:
        assert {frozenset(pair) for pair in compared} == {
            frozenset((digest(key), digest(presented))) for key in ALL_KEYS}, compared


def test_the_key_ring_compares_every_key_whichever_matches(
        comparisons: list[tuple[bytes, bytes]]) -> None:
    keys = KeyRing.parse(API_KEYS)

    for presented in ALL_KEYS + WRONG_KEYS:
        comparisons.clear()
        principal = keys.authenticate(presented)

        assert (principal is not None) == (presented in ALL_KEYS)
        assert len(comparisons) == len(ALL_KEYS), presented
        assert all(digest(presented) in pair for pair in comparisons)


# Read-only roles.


@pytest.mark.parametrize("key", [AUDITOR, FINANCE])
@pytest.mark.parametrize(("path", "body"), STOCK_MOVEMENTS, ids=STOCK_MOVEMENT_IDS)
def test_auditor_and_finance_cannot_post_stock_movements(stocked: Api, key: str, path: str,
                                                         body: Body) -> None:
    head = stocked.head()
    held = stocked.available(AVERAGE_SKU, WAREHOUSE)

    response = stocked.post(path, body, key=key, idempotency_key="once")

    problem = assert_problem(response, 403, "forbidden")
    assert problem["role"] == ("auditor" if key == AUDITOR else "finance")
    assert stocked.head() == head
    assert stocked.available(AVERAGE_SKU, WAREHOUSE) == held
    # Nothing was remembered under the key either: the operations key's first use records.
    accepted = stocked.post(path, body, key=OPERATIONS, idempotency_key="once")
    assert accepted.status_code == 201, accepted.text
    assert "idempotent-replayed" not in accepted.headers


@pytest.mark.parametrize("key", [AUDITOR, FINANCE])
@pytest.mark.parametrize("body", [{}, {"colour": "red"}, {"location": WAREHOUSE, "lines": []}],
                         ids=["empty", "unknown-field", "no-lines"])
@pytest.mark.parametrize(("path", "_"), STOCK_MOVEMENTS, ids=STOCK_MOVEMENT_IDS)
def test_a_read_only_role_is_refused_whatever_the_body(stocked: Api, key: str, path: str,
                                                       _: Body, body: Body) -> None:
    # The role is the answer: an auditor learns nothing about what a valid body looks like.
    assert_problem(stocked.post(path, body, key=key), 403, "forbidden")
