"""Selling (销售): sales orders from placement to payment and returns, as commands on the ledger.

Each command is checked, then decided against the order, the customer's account
and (for reservations, dispatches, returns and cancellations) the bins in a
workspace, and saved as one transaction through `Ledger._execute`, with
idempotency and retries like every stock document. Every decider ends by
recording the order's credit exposure on the customer's account when it changed.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, replace
from datetime import timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from ledger.commands import checked_lines, checked_quantity, checked_text, checked_unit_cost
from ledger.documents import movement_line
from ledger.domain.context import MovementContext
from ledger.domain.identity import check_code
from ledger.domain.sales_order import SalesOrder
from ledger.errors import (
    CreditLimitExceeded,
    InvalidInput,
    InvalidTransition,
    MissingPrice,
    PossibleDuplicate,
)
from ledger.numbers import ZERO, ZERO_QUANTITY
from ledger.purchasing import (
    OrderHeader,
    OrderStep,
    Quantities,
    checked_line_value,
    checked_quantities,
)
from ledger.workspace import Workspace

if TYPE_CHECKING:
    from ledger.application import Decide

CANCELLED_RESERVATION = "order cancelled"


@dataclass(frozen=True)
class SalesLine:
    sku: str
    location: str
    quantity: Decimal
    unit_price: Decimal | None


@dataclass(frozen=True, kw_only=True)
class PlaceOrder(OrderHeader):
    """A new sales order; its id is the command's document id."""

    customer: str
    lines: tuple[SalesLine, ...]


@dataclass(frozen=True, kw_only=True)
class SalesReview(OrderStep):
    approved: bool
    confirm_duplicate: bool = False


@dataclass(frozen=True, kw_only=True)
class Ship(OrderStep):
    carrier: str
    tracking_number: str


@dataclass(frozen=True, kw_only=True)
class Deliver(OrderStep):
    """The sign-off: `signed_by`; the time signed is the command's `effective_at`."""

    signed_by: str


# Checks.

def checked_placement(command: PlaceOrder) -> PlaceOrder:
    check_code(command.customer, "customer")
    checked_lines(len(command.lines))
    lines = tuple(
        SalesLine(check_code(line.sku, f"lines[{n}].sku"),
                  check_code(line.location, f"lines[{n}].location"),
                  checked_quantity(line.quantity, f"lines[{n}].quantity"),
                  None if line.unit_price is None
                  else checked_unit_cost(line.unit_price, f"lines[{n}].unit_price"))
        for n, line in enumerate(command.lines))
    for n, line in enumerate(lines):
        checked_line_value(line.quantity, line.unit_price, f"lines[{n}]")
    return replace(command, lines=lines, reference=checked_text(command.reference, "reference"),
                   note=checked_text(command.note, "note"))


def checked_dispatch_quantities(command: Quantities) -> Quantities:
    """Quantities per line, or none at all: everything reserved."""
    return checked_quantities(command) if command.quantities else command


def checked_shipment(command: Ship) -> Ship:
    carrier = checked_text(command.carrier, "carrier", required=True)
    tracking = checked_text(command.tracking_number, "tracking_number", required=True)
    assert carrier is not None and tracking is not None
    return replace(command, carrier=carrier, tracking_number=tracking)


def checked_delivery(command: Deliver) -> Deliver:
    signed_by = checked_text(command.signed_by, "signed_by", required=True)
    assert signed_by is not None
    return replace(command, signed_by=signed_by)


# Deciders.

def _settle(order: SalesOrder, workspace: Workspace, context: MovementContext) -> None:
    """Record the order's exposure on the customer's account when it changed."""
    account = workspace.customer_account(order.customer)
    account.expose(order.id, order.exposure(), context.recorded_at)


def _status(order: SalesOrder) -> dict[str, Any]:
    return {"order_id": order.id, "status": order.status, "outstanding": order.outstanding}


def lines_digest(lines: list[dict[str, Any]]) -> str:
    """What makes two orders' lines "the same": SKU, location, quantity and price."""
    canonical = sorted(json.dumps([line["sku"], line["location"], str(line["quantity"]),
                                   str(line["unit_price"])]) for line in lines)
    return hashlib.sha256("\n".join(canonical).encode()).hexdigest()


