"""Numbers: exact decimals in (strings or JSON numbers, never floats), strings out, bounded."""

from __future__ import annotations

from typing import Any

import pytest
from api_support import (
    AVERAGE_SKU,
    FIFO_SKU,
    OPERATIONS,
    PROBLEM_JSON,
    STORE,
    WAREHOUSE,
    Api,
    assert_problem,
    bearer,
)

JSON = {**bearer(OPERATIONS), "Content-Type": "application/json"}


def raw_receipt(quantity: str, unit_cost: str, sku: str = FIFO_SKU) -> bytes:
    """A receipt body with the numbers written exactly as given (JSON numbers or strings)."""
    return (f'{{"location": "{WAREHOUSE}", "lines": [{{"sku": "{sku}", '
            f'"quantity": {quantity}, "unit_cost": {unit_cost}}}]}}').encode()


def post_raw(api: Api, path: str, content: bytes) -> Any:
    return api.client.post(path, content=content, headers=JSON)


def test_json_numbers_are_exact_decimals(seeded: Api) -> None:
    response = post_raw(seeded, "/receipts", raw_receipt("0.1", "0.3"))

    assert response.status_code == 201, response.text
    assert response.json()["lines"][0] == {
        "sku": FIFO_SKU, "location": WAREHOUSE, "quantity": "0.100", "unit_cost": "0.300000",
        "value": "0.03", "quantity_on_hand_after": "0.100", "value_after": "0.03"}


def test_a_tenth_and_two_tenths_make_exactly_three_tenths(seeded: Api) -> None:
    post_raw(seeded, "/receipts", raw_receipt("0.1", "1"))
    response = post_raw(seeded, "/receipts", raw_receipt("0.2", "1"))

    assert response.json()["lines"][0]["quantity_on_hand_after"] == "0.300"
    emptied = seeded.dispatch(WAREHOUSE, (FIFO_SKU, 0.3))
    assert emptied["lines"][0]["quantity_on_hand_after"] == "0.000"


@pytest.mark.parametrize(("unit_cost", "value"), [("1.005", "1.01"), ("2.675", "2.68")])
def test_values_round_half_up_from_the_exact_decimal(seeded: Api, unit_cost: str,
                                                     value: str) -> None:
    # As binary floats 1.005 and 2.675 sit just below the half and would round down.
    response = post_raw(seeded, "/receipts", raw_receipt("1", unit_cost))

    assert response.json()["lines"][0]["value"] == value


def test_strings_and_numbers_give_the_same_answer(seeded: Api) -> None:
    as_numbers = post_raw(seeded, "/receipts", raw_receipt("2.125", "3.333333", FIFO_SKU))
    as_strings = post_raw(seeded, "/receipts",
                          raw_receipt('"2.125"', '"3.333333"', AVERAGE_SKU))

    numbers, strings = as_numbers.json()["lines"][0], as_strings.json()["lines"][0]
    assert {**numbers, "sku": None} == {**strings, "sku": None}
    assert numbers["value"] == "7.08"


def test_every_decimal_in_an_answer_is_a_string(seeded: Api) -> None:
    seeded.register_item("BOLT-1", reorder_point=5)
    results = [
        seeded.receive(WAREHOUSE, (FIFO_SKU, 10, 4.2)),
        seeded.dispatch(WAREHOUSE, (FIFO_SKU, 1)),
        seeded.transfer(WAREHOUSE, STORE, (FIFO_SKU, 1)),
        seeded.count(WAREHOUSE, {"sku": FIFO_SKU, "counted_quantity": 7}),
    ]

    numeric = {"quantity", "unit_cost", "value", "quantity_on_hand_after", "value_after",
               "to_quantity_on_hand_after", "to_value_after", "counted_quantity"}
    for result in results:
        for line in result["lines"]:
            assert numeric & set(line)
            assert all(isinstance(line[name], str) for name in numeric & set(line)), line
    assert seeded.get("/items/BOLT-1").json()["reorder_point"] == "5.000"


@pytest.mark.parametrize(("quantity", "recorded"), [
    ("1.234", "1.234"), ("1.5e-1", "0.150"), ("1e2", "100.000"), ("1E+2", "100.000"),
    ('"1e2"', "100.000"), ('"0.001"', "0.001"), ("1000000000", "1000000000.000"),
])
def test_quantities_in_any_decimal_notation_are_accepted(seeded: Api, quantity: str,
                                                         recorded: str) -> None:
    response = post_raw(seeded, "/receipts", raw_receipt(quantity, "0"))

    assert response.status_code == 201, response.text
    assert response.json()["lines"][0]["quantity"] == recorded


@pytest.mark.parametrize(("unit_cost", "recorded"), [
    ("0", "0.000000"), ("0.000001", "0.000001"), ('"12.345678"', "12.345678"),
])
def test_unit_costs_up_to_six_places_are_accepted(seeded: Api, unit_cost: str,
                                                  recorded: str) -> None:
    response = post_raw(seeded, "/receipts", raw_receipt("1", unit_cost))

    assert response.status_code == 201, response.text
    assert response.json()["lines"][0]["unit_cost"] == recorded


