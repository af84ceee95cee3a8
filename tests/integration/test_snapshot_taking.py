"""A snapshot taken at save holds exactly the state the bin's events replay to.

Snapshots are taken from the saved aggregate where it stands at the snapshot's version
(`ledger.snapshotting`), and from the store when the save took the aggregate past it (a
document with two lines for one bin). What an operator would notice: a bin that loads
another state from its snapshot than from its events, or a snapshot at the wrong version.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from ledger.application import SNAPSHOT_INTERVAL, Ledger
from ledger.commands import Dispatch, DispatchLine, Receipt, ReceiptLine
from ledger.config import store_environment
from ledger.domain.context import CommandMeta
from ledger.domain.identity import bin_id
from ledger.domain.item import ItemDetails
from ledger.group_commit import GroupCommitSettings
from ledger.repository import replay
from ledger.snapshotting import snapshots_due

D = Decimal
META = CommandMeta("snapshot-taking-test")


def snapshot_states(ledger: Ledger, sku: str) -> list[tuple[int, dict[str, Any]]]:
    assert ledger.snapshots is not None
    return [(snapshot.originator_version, snapshot.state)  # type: ignore[attr-defined]
            for snapshot in ledger.snapshots.get(bin_id(sku, "WH"))]


def replayed_state(ledger: Ledger, sku: str, version: int) -> tuple[int, dict[str, Any]]:
    """The state a snapshot at `version` must hold: the bin's events folded up to it."""
    events = list(ledger.events.get(bin_id(sku, "WH"), lte=version))
    aggregate = replay(None, events)
    snapshot: Any = ledger.mapper.to_domain_event(ledger.stored_snapshot(aggregate))
    return snapshot.originator_version, snapshot.state


@pytest.mark.parametrize("group_commit", [None, GroupCommitSettings(window_seconds=0)],
                         ids=["alone", "group-commit"])
def test_snapshots_at_the_end_of_a_save_and_in_its_middle_hold_the_replayed_state(
        database_url: str, group_commit: GroupCommitSettings | None) -> None:
    with Ledger(store_environment(database_url), group_commit=group_commit) as ledger:
        ledger.register_location("WH", "Warehouse", META)
        ledger.register_item("ONE", ItemDetails("One a line", "ea", "fifo"), META)
        ledger.register_item("TWO", ItemDetails("Two a document", "ea", "fifo"), META)
        for n in range(SNAPSHOT_INTERVAL + 5):
            # ONE: a version a document, so each multiple is a save's last version. TWO: two
            # a document after its Opened, so each multiple falls inside a save (1-3, 4-5, …).
            ledger.receive(Receipt(location="WH", lines=(
                ReceiptLine("ONE", D(3), D(n + 1)), ReceiptLine("TWO", D(3), D(n + 1)),
                ReceiptLine("TWO", D(1), D(2)))), META)
            ledger.dispatch(Dispatch(location="WH", lines=(DispatchLine("ONE", D(1)),)), META)

        for sku in ("ONE", "TWO"):
            taken = snapshot_states(ledger, sku)
            assert [version for version, _ in taken] == [SNAPSHOT_INTERVAL,
                                                          2 * SNAPSHOT_INTERVAL]
            for version, state in taken:
                assert (version, state) == replayed_state(ledger, sku, version)


def test_a_snapshot_due_before_the_aggregates_version_is_left_to_the_store() -> None:
    class Event:
        def __init__(self, aggregate_id: str, version: int) -> None:
            self.originator_id, self.originator_version = aggregate_id, version

    class Aggregate:
        def __init__(self, version: int) -> None:
            self.version = version

    events = [Event("a", 99), Event("a", 100), Event("a", 101), Event("b", 200),
              Event("c", 300)]
    aggregates: dict[Any, Any] = {"a": Aggregate(101), "b": Aggregate(200)}

    due: Any = snapshots_due(events, aggregates, {Aggregate: SNAPSHOT_INTERVAL},
                             lambda aggregate: aggregate.version)

    assert due == ([200], [("a", 100)])