def placing(window: timedelta) -> Decide[PlaceOrder]:
    """The decider for placing orders, flagging likely duplicates within `window`."""

    def decide(command: PlaceOrder, workspace: Workspace,
               context: MovementContext) -> dict[str, Any]:
        customer = workspace.party(command.customer)
        if not customer.plays("customer"):
            raise InvalidInput(f"Party {command.customer!r} is not a customer.", "customer")
        lines = []
        for number, line in enumerate(command.lines, start=1):
            workspace.item(line.sku)
            workspace.location(line.location)
            lines.append({"line_number": number, "sku": line.sku, "location": line.location,
                          "quantity": line.quantity, "unit_price": line.unit_price})
        account = workspace.customer_account(command.customer)
        digest = lines_digest(lines)
        duplicates = account.likely_duplicates(digest, context.recorded_at, window)
        order = SalesOrder.place(context.document_id, command.customer, lines,
                                 command.reference, command.note, duplicates, context.actor,
                                 context.recorded_at)
        workspace.add(order)
        account.place(order.id, digest, context.recorded_at)
        return {**_status(order), "possible_duplicate_of": duplicates}

    return decide


def decide_review(command: SalesReview, workspace: Workspace,
                  context: MovementContext) -> dict[str, Any]:
    order = workspace.sales_order(command.order_id)
    if command.approved:
        _check_approval(order, command.confirm_duplicate, workspace)
    order.review(command.approved, context.actor, command.reason, command.confirm_duplicate)
    body = _status(order)
    if command.approved:
        body["reservations"] = _reserve(order, workspace, context)
    _settle(order, workspace, context)
    return {**body, **_status(order)}


def _check_approval(order: SalesOrder, confirm_duplicate: bool, workspace: Workspace) -> None:
    """订单审核: a customer still, priced lines, not an unconfirmed duplicate, within credit."""
    order.require("approve", "pending_review")
    customer = workspace.party(order.customer)
    if not customer.plays("customer"):
        raise InvalidInput(f"Party {order.customer!r} is no longer a customer.", "customer")
    unpriced = [number for number, line in order.lines.items() if line["unit_price"] is None]
    if unpriced:
        raise MissingPrice(str(order.id), unpriced)
    if order.possible_duplicate_of and not confirm_duplicate:
        raise PossibleDuplicate(str(order.id), [str(other) for other in
                                                order.possible_duplicate_of])
    if customer.credit_limit is not None:
        account = workspace.customer_account(order.customer)
        others = account.total_exposure - account.exposure_of(order.id)
        exposure = order.exposure(approved=True)
        if others + exposure > customer.credit_limit:
            raise CreditLimitExceeded(order.customer, customer.credit_limit, others, exposure)


def _reserve(order: SalesOrder, workspace: Workspace,
             context: MovementContext) -> list[dict[str, Any]]:
    """Reserve what each short line can get now (库存检查); the per-line report."""
    got: dict[int, Decimal] = {}
    for number, short in order.short().items():
        line = order.lines[number]
        stock_bin = workspace.existing_bin(line["sku"], line["location"])
        if short > ZERO and stock_bin is not None:
            got[number] = stock_bin.reserve(order.id, number, short, context)
    order.record_reservations(got, context.document_id, context.actor)
    short_after = order.short()
    return [{"line_number": number, "sku": line["sku"], "location": line["location"],
             "reserved_now": got.get(number, ZERO_QUANTITY), "reserved": line["reserved"],
             "short": short_after[number]} for number, line in order.lines.items()]


def decide_reserve(command: OrderStep, workspace: Workspace,
                   context: MovementContext) -> dict[str, Any]:
    order = workspace.sales_order(command.order_id)
    order.require_open("reserve")
    reservations = _reserve(order, workspace, context)
    return {**_status(order), "reservations": reservations}


