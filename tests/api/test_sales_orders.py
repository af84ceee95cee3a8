"""Sales orders over HTTP: every route, every refusal as problem+json, reads by position.

Money is worked out by hand in the comments: amount = round(quantity × price, 2) per line,
tax = round(amount × rate, 2) per line, half up. Stock goes out at cost (FIFO layers or the
moving average) and comes back from a customer at the cost it went out at. Reads pass the
position of the command they follow as `min_position`.
"""

from __future__ import annotations

from collections.abc import Iterator
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
from sales_support import (
    BODIES,
    COUNT_SHORTFALL,
    CREDIT_CUSTOMER,
    CUSTOMER,
    OTHER_CUSTOMER,
    STEPS,
    SUPPLIER,
    approved,
    deliver,
    delivered,
    dispatch,
    events,
    figures,
    ids,
    invoice,
    line_view,
    list_orders,
    order_body,
    pay,
    place,
    post_step,
    quantities,
    read_order,
    register_parties,
    reservations,
    reserved,
    return_goods,
    ship,
    step,
    stock_level,
)

from ledger.domain.identity import item_id

FIFO_LINE = (FIFO_SKU, WAREHOUSE, "10", "9.50")
AVERAGE_LINE = (AVERAGE_SKU, STORE, "4", "3.20")
# How long a read waits for the read models: long enough for a healthy runner, short enough
# that a read model which stopped fails a test in seconds, not minutes.
READ_WAIT_SECONDS = 2
SIGNED_AT = "2025-03-01T10:30:00+08:00"


@pytest.fixture
def selling(sqlite_url: str) -> Iterator[Api]:
    with serving(sqlite_url, read_wait_seconds=READ_WAIT_SECONDS) as api:
        seed(api)
        register_parties(api)
        yield api


# Placing.


def test_a_new_order_waits_for_review_and_reads_back_with_its_lines(selling: Api) -> None:
    placed = place(selling, CUSTOMER, FIFO_LINE, (AVERAGE_SKU, STORE, "4", None),
                   reference="SO-2025-001", note="spring promotion")

    assert set(placed) == {"document_id", "position", "order_id", "status", "outstanding",
                           "possible_duplicate_of"}
    assert (placed["status"], placed["outstanding"], placed["possible_duplicate_of"]) == (
        "pending_review", "0.00", [])
    assert placed["order_id"] == placed["document_id"]
    assert placed["position"] == selling.head()
    order = read_order(selling, placed["order_id"], placed["position"])
    timeline = order.pop("timeline")
    placed_at = order.pop("placed_at")
    assert order == {
        "order_id": placed["order_id"], "customer": CUSTOMER, "status": "pending_review",
        "reference": "SO-2025-001", "note": "spring promotion", "possible_duplicate_of": [],
        "invoiced_total": "0.00", "credited_total": "0.00", "paid": "0.00",
        "outstanding": "0.00", "version": 1, "lines": [
            line_view(1, FIFO_SKU, WAREHOUSE, "10.000", "9.500000"),
            line_view(2, AVERAGE_SKU, STORE, "4.000", None)]}
    [moment] = timeline
    assert (moment["event"], moment["recorded_at"]) == ("Placed", placed_at)
    assert moment["actor"].startswith("operations")
    assert 0 < moment["position"] <= placed["position"]


@pytest.mark.parametrize(("body", "status", "code"), [
    (order_body("NOBODY", FIFO_LINE), 422, "unknown_party"),
    (order_body(SUPPLIER, FIFO_LINE), 422, "validation_error"),
    (order_body("bad code!", FIFO_LINE), 422, "validation_error"),
    (order_body(CUSTOMER, FIFO_LINE, ("NO-SKU", WAREHOUSE, "1", "1")), 422, "unknown_item"),
    (order_body(CUSTOMER, (FIFO_SKU, "NO-WH", "1", "1")), 422, "unknown_location"),
    (order_body(CUSTOMER, (FIFO_SKU, WAREHOUSE, "0", "1")), 422, "validation_error"),
    (order_body(CUSTOMER, (FIFO_SKU, WAREHOUSE, "1.0001", "1")), 422, "validation_error"),
    (order_body(CUSTOMER, (FIFO_SKU, WAREHOUSE, "ten", "1")), 422, "validation_error"),
    (order_body(CUSTOMER, (FIFO_SKU, WAREHOUSE, "1", "-0.01")), 422, "validation_error"),
    (order_body(CUSTOMER, (FIFO_SKU, WAREHOUSE, "1", "0.0000001")), 422, "validation_error"),
    (order_body(CUSTOMER), 422, "validation_error"),
    (order_body(CUSTOMER, FIFO_LINE, colour="red"), 422, "validation_error"),
    ({"customer": CUSTOMER, "lines": [{"sku": FIFO_SKU, "location": WAREHOUSE,
                                       "quantity": "1", "colour": "red"}]},
     422, "validation_error"),
], ids=["unknown customer", "supplier only", "bad code", "unknown sku", "unknown location",
        "zero quantity", "4 places", "words", "negative price", "7 places price", "no lines",
        "unknown field", "unknown line field"])
def test_a_bad_order_is_refused_and_nothing_is_recorded(selling: Api, body: Body, status: int,
                                                      code: str) -> None:
    head = selling.head()

    problem = assert_problem(selling.post("/sales-orders", body), status, code)

    if body["customer"] == SUPPLIER:
        assert problem["field"] == "customer"
    assert selling.head() == head


# Review.


def test_approval_reserves_the_stock_and_an_order_is_reviewed_once(selling: Api) -> None:
    selling.receive(WAREHOUSE, (FIFO_SKU, "15", "4.20"))
    order_id = place(selling, CUSTOMER, FIFO_LINE)["order_id"]

    approval = step(selling, order_id, "approve", {"reason": "regular customer"})

    assert (approval["status"], approval["outstanding"]) == ("approved", "0.00")
    assert approval["reservations"] == [
        {"line_number": 1, "sku": FIFO_SKU, "location": WAREHOUSE, "reserved_now": "10.000",
         "reserved": "10.000", "short": "0.000"}]
    again = assert_problem(post_step(selling, order_id, "approve"), 409, "invalid_transition")
    assert (again["order_id"], again["order_status"], again["action"]) == (
        order_id, "approved", "approve")
    assert_problem(post_step(selling, order_id, "reject", {"reason": "late"}), 409,
                   "invalid_transition")
    level = stock_level(selling, FIFO_SKU, WAREHOUSE, approval["position"])
    assert reserved(level) == ("15.000", "10.000", "5.000")
    # Stock reserved for the order is not there for a plain dispatch.
    plain = selling.post("/dispatches", {"location": WAREHOUSE,
                                         "lines": [{"sku": FIFO_SKU, "quantity": "6"}]})
    problem = assert_problem(plain, 409, "insufficient_stock")
    assert (problem["requested"], problem["available"]) == ("6.000", "5.000")


