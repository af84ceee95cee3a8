"""Reference data: items and locations are registered with PUT, read back, and listed in pages."""

from __future__ import annotations

from typing import Any

import pytest
from api_support import AUDITOR, FINANCE, Api, assert_problem

INK = {"name": "Ink cartridge", "uom": "ea", "valuation_method": "fifo", "reorder_point": "5"}


def all_pages(api: Api, path: str, limit: int) -> list[list[dict[str, Any]]]:
    """Follow `next_cursor` from the first page to the last (bounded, so a loop cannot hang)."""
    pages, cursor = [], None
    for _ in range(100):
        params: dict[str, Any] = {"limit": limit}
        if cursor is not None:
            params["cursor"] = cursor
        response = api.get(path, **params)
        assert response.status_code == 200, response.text
        page = response.json()
        pages.append(page["items"])
        cursor = page["next_cursor"]
        if cursor is None:
            return pages
    raise AssertionError(f"{path} kept answering with a next_cursor")


# Items.


def test_registering_an_item_answers_201_with_its_details(api: Api) -> None:
    response = api.put("/items/INK-9", INK)

    assert response.status_code == 201, response.text
    item = response.json()
    assert item == {"sku": "INK-9", "name": "Ink cartridge", "uom": "ea",
                    "valuation_method": "fifo", "reorder_point": "5.000", "version": 1,
                    "position": api.head()}


@pytest.mark.parametrize("key", [AUDITOR, FINANCE])
def test_a_registered_item_reads_back(api: Api, key: str) -> None:
    api.put("/items/INK-9", INK)

    response = api.get("/items/INK-9", key=key)

    assert response.status_code == 200
    assert response.json() == {"sku": "INK-9", "name": "Ink cartridge", "uom": "ea",
                               "valuation_method": "fifo", "reorder_point": "5.000",
                               "version": 1, "position": None}


def test_an_item_without_a_reorder_point_has_none(api: Api) -> None:
    api.put("/items/PAPER", {"name": "Paper", "uom": "ream", "valuation_method": "moving_average"})

    item = api.get("/items/PAPER").json()

    assert item["valuation_method"] == "moving_average"
    assert item["reorder_point"] is None


@pytest.mark.parametrize("reorder_point", ["5", "5.000", 5, 5.0])
def test_putting_the_same_details_again_is_a_no_op(api: Api, reorder_point: Any) -> None:
    api.put("/items/INK-9", INK)
    head = api.head()

    response = api.put("/items/INK-9", {**INK, "reorder_point": reorder_point})

    assert response.status_code == 200, response.text
    assert response.json()["position"] is None
    assert response.json()["version"] == 1
    assert api.head() == head


def test_changing_an_items_details_is_an_update(api: Api) -> None:
    api.put("/items/INK-9", INK)

    response = api.put("/items/INK-9", {**INK, "name": "Ink cartridge XL", "reorder_point": "8"})

    assert response.status_code == 200, response.text
    updated = response.json()
    assert updated["version"] == 2
    assert updated["position"] == api.head()
    assert api.get("/items/INK-9").json()["name"] == "Ink cartridge XL"
    assert api.get("/items/INK-9").json()["reorder_point"] == "8.000"


def test_the_valuation_method_cannot_change(api: Api) -> None:
    api.put("/items/INK-9", INK)
    head = api.head()

    response = api.put("/items/INK-9", {**INK, "valuation_method": "moving_average"})

    problem = assert_problem(response, 409, "immutable_field")
    assert problem["field"] == "valuation_method"
    assert api.head() == head
    assert api.get("/items/INK-9").json()["valuation_method"] == "fifo"


def test_reading_an_unknown_item_is_not_found(api: Api) -> None:
    problem = assert_problem(api.get("/items/NOPE-1"), 404, "unknown_item")

    assert problem["sku"] == "NOPE-1"


@pytest.mark.parametrize("sku", ["-LEADING-DASH", "has space", "semi;colon", "ü-umlaut"])
def test_a_malformed_sku_is_refused(api: Api, sku: str) -> None:
    response = api.put(f"/items/{sku}", INK)

    assert_problem(response, 422, "validation_error")
    assert api.head() == 0


def test_a_sku_longer_than_64_characters_is_refused(api: Api) -> None:
    assert_problem(api.put("/items/" + "A" * 65, INK), 422, "validation_error")
    assert_problem(api.get("/items/" + "A" * 65), 422, "validation_error")


