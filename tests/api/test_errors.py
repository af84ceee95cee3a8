"""Refusals: every one is problem+json with a stable code, appends nothing, and is never a 500."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from api_support import (
    AUDITOR,
    AVERAGE_SKU,
    FIFO_SKU,
    OPERATIONS,
    PROBLEM_JSON,
    STORE,
    WAREHOUSE,
    Api,
    assert_problem,
    bearer,
    seed,
    serving,
)

RECEIPT = {"location": WAREHOUSE,
           "lines": [{"sku": FIFO_SKU, "quantity": "1", "unit_cost": "1"}]}
JSON = {**bearer(OPERATIONS), "Content-Type": "application/json"}
MEBIBYTE = 1024 * 1024


@pytest.fixture
def stocked(seeded: Api) -> Api:
    """Seeded, with 3 of FIFO_SKU at WAREHOUSE and a receipt recorded under key `used`."""
    seeded.receive(WAREHOUSE, (FIFO_SKU, "3", "4.20"))
    seeded.post("/receipts", RECEIPT, idempotency_key="used")
    return seeded


Send = Callable[[Api], httpx.Response]

# (code, status, a request that must be refused with them)
REFUSALS: list[tuple[str, int, Send]] = [
    ("unauthorized", 401, lambda api: api.client.get("/items")),
    ("forbidden", 403, lambda api: api.post("/receipts", RECEIPT, key=AUDITOR)),
    ("not_found", 404, lambda api: api.get("/no-such-route")),
    ("method_not_allowed", 405, lambda api: api.client.delete(f"/items/{FIFO_SKU}",
                                                              headers=bearer(OPERATIONS))),
    ("unknown_item", 404, lambda api: api.get("/items/NOPE-1")),
    ("unknown_location", 404, lambda api: api.get("/locations/NOWHERE")),
    ("unknown_item", 422, lambda api: api.post("/receipts", {
        "location": WAREHOUSE, "lines": [{"sku": "NOPE-1", "quantity": "1", "unit_cost": "1"}]})),
    ("unknown_location", 422, lambda api: api.post("/receipts",
                                                   {**RECEIPT, "location": "NOWHERE"})),
    ("insufficient_stock", 409, lambda api: api.post("/dispatches", {
        "location": WAREHOUSE, "lines": [{"sku": FIFO_SKU, "quantity": "99"}]})),
    ("backdated_movement", 409, lambda api: api.post("/receipts", {
        **RECEIPT, "effective_at": "2000-01-01T00:00:00Z"})),
    ("idempotency_conflict", 409, lambda api: api.post("/receipts", {**RECEIPT, "note": "other"},
                                                       idempotency_key="used")),
    ("immutable_field", 409, lambda api: api.put(f"/items/{FIFO_SKU}", {
        "name": "Ink", "uom": "ea", "valuation_method": "moving_average"})),
    ("validation_error", 422, lambda api: api.post("/receipts", {**RECEIPT, "extra": 1})),
    ("validation_error", 422, lambda api: api.client.post("/receipts", content=b"{", headers=JSON)),
    ("unsupported_media_type", 415, lambda api: api.client.post(
        "/receipts", content=b"location=SZ-WH3",
        headers={**bearer(OPERATIONS), "Content-Type": "application/x-www-form-urlencoded"})),
    ("request_too_large", 413, lambda api: api.client.post(
        "/receipts", content=b" " * (MEBIBYTE + 1), headers=JSON)),
]


@pytest.mark.parametrize(("code", "status", "send"), REFUSALS,
                         ids=[f"{status}-{code}" for code, status, _ in REFUSALS])
def test_every_refusal_is_a_problem_with_a_stable_code(stocked: Api, code: str, status: int,
                                                       send: Send) -> None:
    head = stocked.head()

    assert_problem(send(stocked), status, code)
    assert stocked.head() == head


def test_insufficient_stock_names_the_bin_and_the_quantities(stocked: Api) -> None:
    response = stocked.post("/dispatches", {"location": WAREHOUSE,
                                            "lines": [{"sku": FIFO_SKU, "quantity": "99"}]})

    problem = assert_problem(response, 409, "insufficient_stock")
    assert problem == {
        "type": "/problems/insufficient_stock", "title": problem["title"], "status": 409,
        "detail": problem["detail"], "code": "insufficient_stock",
        "sku": FIFO_SKU, "location": WAREHOUSE, "requested": "99.000", "available": "4.000"}


def test_a_validation_error_says_where(stocked: Api) -> None:
    response = stocked.post("/receipts", {"location": WAREHOUSE, "lines": [
        {"sku": FIFO_SKU, "quantity": "1", "unit_cost": "1", "colour": "red"}]})

    problem = assert_problem(response, 422, "validation_error")
    assert ["body", "lines", 0, "colour"] in [error["loc"] for error in problem["errors"]]


# Request bodies: size.


def test_a_body_over_the_limit_is_refused_by_its_declared_length(sqlite_url: str) -> None:
    with serving(sqlite_url, request_body_bytes_max=2048) as api:
        seed(api)
        head = api.head()
        lines = [{"sku": FIFO_SKU, "quantity": "1", "unit_cost": "1"}] * 60
        body = {"location": WAREHOUSE, "lines": lines}

        problem = assert_problem(api.post("/receipts", body), 413, "request_too_large")

        assert problem["limit_bytes"] == 2048
        assert api.head() == head
        assert api.post("/receipts", {**body, "lines": lines[:20]}).status_code == 201


def test_a_streamed_body_over_the_limit_is_refused(stocked: Api) -> None:
    head = stocked.head()

    def chunks() -> Iterator[bytes]:
        yield b'{"location": "SZ-WH3", "note": "'
        for _ in range(MEBIBYTE // 4096 + 1):
            yield b"x" * 4096
        yield b'"}'

    response = stocked.client.post("/receipts", content=chunks(), headers=JSON)

    assert "content-length" not in response.request.headers
    assert_problem(response, 413, "request_too_large")
    assert stocked.head() == head


def test_a_body_too_large_for_a_put_is_refused(stocked: Api) -> None:
    response = stocked.client.put("/locations/BIG", content=b" " * (MEBIBYTE + 1), headers=JSON)

    assert_problem(response, 413, "request_too_large")


# Request bodies: media type and syntax.


@pytest.mark.parametrize("content_type", [
    "text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x",
    "application/xml", "text/json",
])
@pytest.mark.parametrize(("method", "path"), [("POST", "/receipts"), ("PUT", "/locations/NEW")])
def test_a_body_that_is_not_json_is_unsupported(stocked: Api, content_type: str, method: str,
                                                path: str) -> None:
    head = stocked.head()

    response = stocked.client.request(
        method, path, content=b'{"name": "x"}',
        headers={**bearer(OPERATIONS), "Content-Type": content_type})

    problem = assert_problem(response, 415, "unsupported_media_type")
    assert problem["content_type"] == content_type.split(";")[0]
    assert stocked.head() == head


@pytest.mark.parametrize("content_type", [
    "application/json; charset=utf-8", "Application/JSON", "application/vnd.ledger+json", None,
])
def test_json_media_types_are_accepted(stocked: Api, content_type: str | None) -> None:
    # api/requests.py: "Bodies are JSON; a missing Content-Type is read as JSON too."
    headers = bearer(OPERATIONS)
    if content_type is not None:
        headers["Content-Type"] = content_type

    response = stocked.client.put("/locations/NEW", content=b'{"name": "New"}', headers=headers)

    assert response.status_code == 201, response.text


@pytest.mark.parametrize("content", [
    b"", b"{", b'{"location": "SZ-WH3",}', b"{'location': 'SZ-WH3'}", b"null", b"[]", b'"text"',
    b"42", b'{"location": "SZ-\xff\xfe"}', b"\xef\xbb\xbf{}",
], ids=["empty", "truncated", "trailing-comma", "single-quotes", "null", "array", "string",
        "number", "invalid-utf8", "bom"])
def test_a_body_that_is_not_a_json_object_is_a_validation_error(stocked: Api,
                                                                 content: bytes) -> None:
    head = stocked.head()

    response = stocked.client.post("/receipts", content=content, headers=JSON)

    assert_problem(response, 422, "validation_error")
    assert stocked.head() == head


@pytest.mark.parametrize("content", [
    b"[" * 100_000 + b"]" * 100_000,
    b'{"location": "SZ-WH3", "lines": [{"sku": "INK-9", "quantity": 1' + b"0" * 5000
    + b', "unit_cost": 1}]}',
], ids=["nested-100000-deep", "5000-digit-integer"])
def test_json_the_parser_cannot_hold_is_a_validation_error(stocked: Api, content: bytes) -> None:
    head = stocked.head()

    response = stocked.client.post("/receipts", content=content, headers=JSON)

    assert_problem(response, 422, "validation_error")
    assert stocked.head() == head


# Never a 500: odd values in every field of every body.

ODD_VALUES: list[Any] = [
    None, True, False, 0, -1, 1.5, "", " ", "x" * 600, "NaN", "-Infinity", "sNaN", "1e999999",
    "-1e999999", "0x1F", [], {}, [1], {"$gt": 0}, "\u0000", "😀", "2024-13-45T25:61:00Z",
]
TEMPLATES: dict[tuple[str, str], dict[str, Any]] = {
    ("PUT", f"/items/{FIFO_SKU}"): {"name": "Ink", "uom": "ea", "valuation_method": "fifo",
                                    "reorder_point": "1"},
    ("PUT", f"/locations/{WAREHOUSE}"): {"name": "Warehouse"},
    ("POST", "/receipts"): {"location": WAREHOUSE, "reference": "r", "note": "n",
                            "effective_at": "2024-01-01T00:00:00Z",
                            "lines": [{"sku": FIFO_SKU, "quantity": "1", "unit_cost": "1"}]},
    ("POST", "/dispatches"): {"location": WAREHOUSE, "reason": "sale",
                              "lines": [{"sku": AVERAGE_SKU, "quantity": "1"}]},
    ("POST", "/transfers"): {"from_location": WAREHOUSE, "to_location": STORE,
                             "lines": [{"sku": AVERAGE_SKU, "quantity": "1"}]},
    ("POST", "/adjustments"): {"location": WAREHOUSE, "reason": "count",
                               "lines": [{"sku": AVERAGE_SKU, "counted_quantity": "1",
                                          "unit_cost": "1"}]},
}


def with_value(template: dict[str, Any], field: str, value: Any) -> dict[str, Any]:
    """A copy of `template` with `field` (top level, or `lines.<name>`) set to `value`."""
    if field.startswith("lines."):
        line = {**template["lines"][0], field.removeprefix("lines."): value}
        return {**template, "lines": [line]}
    return {**template, field: value}


def fields_of(template: dict[str, Any]) -> list[str]:
    line_fields = [f"lines.{name}" for name in template.get("lines", [{}])[0]]
    return [*template, *line_fields]


@pytest.mark.parametrize(("method", "path"), list(TEMPLATES), ids=[
    f"{method} {path}" for method, path in TEMPLATES])
def test_odd_values_in_any_field_are_refused_never_a_server_error(stocked: Api, method: str,
                                                                  path: str) -> None:
    stocked.receive(WAREHOUSE, (AVERAGE_SKU, "10", "2"))
    template = TEMPLATES[(method, path)]
    client = stocked.without_raising()
    failures = []
    for field in fields_of(template):
        for value in ODD_VALUES:
            response = client.request(method, path, json=with_value(template, field, value),
                                              headers=bearer(OPERATIONS))
            content_type = response.headers.get("content-type", "")
            if response.status_code >= 500 or (
                    response.status_code >= 400 and not content_type.startswith(PROBLEM_JSON)):
                failures.append(
                    f"{field}={value!r:.40}: {response.status_code} {response.text:.200}")
    assert not failures, "\n".join(failures)
