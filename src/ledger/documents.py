"""Deciding stock documents: each line becomes an event on a bin in the workspace.

Each function returns the lines of the command's result, as recorded: the
quantity, unit cost and value that went in or out, and the bin's balance after.
A refusal on any line raises before anything is saved, so a document is
recorded whole or not at all.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from ledger.commands import Count, Dispatch, Receipt, Transfer
from ledger.domain.context import MovementContext
from ledger.domain.stock_bin import StockBin
from ledger.errors import InsufficientStock
from ledger.workspace import Workspace

Line = dict[str, Any]
COUNT_SHORTFALL = "count found less stock than was reserved"


def movement_line(stock_bin: StockBin) -> Line:
    event = stock_bin.pending_events[-1]
    assert isinstance(event, StockBin.Movement)
    return {
        "sku": stock_bin.sku,
        "location": stock_bin.location,
        "quantity": getattr(event, "quantity", None),
        "unit_cost": getattr(event, "unit_cost", None),
        "value": getattr(event, "value", None),
        "quantity_on_hand_after": stock_bin.quantity_on_hand,
        "value_after": stock_bin.value,
    }


def decide_receipt(receipt: Receipt, workspace: Workspace, context: MovementContext) -> list[Line]:
    workspace.location(receipt.location)
    lines = []
    for number, line in enumerate(receipt.lines, start=1):
        stock_bin = workspace.bin(line.sku, receipt.location)
        stock_bin.receive(line.quantity, line.unit_cost, context, number)
        lines.append(movement_line(stock_bin))
    return lines


def _bin_to_take_from(workspace: Workspace, sku: str, location: str,
                      quantity: Decimal) -> StockBin:
    stock_bin = workspace.existing_bin(sku, location)
    if stock_bin is None:
        raise InsufficientStock(sku, location, quantity, Decimal("0.000"))
    return stock_bin


def decide_dispatch(dispatch: Dispatch, workspace: Workspace,
                    context: MovementContext) -> list[Line]:
    workspace.location(dispatch.location)
    lines = []
    for number, line in enumerate(dispatch.lines, start=1):
        stock_bin = _bin_to_take_from(workspace, line.sku, dispatch.location, line.quantity)
        stock_bin.dispatch(line.quantity, context, number)
        lines.append(movement_line(stock_bin))
    return lines


def decide_transfer(transfer: Transfer, workspace: Workspace,
                    context: MovementContext) -> list[Line]:
    workspace.location(transfer.from_location)
    workspace.location(transfer.to_location)
    lines = []
    for number, line in enumerate(transfer.lines, start=1):
        source = _bin_to_take_from(workspace, line.sku, transfer.from_location, line.quantity)
        layers = source.transfer_out(line.quantity, transfer.to_location, context, number)
        result = movement_line(source)
        destination = workspace.bin(line.sku, transfer.to_location)
        destination.transfer_in(layers, transfer.from_location, context, number)
        result["to_location"] = destination.location
        result["to_quantity_on_hand_after"] = destination.quantity_on_hand
        result["to_value_after"] = destination.value
        lines.append(result)
    return lines


def release_for_count(workspace: Workspace, sku: str, location: str,
                      quantity_counted: Decimal, context: MovementContext) -> None:
    """Before a count finds less than is reserved: release the newest reservations."""
    stock_bin = workspace.existing_bin(sku, location)
    if stock_bin is None:
        return
    for order_id, order_line, amount in stock_bin.shortfall_releases(quantity_counted):
        stock_bin.release(order_id, order_line, amount, COUNT_SHORTFALL, context)
        workspace.sales_order(order_id).record_releases(
            {order_line: amount}, COUNT_SHORTFALL, context.document_id, context.actor)


def decide_count(count: Count, workspace: Workspace, context: MovementContext) -> list[Line]:
    workspace.location(count.location)
    lines = []
    for number, line in enumerate(count.lines, start=1):
        release_for_count(workspace, line.sku, count.location, line.counted_quantity, context)
        stock_bin = workspace.bin(line.sku, count.location)
        stock_bin.count(line.counted_quantity, line.unit_cost, context, number)
        event = stock_bin.pending_events[-1]
        assert isinstance(event, StockBin.Counted)
        result = movement_line(stock_bin)
        result.update(
            counted_quantity=event.quantity_counted,
            quantity=event.quantity_difference,
            unit_cost=event.unit_cost,
            value=event.value_difference,
            revalued=event.revalued,
        )
        lines.append(result)
    return lines
