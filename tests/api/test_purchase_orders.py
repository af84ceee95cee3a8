"""Purchase orders over HTTP: every route, every refusal as problem+json, reads by position.

Money is worked out by hand in the comments: amount = round(quantity × price, 2) per line,
tax = round(amount × rate, 2) per line, half up. Reads pass the position of the command they
follow as `min_position`.
"""

from __future__ import annotations

from decimal import Decimal
from uuid import uuid4

import pytest
from api_support import (
    ADMIN,
    AUDITOR,
    AVERAGE_SKU,
    FIFO_SKU,
    FINANCE,
    STORE,
    WAREHOUSE,
    Api,
    Body,
    assert_problem,
    seed,
    serving,
)
from purchase_support import (
    CUSTOMER,
    OTHER_SUPPLIER,
    STEPS,
    SUPPLIER,
    approved,
    create,
    figures,
    invoice,
    list_orders,
    order_body,
    pay,
    post_step,
    quantities,
    read_order,
    receive,
    register_parties,
    return_goods,
    step,
)

from ledger.domain.identity import item_id

FIFO_LINE = (FIFO_SKU, WAREHOUSE, "10", "4.20")
AVERAGE_LINE = (AVERAGE_SKU, STORE, "5", "2.5")
# A body each step accepts in shape, so that what is refused is the step, not the body.
BODIES = {
    "approve": None, "reject": {"reason": "too dear"}, "cancel": None, "close": None,
    "receipts": quantities((1, "1")), "returns": quantities((1, "1"), reason="damaged"),
    "invoice": {"invoice_number": "INV-9", "lines": [{"line_number": 1, "quantity": "1"}]},
    "payments": {"amount": "1.00"},
}


@pytest.fixture
def buying(seeded: Api) -> Api:
    register_parties(seeded)
    return seeded


# Creating and reading.


def test_a_new_order_waits_for_review_and_reads_back_with_its_lines(buying: Api) -> None:
    created = create(buying, SUPPLIER, FIFO_LINE, AVERAGE_LINE, reference="PO-2025-001",
                     note="spring tea")

    assert set(created) == {"document_id", "position", "order_id", "status"}
    assert created["status"] == "pending_review"
    assert created["order_id"] == created["document_id"]
    assert created["position"] == buying.head()
    order = read_order(buying, created["order_id"], created["position"])
    assert order == {
        "order_id": created["order_id"], "supplier": SUPPLIER, "status": "pending_review",
        "reference": "PO-2025-001", "invoiced_total": "0.00", "paid": "0.00",
        "outstanding": "0.00", "version": 1, "lines": [
            {"line_number": 1, "sku": FIFO_SKU, "location": WAREHOUSE, "quantity": "10.000",
             "unit_price": "4.200000", "received": "0.000", "returned": "0.000",
             "invoiced": "0.000"},
            {"line_number": 2, "sku": AVERAGE_SKU, "location": STORE, "quantity": "5.000",
             "unit_price": "2.500000", "received": "0.000", "returned": "0.000",
             "invoiced": "0.000"}]}


@pytest.mark.parametrize(("body", "status", "code"), [
    (order_body("NOBODY", FIFO_LINE), 422, "unknown_party"),
    (order_body(CUSTOMER, FIFO_LINE), 422, "validation_error"),
    (order_body(SUPPLIER, FIFO_LINE, ("NO-SKU", WAREHOUSE, "1", "1")), 422, "unknown_item"),
    (order_body(SUPPLIER, (FIFO_SKU, "NO-WH", "1", "1")), 422, "unknown_location"),
    (order_body(SUPPLIER, (FIFO_SKU, WAREHOUSE, "0", "1")), 422, "validation_error"),
    (order_body(SUPPLIER, (FIFO_SKU, WAREHOUSE, "1.0001", "1")), 422, "validation_error"),
    (order_body(SUPPLIER, (FIFO_SKU, WAREHOUSE, "1", "-0.01")), 422, "validation_error"),
    (order_body(SUPPLIER), 422, "validation_error"),
    (order_body(SUPPLIER, FIFO_LINE, colour="red"), 422, "validation_error"),
], ids=["unknown supplier", "customer only", "unknown sku", "unknown location",
        "zero quantity", "4 places", "negative price", "no lines", "unknown field"])
