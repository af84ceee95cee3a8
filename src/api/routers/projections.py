"""The read side's own status: each projection's position, lag and digest."""

from __future__ import annotations

from fastapi import APIRouter, Request

from api.deps import LedgerDep, Reader, ReadModelsDep
from api.problems import responses
from api.requests import LedgerRoute
from api.routers.stock import MinPosition, wait_seconds
from api.schemas import ProjectionList, ProjectionOut

router = APIRouter(route_class=LedgerRoute, tags=["projections"])


@router.get("/projections", response_model=ProjectionList, responses=responses(401, 403, 422, 503))
def get_projections(request: Request, read_models: ReadModelsDep, ledger: LedgerDep,
                    _: Reader, min_position: MinPosition = 0) -> ProjectionList:
    """Name, generation, position, the store's head, the lag and a digest of each projection."""
    read_models.wait([p.name for p in read_models.projections], min_position,
                     wait_seconds(request))
    head = ledger.head_position()
    return ProjectionList(head=head, items=[
        ProjectionOut(name=s.name, generation=s.generation, position=s.position, head=head,
                      lag=max(0, head - s.position), digest=s.digest)
        for s in read_models.status()
    ])