@pytest.mark.parametrize("quantity", [
    "1.0001", '"1.0001"', "0", '"0"', '"-0"', "-1", '"-0.001"', "0.0001", "1000000000.001",
    '"NaN"', '"Infinity"', '"-Infinity"', '"sNaN"', "NaN", "Infinity", "-Infinity", "true",
    '"one"', '""', "null", "[1]",
])
def test_a_quantity_that_is_not_a_positive_decimal_of_3_places_is_refused(
        seeded: Api, quantity: str) -> None:
    head = seeded.head()

    assert_problem(post_raw(seeded, "/receipts", raw_receipt(quantity, "1")), 422,
                   "validation_error")
    assert seeded.head() == head


@pytest.mark.parametrize("unit_cost", [
    "0.0000001", '"1.0000001"', "-0.01", '"-1"', "1000000000.000001", '"NaN"', "Infinity",
    "false",
])
def test_a_unit_cost_that_is_negative_or_has_more_than_6_places_is_refused(
        seeded: Api, unit_cost: str) -> None:
    head = seeded.head()

    assert_problem(post_raw(seeded, "/receipts", raw_receipt("1", unit_cost)), 422,
                   "validation_error")
    assert seeded.head() == head


def test_the_largest_line_value_is_valued_to_the_cent(seeded: Api) -> None:
    response = post_raw(seeded, "/receipts", raw_receipt('"1000"', '"999999999.999999"'))

    assert response.status_code == 201, response.text
    # 1000 × 999999999.999999 = 999999999999.999, within the 10^12 a line may be worth
    assert response.json()["lines"][0]["value"] == "1000000000000.00"


def test_a_line_worth_more_than_the_ledger_counts_is_refused(seeded: Api) -> None:
    head = seeded.head()
    response = post_raw(seeded, "/receipts", raw_receipt('"999999999.999"', '"999999999.999999"'))

    assert response.status_code == 422, response.text
    assert response.json()["code"] == "validation_error"
    assert response.json()["field"] == "lines[0]"
    assert seeded.head() == head


# Exponents beyond what Python's default decimal context can normalise (its exponent limit is
# about ±10**6): the checks must refuse them like any other out-of-range number, not crash with a
# 500 nor round them to zero and record them.

EXTREME = {
    "huge": ["1e1000000000", '"1e1000000000"', '"9.99e999999999"'],
    "tiny": ["1e-1000027", '"1e-1000027"', '"5E-2000000"'],
}
# Every entry point for a decimal: (method, path, body with {} where the number goes).
DECIMAL_FIELDS = {
    "receipt quantity": ("POST", "/receipts", '{"location": "SZ-WH3", "lines": [{"sku": "INK-9", '
                                              '"quantity": {}, "unit_cost": 1}]}'),
    "receipt unit_cost": ("POST", "/receipts", '{"location": "SZ-WH3", "lines": [{"sku": "INK-9", '
                                               '"quantity": 1, "unit_cost": {}}]}'),
    "dispatch quantity": ("POST", "/dispatches", '{"location": "SZ-WH3", "lines": '
                                                 '[{"sku": "INK-9", "quantity": {}}]}'),
    "transfer quantity": ("POST", "/transfers", '{"from_location": "SZ-WH3", "to_location": '
                                                '"SH-WH1", "lines": [{"sku": "INK-9", '
                                                '"quantity": {}}]}'),
    "count counted_quantity": ("POST", "/adjustments", '{"location": "SZ-WH3", "reason": "count",'
                                                       ' "lines": [{"sku": "INK-9", '
                                                       '"counted_quantity": {}}]}'),
    "count unit_cost": ("POST", "/adjustments", '{"location": "SZ-WH3", "reason": "count", '
                                                '"lines": [{"sku": "INK-9", "counted_quantity": 1,'
                                                ' "unit_cost": {}}]}'),
    "item reorder_point": ("PUT", "/items/BOLT-1", '{"name": "Bolt", "uom": "ea", '
                                                   '"valuation_method": "fifo", '
                                                   '"reorder_point": {}}'),
}


@pytest.mark.parametrize("size", list(EXTREME))
def test_a_decimal_with_an_extreme_exponent_is_refused_everywhere(seeded: Api, size: str) -> None:
    seeded.receive(WAREHOUSE, (FIFO_SKU, "5", "2"))
    head = seeded.head()
    client = seeded.without_raising()
    outcomes = []
    for name, (method, path, template) in DECIMAL_FIELDS.items():
        for number in EXTREME[size]:
            content = template.replace("{}", number).encode()
            response = client.request(method, path, content=content, headers=JSON)
            refused = (response.status_code == 422
                       and response.headers["content-type"].startswith(PROBLEM_JSON)
                       and response.json()["code"] == "validation_error")
            if not refused:
                outcomes.append(f"{method} {path} {name}={number}: {response.status_code} "
                                f"{response.text[:160]}")

    assert not outcomes, "\n".join(outcomes)
    assert seeded.head() == head
