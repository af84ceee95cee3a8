"""Items and locations: reference data, registered with PUT and read back."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Response

from api.deps import LedgerDep, Operator, Reader
from api.problems import ApiProblem, not_found, responses
from api.requests import LedgerRoute
from api.schemas import (
    PAGE_LIMIT_MAX,
    ItemIn,
    ItemOut,
    ItemPage,
    LocationIn,
    LocationOut,
    LocationPage,
)
from ledger.domain.context import CommandMeta
from ledger.domain.item import Item, ItemDetails
from ledger.domain.location import Location
from ledger.errors import UnknownItem

router = APIRouter(route_class=LedgerRoute)
CodePath = Annotated[str, Path(min_length=1, max_length=64)]
Limit = Annotated[int, Query(ge=1, le=PAGE_LIMIT_MAX)]
Cursor = Annotated[str | None, Query(pattern=r"^[0-9]{1,18}$")]
PROBLEMS = responses(401, 403, 404, 409, 415, 422)


def _item_out(item: Item, position: int | None = None) -> ItemOut:
    return ItemOut(sku=item.sku, name=item.name, uom=item.uom,
                   valuation_method=item.valuation_method, reorder_point=item.reorder_point,
                   version=item.version, position=position)


def _location_out(location: Location, position: int | None = None) -> LocationOut:
    return LocationOut(code=location.code, name=location.name, version=location.version,
                       position=position)


@router.put("/items/{sku}", response_model=ItemOut, status_code=200, responses=PROBLEMS,
            tags=["items"])
def put_item(sku: CodePath, body: ItemIn, ledger: LedgerDep, principal: Operator,
             response: Response) -> ItemOut:
    """Register an item, or update its details (the valuation method is fixed)."""
    details = ItemDetails(body.name, body.uom, body.valuation_method, body.reorder_point)
    registration = ledger.register_item(sku, details, CommandMeta(principal.actor))
    item = ledger.item(sku)
    if registration.changed and item.version == 1:
        response.status_code = 201
    return _item_out(item, registration.position)


@router.get("/items/{sku}", response_model=ItemOut, responses=PROBLEMS, tags=["items"])
def get_item(sku: CodePath, ledger: LedgerDep, _: Reader) -> ItemOut:
    """One item's current details."""
    try:
        return _item_out(ledger.item(sku))
    except UnknownItem as error:
        raise not_found(error) from None


@router.get("/items", response_model=ItemPage, responses=PROBLEMS, tags=["items"])
def list_items(ledger: LedgerDep, _: Reader, limit: Limit = 50,
               cursor: Cursor = None) -> ItemPage:
    """Items in registration order, a page at a time."""
    items, next_cursor = ledger.items(int(cursor or 0), limit)
    return ItemPage(items=[_item_out(item) for item in items],
                    next_cursor=None if next_cursor is None else str(next_cursor))


@router.put("/locations/{code}", response_model=LocationOut, status_code=200,
            responses=PROBLEMS, tags=["locations"])
def put_location(code: CodePath, body: LocationIn, ledger: LedgerDep, principal: Operator,
                 response: Response) -> LocationOut:
    """Register a location, or rename it."""
    registration = ledger.register_location(code, body.name, CommandMeta(principal.actor))
    location = ledger.location(code)
    assert location is not None, "a registered location loads"
    if registration.changed and location.version == 1:
        response.status_code = 201
    return _location_out(location, registration.position)


@router.get("/locations/{code}", response_model=LocationOut, responses=PROBLEMS,
            tags=["locations"])
def get_location(code: CodePath, ledger: LedgerDep, _: Reader) -> LocationOut:
    """One location."""
    location = ledger.location(code)
    if location is None:
        raise ApiProblem(404, "unknown_location", f"No location is registered with code {code!r}.",
                         location=code)
    return _location_out(location)


@router.get("/locations", response_model=LocationPage, responses=PROBLEMS, tags=["locations"])
def list_locations(ledger: LedgerDep, _: Reader, limit: Limit = 50,
                   cursor: Cursor = None) -> LocationPage:
    """Locations in registration order, a page at a time."""
    locations, next_cursor = ledger.locations(int(cursor or 0), limit)
    return LocationPage(items=[_location_out(location) for location in locations],
                        next_cursor=None if next_cursor is None else str(next_cursor))
