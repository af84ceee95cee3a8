"""Purchase orders (采购订单): create, review, receive, return, invoice, pay, cancel, close."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Annotated, Any, Literal
from uuid import UUID

from fastapi import APIRouter, Query, Request, Response

from api import cursors
from api.deps import CommandMetaDep, LedgerDep, Reader, ReadModelsDep
from api.problems import ApiProblem, responses
from api.requests import LedgerRoute
from api.routers.stock import CODE_PATTERN, Cursor, Limit, MinPosition, wait_seconds
from api.schemas import (
    InvoiceIn,
    OrderCommandOut,
    OrderQuantitiesIn,
    PaymentIn,
    PurchaseOrderIn,
    PurchaseOrderLineOut,
    PurchaseOrderOut,
    PurchaseOrderPage,
    ReviewIn,
)
from ledger import purchasing as p
from ledger.application import CommandResult
from projections import queries
from projections.encoding import money_of

router = APIRouter(route_class=LedgerRoute, tags=["purchase orders"])
PROBLEMS = responses(401, 403, 404, 409, 413, 415, 422)
# Every order command answers 201 with the order's new status (and what it moved or owes).
COMMAND_ROUTE: dict[str, Any] = {"status_code": 201, "response_model": OrderCommandOut,
                                 "response_model_exclude_none": True, "responses": PROBLEMS}
STATUSES = Literal["pending_review", "approved", "rejected", "partially_received", "received",
                   "invoiced", "paid", "cancelled", "closed"]


def _out(result: CommandResult, response: Response) -> OrderCommandOut:
    if result.replayed:
        response.headers["Idempotent-Replayed"] = "true"
    return OrderCommandOut.model_validate({**result.data, "position": result.position})


@router.post("/purchase-orders", status_code=201, response_model=OrderCommandOut,
             response_model_exclude_none=True, responses=PROBLEMS)
def create(body: PurchaseOrderIn, ledger: LedgerDep, meta: CommandMetaDep,
           response: Response) -> OrderCommandOut:
    """Create a purchase order; it waits for review."""
    command = p.CreateOrder(supplier=body.supplier, reference=body.reference, note=body.note,
                            lines=tuple(p.OrderLine(line.sku, line.location, line.quantity,
                                                    line.unit_price) for line in body.lines))
    return _out(ledger.create_purchase_order(command, meta), response)


@router.post("/purchase-orders/{order_id}/approve", **COMMAND_ROUTE)
def approve(order_id: UUID, ledger: LedgerDep, meta: CommandMetaDep, response: Response,
            body: ReviewIn | None = None) -> OrderCommandOut:
    """Approve after review (订单审核)."""
    reason = body.reason if body else None
    command = p.Review(order_id=order_id, approved=True, reason=reason)
    return _out(ledger.review_purchase_order(command, meta), response)


@router.post("/purchase-orders/{order_id}/reject", **COMMAND_ROUTE)
def reject(order_id: UUID, body: ReviewIn, ledger: LedgerDep, meta: CommandMetaDep,
           response: Response) -> OrderCommandOut:
    """Reject after review, with a reason."""
    command = p.Review(order_id=order_id, approved=False, reason=body.reason)
    return _out(ledger.review_purchase_order(command, meta), response)


def _quantities(order_id: UUID, body: OrderQuantitiesIn) -> p.Quantities:
    return p.Quantities(order_id=order_id, reference=body.reference, note=body.note,
                        reason=body.reason, effective_at=body.effective_at,
                        quantities=tuple((line.line_number, line.quantity)
                                         for line in body.lines))


@router.post("/purchase-orders/{order_id}/receipts", **COMMAND_ROUTE)
def receive(order_id: UUID, body: OrderQuantitiesIn, ledger: LedgerDep, meta: CommandMetaDep,
            response: Response) -> OrderCommandOut:
    """Receive goods against order lines: a stock receipt at the order's prices."""
    return _out(ledger.receive_purchase_order(_quantities(order_id, body), meta), response)


@router.post("/purchase-orders/{order_id}/returns", **COMMAND_ROUTE)
def return_goods(order_id: UUID, body: OrderQuantitiesIn, ledger: LedgerDep,
                 meta: CommandMetaDep, response: Response) -> OrderCommandOut:
    """Return received goods to the supplier, at the cost they came in at (needs a reason)."""
    return _out(ledger.return_purchase_order(_quantities(order_id, body), meta), response)


