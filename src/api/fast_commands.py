"""Stock documents on the fast path (api.fast_path): `POST /receipts`, `/dispatches`,
`/transfers` and `/adjustments`.

Answered here, the ordinary request:

- a key whose role may record stock movements (`Authorization: Bearer`);
- a JSON body (or no Content-Type) whose declared length is within the limit;
- no `Idempotency-Key` and no `effective_at` (those need a database read before queueing:
  `Ledger.enqueue`);
- a body that parses (numbers as Decimal) and validates against the route's model.

It parses, validates and builds the document as the endpoint does
(`api.routers.documents`), queues it for the group commit, and answers with the
endpoint's response or, when the ledger refuses it, the same problem+json. Anything else
is handed on to FastAPI with its body replayed, before anything was queued.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from pydantic import BaseModel, ValidationError
from starlette.responses import Response
from starlette.types import Message, Receive, Scope, Send

from api.auth import OPERATE
from api.fast_path import Handler, Onward, caller, first_headers, json_response, replaying
from api.problems import ledger_problem
from api.recording import enqueue
from api.requests import decimal_json, is_json_media_type
from api.routers import documents
from api.schemas import AdjustmentIn, DispatchIn, ReceiptIn, TransferIn
from ledger import errors
from ledger.application import CommandResult, StockDocument
from ledger.domain.context import CommandMeta
from ledger.random_ids import new_id

CORRELATION_ID_LENGTH_MAX = 200


def _route(model: type[BaseModel], document: Callable[[Any], StockDocument]) -> Handler:
    async def handle(onward: Onward, scope: Scope, receive: Receive, send: Send) -> None:
        headers = first_headers(scope)
        meta = _meta(scope, headers)
        if meta is None or not _within(headers, onward.body_limit):
            await onward.app(scope, receive, send)
            return
        messages, body = await _read_body(receive)
        queued = None if body is None else _queue(scope, model, document, body, meta)
        if queued is None:
            await onward.app(scope, replaying(messages, receive), send)
            return
        try:
            result = await queued
        except errors.LedgerError as error:
            await ledger_problem(error)(scope, receive, send)
            return
        await _created(result)(scope, receive, send)

    return handle


ROUTES = {
    ("POST", "/receipts"): _route(ReceiptIn, documents.receipt_document),
    ("POST", "/dispatches"): _route(DispatchIn, documents.dispatch_document),
    ("POST", "/transfers"): _route(TransferIn, documents.transfer_document),
    ("POST", "/adjustments"): _route(AdjustmentIn, documents.count_document),
}


def _meta(scope: Scope, headers: dict[bytes, bytes]) -> CommandMeta | None:
    """The command's metadata when the caller may record it and nothing needs a read."""
    if b"idempotency-key" in headers:
        return None
    content_type = headers.get(b"content-type")
    if content_type is not None and not is_json_media_type(content_type.decode("latin-1")):
        return None
    principal = caller(scope, headers)
    if principal is None or principal.role not in OPERATE:
        return None
    correlation_id = headers.get(b"x-correlation-id", b"").decode("latin-1")
    return CommandMeta(principal.actor, None,
                       correlation_id[:CORRELATION_ID_LENGTH_MAX] or str(new_id()))


def _within(headers: dict[bytes, bytes], limit: int) -> bool:
    declared = headers.get(b"content-length", b"")
    return declared.isdigit() and int(declared) <= limit


async def _read_body(receive: Receive) -> tuple[list[Message], bytes | None]:
    """The messages received, and the whole body (None when the client went away)."""
    messages: list[Message] = []
    chunks: list[bytes] = []
    while True:
        message = await receive()
        messages.append(message)
        if message["type"] != "http.request":
            return messages, None
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return messages, b"".join(chunks)


def _queue(scope: Scope, model: type[BaseModel], document: Callable[[Any], StockDocument],
           body: bytes, meta: CommandMeta) -> Awaitable[CommandResult] | None:
    """The document queued for the group commit; None, with nothing queued, when FastAPI
    must answer: a body that does not parse or validate, a document the ledger refuses
    before queueing, or one that needs a read first."""
    try:
        data = decimal_json(body)
        return enqueue(scope["app"].state.ledger, document(model.model_validate(data)), meta)
    except (ValueError, RecursionError, ValidationError, errors.LedgerError):
        return None


def _created(result: CommandResult) -> Response:
    """The endpoints' answer: 201 with the document, as FastAPI serialises `CommandOut`."""
    response = json_response(
        documents.command_out(result).model_dump_json(exclude_none=True), 201)
    if result.replayed:
        response.headers[documents.REPLAYED_HEADER] = "true"
    return response