def test_a_rejection_needs_a_reason_and_a_rejected_order_takes_no_further_step(
        selling: Api) -> None:
    order_id = place(selling, CUSTOMER, FIFO_LINE)["order_id"]
    problem = assert_problem(post_step(selling, order_id, "reject", {}), 422,
                             "validation_error")
    assert problem["field"] == "reason"
    assert_problem(post_step(selling, order_id, "reject"), 422, "validation_error")

    rejected = step(selling, order_id, "reject", {"reason": "customer on credit hold"})
    head = selling.head()

    assert rejected["status"] == "rejected"
    for name in STEPS:
        refused = assert_problem(post_step(selling, order_id, name, BODIES[name]), 409,
                                 "invalid_transition")
        assert refused["order_status"] == "rejected", name
    assert selling.head() == head
    order = read_order(selling, order_id, head)
    assert order["status"] == "rejected"
    assert figures(order, "approved", "backordered") == [("0.000", "0.000")]
    assert events(order) == ["Placed", "Reviewed"]
    review = order["timeline"][1]
    assert (review["approved"], review["reason"]) == (False, "customer on credit hold")


def test_an_order_with_an_unpriced_line_cannot_be_approved(selling: Api) -> None:
    order_id = place(selling, CUSTOMER, FIFO_LINE, (AVERAGE_SKU, STORE, "4", None))["order_id"]
    head = selling.head()

    problem = assert_problem(post_step(selling, order_id, "approve"), 409, "missing_price")

    assert (problem["order_id"], problem["line_numbers"]) == (order_id, [2])
    assert selling.head() == head
    assert step(selling, order_id, "reject", {"reason": "no price"})["status"] == "rejected"


def test_a_likely_duplicate_is_flagged_and_approved_only_when_confirmed(selling: Api) -> None:
    first = place(selling, CUSTOMER, FIFO_LINE, AVERAGE_LINE)["order_id"]
    # The same lines in another order, the numbers written otherwise.
    same = place(selling, CUSTOMER, (AVERAGE_SKU, STORE, "4.0", "3.2"),
                 (FIFO_SKU, WAREHOUSE, "10.000", "9.5"))
    dearer = place(selling, CUSTOMER, (FIFO_SKU, WAREHOUSE, "10", "9.51"), AVERAGE_LINE)
    elsewhere = place(selling, OTHER_CUSTOMER, FIFO_LINE, AVERAGE_LINE)
    third = place(selling, CUSTOMER, FIFO_LINE, AVERAGE_LINE)
    head = selling.head()

    assert same["possible_duplicate_of"] == [first]
    assert dearer["possible_duplicate_of"] == elsewhere["possible_duplicate_of"] == []
    assert third["possible_duplicate_of"] == [first, same["order_id"]]
    problem = assert_problem(post_step(selling, same["order_id"], "approve"), 409,
                             "possible_duplicate")
    assert (problem["order_id"], problem["possible_duplicate_of"]) == (same["order_id"], [first])
    assert_problem(post_step(selling, same["order_id"], "approve",
                             {"confirm_duplicate": False}), 409, "possible_duplicate")
    assert selling.head() == head
    confirmed = step(selling, same["order_id"], "approve", {"confirm_duplicate": True})
    # Nothing is in stock: approved, and every unit back-ordered.
    assert confirmed["status"] == "backordered"
    assert step(selling, first, "approve")["status"] == "backordered"
    order = read_order(selling, same["order_id"], confirmed["position"])
    assert order["possible_duplicate_of"] == [first]
    review = order["timeline"][1]
    assert (review["event"], review["approved"], review["duplicate_confirmed"]) == (
        "Reviewed", True, True)


def test_the_duplicate_window_setting_bounds_how_far_back_orders_are_compared(
        sqlite_url: str) -> None:
    with serving(sqlite_url, duplicate_order_window_seconds=0,
                 read_wait_seconds=READ_WAIT_SECONDS) as api:
        seed(api)
        register_parties(api)
        place(api, CUSTOMER, FIFO_LINE)

        again = place(api, CUSTOMER, FIFO_LINE)

        assert again["possible_duplicate_of"] == []
        assert step(api, again["order_id"], "approve")["status"] == "backordered"


def test_an_order_of_a_party_no_longer_a_customer_cannot_be_approved(selling: Api) -> None:
    order_id = place(selling, OTHER_CUSTOMER, FIFO_LINE)["order_id"]
    response = selling.put(f"/parties/{OTHER_CUSTOMER}",
                           {"name": f"Party {OTHER_CUSTOMER}", "roles": ["supplier"]})
    assert response.status_code == 200, response.text

    problem = assert_problem(post_step(selling, order_id, "approve"), 422, "validation_error")

    assert problem["field"] == "customer"


# Credit.


def test_approval_beyond_the_credit_limit_is_refused_with_the_facts(selling: Api) -> None:
    dear = place(selling, CREDIT_CUSTOMER, (FIFO_SKU, WAREHOUSE, "100", "10.01"))["order_id"]
    at_limit = place(selling, CREDIT_CUSTOMER, (AVERAGE_SKU, STORE, "100", "10"))["order_id"]
    head = selling.head()

    # 100 × 10.01 = 1001.00 against a limit of 1000.00; 100 × 10.00 is just within it.
    problem = assert_problem(post_step(selling, dear, "approve"), 409, "credit_limit_exceeded")

    assert {name: problem[name] for name in ("customer", "credit_limit", "exposure",
                                             "order_exposure")} == {
        "customer": CREDIT_CUSTOMER, "credit_limit": "1000.00", "exposure": "0.00",
        "order_exposure": "1001.00"}
    assert selling.head() == head
    assert step(selling, at_limit, "approve")["status"] == "backordered"