@pytest.mark.parametrize("body", [
    {**INK, "valuation_method": "lifo"},
    {**INK, "reorder_point": "-1"},
    {**INK, "reorder_point": "1.0005"},
    {**INK, "name": ""},
    {**INK, "name": "n" * 501},
    {**INK, "colour": "black"},
    {"uom": "ea", "valuation_method": "fifo"},
    {"name": "Ink", "valuation_method": "fifo"},
], ids=["unknown-method", "negative-reorder", "reorder-4-places", "empty-name", "long-name",
        "unknown-field", "no-name", "no-uom"])
def test_invalid_item_details_are_refused(api: Api, body: dict[str, Any]) -> None:
    assert_problem(api.put("/items/INK-9", body), 422, "validation_error")
    assert api.head() == 0


def test_items_are_listed_in_registration_order_a_page_at_a_time(api: Api) -> None:
    skus = [f"SKU-{n}" for n in range(5)]
    for sku in skus:
        api.register_item(sku)
    api.register_item("SKU-0", name="Renamed after the others")

    pages = all_pages(api, "/items", limit=2)

    assert all(len(page) <= 2 for page in pages)
    assert [item["sku"] for page in pages for item in page] == skus
    assert pages[0][0]["name"] == "Renamed after the others"


def test_an_empty_item_list(api: Api) -> None:
    assert api.get("/items").json() == {"items": [], "next_cursor": None}


@pytest.mark.parametrize("params", [
    {"limit": 0}, {"limit": 201}, {"limit": -1}, {"limit": "ten"},
    {"cursor": "abc"}, {"cursor": "-1"}, {"cursor": "1" * 19},
])
def test_list_parameters_out_of_bounds_are_refused(api: Api, params: dict[str, Any]) -> None:
    assert_problem(api.get("/items", **params), 422, "validation_error")
    assert_problem(api.get("/locations", **params), 422, "validation_error")


def test_the_largest_page_is_200(api: Api) -> None:
    api.register_item("SKU-1")

    response = api.get("/items", limit=200)

    assert response.status_code == 200
    assert [item["sku"] for item in response.json()["items"]] == ["SKU-1"]


# Locations.


def test_registering_a_location_answers_201(api: Api) -> None:
    response = api.put("/locations/SZ-WH3", {"name": "Shenzhen warehouse 3"})

    assert response.status_code == 201, response.text
    assert response.json() == {"code": "SZ-WH3", "name": "Shenzhen warehouse 3", "version": 1,
                               "position": api.head()}
    assert api.get("/locations/SZ-WH3", key=AUDITOR).json() == {
        "code": "SZ-WH3", "name": "Shenzhen warehouse 3", "version": 1, "position": None}


def test_putting_the_same_location_again_is_a_no_op(api: Api) -> None:
    api.put("/locations/SZ-WH3", {"name": "Shenzhen warehouse 3"})
    head = api.head()

    response = api.put("/locations/SZ-WH3", {"name": "Shenzhen warehouse 3"})

    assert response.status_code == 200
    assert response.json()["position"] is None
    assert api.head() == head


def test_renaming_a_location(api: Api) -> None:
    api.put("/locations/SZ-WH3", {"name": "Shenzhen warehouse 3"})

    response = api.put("/locations/SZ-WH3", {"name": "Shenzhen DC"})

    assert response.status_code == 200
    assert response.json()["version"] == 2
    assert response.json()["position"] == api.head()
    assert api.get("/locations/SZ-WH3").json()["name"] == "Shenzhen DC"


def test_reading_an_unknown_location_is_not_found(api: Api) -> None:
    problem = assert_problem(api.get("/locations/NOWHERE"), 404, "unknown_location")

    assert problem["location"] == "NOWHERE"


@pytest.mark.parametrize("body", [{}, {"name": ""}, {"name": "x", "city": "Shenzhen"},
                                  {"name": 7}])
def test_invalid_location_details_are_refused(api: Api, body: dict[str, Any]) -> None:
    assert_problem(api.put("/locations/SZ-WH3", body), 422, "validation_error")
    assert api.head() == 0


def test_a_malformed_location_code_is_refused(api: Api) -> None:
    assert_problem(api.put("/locations/.hidden", {"name": "x"}), 422, "validation_error")


def test_locations_are_listed_a_page_at_a_time(api: Api) -> None:
    codes = [f"LOC-{n}" for n in range(3)]
    for code in codes:
        api.register_location(code)

    pages = all_pages(api, "/locations", limit=1)

    assert [location["code"] for page in pages for location in page] == codes