@router.post("/purchase-orders/{order_id}/invoice", **COMMAND_ROUTE)
def invoice(order_id: UUID, body: InvoiceIn, ledger: LedgerDep, meta: CommandMetaDep,
            response: Response) -> OrderCommandOut:
    """Record the supplier's invoice (quantity, price and tax rate per line)."""
    command = p.Invoice(order_id=order_id, invoice_number=body.invoice_number,
                        effective_at=body.effective_at, lines=tuple(
        (line.line_number, line.quantity, line.unit_price, line.tax_rate) for line in body.lines))
    return _out(ledger.invoice_purchase_order(command, meta), response)


@router.post("/purchase-orders/{order_id}/payments", **COMMAND_ROUTE)
def pay(order_id: UUID, body: PaymentIn, ledger: LedgerDep, meta: CommandMetaDep,
        response: Response) -> OrderCommandOut:
    """Pay the supplier, up to what is owed."""
    command = p.Payment(order_id=order_id, amount=body.amount, reference=body.reference,
                        effective_at=body.effective_at)
    return _out(ledger.pay_purchase_order(command, meta), response)


@router.post("/purchase-orders/{order_id}/cancel", **COMMAND_ROUTE)
def cancel(order_id: UUID, ledger: LedgerDep, meta: CommandMetaDep, response: Response,
           body: ReviewIn | None = None) -> OrderCommandOut:
    """Cancel: what was not received is no longer expected."""
    return _end(order_id, "cancelled", body, ledger, meta, response)


@router.post("/purchase-orders/{order_id}/close", **COMMAND_ROUTE)
def close(order_id: UUID, ledger: LedgerDep, meta: CommandMetaDep, response: Response,
          body: ReviewIn | None = None) -> OrderCommandOut:
    """Close the order: nothing more is received."""
    return _end(order_id, "closed", body, ledger, meta, response)


def _end(order_id: UUID, outcome: str, body: ReviewIn | None, ledger: Any,
         meta: Any, response: Response) -> OrderCommandOut:
    command = p.End(order_id=order_id, outcome=outcome, reason=body.reason if body else None)
    return _out(ledger.end_purchase_order(command, meta), response)


def _view(row: dict[str, Any]) -> PurchaseOrderOut:
    invoiced, paid = money_of(row["invoiced_total_e2"]), money_of(row["paid_e2"])
    lines = [PurchaseOrderLineOut(**{**line, **{k: Decimal(line[k]) for k in (
        "quantity", "unit_price", "received", "returned", "invoiced")}})
        for line in json.loads(row["lines"])]
    return PurchaseOrderOut(order_id=row["order_id"], supplier=row["supplier"],
                            status=row["status"], reference=row["reference"], lines=lines,
                            invoiced_total=invoiced, paid=paid, outstanding=invoiced - paid,
                            version=row["version"])


@router.get("/purchase-orders/{order_id}", response_model=PurchaseOrderOut,
            responses=responses(401, 403, 404, 422, 503))
def get_one(request: Request, order_id: UUID, read_models: ReadModelsDep, _: Reader,
            min_position: MinPosition = 0) -> PurchaseOrderOut:
    """One purchase order: status, per-line figures, invoiced, paid and outstanding."""
    with read_models.reading(["purchase_orders"], min_position,
                             wait_seconds(request)) as (connection, states):
        row = queries.order(connection, read_models.by_name["purchase_orders"],
                            states["purchase_orders"].generation, str(order_id))
    if row is None:
        raise ApiProblem(404, "unknown_order", f"No purchase order {order_id}.",
                         order_id=str(order_id))
    return _view(row)


@router.get("/purchase-orders", response_model=PurchaseOrderPage,
            responses=responses(401, 403, 422, 503))
def get_many(request: Request, read_models: ReadModelsDep, _: Reader,
             status: STATUSES | None = None,
             supplier: Annotated[str | None, Query(pattern=CODE_PATTERN)] = None,
             min_position: MinPosition = 0, limit: Limit = 50,
             cursor: Cursor = None) -> PurchaseOrderPage:
    """Purchase orders in creation order, by status and supplier."""
    key = cursors.decode(cursor, (int,))
    with read_models.reading(["purchase_orders"], min_position,
                             wait_seconds(request)) as (connection, states):
        page = queries.orders(
            connection, read_models.by_name["purchase_orders"],
            states["purchase_orders"].generation, status=status,
            party=("supplier", supplier), after=key[0] if key else 0, limit=limit)
    next_cursor = (cursors.encode([page.last["created_position"]])
                   if page.has_more and page.last else None)
    return PurchaseOrderPage(items=[_view(row) for row in page.rows],
                             position=states["purchase_orders"].position,
                             next_cursor=next_cursor)