def decide_dispatch(command: Quantities, workspace: Workspace,
                    context: MovementContext) -> dict[str, Any]:
    order = workspace.sales_order(command.order_id)
    quantities = dict(command.quantities) or {
        number: line["reserved"] for number, line in order.lines.items()
        if line["reserved"] > ZERO}
    if not quantities:
        raise InvalidTransition(str(order.id), order.status, "dispatch: nothing is reserved")
    order.check_dispatch(quantities)
    recorded, moved, times = [], [], []
    for number, (order_line, quantity) in enumerate(quantities.items(), start=1):
        held = order.lines[order_line]
        stock_bin = workspace.existing_bin(held["sku"], held["location"])
        assert stock_bin is not None, "reserved stock lies in a bin"
        stock_bin.dispatch_reserved(quantity, context, number, order_line)
        line = movement_line(stock_bin)
        recorded.append({"line_number": order_line, "sku": held["sku"],
                         "location": held["location"], "quantity": quantity,
                         "unit_cost": line["unit_cost"], "value": line["value"]})
        moved.append(line)
        times.append(stock_bin.latest_effective_at or context.effective_at)
    # The bins may have moved a defaulted time up past their latest movement (clock skew).
    order.record_dispatch(recorded, context.document_id, context.actor, max(times))
    return {**_status(order), "lines": moved}


def decide_ship(command: Ship, workspace: Workspace,
                context: MovementContext) -> dict[str, Any]:
    order = workspace.sales_order(command.order_id)
    order.ship(command.carrier, command.tracking_number, context.document_id, context.actor,
               context.effective_at)
    return _status(order)


def decide_deliver(command: Deliver, workspace: Workspace,
                   context: MovementContext) -> dict[str, Any]:
    order = workspace.sales_order(command.order_id)
    order.deliver(command.signed_by, context.effective_at, context.document_id, context.actor)
    return _status(order)


def decide_invoice(command: Any, workspace: Workspace,
                   context: MovementContext) -> dict[str, Any]:
    order = workspace.sales_order(command.order_id)
    order.invoice(command.invoice_number, [
        {"line_number": number, "quantity": quantity, "tax_rate": rate,
         "unit_price": order.line(number)["unit_price"] if price is None else price}
        for number, quantity, price, rate in command.lines], context.document_id,
        context.actor, context.effective_at)
    _settle(order, workspace, context)
    return _status(order)


def decide_payment(command: Any, workspace: Workspace,
                   context: MovementContext) -> dict[str, Any]:
    order = workspace.sales_order(command.order_id)
    order.pay(command.amount, context.document_id, command.reference, context.actor,
              context.effective_at)
    _settle(order, workspace, context)
    return _status(order)


def decide_return(command: Quantities, workspace: Workspace,
                  context: MovementContext) -> dict[str, Any]:
    order = workspace.sales_order(command.order_id)
    reason = command.reason or "returned by customer"
    lines = order.take_back(dict(command.quantities), reason, context.document_id,
                            context.actor, context.effective_at)
    moved = []
    for number, line in enumerate(lines, start=1):
        stock_bin = workspace.bin(line["sku"], line["location"])
        stock_bin.return_from_customer(line["quantity"], line["value"], context, number,
                                       line["line_number"])
        moved.append(movement_line(stock_bin))
    event = order.pending_events[-1]
    assert isinstance(event, SalesOrder.Returned)
    _settle(order, workspace, context)
    return {**_status(order), "lines": moved,
            "credit_note": {"number": event.credit_note_number, "amount": event.credit_amount,
                            "tax": event.credit_tax, "total": event.credit_total}}


def decide_cancel(command: OrderStep, workspace: Workspace,
                  context: MovementContext) -> dict[str, Any]:
    order = workspace.sales_order(command.order_id)
    releases = order.cancel(command.reason, context.actor, context.document_id)
    for number, amount in releases.items():
        line = order.lines[number]
        stock_bin = workspace.existing_bin(line["sku"], line["location"])
        assert stock_bin is not None, "reserved stock lies in a bin"
        stock_bin.release(order.id, number, amount, CANCELLED_RESERVATION, context)
    _settle(order, workspace, context)
    return _status(order)