def test_a_bad_order_is_refused_and_nothing_is_recorded(buying: Api, body: dict[str, object],
                                                      status: int, code: str) -> None:
    head = buying.head()

    problem = assert_problem(buying.post("/purchase-orders", body), status, code)

    if body["supplier"] == CUSTOMER:
        assert problem["field"] == "supplier"
    assert buying.head() == head


# Review.


def test_review_approves_once_and_a_rejection_needs_a_reason(buying: Api) -> None:
    first = create(buying, SUPPLIER, FIFO_LINE)["order_id"]
    second = create(buying, SUPPLIER, FIFO_LINE)["order_id"]

    assert step(buying, first, "approve")["status"] == "approved"
    again = assert_problem(post_step(buying, first, "approve"), 409, "invalid_transition")
    assert (again["order_id"], again["order_status"], again["action"]) == (first, "approved",
                                                                           "approve")
    assert_problem(post_step(buying, first, "reject", {"reason": "late"}), 409,
                   "invalid_transition")
    problem = assert_problem(post_step(buying, second, "reject", {}), 422, "validation_error")
    assert problem["field"] == "reason"
    rejected = step(buying, second, "reject", {"reason": "price too high"})

    assert rejected["status"] == "rejected"
    assert read_order(buying, second, rejected["position"])["status"] == "rejected"
    assert_problem(post_step(buying, second, "approve"), 409, "invalid_transition")


# Receipts.


def test_a_receipt_puts_stock_in_at_the_order_price_linked_to_the_order(buying: Api) -> None:
    order_id = create(buying, SUPPLIER, FIFO_LINE, AVERAGE_LINE)["order_id"]
    early = assert_problem(post_step(buying, order_id, "receipts", quantities((1, "1"))), 409,
                           "invalid_transition")
    assert (early["order_status"], early["action"]) == ("pending_review", "receive")
    step(buying, order_id, "approve")

    received = receive(buying, order_id, (2, "2"), (1, "4"))

    # 2 × 2.50 = 5.00 and 4 × 4.20 = 16.80, each into its own bin.
    assert received["status"] == "partially_received"
    assert received["lines"] == [
        {"sku": AVERAGE_SKU, "location": STORE, "quantity": "2.000", "unit_cost": "2.500000",
         "value": "5.00", "quantity_on_hand_after": "2.000", "value_after": "5.00"},
        {"sku": FIFO_SKU, "location": WAREHOUSE, "quantity": "4.000", "unit_cost": "4.200000",
         "value": "16.80", "quantity_on_hand_after": "4.000", "value_after": "16.80"}]
    events = buying.get("/events", key=AUDITOR, type="StockBin.Received",
                        min_position=received["position"]).json()["items"]
    assert [(e["data"]["order_id"], e["data"]["order_line"], e["data"]["sku"])
            for e in events] == [(order_id, 2, AVERAGE_SKU), (order_id, 1, FIFO_SKU)]
    order = read_order(buying, order_id, received["position"])
    assert figures(order) == [("4.000", "0.000", "0.000"), ("2.000", "0.000", "0.000")]
    done = receive(buying, order_id, (1, "6"), (2, "3"))
    assert done["status"] == "received"


def test_receiving_more_than_ordered_is_refused_as_over_receipt(buying: Api) -> None:
    order_id = approved(buying, SUPPLIER, FIFO_LINE, AVERAGE_LINE)
    receive(buying, order_id, (1, "6"))
    head = buying.head()

    problem = assert_problem(post_step(buying, order_id, "receipts",
                                       quantities((2, "5"), (1, "4.001"))), 409, "over_receipt")

    assert (problem["order_id"], problem["line_number"]) == (order_id, 1)
    assert "4.000" in problem["detail"]
    assert buying.head() == head
    assert buying.available(FIFO_SKU, WAREHOUSE) == Decimal("6")


@pytest.mark.parametrize(("body", "field"), [
    (quantities((3, "1")), "lines"),
    (quantities((1, "1"), (1, "1")), "lines"),
    (quantities((1, "0")), "lines[0].quantity"),
    (quantities((0, "1")), None),
    ({"lines": []}, None),
])
def test_receipt_lines_must_name_order_lines_once_with_a_quantity(
        buying: Api, body: dict[str, object], field: str | None) -> None:
    order_id = approved(buying, SUPPLIER, FIFO_LINE, AVERAGE_LINE)

    problem = assert_problem(post_step(buying, order_id, "receipts", body), 422,
                             "validation_error")

    if field is not None:
        assert problem["field"] == field


