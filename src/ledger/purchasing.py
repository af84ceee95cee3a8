"""Purchasing (采购): purchase orders from creation to payment, as commands on the ledger.

Each command is checked, then decided against the order (and, for receipts and
returns, the bins) in a workspace, and saved as one transaction through
`Ledger._execute`, with idempotency and retries like every stock document.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any
from uuid import UUID

from ledger.commands import (
    MONEY_MAX,
    checked_lines,
    checked_quantity,
    checked_text,
    checked_unit_cost,
    checked_value,
)
from ledger.documents import movement_line
from ledger.domain.context import MovementContext
from ledger.domain.identity import check_code
from ledger.domain.purchase_order import PurchaseOrder
from ledger.domain.stock_bin import StockBin
from ledger.errors import InvalidInput
from ledger.numbers import ZERO, money, places
from ledger.workspace import Workspace

if TYPE_CHECKING:
    from ledger.application import Decide

TAX_RATE_MAX = Decimal("1")


@dataclass(frozen=True)
class OrderLine:
    sku: str
    location: str
    quantity: Decimal
    unit_price: Decimal


@dataclass(frozen=True, kw_only=True)
class OrderHeader:
    """What every purchase-order command may carry besides its own fields."""

    reference: str | None = None
    note: str | None = None
    reason: str | None = None
    effective_at: datetime | None = None


@dataclass(frozen=True, kw_only=True)
class CreateOrder(OrderHeader):
    """A new order; its id is the command's document id."""

    supplier: str
    lines: tuple[OrderLine, ...]


@dataclass(frozen=True, kw_only=True)
class OrderStep(OrderHeader):
    order_id: UUID


@dataclass(frozen=True, kw_only=True)
class Review(OrderStep):
    approved: bool


@dataclass(frozen=True, kw_only=True)
class Quantities(OrderStep):
    """Receipts and returns: quantities per order line."""

    quantities: tuple[tuple[int, Decimal], ...]


@dataclass(frozen=True, kw_only=True)
class Invoice(OrderStep):
    invoice_number: str
    # line number, quantity, unit price (None: the order's price), tax rate
    lines: tuple[tuple[int, Decimal, Decimal | None, Decimal], ...]


@dataclass(frozen=True, kw_only=True)
class Payment(OrderStep):
    amount: Decimal


@dataclass(frozen=True, kw_only=True)
class End(OrderStep):
    outcome: str


checked_line_value = checked_value


def checked_order(command: CreateOrder) -> CreateOrder:
    check_code(command.supplier, "supplier")
    checked_lines(len(command.lines))
    lines = tuple(
        OrderLine(check_code(line.sku, f"lines[{n}].sku"),
                  check_code(line.location, f"lines[{n}].location"),
                  checked_quantity(line.quantity, f"lines[{n}].quantity"),
                  checked_unit_cost(line.unit_price, f"lines[{n}].unit_price"))
        for n, line in enumerate(command.lines))
    for n, line in enumerate(lines):
        checked_line_value(line.quantity, line.unit_price, f"lines[{n}]")
    return replace(command, lines=lines, reference=checked_text(command.reference, "reference"),
                   note=checked_text(command.note, "note"))


def checked_quantities(command: Quantities) -> Quantities:
    checked_lines(len(command.quantities))
    numbers = [number for number, _ in command.quantities]
    if len(set(numbers)) != len(numbers):
        raise InvalidInput("Name each order line once.", "lines")
    return replace(command, quantities=tuple(
        (number, checked_quantity(quantity, f"lines[{n}].quantity"))
        for n, (number, quantity) in enumerate(command.quantities)))


def checked_invoice(command: Invoice) -> Invoice:
    invoice_number = checked_text(command.invoice_number, "invoice_number", required=True)
    assert invoice_number is not None
    checked_lines(len(command.lines))
    numbers = [line[0] for line in command.lines]
    if len(set(numbers)) != len(numbers):
        raise InvalidInput("Name each order line once.", "lines")
    lines = []
    for n, (number, quantity, price, rate) in enumerate(command.lines):
        if not rate.is_finite() or rate < ZERO or rate > TAX_RATE_MAX or places(rate) > 4:
            raise InvalidInput("tax_rate is a fraction from 0 to 1 with at most 4 places.",
                               f"lines[{n}].tax_rate")
        quantity = checked_quantity(quantity, f"lines[{n}].quantity")
        price = None if price is None else checked_unit_cost(price, f"lines[{n}].unit_price")
        checked_line_value(quantity, price, f"lines[{n}]")
        lines.append((number, quantity, price, rate))
    return replace(command, invoice_number=invoice_number, lines=tuple(lines))


