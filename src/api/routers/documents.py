"""Stock documents: receipts, dispatches, transfers and counts (adjustments).

Their requests are usually answered by `api.fast_commands`, below FastAPI's routing, with
the same checks, the same document (the `*_document` functions here) and the same answer;
these endpoints answer every request that path hands on (docs/architecture.md).
"""

from __future__ import annotations

from fastapi import APIRouter, Response

from api.deps import CommandMetaDep, LedgerDep
from api.problems import responses
from api.recording import record
from api.requests import LedgerRoute
from api.schemas import AdjustmentIn, CommandOut, DispatchIn, ReceiptIn, TransferIn
from ledger import commands
from ledger.application import CommandResult

router = APIRouter(route_class=LedgerRoute, tags=["stock documents"])
PROBLEMS = responses(401, 403, 409, 413, 415, 422)
REPLAYED_HEADER = "Idempotent-Replayed"


def command_out(result: CommandResult) -> CommandOut:
    return CommandOut.model_validate(
        {"document_id": result.document_id, "position": result.position, "lines": result.lines})


def _out(result: CommandResult, response: Response) -> CommandOut:
    if result.replayed:
        response.headers[REPLAYED_HEADER] = "true"
    return command_out(result)


def receipt_document(body: ReceiptIn) -> commands.Receipt:
    return commands.Receipt(
        location=body.location, reference=body.reference, note=body.note,
        effective_at=body.effective_at,
        lines=tuple(commands.ReceiptLine(line.sku, line.quantity, line.unit_cost)
                    for line in body.lines))


def dispatch_document(body: DispatchIn) -> commands.Dispatch:
    return commands.Dispatch(
        location=body.location, reference=body.reference, note=body.note, reason=body.reason,
        effective_at=body.effective_at,
        lines=tuple(commands.DispatchLine(line.sku, line.quantity) for line in body.lines))


def transfer_document(body: TransferIn) -> commands.Transfer:
    return commands.Transfer(
        from_location=body.from_location, to_location=body.to_location,
        reference=body.reference, note=body.note, effective_at=body.effective_at,
        lines=tuple(commands.DispatchLine(line.sku, line.quantity) for line in body.lines))


def count_document(body: AdjustmentIn) -> commands.Count:
    return commands.Count(
        location=body.location, reason=body.reason, reference=body.reference, note=body.note,
        effective_at=body.effective_at,
        lines=tuple(commands.CountLine(line.sku, line.counted_quantity, line.unit_cost)
                    for line in body.lines))


@router.post("/receipts", status_code=201, response_model=CommandOut,
             response_model_exclude_none=True, responses=PROBLEMS)
async def post_receipt(body: ReceiptIn, ledger: LedgerDep, meta: CommandMetaDep,
                       response: Response) -> CommandOut:
    """Receive stock (入库): each line in at its unit cost."""
    return _out(await record(ledger, receipt_document(body), meta), response)


@router.post("/dispatches", status_code=201, response_model=CommandOut,
             response_model_exclude_none=True, responses=PROBLEMS)
async def post_dispatch(body: DispatchIn, ledger: LedgerDep, meta: CommandMetaDep,
                        response: Response) -> CommandOut:
    """Dispatch stock (出库): each line out at cost; refused beyond what is available."""
    return _out(await record(ledger, dispatch_document(body), meta), response)


@router.post("/transfers", status_code=201, response_model=CommandOut,
             response_model_exclude_none=True, responses=PROBLEMS)
async def post_transfer(body: TransferIn, ledger: LedgerDep, meta: CommandMetaDep,
                        response: Response) -> CommandOut:
    """Transfer stock (调拨) between two locations, carrying its cost."""
    return _out(await record(ledger, transfer_document(body), meta), response)


@router.post("/adjustments", status_code=201, response_model=CommandOut,
             response_model_exclude_none=True, responses=PROBLEMS)
async def post_adjustment(body: AdjustmentIn, ledger: LedgerDep, meta: CommandMetaDep,
                          response: Response) -> CommandOut:
    """Record a stock count (盘点): on-hand becomes the counted quantity."""
    return _out(await record(ledger, count_document(body), meta), response)