def test_a_second_order_exceeds_the_limit_once_the_first_is_approved_until_it_is_paid(
        selling: Api) -> None:
    selling.receive(WAREHOUSE, (FIFO_SKU, "10", "4.20"))
    first = place(selling, CREDIT_CUSTOMER, (FIFO_SKU, WAREHOUSE, "10", "60"))["order_id"]
    second = place(selling, CREDIT_CUSTOMER, (AVERAGE_SKU, STORE, "5", "100"))["order_id"]

    # A pending order counts for nothing: 600.00 of 1000.00.
    step(selling, first, "approve")
    refused = assert_problem(post_step(selling, second, "approve"), 409,
                             "credit_limit_exceeded")
    dispatch(selling, first)
    ship(selling, first)
    deliver(selling, first)
    # 10 × 60.00 = 600.00, tax 78.00: what was invoiced counts once it is more than ordered.
    invoice(selling, first, {"line_number": 1, "quantity": "10", "tax_rate": "0.13"})
    still = assert_problem(post_step(selling, second, "approve"), 409, "credit_limit_exceeded")
    paid = pay(selling, first, "200.00")
    # 678.00 − 200.00 = 478.00, and 478.00 + 500.00 ≤ 1000.00.
    approval = step(selling, second, "approve")

    assert (refused["exposure"], refused["order_exposure"]) == ("600.00", "500.00")
    assert (still["exposure"], still["order_exposure"]) == ("678.00", "500.00")
    assert (paid["status"], paid["outstanding"]) == ("partially_paid", "478.00")
    assert approval["status"] == "backordered"


def test_a_cancelled_order_frees_the_credit_it_took(selling: Api) -> None:
    first = approved(selling, CREDIT_CUSTOMER, (FIFO_SKU, WAREHOUSE, "10", "60"))
    second = place(selling, CREDIT_CUSTOMER, (AVERAGE_SKU, STORE, "5", "100"))["order_id"]
    assert_problem(post_step(selling, second, "approve"), 409, "credit_limit_exceeded")

    step(selling, first, "cancel")

    assert step(selling, second, "approve")["status"] == "backordered"


# Reserving.


def test_a_short_order_is_backordered_and_reserves_what_arrives_later(selling: Api) -> None:
    selling.receive(WAREHOUSE, (FIFO_SKU, "4", "4.20"))
    order_id = place(selling, CUSTOMER, FIFO_LINE, AVERAGE_LINE)["order_id"]
    early = assert_problem(post_step(selling, order_id, "reserve"), 409, "invalid_transition")
    assert (early["order_status"], early["action"]) == ("pending_review", "reserve")

    approval = step(selling, order_id, "approve")
    head = selling.head()
    retry = step(selling, order_id, "reserve")
    selling.receive(WAREHOUSE, (FIFO_SKU, "10", "5.00"))
    selling.receive(STORE, (AVERAGE_SKU, "3", "2.00"))
    later = step(selling, order_id, "reserve")

    assert approval["status"] == "backordered"
    assert reservations(approval) == [(1, "4.000", "4.000", "6.000"),
                                      (2, "0.000", "0.000", "4.000")]
    # Nothing could be reserved: nothing is recorded.
    assert (retry["status"], retry["position"]) == ("backordered", head)
    assert reservations(retry) == [(1, "0.000", "4.000", "6.000"),
                                   (2, "0.000", "0.000", "4.000")]
    assert later["status"] == "backordered"
    assert reservations(later) == [(1, "6.000", "10.000", "0.000"),
                                   (2, "3.000", "3.000", "1.000")]
    order = read_order(selling, order_id, later["position"])
    assert figures(order, "quantity", "approved", "reserved", "backordered") == [
        ("10.000", "10.000", "10.000", "0.000"), ("4.000", "4.000", "3.000", "1.000")]
    assert events(order) == ["Placed", "Reviewed", "Reserved", "Reserved"]
    assert reserved(stock_level(selling, FIFO_SKU, WAREHOUSE, later["position"])) == (
        "14.000", "10.000", "4.000")
    assert reserved(stock_level(selling, AVERAGE_SKU, STORE, later["position"])) == (
        "3.000", "3.000", "0.000")


def test_a_count_finding_less_than_is_reserved_releases_the_newest_reservations_first(
        selling: Api) -> None:
    selling.receive(WAREHOUSE, (FIFO_SKU, "10", "4.20"))
    older = approved(selling, CUSTOMER, (FIFO_SKU, WAREHOUSE, "6", "9.50"))
    newer = approved(selling, OTHER_CUSTOMER, (FIFO_SKU, WAREHOUSE, "4", "9.50"))

    # 10 reserved, 7 on the shelf: the newer order gives up 3 of its 4.
    counted = selling.count(WAREHOUSE, {"sku": FIFO_SKU, "counted_quantity": "7"})

    assert reserved(stock_level(selling, FIFO_SKU, WAREHOUSE, counted["position"])) == (
        "7.000", "7.000", "0.000")
    newer_order = read_order(selling, newer, counted["position"])
    older_order = read_order(selling, older, counted["position"])
    assert (newer_order["status"], older_order["status"]) == ("backordered", "approved")
    assert figures(newer_order, "reserved", "backordered") == [("1.000", "3.000")]
    assert figures(older_order, "reserved", "backordered") == [("6.000", "0.000")]
    release = newer_order["timeline"][-1]
    assert (release["event"], release["reason"], release["document_id"], release["lines"]) == (
        "ReservationsReleased", COUNT_SHORTFALL, counted["document_id"],
        [{"line_number": 1, "quantity": "3.000"}])
    assert events(older_order) == ["Placed", "Reviewed", "Reserved"]
    assert ids(list_orders(selling, status="backordered")) == [newer]

    # 5 on the shelf: the newer order's last unit goes, then 1 of the older order's.
    recount = selling.count(WAREHOUSE, {"sku": FIFO_SKU, "counted_quantity": "5"})

    assert reserved(stock_level(selling, FIFO_SKU, WAREHOUSE, recount["position"])) == (
        "5.000", "5.000", "0.000")
    newer_order = read_order(selling, newer, recount["position"])
    older_order = read_order(selling, older, recount["position"])
    assert (newer_order["status"], older_order["status"]) == ("backordered", "backordered")
    assert figures(newer_order, "reserved", "backordered") == [("0.000", "4.000")]
    assert figures(older_order, "reserved", "backordered") == [("5.000", "1.000")]


