"""What the purchase-order HTTP tests share: suppliers, orders and their steps as a user calls them.

Each helper takes the `api_support.Api` of a running app. Steps that must be accepted assert
201 and return the body; `post_step` returns the raw response for refusals. Reads wait for the
position of the command they follow (`min_position`), never for time.
"""

from __future__ import annotations

from typing import Any

import httpx
from api_support import AUDITOR, OPERATIONS, Api, Body

SUPPLIER = "SUP-TEA"
OTHER_SUPPLIER = "SUP-INK"
CUSTOMER = "CUS-SHOP"
STEPS = ("approve", "reject", "receipts", "returns", "invoice", "payments", "cancel", "close")


def register_parties(api: Api) -> None:
    """Two suppliers and a party that is only a customer."""
    for code, roles in ((SUPPLIER, ["supplier"]), (OTHER_SUPPLIER, ["supplier", "customer"]),
                        (CUSTOMER, ["customer"])):
        response = api.put(f"/parties/{code}", {"name": f"Party {code}", "roles": roles})
        assert response.status_code == 201, response.text


def order_body(supplier: str, *lines: tuple[str, str, Any, Any], **fields: Any) -> Body:
    return {"supplier": supplier, **fields, "lines": [
        {"sku": sku, "location": location, "quantity": quantity, "unit_price": price}
        for sku, location, quantity, price in lines]}


def create(api: Api, supplier: str, *lines: tuple[str, str, Any, Any], **fields: Any) -> Body:
    """A new order (pending review); returns the command's answer."""
    return api.command("/purchase-orders", order_body(supplier, *lines, **fields))


def post_step(api: Api, order_id: str, step: str, body: Any = None, key: str = OPERATIONS,
              idempotency_key: str | None = None) -> httpx.Response:
    return api.post(f"/purchase-orders/{order_id}/{step}", body, key=key,
                    idempotency_key=idempotency_key)


def step(api: Api, order_id: str, name: str, body: Any = None, **options: Any) -> Body:
    response = post_step(api, order_id, name, body, **options)
    assert response.status_code == 201, response.text
    result: Body = response.json()
    return result


def quantities(*pairs: tuple[int, Any], **fields: Any) -> Body:
    return {"lines": [{"line_number": n, "quantity": q} for n, q in pairs], **fields}


def receive(api: Api, order_id: str, *pairs: tuple[int, Any], **fields: Any) -> Body:
    return step(api, order_id, "receipts", quantities(*pairs, **fields))


def return_goods(api: Api, order_id: str, *pairs: tuple[int, Any],
                 reason: str = "damaged in transit") -> Body:
    return step(api, order_id, "returns", quantities(*pairs, reason=reason))


def invoice(api: Api, order_id: str, *lines: Body, number: str = "INV-1") -> Body:
    return step(api, order_id, "invoice", {"invoice_number": number, "lines": list(lines)})


def pay(api: Api, order_id: str, amount: str) -> Body:
    return step(api, order_id, "payments", {"amount": amount})


def approved(api: Api, supplier: str, *lines: tuple[str, str, Any, Any]) -> str:
    """An order created and approved; returns its id."""
    order_id: str = create(api, supplier, *lines)["order_id"]
    step(api, order_id, "approve")
    return order_id


def read_order(api: Api, order_id: str, min_position: int, key: str = AUDITOR) -> Body:
    response = api.get(f"/purchase-orders/{order_id}", key=key, min_position=min_position)
    assert response.status_code == 200, response.text
    result: Body = response.json()
    return result


def list_orders(api: Api, **params: Any) -> Body:
    response = api.get("/purchase-orders", key=AUDITOR, **params)
    assert response.status_code == 200, response.text
    result: Body = response.json()
    return result


def figures(order: Body) -> list[tuple[str, str, str]]:
    """Per line of an order as read: received, returned, invoiced."""
    return [(line["received"], line["returned"], line["invoiced"]) for line in order["lines"]]
