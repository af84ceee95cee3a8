"""Stock documents answered below FastAPI's routing: same checks, same document, same answer.

`POST /receipts`, `/dispatches`, `/transfers` and `/adjustments` are most of a ledger's
writes. FastAPI answers each through a dozen layers of middleware, routing, dependency
solving and response validation, which cost the event loop about as much CPU as the
group-commit writer spends deciding and saving the command (docs/architecture.md, "Where
an API request's time goes"). This middleware answers the ordinary request itself:

- a known operator's key (`Authorization: Bearer`, a role that may record movements);
- a JSON body (or no Content-Type) whose declared length is within the limit;
- no `Idempotency-Key` and no `effective_at` (those need a database read before queueing:
  `Ledger.enqueue`);
- a body that parses (numbers as Decimal) and validates against the route's model.

It parses, validates and builds the document with the code the endpoints use
(`api.routers.documents`), queues it for the group commit, and answers with the
endpoint's response (the same model, serialised the same way) or, when the ledger refuses
it, the same problem+json. Anything else — every error of the request itself, every
unusual header — is handed on untouched to FastAPI (its body replayed), whose answer is
therefore the answer: nothing is decided twice, and no refusal is worded twice.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from pydantic import BaseModel, ValidationError
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.auth import OPERATE, KeyRing, Principal
from api.problems import ledger_problem
from api.recording import enqueue
from api.requests import is_json_media_type
from api.routers import documents
from api.schemas import AdjustmentIn, DispatchIn, ReceiptIn, TransferIn
from ledger import errors
from ledger.application import CommandResult, StockDocument
from ledger.domain.context import CommandMeta
from ledger.random_ids import new_id


@dataclass(frozen=True)
class _Route:
    model: type[BaseModel]
    document: Callable[[Any], StockDocument]


ROUTES = {
    "/receipts": _Route(ReceiptIn, documents.receipt_document),
    "/dispatches": _Route(DispatchIn, documents.dispatch_document),
    "/transfers": _Route(TransferIn, documents.transfer_document),
    "/adjustments": _Route(AdjustmentIn, documents.count_document),
}
CORRELATION_ID_LENGTH_MAX = 200


class CommandFastPath:
    """ASGI middleware: answers the ordinary stock-document request; hands on the rest."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        route = (ROUTES.get(scope["path"])
                 if scope["type"] == "http" and scope["method"] == "POST" else None)
        if route is None:
            await self.app(scope, receive, send)
            return
        headers = _first_headers(scope["headers"])
        meta = self._meta(scope, headers)
        if meta is None or not self._within_limit(headers):
            await self.app(scope, receive, send)
            return
        messages, body = await _read_body(receive)
        queued = _queue(scope, route, body, meta) if body is not None else None
        if queued is None:
            await self.app(scope, _replaying(messages, receive), send)
            return
        try:
            result = await queued
        except errors.LedgerError as error:
            await ledger_problem(error)(scope, receive, send)
            return
        await _created(result)(scope, receive, send)

    def _meta(self, scope: Scope, headers: dict[bytes, bytes]) -> CommandMeta | None:
        """The command's metadata when the caller may record it and nothing needs a read."""
        if b"idempotency-key" in headers:
            return None
        content_type = headers.get(b"content-type")
        if content_type is not None and not is_json_media_type(content_type.decode("latin-1")):
            return None
        principal = _operator(scope, headers.get(b"authorization"))
        if principal is None:
            return None
        correlation_id = headers.get(b"x-correlation-id", b"").decode("latin-1")
        return CommandMeta(principal.actor, None,
                           correlation_id[:CORRELATION_ID_LENGTH_MAX] or str(new_id()))

    def _within_limit(self, headers: dict[bytes, bytes]) -> bool:
        declared = headers.get(b"content-length", b"")
        return declared.isdigit() and int(declared) <= self.limit


def _first_headers(raw: list[tuple[bytes, bytes]]) -> dict[bytes, bytes]:
    """Each header's first value, as Starlette's `Headers.get` reads it."""
    found: dict[bytes, bytes] = {}
    for name, value in raw:
        found.setdefault(name, value)
    return found


def _operator(scope: Scope, authorization: bytes | None) -> Principal | None:
    """The caller, when its key is valid and its role may record stock movements."""
    if authorization is None:
        return None
    scheme, _, presented = authorization.decode("latin-1").partition(" ")
    if scheme.lower() != "bearer" or not presented.strip():
        return None
    keys: KeyRing = scope["app"].state.keys
    principal = keys.authenticate(presented.strip())
    return principal if principal is not None and principal.role in OPERATE else None


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


def _replaying(messages: list[Message], receive: Receive) -> Receive:
    """A `receive` that gives the messages already read again, then the client's."""
    queue = list(messages)

    async def replay() -> Message:
        return queue.pop(0) if queue else await receive()

    return replay


def _queue(scope: Scope, route: _Route, body: bytes, meta: CommandMeta):  # type: ignore[no-untyped-def]
    """The document queued for the group commit; None, with nothing queued, when FastAPI
    must answer: a body that does not parse or validate, a document the ledger refuses
    before queueing, or one that needs a read first."""
    try:
        data = json.loads(body, parse_float=Decimal, parse_int=Decimal)
        document = route.document(route.model.model_validate(data))
        return enqueue(scope["app"].state.ledger, document, meta)
    except (ValueError, RecursionError, ValidationError, errors.LedgerError):
        return None


def _created(result: CommandResult) -> Response:
    """The endpoints' answer: 201 with the document, as FastAPI serialises `CommandOut`."""
    response = Response(documents.command_out(result).model_dump_json(exclude_none=True),
                        status_code=201, media_type="application/json")
    if result.replayed:
        response.headers[documents.REPLAYED_HEADER] = "true"
    return response
