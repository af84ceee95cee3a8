"""Sales orders (销售订单): place, review, reserve, dispatch, ship, deliver, bill, return."""

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
    DeliveryIn,
    OrderQuantitiesIn,
    ReviewIn,
    SalesCommandOut,
    SalesDispatchIn,
    SalesInvoiceIn,
    SalesOrderIn,
    SalesOrderLineOut,
    SalesOrderOut,
    SalesOrderPage,
    SalesOrderSummaryOut,
    SalesPaymentIn,
    SalesReviewIn,
    ShipmentIn,
)
from ledger import purchasing as p
from ledger import selling as s
from ledger.application import CommandResult
from projections import queries
from projections.encoding import money_of

router = APIRouter(route_class=LedgerRoute, tags=["sales orders"])
PROBLEMS = responses(401, 403, 404, 409, 413, 415, 422)
# Every order command answers 201 with the order's new status (and what it moved or owes).
COMMAND_ROUTE: dict[str, Any] = {"status_code": 201, "response_model": SalesCommandOut,
                                 "response_model_exclude_none": True, "responses": PROBLEMS}
STATUSES = Literal["pending_review", "rejected", "approved", "backordered",
                   "partially_dispatched", "dispatched", "shipped", "delivered", "returned",
                   "invoiced", "partially_paid", "paid", "cancelled"]


def _out(result: CommandResult, response: Response) -> SalesCommandOut:
    if result.replayed:
        response.headers["Idempotent-Replayed"] = "true"
    return SalesCommandOut.model_validate({**result.data, "position": result.position})


@router.post("/sales-orders", **COMMAND_ROUTE)
def place(body: SalesOrderIn, ledger: LedgerDep, meta: CommandMetaDep,
          response: Response) -> SalesCommandOut:
    """Place a sales order; it waits for review. A likely duplicate is flagged."""
    command = s.PlaceOrder(customer=body.customer, reference=body.reference, note=body.note,
                           lines=tuple(s.SalesLine(line.sku, line.location, line.quantity,
                                                   line.unit_price) for line in body.lines))
    return _out(ledger.place_sales_order(command, meta), response)


@router.post("/sales-orders/{order_id}/approve", **COMMAND_ROUTE)
def approve(order_id: UUID, ledger: LedgerDep, meta: CommandMetaDep, response: Response,
            body: SalesReviewIn | None = None) -> SalesCommandOut:
    """Approve after review (订单审核: customer, credit limit, prices, duplicates) and reserve
    stock (库存检查); what cannot be reserved is back-ordered."""
    body = body or SalesReviewIn()
    command = s.SalesReview(order_id=order_id, approved=True, reason=body.reason,
                            confirm_duplicate=body.confirm_duplicate)
    return _out(ledger.review_sales_order(command, meta), response)


@router.post("/sales-orders/{order_id}/reject", **COMMAND_ROUTE)
def reject(order_id: UUID, body: ReviewIn, ledger: LedgerDep, meta: CommandMetaDep,
           response: Response) -> SalesCommandOut:
    """Reject after review, with a reason."""
    command = s.SalesReview(order_id=order_id, approved=False, reason=body.reason)
    return _out(ledger.review_sales_order(command, meta), response)


@router.post("/sales-orders/{order_id}/reserve", **COMMAND_ROUTE)
def reserve(order_id: UUID, ledger: LedgerDep, meta: CommandMetaDep,
            response: Response) -> SalesCommandOut:
    """Retry reserving back-ordered lines; the answer says what is still short."""
    return _out(ledger.reserve_sales_order(p.OrderStep(order_id=order_id), meta), response)


@router.post("/sales-orders/{order_id}/dispatch", **COMMAND_ROUTE)
def dispatch(order_id: UUID, ledger: LedgerDep, meta: CommandMetaDep, response: Response,
             body: SalesDispatchIn | None = None) -> SalesCommandOut:
    """Dispatch reserved stock at cost (商品出库); partial dispatches allowed."""
    body = body or SalesDispatchIn()
    command = p.Quantities(
        order_id=order_id, reference=body.reference, note=body.note,
        effective_at=body.effective_at,
        quantities=tuple((line.line_number, line.quantity) for line in body.lines or ()))
    return _out(ledger.dispatch_sales_order(command, meta), response)


@router.post("/sales-orders/{order_id}/ship", **COMMAND_ROUTE)
def ship(order_id: UUID, body: ShipmentIn, ledger: LedgerDep, meta: CommandMetaDep,
         response: Response) -> SalesCommandOut:
    """Hand everything dispatched and not yet shipped to a carrier (发货)."""
    command = s.Ship(order_id=order_id, carrier=body.carrier,
                     tracking_number=body.tracking_number, reference=body.reference,
                     note=body.note, effective_at=body.effective_at)
    return _out(ledger.ship_sales_order(command, meta), response)


@router.post("/sales-orders/{order_id}/deliver", **COMMAND_ROUTE)
def deliver(order_id: UUID, body: DeliveryIn, ledger: LedgerDep, meta: CommandMetaDep,
            response: Response) -> SalesCommandOut:
    """The customer signed for everything shipped (客户签收): who and when."""
    command = s.Deliver(order_id=order_id, signed_by=body.signed_by, note=body.note,
                        effective_at=body.signed_at)
    return _out(ledger.deliver_sales_order(command, meta), response)


@router.post("/sales-orders/{order_id}/invoice", **COMMAND_ROUTE)
def invoice(order_id: UUID, body: SalesInvoiceIn, ledger: LedgerDep, meta: CommandMetaDep,
            response: Response) -> SalesCommandOut:
    """Invoice delivered quantities (price defaults to the order's; tax rate per line)."""
    command = p.Invoice(order_id=order_id, invoice_number=body.invoice_number,
                        effective_at=body.effective_at, lines=tuple(
                            (line.line_number, line.quantity, line.unit_price, line.tax_rate)
                            for line in body.lines))
    return _out(ledger.invoice_sales_order(command, meta), response)