def test_the_over_receipt_tolerance_setting_allows_a_fraction_more(sqlite_url: str) -> None:
    with serving(sqlite_url, over_receipt_tolerance=Decimal("0.1")) as api:
        seed(api)
        register_parties(api)
        order_id = approved(api, SUPPLIER, FIFO_LINE)

        # 10 ordered, 10 % more allowed: 11 in all, then not a unit more.
        assert receive(api, order_id, (1, "11"))["status"] == "received"
        assert_problem(post_step(api, order_id, "receipts", quantities((1, "0.001"))), 409,
                       "over_receipt")


def test_a_receipt_repeated_with_its_idempotency_key_is_answered_again_not_recorded(
        buying: Api) -> None:
    order_id = approved(buying, SUPPLIER, FIFO_LINE)
    first = post_step(buying, order_id, "receipts", quantities((1, "4")),
                      idempotency_key="grn-0001")
    head = buying.head()

    again = post_step(buying, order_id, "receipts", quantities((1, "4.000")),
                      idempotency_key="grn-0001")
    other = post_step(buying, order_id, "receipts", quantities((1, "5")),
                      idempotency_key="grn-0001")

    assert first.status_code == again.status_code == 201
    assert again.json() == first.json()
    assert again.headers["idempotent-replayed"] == "true"
    assert "idempotent-replayed" not in first.headers
    assert_problem(other, 409, "idempotency_conflict")
    assert buying.head() == head
    assert figures(read_order(buying, order_id, head)) == [("4.000", "0.000", "0.000")]
    assert buying.available(FIFO_SKU, WAREHOUSE) == Decimal("4")


# Returns.


def test_a_fifo_return_takes_the_receipt_cost_layer_and_leaves_the_older_one(
        buying: Api) -> None:
    buying.receive(WAREHOUSE, (FIFO_SKU, "10", "9.00"))
    order_id = approved(buying, SUPPLIER, FIFO_LINE)
    receive(buying, order_id, (1, "10"))
    assert_problem(post_step(buying, order_id, "returns", quantities((1, "3"))), 422,
                   "validation_error")

    returned = return_goods(buying, order_id, (1, "3"))

    # 3 × 4.20 = 12.60 out of 90.00 + 42.00: 119.40 left for 17.
    assert returned["lines"] == [
        {"sku": FIFO_SKU, "location": WAREHOUSE, "quantity": "3.000", "unit_cost": "4.200000",
         "value": "12.60", "quantity_on_hand_after": "17.000", "value_after": "119.40"}]
    # The oldest layer is still whole: 10 × 9.00 goes out first.
    assert buying.dispatch(WAREHOUSE, (FIFO_SKU, "10"))["lines"][0]["value"] == "90.00"
    over = assert_problem(post_step(buying, order_id, "returns",
                                    quantities((1, "7.001"), reason="damaged")), 409,
                          "over_return")
    assert over["line_number"] == 1
    order = read_order(buying, order_id, returned["position"])
    assert figures(order) == [("10.000", "3.000", "0.000")]


def test_a_moving_average_return_takes_quantity_times_receipt_cost_then_what_is_left(
        buying: Api) -> None:
    buying.receive(STORE, (AVERAGE_SKU, "10", "1.00"))
    order_id = approved(buying, SUPPLIER, (AVERAGE_SKU, STORE, "10", "3.00"))
    receive(buying, order_id, (1, "10"))

    # 10.00 + 30.00 for 20; 4 × 3.00 = 12.00 back to the supplier: 28.00 for 16 (1.75 each).
    first = return_goods(buying, order_id, (1, "4"))["lines"][0]
    # 10 sold at 1.75 = 17.50 leaves 6 worth 10.50; returning them takes the 10.50 left.
    sold = buying.dispatch(STORE, (AVERAGE_SKU, "10"))["lines"][0]
    last = return_goods(buying, order_id, (1, "6"))["lines"][0]

    assert (first["value"], first["quantity_on_hand_after"], first["value_after"]) == (
        "12.00", "16.000", "28.00")
    assert sold["value"] == "17.50"
    assert (last["value"], last["quantity_on_hand_after"], last["value_after"]) == (
        "10.50", "0.000", "0.00")


