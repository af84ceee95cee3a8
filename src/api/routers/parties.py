"""Parties: suppliers and customers (reference data for purchasing and selling)."""

from __future__ import annotations

from fastapi import APIRouter, Response

from api.deps import LedgerDep, Operator, Reader
from api.problems import not_found, responses
from api.requests import LedgerRoute
from api.routers.reference import CodePath, Cursor, Limit
from api.schemas import PartyIn, PartyOut, PartyPage
from ledger.domain.context import CommandMeta
from ledger.domain.party import Party, PartyDetails
from ledger.errors import UnknownParty

router = APIRouter(route_class=LedgerRoute, tags=["parties"])
PROBLEMS = responses(401, 403, 404, 415, 422)


def _party_out(party: Party, position: int | None = None) -> PartyOut:
    return PartyOut(code=party.code, name=party.name, roles=list(party.roles),
                    credit_limit=party.credit_limit, version=party.version, position=position)


@router.put("/parties/{code}", response_model=PartyOut, status_code=200, responses=PROBLEMS)
def put_party(code: CodePath, body: PartyIn, ledger: LedgerDep, principal: Operator,
              response: Response) -> PartyOut:
    """Register a supplier or customer (or both), or update its name, roles or credit limit."""
    details = PartyDetails(body.name, tuple(body.roles), body.credit_limit)
    registration = ledger.register_party(code, details, CommandMeta(principal.actor))
    party = ledger.party(code)
    if registration.changed and party.version == 1:
        response.status_code = 201
    return _party_out(party, registration.position)


@router.get("/parties/{code}", response_model=PartyOut, responses=PROBLEMS)
def get_party(code: CodePath, ledger: LedgerDep, _: Reader) -> PartyOut:
    """One party's current details."""
    try:
        return _party_out(ledger.party(code))
    except UnknownParty as error:
        raise not_found(error) from None


@router.get("/parties", response_model=PartyPage, responses=PROBLEMS)
def list_parties(ledger: LedgerDep, _: Reader, limit: Limit = 50,
                 cursor: Cursor = None) -> PartyPage:
    """Parties in registration order, a page at a time."""
    parties, next_cursor = ledger.parties(int(cursor or 0), limit)
    return PartyPage(items=[_party_out(party) for party in parties],
                     next_cursor=None if next_cursor is None else str(next_cursor))
