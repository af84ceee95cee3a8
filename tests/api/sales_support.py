"""What the sales-order HTTP tests share: customers, orders and their steps as a user calls them.

Each helper takes the `api_support.Api` of a running app. Steps that must be accepted assert
201 and return the body; `post_step` returns the raw response for refusals. Reads wait for the
position of the command they follow (`min_position`), never for time.
"""

from __future__ import annotations

from typing import Any

import httpx
from api_support import AUDITOR, OPERATIONS, Api, Body

CUSTOMER = "CUS-SHOP"
OTHER_CUSTOMER = "CUS-MART"
# A customer with a credit limit of 1000.00 (see `register_parties`).
CREDIT_CUSTOMER = "CUS-CREDIT"
CREDIT_LIMIT = "1000"
SUPPLIER = "SUP-TEA"
STEPS = ("approve", "reject", "reserve", "dispatch", "ship", "deliver", "invoice", "payments",
         "returns", "cancel")
# A body each step accepts in shape, so that what is refused is the step, not the body.
BODIES: dict[str, Any] = {
    "approve": None, "reject": {"reason": "customer asked"}, "reserve": None, "dispatch": None,
    "ship": {"carrier": "SF Express", "tracking_number": "SF100"},
    "deliver": {"signed_by": "Wang Fang"},
    "invoice": {"invoice_number": "SI-9", "lines": [{"line_number": 1, "quantity": "1"}]},
    "payments": {"amount": "1.00"},
    "returns": {"lines": [{"line_number": 1, "quantity": "1"}], "reason": "damaged"},
    "cancel": None,
}
COUNT_SHORTFALL = "count found less stock than was reserved"

Line = tuple[str, str, Any, Any]


def register_parties(api: Api) -> None:
    """Two customers without a limit, one with a limit of 1000, and a supplier only."""
    for code, roles, limit in ((CUSTOMER, ["customer"], None),
                               (OTHER_CUSTOMER, ["supplier", "customer"], None),
                               (CREDIT_CUSTOMER, ["customer"], CREDIT_LIMIT),
                               (SUPPLIER, ["supplier"], None)):
        body: Body = {"name": f"Party {code}", "roles": roles}
        if limit is not None:
            body["credit_limit"] = limit
        response = api.put(f"/parties/{code}", body)
        assert response.status_code == 201, response.text


def order_body(customer: str, *lines: Line, **fields: Any) -> Body:
    """A placement; a line priced `None` is sent without a price."""
    return {"customer": customer, **fields, "lines": [
        {"sku": sku, "location": location, "quantity": quantity,
         **({} if price is None else {"unit_price": price})}
        for sku, location, quantity, price in lines]}


def place(api: Api, customer: str, *lines: Line, **fields: Any) -> Body:
    """A new order (pending review); returns the command's answer."""
    return api.command("/sales-orders", order_body(customer, *lines, **fields))


def post_step(api: Api, order_id: str, step: str, body: Any = None, key: str = OPERATIONS,
              idempotency_key: str | None = None) -> httpx.Response:
    return api.post(f"/sales-orders/{order_id}/{step}", body, key=key,
                    idempotency_key=idempotency_key)


def step(api: Api, order_id: str, name: str, body: Any = None, **options: Any) -> Body:
    response = post_step(api, order_id, name, body, **options)
    assert response.status_code == 201, response.text
    result: Body = response.json()
    return result


def quantities(*pairs: tuple[int, Any], **fields: Any) -> Body:
    return {"lines": [{"line_number": n, "quantity": q} for n, q in pairs], **fields}


def approved(api: Api, customer: str, *lines: Line) -> str:
    """An order placed and approved (reserving what it can); returns its id."""
    order_id: str = place(api, customer, *lines)["order_id"]
    step(api, order_id, "approve")
    return order_id


def dispatch(api: Api, order_id: str, *pairs: tuple[int, Any]) -> Body:
    """Dispatch the given quantities per line; with none, everything reserved."""
    return step(api, order_id, "dispatch", quantities(*pairs) if pairs else None)


def ship(api: Api, order_id: str, carrier: str = "SF Express",
         tracking_number: str = "SF1234567890") -> Body:
    return step(api, order_id, "ship", {"carrier": carrier, "tracking_number": tracking_number})


def deliver(api: Api, order_id: str, signed_by: str = "Wang Fang", **fields: Any) -> Body:
    return step(api, order_id, "deliver", {"signed_by": signed_by, **fields})


def delivered(api: Api, customer: str, *lines: Line) -> str:
    """An order approved with its stock on hand, dispatched, shipped and signed for."""
    order_id = approved(api, customer, *lines)
    dispatch(api, order_id)
    ship(api, order_id)
    deliver(api, order_id)
    return order_id


def invoice(api: Api, order_id: str, *lines: Body, number: str = "SI-1") -> Body:
    return step(api, order_id, "invoice", {"invoice_number": number, "lines": list(lines)})


def pay(api: Api, order_id: str, amount: str) -> Body:
    return step(api, order_id, "payments", {"amount": amount})


def return_goods(api: Api, order_id: str, *pairs: tuple[int, Any],
                 reason: str = "damaged in transit") -> Body:
    return step(api, order_id, "returns", quantities(*pairs, reason=reason))


def read_order(api: Api, order_id: str, min_position: int, key: str = AUDITOR) -> Body:
    response = api.get(f"/sales-orders/{order_id}", key=key, min_position=min_position)
    assert response.status_code == 200, response.text
    result: Body = response.json()
    return result


def list_orders(api: Api, **params: Any) -> Body:
    response = api.get("/sales-orders", key=AUDITOR, **params)
    assert response.status_code == 200, response.text
    result: Body = response.json()
    return result


def ids(page: Body) -> list[str]:
    return [order["order_id"] for order in page["items"]]


def figures(order: Body, *names: str) -> list[tuple[str, ...]]:
    """Per line of an order as read: the named figures."""
    return [tuple(line[name] for name in names) for line in order["lines"]]


def events(order: Body) -> list[str]:
    """The order's timeline as event names, oldest first."""
    return [moment["event"] for moment in order["timeline"]]


def stock_level(api: Api, sku: str, location: str, min_position: int) -> Body:
    """One bin as GET /stock shows it now."""
    response = api.get("/stock", key=AUDITOR, sku=sku, location=location,
                       min_position=min_position)
    assert response.status_code == 200, response.text
    items: list[Body] = response.json()["items"]
    assert len(items) == 1, items
    return items[0]


def reserved(level: Body) -> tuple[str, str, str]:
    """A bin's on-hand, reserved and available quantities."""
    return (level["quantity_on_hand"], level["quantity_reserved"], level["quantity_available"])


def reservations(answer: Body) -> list[tuple[int, str, str, str]]:
    """An approval's or reservation's report per line: reserved now, reserved, still short."""
    return [(line["line_number"], line["reserved_now"], line["reserved"], line["short"])
            for line in answer["reservations"]]


LINE_FIGURES = ("approved", "reserved", "backordered", "dispatched", "shipped", "delivered",
                "invoiced", "returned", "credited")


def line_view(number: int, sku: str, location: str, quantity: str, unit_price: str | None,
              **figures: str) -> Body:
    """An order line as GET /sales-orders/{id} shows it: every figure not named is zero."""
    return {"line_number": number, "sku": sku, "location": location, "quantity": quantity,
            "unit_price": unit_price, **dict.fromkeys(LINE_FIGURES, "0.000"),
            "dispatched_value": "0.00", "returned_value": "0.00", **figures}
