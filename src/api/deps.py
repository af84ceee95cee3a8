"""Dependencies every router shares: the ledger, the caller, and command metadata.

They are `async def` although they await nothing: none of them blocks (they read the
application's state and the request's headers), and FastAPI runs a plain `def` dependency
in its thread pool — a round trip through another thread, and the GIL, for each of them on
every request (the endpoints stay plain `def`: the database drivers block).
"""

from __future__ import annotations

import re
from typing import Annotated

from fastapi import Depends, Header, Request

from api.auth import OPERATE, READ, Principal, Role
from api.problems import ApiProblem
from api.requests import authenticate
from ledger.application import Ledger
from ledger.domain.context import CommandMeta
from ledger.random_ids import new_id
from projections.service import ReadModels

IDEMPOTENCY_KEY_PATTERN = re.compile(r"[\x21-\x7e]{1,200}")


async def get_ledger(request: Request) -> Ledger:
    ledger: Ledger = request.app.state.ledger
    return ledger


async def get_read_models(request: Request) -> ReadModels:
    read_models: ReadModels = request.app.state.read_models
    return read_models


async def get_principal(request: Request,
                        authorization: Annotated[str | None, Header()] = None) -> Principal:
    """The caller (the `authorization` parameter documents the header in OpenAPI).

    Routes authenticate before reading the body (`LedgerRoute`); the principal found then
    is reused, so a key is compared once per request.
    """
    return _principal(request)


def _principal(request: Request) -> Principal:
    found = getattr(request.state, "principal", None)
    return found if isinstance(found, Principal) else authenticate(request)


def _check_role(principal: Principal, roles: frozenset[Role], action: str) -> Principal:
    if principal.role not in roles:
        raise ApiProblem(403, "forbidden", f"The {principal.role} role may not {action}.",
                         role=str(principal.role))
    return principal


def _requiring(roles: frozenset[Role], action: str):  # type: ignore[no-untyped-def]
    async def check(principal: Annotated[Principal, Depends(get_principal)]) -> Principal:
        return _check_role(principal, roles, action)

    return check


def command_meta(roles: frozenset[Role], action: str):  # type: ignore[no-untyped-def]
    """A dependency: the command metadata of a caller whose role may do `action`.

    One dependency, not three (metadata ← role check ← principal): FastAPI solves each
    dependency of every request in turn, and this one is on every command. The headers it
    takes are documented in OpenAPI as before (`authorization` is read by `_principal`).
    """

    async def get(request: Request,
                  authorization: Annotated[str | None, Header()] = None,
                  idempotency_key: Annotated[str | None, Header()] = None,
                  x_correlation_id: Annotated[str | None, Header()] = None) -> CommandMeta:
        principal = _check_role(_principal(request), roles, action)
        if idempotency_key is not None and not IDEMPOTENCY_KEY_PATTERN.fullmatch(
                idempotency_key):
            raise ApiProblem(422, "validation_error",
                             "Idempotency-Key must be 1–200 visible ASCII characters.",
                             field="Idempotency-Key")
        correlation_id = (x_correlation_id or "")[:200] or str(new_id())
        return CommandMeta(principal.actor, idempotency_key, correlation_id)

    return get


get_command_meta = command_meta(OPERATE, "record stock movements")


LedgerDep = Annotated[Ledger, Depends(get_ledger)]
ReadModelsDep = Annotated[ReadModels, Depends(get_read_models)]
Reader = Annotated[Principal, Depends(_requiring(READ, "read"))]
Operator = Annotated[Principal, Depends(_requiring(OPERATE, "change reference data"))]
CommandMetaDep = Annotated[CommandMeta, Depends(get_command_meta)]