# Dispatching, shipping, delivering.


def test_only_reserved_stock_is_dispatched(selling: Api) -> None:
    pending = place(selling, CUSTOMER, FIFO_LINE)["order_id"]
    unapproved = assert_problem(post_step(selling, pending, "dispatch"), 409,
                                "invalid_transition")
    assert_problem(post_step(selling, pending, "dispatch", quantities((1, "1"))), 409,
                   "invalid_transition")
    order_id = approved(selling, CUSTOMER, (FIFO_SKU, WAREHOUSE, "8", "9.50"))
    nothing = assert_problem(post_step(selling, order_id, "dispatch"), 409,
                             "invalid_transition")
    selling.receive(WAREHOUSE, (FIFO_SKU, "6", "4.20"))
    step(selling, order_id, "reserve")
    head = selling.head()

    over = assert_problem(post_step(selling, order_id, "dispatch", quantities((1, "6.001"))),
                          409, "over_shipment")

    assert unapproved["order_status"] == "pending_review"
    assert nothing["order_status"] == "backordered"
    assert (over["order_id"], over["line_number"]) == (order_id, 1)
    assert "6.000" in over["detail"]
    for body in (quantities((2, "1")), quantities((1, "1"), (1, "1")),
                 quantities((1, "0")), quantities((1, "1.0001")), {"lines": []}):
        assert_problem(post_step(selling, order_id, "dispatch", body), 422, "validation_error")
    assert selling.head() == head
    assert selling.available(FIFO_SKU, WAREHOUSE).is_zero()


def test_shipping_and_delivery_take_what_the_step_before_left(selling: Api) -> None:
    selling.receive(WAREHOUSE, (FIFO_SKU, "10", "4.20"))
    order_id = approved(selling, CUSTOMER, FIFO_LINE)
    for name in ("ship", "deliver"):
        early = assert_problem(post_step(selling, order_id, name, BODIES[name]), 409,
                               "invalid_transition")
        assert (early["order_status"], early["action"]) == ("approved", name)

    part = dispatch(selling, order_id, (1, "4"))
    unshipped = assert_problem(post_step(selling, order_id, "deliver", BODIES["deliver"]), 409,
                               "invalid_transition")
    first = ship(selling, order_id, "SF Express", "SF100")
    twice = assert_problem(post_step(selling, order_id, "ship", BODIES["ship"]), 409,
                           "invalid_transition")
    rest = dispatch(selling, order_id)
    second = ship(selling, order_id, "ZTO Express", "ZTO200")
    signed = deliver(selling, order_id, "Wang Fang", signed_at=SIGNED_AT)

    assert (part["status"], unshipped["order_status"]) == ("partially_dispatched",
                                                           "partially_dispatched")
    assert (first["status"], twice["action"]) == ("partially_dispatched", "ship")
    assert (rest["status"], second["status"], signed["status"]) == (
        "dispatched", "shipped", "delivered")
    assert_problem(post_step(selling, order_id, "deliver", BODIES["deliver"]), 409,
                   "invalid_transition")
    order = read_order(selling, order_id, signed["position"])
    assert figures(order, "dispatched", "shipped", "delivered", "reserved") == [
        ("10.000", "10.000", "10.000", "0.000")]
    shipments = [moment for moment in order["timeline"] if moment["event"] == "Shipped"]
    assert [(moment["carrier"], moment["tracking_number"], moment["lines"])
            for moment in shipments] == [
        ("SF Express", "SF100", [{"line_number": 1, "quantity": "4.000"}]),
        ("ZTO Express", "ZTO200", [{"line_number": 1, "quantity": "6.000"}])]
    delivery = order["timeline"][-1]
    assert (delivery["event"], delivery["signed_by"], delivery["signed_at"],
            delivery["lines"]) == ("Delivered", "Wang Fang", "2025-03-01T02:30:00.000000Z",
                                   [{"line_number": 1, "quantity": "10.000"}])


# Bodies each step refuses as invalid input: (step, body, the field named or None).
BAD_STEP_BODIES: list[tuple[str, Body, str | None]] = [
    ("approve", {"confirm": True}, None),
    ("approve", {"confirm_duplicate": "maybe"}, None),
    ("reject", {}, "reason"),
    ("reject", {"reason": ""}, None),
    ("dispatch", {"lines": [{"line_number": 1, "quantity": "1"}], "colour": "red"}, None),
    ("ship", {"carrier": "SF Express"}, None),
    ("ship", {"carrier": "", "tracking_number": "SF100"}, None),
    ("deliver", {}, None),
    ("deliver", {"signed_by": "Wang Fang", "signed_at": "2025-03-01T10:30:00"}, None),
    ("deliver", {"signed_by": "Wang Fang", "signed_at": "2999-01-01T00:00:00Z"}, None),
    ("invoice", {"lines": [{"line_number": 1, "quantity": "1"}]}, None),
    ("invoice", {"invoice_number": "SI-1", "lines": [
        {"line_number": 1, "quantity": "1", "tax_rate": "1.5"}]}, None),
    ("invoice", {"invoice_number": "SI-1", "lines": [{"line_number": 4, "quantity": "1"}]},
     "lines"),
    ("invoice", {"invoice_number": "SI-1", "lines": [{"line_number": 1, "quantity": "-1"}]},
     None),
    ("payments", {"amount": "0"}, None),
    ("payments", {"amount": "-1"}, None),
    ("payments", {"amount": "1.001"}, "amount"),
    ("payments", {"amount": "abc"}, None),
    ("payments", {"amount": "1", "colour": "red"}, None),
    ("returns", quantities((1, "1")), "reason"),
    ("returns", quantities((4, "1"), reason="damaged"), "lines"),
    ("returns", quantities((1, "1"), (1, "1"), reason="damaged"), "lines"),
    ("returns", quantities((1, "1"), reason=""), None),
    ("returns", quantities((1, "1"), reason="damaged", colour="red"), None),
    ("cancel", {"reason": "changed mind", "colour": "red"}, None),
]