def checked_payment(command: Payment) -> Payment:
    amount = command.amount
    if not amount.is_finite() or amount <= ZERO or places(amount) > 2 or amount > MONEY_MAX:
        raise InvalidInput("amount is a positive amount of money with at most 2 places, "
                           f"at most {MONEY_MAX}.", "amount")
    return replace(command, amount=money(amount))



def _status(order: PurchaseOrder) -> dict[str, Any]:
    return {"order_id": order.id, "status": order.status}


def decide_create(command: CreateOrder, workspace: Workspace,
                  context: MovementContext) -> dict[str, Any]:
    supplier = workspace.party(command.supplier)
    if not supplier.plays("supplier"):
        raise InvalidInput(f"Party {command.supplier!r} is not a supplier.", "supplier")
    lines = []
    for number, line in enumerate(command.lines, start=1):
        workspace.item(line.sku)
        workspace.location(line.location)
        lines.append({"line_number": number, "sku": line.sku, "location": line.location,
                      "quantity": line.quantity, "unit_price": line.unit_price})
    order = PurchaseOrder.create(context.document_id, command.supplier, lines,
                                 command.reference, command.note, context.actor,
                                 context.recorded_at)
    workspace.add(order)
    return _status(order)


def decide_review(command: Review, workspace: Workspace,
                  context: MovementContext) -> dict[str, Any]:
    order = workspace.purchase_order(command.order_id)
    order.review(command.approved, context.actor, command.reason)
    return _status(order)


def receiving(tolerance: Decimal) -> Decide[Quantities]:
    """The decider for receipts against an order, with the over-receipt tolerance."""

    def decide(command: Quantities, workspace: Workspace,
               context: MovementContext) -> dict[str, Any]:
        order = workspace.purchase_order(command.order_id)
        lines = order.receive(dict(command.quantities), tolerance, context.document_id,
                              context.actor, context.effective_at)

        def receive(stock_bin: StockBin, line: dict[str, Any], number: int) -> None:
            stock_bin.receive(line["quantity"], line["unit_cost"], context, number,
                              order_line=line["line_number"])

        return {**_status(order), "lines": _move_stock(workspace, lines, receive)}

    return decide


def decide_return(command: Quantities, workspace: Workspace,
                  context: MovementContext) -> dict[str, Any]:
    order = workspace.purchase_order(command.order_id)
    reason = command.reason or "returned to supplier"
    lines = order.return_goods(dict(command.quantities))

    def give_back(stock_bin: StockBin, line: dict[str, Any], number: int) -> None:
        stock_bin.return_to_supplier(line["quantity"], line["unit_cost"], context, number,
                                     order_line=line["line_number"])

    moved = _move_stock(workspace, lines, give_back)
    # What each line took out of its bin (FIFO: other layers when those at cost were sold).
    recorded = [{**line, "value": movement["value"]} for line, movement in zip(lines, moved,
                                                                               strict=True)]
    order.record_return(recorded, reason, context.document_id, context.actor,
                        context.effective_at)
    return {**_status(order), "lines": moved}


def _move_stock(workspace: Workspace, lines: list[dict[str, Any]],
                move: Callable[[StockBin, dict[str, Any], int], None]) -> list[dict[str, Any]]:
    """Move each order line's stock on its bin; the recorded document lines."""
    moved = []
    for number, line in enumerate(lines, start=1):
        stock_bin = workspace.bin(line["sku"], line["location"])
        move(stock_bin, line, number)
        moved.append(movement_line(stock_bin))
    return moved


def decide_invoice(command: Invoice, workspace: Workspace,
                   context: MovementContext) -> dict[str, Any]:
    order = workspace.purchase_order(command.order_id)
    order.invoice(command.invoice_number, [
        {"line_number": number, "quantity": quantity, "tax_rate": rate,
         "unit_price": order.line(number)["unit_price"] if price is None else price}
        for number, quantity, price, rate in command.lines], context.actor, context.effective_at,
        context.document_id)
    return {**_status(order), "outstanding": order.outstanding}


def decide_payment(command: Payment, workspace: Workspace,
                   context: MovementContext) -> dict[str, Any]:
    order = workspace.purchase_order(command.order_id)
    order.pay(command.amount, context.document_id, command.reference, context.actor,
              context.effective_at)
    return {**_status(order), "outstanding": order.outstanding}


def decide_end(command: End, workspace: Workspace,
               context: MovementContext) -> dict[str, Any]:
    order = workspace.purchase_order(command.order_id)
    order.end(command.outcome, command.reason, context.actor)
    return _status(order)
