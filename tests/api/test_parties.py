"""Parties (suppliers and customers): PUT registers or updates, GET reads, lists page."""

from __future__ import annotations

from api_support import ADMIN, AUDITOR, OPERATIONS, assert_problem, bearer
from fastapi.testclient import TestClient


def put(client: TestClient, code: str, body: dict[str, object], key: str = OPERATIONS):
    return client.put(f"/parties/{code}", json=body, headers=bearer(key))


def test_registering_a_party_answers_201_then_200_and_appends_nothing_the_second_time(
        client: TestClient) -> None:
    body = {"name": "Hangzhou Tea Co.", "roles": ["supplier"]}

    first = put(client, "SUP-1", body)
    again = put(client, "SUP-1", body)

    assert first.status_code == 201
    assert first.json() == {"code": "SUP-1", "name": "Hangzhou Tea Co.", "roles": ["supplier"],
                            "credit_limit": None, "version": 1,
                            "position": first.json()["position"]}
    assert again.status_code == 200
    assert again.json()["position"] is None
    assert again.json()["version"] == 1


def test_an_update_records_new_roles_and_credit_limit(client: TestClient) -> None:
    put(client, "CUS-1", {"name": "Beijing Shop", "roles": ["customer"]})

    updated = put(client, "CUS-1", {"name": "Beijing Shop", "roles": ["supplier", "customer"],
                                    "credit_limit": "5000"})

    assert updated.status_code == 200
    assert updated.json()["roles"] == ["supplier", "customer"]
    assert updated.json()["credit_limit"] == "5000.00"
    assert updated.json()["version"] == 2
    read = client.get("/parties/CUS-1", headers=bearer(AUDITOR))
    assert read.json()["credit_limit"] == "5000.00"


def test_roles_are_kept_in_one_order_whatever_order_they_come_in(client: TestClient) -> None:
    put(client, "BOTH-1", {"name": "Both", "roles": ["customer", "supplier"]})

    unchanged = put(client, "BOTH-1", {"name": "Both", "roles": ["supplier", "customer"]})

    assert unchanged.json()["position"] is None
    assert unchanged.json()["roles"] == ["supplier", "customer"]


def test_bad_party_details_are_refused(client: TestClient) -> None:
    for body in ({"name": "X", "roles": []}, {"name": "X", "roles": ["bank"]},
                 {"name": "", "roles": ["supplier"]},
                 {"name": "X", "roles": ["supplier"], "credit_limit": "-1"},
                 {"name": "X", "roles": ["supplier"], "credit_limit": "1.001"},
                 {"name": "X", "roles": ["supplier"], "extra": 1}):
        assert_problem(put(client, "P-1", body), 422, "validation_error")
    assert_problem(client.get("/parties/P-1", headers=bearer(ADMIN)), 404, "unknown_party")


def test_parties_list_in_pages_and_only_operations_may_register(client: TestClient) -> None:
    for number in range(3):
        put(client, f"P-{number}", {"name": f"Party {number}", "roles": ["customer"]})

    first = client.get("/parties?limit=2", headers=bearer(AUDITOR)).json()
    second = client.get(f"/parties?limit=2&cursor={first['next_cursor']}",
                        headers=bearer(AUDITOR)).json()

    assert [p["code"] for p in first["items"] + second["items"]] == ["P-0", "P-1", "P-2"]
    assert second["next_cursor"] is None
    assert_problem(put(client, "P-9", {"name": "N", "roles": ["customer"]}, AUDITOR), 403,
                   "forbidden")