def test_bad_step_bodies_are_invalid_input_and_record_nothing(selling: Api) -> None:
    selling.receive(WAREHOUSE, (FIFO_SKU, "10", "4.20"))
    order_id = approved(selling, CUSTOMER, FIFO_LINE)
    head = selling.head()

    for name, body, field in BAD_STEP_BODIES:
        problem = assert_problem(post_step(selling, order_id, name, body), 422,
                                 "validation_error")
        if field is not None:
            assert problem["field"] == field, (name, body)

    assert selling.head() == head


# Invoices, payments and returns.


def test_an_invoice_bills_only_what_was_delivered_with_tax_per_line(selling: Api) -> None:
    selling.receive(WAREHOUSE, (FIFO_SKU, "10", "4.20"))
    selling.receive(STORE, (AVERAGE_SKU, "4", "2.00"))
    order_id = approved(selling, CUSTOMER, FIFO_LINE, AVERAGE_LINE)
    early = assert_problem(post_step(selling, order_id, "invoice", BODIES["invoice"]), 409,
                           "over_invoice")
    dispatch(selling, order_id)
    ship(selling, order_id)
    deliver(selling, order_id)

    billed = invoice(selling, order_id,
                     {"line_number": 1, "quantity": "3", "tax_rate": "0.13"},
                     {"line_number": 2, "quantity": "3", "unit_price": "2.675",
                      "tax_rate": "0.05"})

    # 3 × 9.50 = 28.50, tax 3.705 → 3.71; 3 × 2.675 = 8.025 → 8.03, tax 0.4015 → 0.40.
    assert early["line_number"] == 1
    assert (billed["status"], billed["outstanding"]) == ("invoiced", "40.64")
    over = assert_problem(post_step(selling, order_id, "invoice", {
        "invoice_number": "SI-2", "lines": [{"line_number": 1, "quantity": "7.001"}]}), 409,
        "over_invoice")
    assert (over["order_id"], over["line_number"]) == (order_id, 1)
    assert "7.000" in over["detail"]
    order = read_order(selling, order_id, billed["position"])
    assert figures(order, "delivered", "invoiced") == [("10.000", "3.000"), ("4.000", "3.000")]
    assert (order["invoiced_total"], order["paid"], order["outstanding"]) == (
        "40.64", "0.00", "40.64")
    moment = order["timeline"][-1]
    assert (moment["event"], moment["invoice_number"], moment["amount"], moment["tax"],
            moment["total"]) == ("Invoiced", "SI-1", "36.53", "4.11", "40.64")


def test_payments_settle_the_invoice_and_never_more(selling: Api) -> None:
    selling.receive(WAREHOUSE, (FIFO_SKU, "10", "4.20"))
    order_id = delivered(selling, CUSTOMER, FIFO_LINE)
    unbilled = assert_problem(post_step(selling, order_id, "payments", {"amount": "0.01"}), 409,
                              "over_payment")
    invoice(selling, order_id, {"line_number": 1, "quantity": "10", "tax_rate": "0.13"})
    # 10 × 9.50 = 95.00, tax 12.35: 107.35 owed.

    over = assert_problem(post_step(selling, order_id, "payments", {"amount": "107.36"}), 409,
                          "over_payment")
    part = pay(selling, order_id, "100")
    rest = pay(selling, order_id, "7.35")

    assert unbilled["order_id"] == order_id
    assert over["order_id"] == order_id and "line_number" not in over
    assert (part["status"], part["outstanding"]) == ("partially_paid", "7.35")
    assert (rest["status"], rest["outstanding"]) == ("paid", "0.00")
    assert_problem(post_step(selling, order_id, "payments", {"amount": "0.01"}), 409,
                   "over_payment")
    order = read_order(selling, order_id, rest["position"])
    assert (order["status"], order["invoiced_total"], order["paid"], order["outstanding"]) == (
        "paid", "107.35", "107.35", "0.00")
    assert [moment["amount"] for moment in order["timeline"] if moment["event"] == "Paid"] == [
        "100.00", "7.35"]


def test_returns_never_exceed_what_was_delivered_and_kept(selling: Api) -> None:
    selling.receive(WAREHOUSE, (FIFO_SKU, "10", "4.20"))
    pending = place(selling, CUSTOMER, AVERAGE_LINE)["order_id"]
    order_id = approved(selling, CUSTOMER, FIFO_LINE)
    dispatch(selling, order_id)
    ship(selling, order_id)

    unapproved = assert_problem(post_step(selling, pending, "returns", BODIES["returns"]), 409,
                                "invalid_transition")
    undelivered = assert_problem(post_step(selling, order_id, "returns", BODIES["returns"]),
                                 409, "over_return")
    deliver(selling, order_id)
    return_goods(selling, order_id, (1, "4"))
    over = assert_problem(post_step(selling, order_id, "returns",
                                    quantities((1, "6.001"), reason="damaged")), 409,
                          "over_return")

    assert unapproved["order_status"] == "pending_review"
    assert undelivered["line_number"] == 1
    assert (over["order_id"], over["line_number"]) == (order_id, 1)
    assert "6.000" in over["detail"]


def test_a_return_comes_back_at_the_cost_it_went_out_at_and_the_last_one_exactly(
        selling: Api) -> None:
    # Moving average: 1 × 3.00 + 2 × 3.50 = 10.00 for 3, all of it sold.
    selling.receive(STORE, (AVERAGE_SKU, "1", "3.00"), (AVERAGE_SKU, "2", "3.50"))
    order_id = delivered(selling, CUSTOMER, (AVERAGE_SKU, STORE, "3", "8.00"))

    one = return_goods(selling, order_id, (1, "1"))
    rest = return_goods(selling, order_id, (1, "2"))

    # 10.00 / 3 → 3.33 for the first; the last two take the 6.67 left, not 2 × 3.33.
    assert one["lines"] == [
        {"sku": AVERAGE_SKU, "location": STORE, "quantity": "1.000", "unit_cost": "3.330000",
         "value": "3.33", "quantity_on_hand_after": "1.000", "value_after": "3.33"}]
    assert rest["lines"] == [
        {"sku": AVERAGE_SKU, "location": STORE, "quantity": "2.000", "unit_cost": "3.335000",
         "value": "6.67", "quantity_on_hand_after": "3.000", "value_after": "10.00"}]
    # Nothing was invoiced: the credit notes are for nothing.
    assert {key: value for key, value in one["credit_note"].items() if key != "number"} == {
        "amount": "0.00", "tax": "0.00", "total": "0.00"}
    assert one["credit_note"]["number"] != rest["credit_note"]["number"]
    assert (one["status"], rest["status"]) == ("delivered", "returned")
    assert_problem(post_step(selling, order_id, "returns", quantities((1, "0.001"),
                                                                      reason="damaged")),
                   409, "over_return")
    order = read_order(selling, order_id, rest["position"])
    assert figures(order, "delivered", "returned", "dispatched_value", "returned_value") == [
        ("3.000", "3.000", "10.00", "10.00")]
    level = stock_level(selling, AVERAGE_SKU, STORE, rest["position"])
    assert (level["quantity_on_hand"], level["value"]) == ("3.000", "10.00")


