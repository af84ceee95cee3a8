"""How a rebuild shares its projections out between processes (`rebuild_helpers.shares`)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from projections import registry
from projections.base import Projection
from projections.rebuild_helpers import shares


def _names(parts: list[list[Projection]]) -> list[list[str]]:
    return [[projection.name for projection in part] for part in parts]


def test_two_processes_split_the_registry_into_shares_of_near_equal_cost() -> None:
    projections = registry.all_projections()
    parts = shares(projections, 2)
    # The journal, the dearest, with the stock levels and the cheap rest; the card, the audit
    # log and the cost layers together.
    assert _names(parts) == [["items", "locations", "stock_levels", "purchase_orders",
                              "sales_orders", "journal"],
                             ["stock_card", "audit_log", "cost_layers"]]
    costs = [sum(projection.rebuild_cost for projection in part) for part in parts]
    assert max(costs) - min(costs) <= max(p.rebuild_cost for p in projections) / 2


def test_one_process_keeps_every_projection_in_order() -> None:
    projections = registry.all_projections()
    assert _names(shares(projections, 1)) == [[projection.name for projection in projections]]


def test_no_more_shares_than_projections() -> None:
    projections = registry.select(["journal", "stock_card"])
    assert _names(shares(projections, 16)) == [["journal"], ["stock_card"]]


@given(st.lists(st.sampled_from(registry.NAMES), min_size=1, unique=True),
       st.integers(min_value=1, max_value=12))
def test_every_projection_lands_in_exactly_one_share_in_registry_order(
        names: list[str], processes: int) -> None:
    projections = registry.select(names)
    parts = shares(projections, processes)
    assert 1 <= len(parts) <= processes
    assert all(parts)
    placed = [projection for part in parts for projection in part]
    assert sorted(p.name for p in placed) == sorted(names)
    order = {projection.name: n for n, projection in enumerate(projections)}
    for part in parts:
        assert [order[p.name] for p in part] == sorted(order[p.name] for p in part)
    assert _names(shares(projections, processes)) == _names(parts)  # deterministic
