"""Every projection the ledger maintains, by name."""

from __future__ import annotations

from collections.abc import Sequence

from ledger.config import ConfigurationError
from projections.audit_log import AuditLogProjection
from projections.base import Projection
from projections.cost_layers import CostLayersProjection
from projections.items import ItemsProjection
from projections.journal import JournalProjection
from projections.locations import LocationsProjection
from projections.purchase_orders import PurchaseOrdersProjection
from projections.sales_orders import SalesOrdersProjection
from projections.stock_card import StockCardProjection
from projections.stock_levels import StockLevelsProjection

NAMES = ("items", "locations", "stock_levels", "stock_card", "audit_log", "purchase_orders",
         "sales_orders", "journal", "cost_layers")


def all_projections() -> list[Projection]:
    """Fresh instances of every projection, in a fixed order."""
    return [ItemsProjection(), LocationsProjection(), StockLevelsProjection(),
            StockCardProjection(), AuditLogProjection(), PurchaseOrdersProjection(),
            SalesOrdersProjection(), JournalProjection(), CostLayersProjection()]


def select(names: Sequence[str]) -> list[Projection]:
    """The named projections (all when no names are given)."""
    projections = all_projections()
    if not names:
        return projections
    unknown = sorted(set(names) - set(NAMES))
    if unknown:
        raise ConfigurationError(
            f"Unknown projection(s) {', '.join(unknown)}; known: {', '.join(NAMES)}.")
    return [projection for projection in projections if projection.name in names]