# Cancelling.


def test_cancelling_an_approved_order_releases_its_reservations(selling: Api) -> None:
    selling.receive(WAREHOUSE, (FIFO_SKU, "6", "4.20"))
    order_id = approved(selling, CUSTOMER, FIFO_LINE)
    before = stock_level(selling, FIFO_SKU, WAREHOUSE, selling.head())

    cancelled = step(selling, order_id, "cancel", {"reason": "customer changed their mind"})
    head = selling.head()

    assert reserved(before) == ("6.000", "6.000", "0.000")
    assert cancelled["status"] == "cancelled"
    assert reserved(stock_level(selling, FIFO_SKU, WAREHOUSE, cancelled["position"])) == (
        "6.000", "0.000", "6.000")
    for name in STEPS:
        refused = assert_problem(post_step(selling, order_id, name, BODIES[name]), 409,
                                 "invalid_transition")
        assert refused["order_status"] == "cancelled", name
    assert selling.head() == head
    order = read_order(selling, order_id, head)
    assert order["status"] == "cancelled"
    assert figures(order, "approved", "reserved", "backordered") == [
        ("10.000", "0.000", "0.000")]
    assert events(order) == ["Placed", "Reviewed", "Reserved", "ReservationsReleased",
                             "Cancelled"]
    released, ended = order["timeline"][-2:]
    assert (released["reason"], released["lines"]) == (
        "order cancelled", [{"line_number": 1, "quantity": "6.000"}])
    assert ended["reason"] == "customer changed their mind"


def test_an_order_cannot_be_cancelled_once_something_was_dispatched(selling: Api) -> None:
    selling.receive(WAREHOUSE, (FIFO_SKU, "10", "4.20"))
    pending = place(selling, CUSTOMER, AVERAGE_LINE)["order_id"]
    order_id = approved(selling, CUSTOMER, FIFO_LINE)
    dispatched = dispatch(selling, order_id, (1, "4"))

    refused = assert_problem(post_step(selling, order_id, "cancel"), 409, "invalid_transition")

    assert (refused["order_status"], refused["action"]) == ("partially_dispatched", "cancel")
    assert reserved(stock_level(selling, FIFO_SKU, WAREHOUSE, dispatched["position"])) == (
        "6.000", "6.000", "0.000")
    assert step(selling, pending, "cancel")["status"] == "cancelled"


# Unknown orders.


@pytest.mark.parametrize("order_id", [str(uuid4()), str(item_id(FIFO_SKU))],
                         ids=["random id", "an item's id"])
def test_an_unknown_order_is_404_on_every_route(selling: Api, order_id: str) -> None:
    for name in STEPS:
        problem = assert_problem(post_step(selling, order_id, name, BODIES[name]), 404,
                                 "unknown_order")
        assert problem["order_id"] == order_id, name
    response = selling.get(f"/sales-orders/{order_id}", key=AUDITOR)
    assert assert_problem(response, 404, "unknown_order")["order_id"] == order_id
    assert_problem(selling.get("/sales-orders/not-a-uuid"), 422, "validation_error")
    assert_problem(post_step(selling, "not-a-uuid", "approve"), 422, "validation_error")


# Lists.


def test_orders_list_by_status_and_customer_a_page_at_a_time(selling: Api) -> None:
    selling.receive(WAREHOUSE, (FIFO_SKU, "100", "4.20"))
    shop = [place(selling, CUSTOMER, (FIFO_SKU, WAREHOUSE, str(n), "9.50"))["order_id"]
            for n in (1, 2, 3)]
    mart = [place(selling, OTHER_CUSTOMER, (FIFO_SKU, WAREHOUSE, str(n), "9.50"))["order_id"]
            for n in (4, 5)]
    step(selling, shop[1], "approve")
    step(selling, mart[1], "approve")
    last = step(selling, mart[0], "reject", {"reason": "duplicate by phone"})["position"]

    everything = list_orders(selling, min_position=last)

    assert ids(everything) == shop + mart
    assert everything["position"] >= last
    assert all("timeline" not in order for order in everything["items"])
    assert ids(list_orders(selling, status="approved")) == [shop[1], mart[1]]
    assert ids(list_orders(selling, status="rejected")) == [mart[0]]
    assert ids(list_orders(selling, customer=OTHER_CUSTOMER)) == mart
    assert ids(list_orders(selling, customer=CUSTOMER, status="pending_review")) == [shop[0],
                                                                                    shop[2]]
    assert ids(list_orders(selling, status="paid")) == []
    walked, cursor, pages = [], None, 0
    while True:
        page = list_orders(selling, limit=2, **({"cursor": cursor} if cursor else {}))
        walked += ids(page)
        pages += 1
        # (.get: the last page's missing next_cursor has its own test below.)
        cursor = page.get("next_cursor")
        if cursor is None:
            break
    assert (walked, pages) == (shop + mart, 3)
    shop_pages = list_orders(selling, customer=CUSTOMER, limit=2)
    assert ids(shop_pages) == shop[:2]
    assert ids(list_orders(selling, customer=CUSTOMER, limit=2,
                           cursor=shop_pages["next_cursor"])) == [shop[2]]
    assert figures(list_orders(selling, status="approved")["items"][0], "reserved") == [
        ("2.000",)]