@router.post("/sales-orders/{order_id}/payments", **COMMAND_ROUTE)
def pay(order_id: UUID, body: SalesPaymentIn, ledger: LedgerDep, meta: CommandMetaDep,
        response: Response) -> SalesCommandOut:
    """Record the customer's payment, up to what is owed; partial payments allowed."""
    command = p.Payment(order_id=order_id, amount=body.amount, reference=body.reference,
                        effective_at=body.effective_at)
    return _out(ledger.pay_sales_order(command, meta), response)


@router.post("/sales-orders/{order_id}/returns", **COMMAND_ROUTE)
def return_goods(order_id: UUID, body: OrderQuantitiesIn, ledger: LedgerDep,
                 meta: CommandMetaDep, response: Response) -> SalesCommandOut:
    """Take back delivered goods (退货) at the cost they went out at; issues a credit note."""
    command = p.Quantities(order_id=order_id, reference=body.reference, note=body.note,
                           reason=body.reason, effective_at=body.effective_at,
                           quantities=tuple((line.line_number, line.quantity)
                                            for line in body.lines))
    return _out(ledger.return_sales_order(command, meta), response)


@router.post("/sales-orders/{order_id}/cancel", **COMMAND_ROUTE)
def cancel(order_id: UUID, ledger: LedgerDep, meta: CommandMetaDep, response: Response,
           body: ReviewIn | None = None) -> SalesCommandOut:
    """Cancel before anything was dispatched; reservations are released."""
    command = p.OrderStep(order_id=order_id, reason=body.reason if body else None)
    return _out(ledger.cancel_sales_order(command, meta), response)


FIGURES = ("quantity", "reserved", "dispatched", "shipped", "delivered", "invoiced",
           "returned", "credited", "dispatched_value", "returned_value")
NONE = Decimal("0.000")


def _line(line: dict[str, Any], *, approved: bool, open_: bool) -> SalesOrderLineOut:
    figures = {name: Decimal(line[name]) for name in FIGURES}
    ordered = figures["quantity"]
    unpriced = line["unit_price"] is None
    return SalesOrderLineOut(
        line_number=line["line_number"], sku=line["sku"], location=line["location"],
        unit_price=None if unpriced else Decimal(line["unit_price"]),
        # Approval takes the whole order: once approved, every ordered unit is approved.
        approved=ordered if approved else NONE,
        backordered=(ordered - figures["dispatched"] - figures["reserved"]
                     if approved and open_ else NONE),
        **figures)


def _view(row: dict[str, Any], *, timeline: bool) -> SalesOrderSummaryOut:
    invoiced, credited = money_of(row["invoiced_total_e2"]), money_of(row["credited_total_e2"])
    paid = money_of(row["paid_e2"])
    approved, open_ = row["review"] == "approved", not row["cancelled"]
    view = SalesOrderSummaryOut(
        order_id=row["order_id"], customer=row["customer"], status=row["status"],
        reference=row["reference"], note=row["note"], placed_at=row["placed_at"],
        possible_duplicate_of=json.loads(row["possible_duplicate_of"]),
        lines=[_line(line, approved=approved, open_=open_) for line in json.loads(row["lines"])],
        invoiced_total=invoiced, credited_total=credited, paid=paid,
        outstanding=invoiced - credited - paid, version=row["version"])
    if not timeline:
        return view
    return SalesOrderOut(**view.model_dump(), timeline=json.loads(row["timeline"]))


@router.get("/sales-orders/{order_id}", response_model=SalesOrderOut,
            responses=responses(401, 403, 404, 422, 503))
def get_one(request: Request, order_id: UUID, read_models: ReadModelsDep, _: Reader,
            min_position: MinPosition = 0) -> SalesOrderOut:
    """One sales order: status, per-line figures, money, and the timeline of its events."""
    with read_models.reading(["sales_orders"], min_position,
                             wait_seconds(request)) as (connection, states):
        row = queries.order(connection, read_models.by_name["sales_orders"],
                            states["sales_orders"].generation, str(order_id))
    if row is None:
        raise ApiProblem(404, "unknown_order", f"No sales order {order_id}.",
                         order_id=str(order_id))
    view = _view(row, timeline=True)
    assert isinstance(view, SalesOrderOut)
    return view


@router.get("/sales-orders", response_model=SalesOrderPage,
            responses=responses(401, 403, 422, 503))
def get_many(request: Request, read_models: ReadModelsDep, _: Reader,
             status: STATUSES | None = None,
             customer: Annotated[str | None, Query(pattern=CODE_PATTERN)] = None,
             min_position: MinPosition = 0, limit: Limit = 50,
             cursor: Cursor = None) -> SalesOrderPage:
    """Sales orders in placement order, by status and customer (timelines: see one order)."""
    key = cursors.decode(cursor, (int,))
    with read_models.reading(["sales_orders"], min_position,
                             wait_seconds(request)) as (connection, states):
        page = queries.orders(
            connection, read_models.by_name["sales_orders"], states["sales_orders"].generation,
            status=status, party=("customer", customer), after=key[0] if key else 0,
            limit=limit)
    next_cursor = (cursors.encode([page.last["created_position"]])
                   if page.has_more and page.last else None)
    return SalesOrderPage(items=[_view(row, timeline=False) for row in page.rows],
                          position=states["sales_orders"].position, next_cursor=next_cursor)