def test_a_return_of_stock_that_was_sold_is_refused_for_want_of_stock(buying: Api) -> None:
    order_id = approved(buying, SUPPLIER, FIFO_LINE)
    receive(buying, order_id, (1, "10"))
    buying.dispatch(WAREHOUSE, (FIFO_SKU, "8"))

    problem = assert_problem(post_step(buying, order_id, "returns",
                                       quantities((1, "3"), reason="damaged")), 409,
                             "insufficient_stock")

    assert (problem["requested"], problem["available"]) == ("3.000", "2.000")


# Invoices and payments.


def test_an_invoice_bills_what_was_received_with_tax_per_line(buying: Api) -> None:
    order_id = approved(buying, SUPPLIER, FIFO_LINE, AVERAGE_LINE)
    early = post_step(buying, order_id, "invoice", BODIES["invoice"])
    assert_problem(early, 409, "invalid_transition")
    receive(buying, order_id, (1, "10"), (2, "5"))

    billed = invoice(buying, order_id,
                     {"line_number": 1, "quantity": "3", "tax_rate": "0.13"},
                     {"line_number": 2, "quantity": "5", "unit_price": "2.675",
                      "tax_rate": "0.05"})

    # 3 × 4.20 = 12.60, tax 1.638 → 1.64; 5 × 2.675 = 13.375 → 13.38, tax 0.669 → 0.67.
    assert (billed["status"], billed["outstanding"]) == ("invoiced", "28.29")
    order = read_order(buying, order_id, billed["position"])
    assert (order["invoiced_total"], order["paid"], order["outstanding"]) == (
        "28.29", "0.00", "28.29")
    assert figures(order) == [("10.000", "0.000", "3.000"), ("5.000", "0.000", "5.000")]
    over = post_step(buying, order_id, "invoice", {"invoice_number": "INV-2", "lines": [
        {"line_number": 1, "quantity": "7.001"}]})
    assert assert_problem(over, 409, "over_invoice")["line_number"] == 1


@pytest.mark.parametrize("line", [
    {"line_number": 1, "quantity": "1", "tax_rate": "1.5"},
    {"line_number": 1, "quantity": "1", "tax_rate": "-0.1"},
    {"line_number": 1, "quantity": "1", "unit_price": "-1"},
    {"line_number": 1, "quantity": "-1"},
    {"line_number": 4, "quantity": "1"},
])
def test_bad_invoice_lines_are_invalid_input(buying: Api, line: dict[str, str]) -> None:
    order_id = approved(buying, SUPPLIER, FIFO_LINE)
    receive(buying, order_id, (1, "10"))

    response = post_step(buying, order_id, "invoice", {"invoice_number": "INV-1",
                                                        "lines": [line]})

    assert_problem(response, 422, "validation_error")


def test_an_invoice_naming_a_line_twice_cannot_bill_more_than_was_received(
        buying: Api) -> None:
    order_id = approved(buying, SUPPLIER, FIFO_LINE)
    received = receive(buying, order_id, (1, "10"))

    response = post_step(buying, order_id, "invoice", {"invoice_number": "INV-1", "lines": [
        {"line_number": 1, "quantity": "6"}, {"line_number": 1, "quantity": "6"}]})

    assert assert_problem(response, 422, "validation_error")["field"] == "lines"
    assert figures(read_order(buying, order_id, received["position"])) == [
        ("10.000", "0.000", "0.000")]


