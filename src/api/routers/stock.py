"""Stock queries: current levels, levels as of a moment, and the stock card."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request
from pydantic import AwareDatetime

from api import cursors
from api.deps import LedgerDep, Reader, ReadModelsDep
from api.problems import ApiProblem, not_found, responses
from api.requests import LedgerRoute
from api.schemas import PAGE_LIMIT_MAX, MovementOut, MovementPage, StockOut, StockPage
from ledger.application import Ledger
from ledger.errors import UnknownItem
from projections import queries
from projections.encoding import money_of, quantity_of, unit_cost_of
from projections.service import ReadModels
from projections.state import State

router = APIRouter(route_class=LedgerRoute, tags=["stock"])
Limit = Annotated[int, Query(ge=1, le=PAGE_LIMIT_MAX)]
Cursor = Annotated[str | None, Query(max_length=cursors.CURSOR_LENGTH_MAX)]
CODE_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
Code = Annotated[str | None, Query(pattern=CODE_PATTERN)]
Moment = AwareDatetime
MinPosition = Annotated[int, Query(ge=0, le=2**62)]
PROBLEMS = responses(401, 403, 404, 422, 503)


def wait_seconds(request: Request) -> float:
    seconds: float = request.app.state.settings.read_wait_seconds
    return seconds


def _level_out(row: dict[str, Any]) -> StockOut:
    on_hand, reserved = row["quantity_on_hand_e3"], row["quantity_reserved_e3"]
    return StockOut(
        sku=row["sku"], location=row["location"], quantity_on_hand=quantity_of(on_hand),
        quantity_reserved=quantity_of(reserved),
        quantity_available=quantity_of(on_hand - reserved),
        quantity_in_transit=quantity_of(row["quantity_in_transit_e3"]),
        unit_cost=unit_cost_of(row["unit_cost_e6"]), value=money_of(row["value_e2"]))


def _as_of_out(row: dict[str, Any]) -> StockOut:
    card = row["card"]
    return StockOut(
        sku=card["sku"], location=card["location"],
        quantity_on_hand=quantity_of(card["quantity_on_hand_after_e3"]),
        quantity_reserved=None, quantity_available=None, quantity_in_transit=None,
        unit_cost=unit_cost_of(card["unit_cost_after_e6"]),
        value=money_of(card["value_after_e2"]), as_of_position=card["position"])


@router.get("/stock", response_model=StockPage, responses=PROBLEMS)
def get_stock(request: Request, read_models: ReadModelsDep, _: Reader,
              sku: Code = None, location: Code = None, as_of: AwareDatetime | None = None,
              min_position: MinPosition = 0, limit: Limit = 50,
              cursor: Cursor = None) -> StockPage:
    """Stock per SKU and location; with `as_of`, on-hand and value at that effective moment."""
    after = _pair(cursors.decode(cursor, (str, str)))
    check_instant(as_of, "as_of")
    if as_of is None:
        return current_stock(read_models, sku=sku, location=location, after=after,
                             limit=limit, min_position=min_position,
                             wait=wait_seconds(request))
    levels = read_models.by_name["stock_levels"]
    with read_models.reading(["stock_levels", "stock_card"], min_position,
                             wait_seconds(request)) as (connection, states):
        page = queries.stock_as_of(
            connection, levels, states["stock_levels"].generation,
            read_models.by_name["stock_card"], states["stock_card"].generation,
            moment=as_of, sku=sku, location=location, after=after, limit=limit)
    return _stock_page([_as_of_out(row) for row in page.rows], page, states)


def current_stock(read_models: ReadModels, *, sku: str | None, location: str | None,
                  after: tuple[str, str] | None, limit: int, min_position: int,
                  wait: float) -> StockPage:
    """A page of current stock once the levels reached `min_position` (GET /stock's work,
    also done by api.fast_stock)."""
    levels = read_models.by_name["stock_levels"]
    with read_models.reading(["stock_levels"], min_position, wait) as (connection, states):
        page = queries.stock(connection, levels, states["stock_levels"].generation, sku=sku,
                             location=location, after=after, limit=limit)
    return _stock_page([_level_out(row) for row in page.rows], page, states)


def _stock_page(items: list[StockOut], page: queries.Page,
                states: dict[str, State]) -> StockPage:
    next_cursor = None
    if page.has_more and page.last is not None:
        next_cursor = cursors.encode([page.last["sku"], page.last["location"]])
    return StockPage(items=items, position=min(s.position for s in states.values()),
                     next_cursor=next_cursor)


def check_instant(moment: datetime | None, field: str) -> None:
    """An instant the read models can compare: within years 1–9999 once in UTC."""
    if moment is None:
        return
    try:
        moment.astimezone(UTC)
    except OverflowError:
        raise ApiProblem(422, "validation_error",
                         f"{field} is outside the years 1–9999 once converted to UTC.",
                         field=field) from None


def _pair(key: tuple[Any, ...] | None) -> tuple[str, str] | None:
    return None if key is None else (key[0], key[1])


def _movement_out(row: dict[str, Any]) -> MovementOut:
    return MovementOut(
        position=row["position"], sku=row["sku"], location=row["location"], kind=row["kind"],
        document_id=row["document_id"], line_number=row["line_number"],
        reference=row["reference"], note=row["note"], reason=row["reason"], actor=row["actor"],
        counterpart_location=row["counterpart_location"], effective_at=row["effective_at"],
        recorded_at=row["recorded_at"], quantity_in=quantity_of(row["quantity_in_e3"]),
        quantity_out=quantity_of(row["quantity_out_e3"]),
        unit_cost=unit_cost_of(row["unit_cost_e6"]), value_in=money_of(row["value_in_e2"]),
        value_out=money_of(row["value_out_e2"]),
        quantity_on_hand_after=quantity_of(row["quantity_on_hand_after_e3"]),
        value_after=money_of(row["value_after_e2"]),
        unit_cost_after=unit_cost_of(row["unit_cost_after_e6"]))


@router.get("/stock/{sku}/movements", response_model=MovementPage, responses=PROBLEMS)
def get_movements(request: Request, read_models: ReadModelsDep, ledger: LedgerDep, _: Reader,
                  sku: Annotated[str, Path(pattern=CODE_PATTERN)],
                  location: Code = None,
                  start: Annotated[AwareDatetime | None, Query(alias="from")] = None,
                  end: Annotated[AwareDatetime | None, Query(alias="to")] = None,
                  min_position: MinPosition = 0, limit: Limit = 50,
                  cursor: Cursor = None) -> MovementPage:
    """The stock card (库存台账): movements with running balances, in effective-time order."""
    after = cursors.decode(cursor, (str, int))
    check_instant(start, "from")
    check_instant(end, "to")
    if start is not None and end is not None and end < start:
        raise ApiProblem(422, "validation_error", "`to` is earlier than `from`.", field="to")
    _check_known(ledger, sku)
    card = read_models.by_name["stock_card"]
    with read_models.reading(["stock_card"], min_position,
                             wait_seconds(request)) as (connection, states):
        page = queries.movements(
            connection, card, states["stock_card"].generation, sku=sku, location=location,
            start=start, end=end, after=None if after is None else (after[0], after[1]),
            limit=limit)
    last = page.last
    next_cursor = (cursors.encode([last["effective_at"], last["position"]])
                   if page.has_more and last else None)
    return MovementPage(items=[_movement_out(row) for row in page.rows],
                        position=states["stock_card"].position, next_cursor=next_cursor)


def _check_known(ledger: Ledger, sku: str) -> None:
    # The write side knows every registered SKU at once; the read side may still be behind.
    try:
        ledger.item(sku)
    except UnknownItem as error:
        raise not_found(error) from None