def test_a_listed_order_reads_as_the_order_does_less_its_timeline(selling: Api) -> None:
    placed = place(selling, CUSTOMER, (FIFO_SKU, WAREHOUSE, "10", None))

    page = list_orders(selling, min_position=placed["position"])

    order = read_order(selling, placed["order_id"], placed["position"])
    del order["timeline"]
    [item] = page["items"]
    # Every field GET /sales-orders/{id} has, its nulls too; and the last page says it is.
    assert sorted(set(order) - set(item)) == []
    assert sorted(set(order["lines"][0]) - set(item["lines"][0])) == []
    assert item == order
    assert "next_cursor" in page and page["next_cursor"] is None


@pytest.mark.parametrize("params", [{"status": "lost"}, {"customer": "bad code!"},
                                    {"limit": 0}, {"limit": 201}, {"cursor": "nonsense"},
                                    {"min_position": -1}])
def test_bad_list_queries_are_invalid_input(selling: Api, params: Body) -> None:
    assert_problem(selling.get("/sales-orders", key=AUDITOR, **params), 422,
                   "validation_error")


# Who may do what.


@pytest.mark.parametrize("key", [AUDITOR, FINANCE])
def test_auditors_and_finance_read_orders_but_cannot_post(selling: Api, key: str) -> None:
    order_id = place(selling, CUSTOMER, FIFO_LINE)["order_id"]
    head = selling.head()

    denied = selling.post("/sales-orders", order_body(CUSTOMER, FIFO_LINE), key=key)
    assert assert_problem(denied, 403, "forbidden")["role"] == {AUDITOR: "auditor",
                                                                FINANCE: "finance"}[key]
    for name in STEPS:
        assert_problem(post_step(selling, order_id, name, BODIES[name], key=key), 403,
                       "forbidden")

    assert selling.head() == head
    assert read_order(selling, order_id, head, key=key)["status"] == "pending_review"
    listed = selling.get("/sales-orders", key=key)
    assert listed.status_code == 200, listed.text
    assert ids(listed.json()) == [order_id]


def test_without_a_key_every_route_is_401(selling: Api) -> None:
    order_id = str(uuid4())
    client = selling.client
    assert_problem(client.post("/sales-orders", json=order_body(CUSTOMER, FIFO_LINE)), 401,
                   "unauthorized")
    for name in STEPS:
        assert_problem(client.post(f"/sales-orders/{order_id}/{name}", json=BODIES[name]), 401,
                       "unauthorized")
    assert_problem(client.get("/sales-orders"), 401, "unauthorized")
    assert_problem(client.get(f"/sales-orders/{order_id}"), 401, "unauthorized")


# Idempotency.


def test_a_placement_repeated_with_its_idempotency_key_is_answered_again_not_recorded(
        selling: Api) -> None:
    first = selling.post("/sales-orders", order_body(CUSTOMER, FIFO_LINE),
                         idempotency_key="so-0001")
    head = selling.head()

    again = selling.post("/sales-orders",
                         order_body(CUSTOMER, (FIFO_SKU, WAREHOUSE, "10.000", "9.5")),
                         idempotency_key="so-0001")
    other = selling.post("/sales-orders", order_body(CUSTOMER, (FIFO_SKU, WAREHOUSE, "11", "9.5")),
                         idempotency_key="so-0001")

    assert first.status_code == again.status_code == 201
    assert again.json() == first.json()
    assert again.json()["position"] == first.json()["position"] == head
    assert again.headers["idempotent-replayed"] == "true"
    assert "idempotent-replayed" not in first.headers
    assert_problem(other, 409, "idempotency_conflict")
    assert selling.head() == head
    assert ids(list_orders(selling, min_position=head)) == [first.json()["order_id"]]


def test_a_step_repeated_with_its_idempotency_key_is_not_taken_twice(selling: Api) -> None:
    selling.receive(WAREHOUSE, (FIFO_SKU, "10", "4.20"))
    order_id = place(selling, CUSTOMER, FIFO_LINE)["order_id"]
    approval = post_step(selling, order_id, "approve", idempotency_key="approve-1")
    approval_again = post_step(selling, order_id, "approve", idempotency_key="approve-1")
    dispatch(selling, order_id)
    ship(selling, order_id)
    deliver(selling, order_id)
    invoice(selling, order_id, {"line_number": 1, "quantity": "10"})
    # 10 × 9.50 = 95.00 owed.

    first = post_step(selling, order_id, "payments", {"amount": "50"},
                      idempotency_key="pay-1")
    head = selling.head()
    again = post_step(selling, order_id, "payments", {"amount": "50.00"},
                      idempotency_key="pay-1")
    other = post_step(selling, order_id, "payments", {"amount": "40"},
                      idempotency_key="pay-1")

    assert approval_again.status_code == 201, approval_again.text
    assert approval_again.json() == approval.json()
    assert approval_again.headers["idempotent-replayed"] == "true"
    assert again.json() == first.json()
    assert (again.json()["outstanding"], again.json()["position"]) == ("45.00", head)
    assert again.headers["idempotent-replayed"] == "true"
    assert_problem(other, 409, "idempotency_conflict")
    assert selling.head() == head
    assert read_order(selling, order_id, head)["paid"] == "50.00"


# The main flow, on SQLite and on PostgreSQL.


