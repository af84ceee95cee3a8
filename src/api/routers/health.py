"""Liveness: the API answers and the event store is reachable."""

from __future__ import annotations

from fastapi import APIRouter

from api.deps import LedgerDep
from api.schemas import Health

router = APIRouter(tags=["health"])


@router.get("/health", response_model=Health)
def health(ledger: LedgerDep) -> Health:
    """200 when the event store answers; no key needed."""
    return Health(status="ok", position=ledger.head_position())