def test_payments_settle_the_invoice_and_never_more(buying: Api) -> None:
    order_id = approved(buying, SUPPLIER, FIFO_LINE)
    receive(buying, order_id, (1, "10"))
    invoice(buying, order_id, {"line_number": 1, "quantity": "10", "tax_rate": "0.13"})
    # 10 × 4.20 = 42.00, tax 5.46: 47.46 owed.

    for amount in ("0", "-1", "1.001", "abc"):
        assert_problem(post_step(buying, order_id, "payments", {"amount": amount}), 422,
                       "validation_error")
    over = assert_problem(post_step(buying, order_id, "payments", {"amount": "47.47"}), 409,
                          "over_payment")
    part = pay(buying, order_id, "40")
    rest = pay(buying, order_id, "7.46")

    assert over["order_id"] == order_id and "line_number" not in over
    assert (part["status"], part["outstanding"]) == ("invoiced", "7.46")
    assert (rest["status"], rest["outstanding"]) == ("paid", "0.00")
    order = read_order(buying, order_id, rest["position"])
    assert (order["status"], order["invoiced_total"], order["paid"], order["outstanding"]) == (
        "paid", "47.46", "47.46", "0.00")
    assert_problem(post_step(buying, order_id, "payments", {"amount": "0.01"}), 409,
                   "invalid_transition")


# Cancelling and closing.


def test_after_cancelling_every_step_is_an_invalid_transition(buying: Api) -> None:
    order_id = approved(buying, SUPPLIER, FIFO_LINE)
    receive(buying, order_id, (1, "2"))
    cancelled = step(buying, order_id, "cancel", {"reason": "supplier out of stock"})
    head = buying.head()

    for name in STEPS:
        problem = assert_problem(post_step(buying, order_id, name, BODIES[name]), 409,
                                 "invalid_transition")
        assert problem["order_status"] == "cancelled", name

    assert cancelled["status"] == "cancelled"
    assert buying.head() == head
    assert read_order(buying, order_id, head)["status"] == "cancelled"


def test_a_received_order_cannot_be_cancelled_but_can_be_closed(buying: Api) -> None:
    pending = create(buying, SUPPLIER, FIFO_LINE)["order_id"]
    order_id = approved(buying, SUPPLIER, FIFO_LINE)
    receive(buying, order_id, (1, "10"))

    refused = assert_problem(post_step(buying, order_id, "cancel"), 409, "invalid_transition")
    closed = step(buying, order_id, "close")

    assert (refused["order_status"], refused["action"]) == ("received", "cancel")
    assert closed["status"] == "closed"
    assert_problem(post_step(buying, pending, "close"), 409, "invalid_transition")
    assert_problem(post_step(buying, order_id, "receipts", BODIES["receipts"]), 409,
                   "invalid_transition")
    assert read_order(buying, order_id, closed["position"])["status"] == "closed"


# Unknown orders.


@pytest.mark.parametrize("order_id", [str(uuid4()), str(item_id("INK-9"))],
                         ids=["random id", "an item's id"])
def test_an_unknown_order_is_404_on_every_route(buying: Api, order_id: str) -> None:
    for name in STEPS:
        problem = assert_problem(post_step(buying, order_id, name, BODIES[name]), 404,
                                 "unknown_order")
        assert problem["order_id"] == order_id
    response = buying.get(f"/purchase-orders/{order_id}", key=AUDITOR)
    assert assert_problem(response, 404, "unknown_order")["order_id"] == order_id
    assert_problem(buying.get("/purchase-orders/not-a-uuid"), 422, "validation_error")


# Lists.


def test_orders_list_by_status_and_supplier_a_page_at_a_time(buying: Api) -> None:
    tea = [create(buying, SUPPLIER, FIFO_LINE)["order_id"] for _ in range(3)]
    ink = [create(buying, OTHER_SUPPLIER, AVERAGE_LINE)["order_id"] for _ in range(2)]
    step(buying, tea[1], "approve")
    last = step(buying, ink[1], "approve")["position"]

    def ids(page: Body) -> list[str]:
        return [order["order_id"] for order in page["items"]]

    everything = list_orders(buying, min_position=last)
    assert ids(everything) == tea + ink
    assert everything["position"] >= last and everything["next_cursor"] is None
    assert ids(list_orders(buying, status="approved")) == [tea[1], ink[1]]
    assert ids(list_orders(buying, supplier=OTHER_SUPPLIER)) == ink
    assert ids(list_orders(buying, supplier=SUPPLIER, status="pending_review")) == [tea[0],
                                                                                   tea[2]]
    assert ids(list_orders(buying, status="paid")) == []
    walked, cursor, pages = [], None, 0
    while True:
        page = list_orders(buying, limit=2, **({"cursor": cursor} if cursor else {}))
        walked += ids(page)
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert (walked, pages) == (tea + ink, 3)
    tea_pages = list_orders(buying, supplier=SUPPLIER, limit=2)
    assert ids(list_orders(buying, supplier=SUPPLIER, limit=2,
                           cursor=tea_pages["next_cursor"])) == [tea[2]]


