"""Low-stock alerts (库存预警): bins at or below their item's reorder point."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from api import cursors
from api.deps import Reader, ReadModelsDep
from api.problems import responses
from api.requests import LedgerRoute
from api.routers.stock import Cursor, Limit, MinPosition, wait_seconds
from api.schemas import LowStockOut, LowStockPage
from projections import queries
from projections.encoding import quantity_of

router = APIRouter(route_class=LedgerRoute, tags=["stock"])


def _alert_out(row: dict[str, Any]) -> LowStockOut:
    on_hand, reserved = row["quantity_on_hand_e3"], row["quantity_reserved_e3"]
    available = on_hand - reserved
    return LowStockOut(
        sku=row["sku"], location=row["location"], name=row["name"], uom=row["uom"],
        reorder_point=quantity_of(row["reorder_point_e3"]), quantity_on_hand=quantity_of(on_hand),
        quantity_reserved=quantity_of(reserved), quantity_available=quantity_of(available),
        shortfall=quantity_of(row["reorder_point_e3"] - available))


@router.get("/alerts/low-stock", response_model=LowStockPage,
            responses=responses(401, 403, 422, 503))
def get_low_stock(request: Request, read_models: ReadModelsDep, _: Reader,
                  min_position: MinPosition = 0, limit: Limit = 50,
                  cursor: Cursor = None) -> LowStockPage:
    """Every (SKU, location) whose available quantity is at or below the reorder point."""
    after = cursors.decode(cursor, (str, str))
    with read_models.reading(["stock_levels", "items"], min_position,
                             wait_seconds(request)) as (connection, states):
        page = queries.low_stock(
            connection, read_models.by_name["stock_levels"], states["stock_levels"].generation,
            read_models.by_name["items"], states["items"].generation,
            after=None if after is None else (after[0], after[1]), limit=limit)
    next_cursor = (cursors.encode([page.rows[-1]["sku"], page.rows[-1]["location"]])
                   if page.has_more else None)
    return LowStockPage(items=[_alert_out(row) for row in page.rows],
                        position=min(s.position for s in states.values()),
                        next_cursor=next_cursor)