def test_the_selling_flow_end_to_end(database_url: str) -> None:
    with serving(database_url, read_wait_seconds=READ_WAIT_SECONDS) as api:
        seed(api)
        register_parties(api)
        # FIFO: 10 at 4.20, then 5 at 5.00; moving average: 2 at 2.00.
        api.receive(WAREHOUSE, (FIFO_SKU, "10", "4.20"))
        api.receive(WAREHOUSE, (FIFO_SKU, "5", "5.00"))
        api.receive(STORE, (AVERAGE_SKU, "2", "2.00"))
        order_id = place(api, CUSTOMER, (FIFO_SKU, WAREHOUSE, "12", "9.45"),
                         (AVERAGE_SKU, STORE, "5", "3.15"), reference="SO-1")["order_id"]

        # Line 1 is reserved whole; line 2 gets the 2 on hand and is short 3.
        approval = step(api, order_id, "approve", {"reason": "credit checked"}, key=ADMIN)
        assert approval["status"] == "backordered"
        assert reservations(approval) == [(1, "12.000", "12.000", "0.000"),
                                          (2, "2.000", "2.000", "3.000")]
        assert reserved(stock_level(api, FIFO_SKU, WAREHOUSE, approval["position"])) == (
            "15.000", "12.000", "3.000")
        assert reserved(stock_level(api, AVERAGE_SKU, STORE, approval["position"])) == (
            "2.000", "2.000", "0.000")
        # 4.00 + 6 × 2.50 = 19.00 for 8: 2.375 each.
        api.receive(STORE, (AVERAGE_SKU, "6", "2.50"))
        topped_up = step(api, order_id, "reserve")
        assert topped_up["status"] == "approved"
        assert reservations(topped_up) == [(1, "0.000", "12.000", "0.000"),
                                           (2, "3.000", "5.000", "0.000")]

        # FIFO: 10 × 4.20 + 1 × 5.00 = 47.00 for 11 (4.272727 each); 4 × 5.00 left.
        first = dispatch(api, order_id, (1, "11"))
        assert first["status"] == "partially_dispatched"
        assert first["lines"] == [
            {"sku": FIFO_SKU, "location": WAREHOUSE, "quantity": "11.000",
             "unit_cost": "4.272727", "value": "47.00", "quantity_on_hand_after": "4.000",
             "value_after": "20.00"}]
        # The rest reserved: 1 × 5.00, and 5 × 2.375 = 11.875 → 11.88 of the 19.00, reported
        # as 11.88 / 5 = 2.376 each.
        rest = dispatch(api, order_id)
        assert rest["status"] == "dispatched"
        assert rest["lines"] == [
            {"sku": FIFO_SKU, "location": WAREHOUSE, "quantity": "1.000",
             "unit_cost": "5.000000", "value": "5.00", "quantity_on_hand_after": "3.000",
             "value_after": "15.00"},
            {"sku": AVERAGE_SKU, "location": STORE, "quantity": "5.000",
             "unit_cost": "2.376000", "value": "11.88", "quantity_on_hand_after": "3.000",
             "value_after": "7.12"}]
        assert ship(api, order_id, "SF Express", "SF1234567890")["status"] == "shipped"
        assert deliver(api, order_id, "Wang Fang", signed_at=SIGNED_AT)["status"] == "delivered"

        # 12 × 9.45 = 113.40, tax 14.742 → 14.74; 5 × 3.15 = 15.75, tax 2.0475 → 2.05.
        billed = invoice(api, order_id, {"line_number": 1, "quantity": "12", "tax_rate": "0.13"},
                         {"line_number": 2, "quantity": "5", "tax_rate": "0.13"},
                         number="SI-2025-001")
        assert (billed["status"], billed["outstanding"]) == ("invoiced", "145.94")
        part = pay(api, order_id, "100.00")
        assert (part["status"], part["outstanding"]) == ("partially_paid", "45.94")

        # 3 of the 12 that went out for 52.00 come back at 13.00, beside the 3 × 5.00 left.
        returned = return_goods(api, order_id, (1, "3"), reason="box crushed")
        assert returned["lines"] == [
            {"sku": FIFO_SKU, "location": WAREHOUSE, "quantity": "3.000",
             "unit_cost": "4.333333", "value": "13.00", "quantity_on_hand_after": "6.000",
             "value_after": "28.00"}]
        # Credit: 3/12 of 113.40 = 28.35 and of 14.74 = 3.685 → 3.69; owed 145.94 − 32.04 − 100.
        note = returned["credit_note"]
        assert (note["amount"], note["tax"], note["total"]) == ("28.35", "3.69", "32.04")
        assert note["number"] == f"CN-{returned['document_id']}"
        assert (returned["status"], returned["outstanding"]) == ("partially_paid", "13.90")
        level = stock_level(api, FIFO_SKU, WAREHOUSE, returned["position"])
        assert (*reserved(level), level["unit_cost"], level["value"]) == (
            "6.000", "0.000", "6.000", "4.666667", "28.00")
        settled = pay(api, order_id, "13.90")
        assert (settled["status"], settled["outstanding"]) == ("paid", "0.00")

        order = read_order(api, order_id, settled["position"])
        assert order["lines"] == [
            line_view(1, FIFO_SKU, WAREHOUSE, "12.000", "9.450000", approved="12.000",
                      dispatched="12.000", shipped="12.000", delivered="12.000",
                      invoiced="12.000", returned="3.000", credited="3.000",
                      dispatched_value="52.00", returned_value="13.00"),
            line_view(2, AVERAGE_SKU, STORE, "5.000", "3.150000", approved="5.000",
                      dispatched="5.000", shipped="5.000", delivered="5.000",
                      invoiced="5.000", dispatched_value="11.88")]
        assert (order["status"], order["reference"], order["invoiced_total"],
                order["credited_total"], order["paid"], order["outstanding"]) == (
            "paid", "SO-1", "145.94", "32.04", "113.90", "0.00")
        timeline = order["timeline"]
        assert events(order) == ["Placed", "Reviewed", "Reserved", "Reserved", "Dispatched",
                                 "Dispatched", "Shipped", "Delivered", "Invoiced", "Paid",
                                 "Returned", "Paid"]
        positions = [moment["position"] for moment in timeline]
        assert positions == sorted(set(positions)) and positions[-1] <= settled["position"]
        assert order["version"] == len(timeline)
        actors = [moment["actor"].split("-")[0] for moment in timeline]
        assert actors == ["operations", "admin", "admin", *["operations"] * 9]
        assert len({moment["actor"] for moment in timeline}) == 2
        review, shipment, delivery, billing, return_ = (
            timeline[1], timeline[6], timeline[7], timeline[8], timeline[10])
        assert (review["approved"], review["reason"]) == (True, "credit checked")
        assert (shipment["carrier"], shipment["tracking_number"]) == ("SF Express",
                                                                      "SF1234567890")
        assert (delivery["signed_by"], delivery["signed_at"]) == ("Wang Fang",
                                                                  "2025-03-01T02:30:00.000000Z")
        assert (billing["invoice_number"], billing["total"]) == ("SI-2025-001", "145.94")
        assert (return_["credit_note_number"], return_["credit_total"], return_["reason"]) == (
            note["number"], "32.04", "box crushed")
        assert ids(list_orders(api, status="paid", min_position=settled["position"])) == [
            order_id]