@pytest.mark.parametrize("params", [{"status": "lost"}, {"supplier": "bad code!"},
                                    {"limit": 0}, {"limit": 201}, {"cursor": "nonsense"},
                                    {"min_position": -1}])
def test_bad_list_queries_are_invalid_input(buying: Api, params: dict[str, object]) -> None:
    assert_problem(buying.get("/purchase-orders", key=AUDITOR, **params), 422,
                   "validation_error")


# Who may do what.


@pytest.mark.parametrize("key", [AUDITOR, FINANCE])
def test_auditors_and_finance_read_orders_but_cannot_post(buying: Api, key: str) -> None:
    order_id = approved(buying, SUPPLIER, FIFO_LINE)
    head = buying.head()

    denied = buying.post("/purchase-orders", order_body(SUPPLIER, FIFO_LINE), key=key)
    assert assert_problem(denied, 403, "forbidden")["role"] in ("auditor", "finance")
    for name in STEPS:
        assert_problem(post_step(buying, order_id, name, BODIES[name], key=key), 403,
                       "forbidden")

    assert buying.head() == head
    assert read_order(buying, order_id, head, key=key)["status"] == "approved"
    assert list_orders(buying)["items"][0]["order_id"] == order_id


def test_without_a_key_every_route_is_401(buying: Api) -> None:
    order_id = str(uuid4())
    client = buying.client
    assert_problem(client.post("/purchase-orders", json=order_body(SUPPLIER, FIFO_LINE)), 401,
                   "unauthorized")
    for name in STEPS:
        assert_problem(client.post(f"/purchase-orders/{order_id}/{name}", json=BODIES[name]),
                       401, "unauthorized")
    assert_problem(client.get("/purchase-orders"), 401, "unauthorized")
    assert_problem(client.get(f"/purchase-orders/{order_id}"), 401, "unauthorized")


def test_the_admin_key_may_post(buying: Api) -> None:
    created = buying.post("/purchase-orders", order_body(SUPPLIER, FIFO_LINE), key=ADMIN)
    assert created.status_code == 201, created.text


# The main flow, on SQLite and on PostgreSQL.


def test_the_purchasing_flow_end_to_end(database_url: str) -> None:
    with serving(database_url) as api:
        seed(api)
        register_parties(api)
        api.receive(WAREHOUSE, (FIFO_SKU, "5", "9.00"))
        order_id = create(api, SUPPLIER, FIFO_LINE, AVERAGE_LINE,
                          reference="PO-1")["order_id"]
        step(api, order_id, "approve", {"reason": "prices checked"})
        receive(api, order_id, (1, "6"))
        received = receive(api, order_id, (1, "4"), (2, "5"))
        returned = return_goods(api, order_id, (1, "2"))
        # Line 1: 8 × 4.20 = 33.60, tax 4.368 → 4.37; line 2: 5 × 2.50 = 12.50, no tax.
        billed = invoice(api, order_id, {"line_number": 1, "quantity": "8", "tax_rate": "0.13"},
                         {"line_number": 2, "quantity": "5"})
        paid = pay(api, order_id, "50.47")
        closed = step(api, order_id, "close")

        assert received["status"] == "received"
        # 2 × 4.20 back; the 5 at 9.00 stay: 45.00 + 42.00 − 8.40 = 78.60.
        assert (returned["lines"][0]["value"], returned["lines"][0]["value_after"]) == (
            "8.40", "78.60")
        assert (billed["outstanding"], paid["status"], closed["status"]) == ("50.47", "paid",
                                                                             "closed")
        order = read_order(api, order_id, closed["position"])
        assert figures(order) == [("10.000", "2.000", "8.000"), ("5.000", "0.000", "5.000")]
        assert (order["status"], order["invoiced_total"], order["paid"], order["version"]) == (
            "closed", "50.47", "50.47", 8)
        assert list_orders(api, status="closed", min_position=closed["position"])[
            "items"][0]["order_id"] == order_id
