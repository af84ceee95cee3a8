"""Stock bins with long histories load from snapshots, and a snapshot is the replayed state.

Snapshots are taken every `SNAPSHOT_INTERVAL` events of a bin when commands save (one at a
time or in a group-commit batch), and for imported histories when the import ends.
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from ledger.application import SNAPSHOT_INTERVAL, Ledger
from ledger.commands import Dispatch, DispatchLine, Receipt, ReceiptLine
from ledger.config import store_environment
from ledger.domain.context import CommandMeta
from ledger.domain.identity import bin_id
from ledger.domain.item import ItemDetails
from ledger.export import export, import_into
from ledger.group_commit import GroupCommitSettings

D = Decimal
META = CommandMeta("snapshot-test")
MOVES = 2 * SNAPSHOT_INTERVAL + 30  # versions: Opened + receipts and dispatches


def replayed(ledger: Ledger, sku: str) -> Any:
    """The bin folded from every one of its events (no snapshot)."""
    aggregate = None
    for event in ledger.events.get(bin_id(sku, "WH")):
        aggregate = event.mutate(aggregate)
    return aggregate


def fill(ledger: Ledger) -> None:
    ledger.register_location("WH", "Warehouse", META)
    for sku, method in (("FIFO-A", "fifo"), ("AVG-B", "moving_average")):
        ledger.register_item(sku, ItemDetails(sku, "ea", method), META)
    for n in range(MOVES // 2):
        ledger.receive(Receipt(location="WH", lines=(
            ReceiptLine("FIFO-A", D(3), D(n + 1)), ReceiptLine("AVG-B", D(3), D(n + 1)))), META)
        ledger.dispatch(Dispatch(location="WH", lines=(
            DispatchLine("FIFO-A", D(2)), DispatchLine("AVG-B", D(2)))), META)


def assert_snapshots_load_the_replayed_state(ledger: Ledger, versions: list[int]) -> None:
    assert ledger.snapshots is not None
    for sku in ("FIFO-A", "AVG-B"):
        snapshots = list(ledger.snapshots.get(bin_id(sku, "WH")))
        assert [s.originator_version for s in snapshots] == versions
        loaded, folded = ledger.stock_bin(sku, "WH"), replayed(ledger, sku)
        assert loaded is not None
        assert loaded.version == folded.version == MOVES + 1
        assert (loaded.cost, loaded.reservations, loaded.latest_effective_at) == (
            folded.cost, folded.reservations, folded.latest_effective_at)
        assert isinstance(loaded.cost.layers, tuple)


@pytest.mark.parametrize("group_commit", [None, GroupCommitSettings(window_seconds=0)],
                         ids=["alone", "group-commit"])
def test_a_long_bin_loads_from_its_snapshots(database_url: str,
                                             group_commit: GroupCommitSettings | None) -> None:
    with Ledger(store_environment(database_url), group_commit=group_commit) as ledger:
        fill(ledger)
        assert_snapshots_load_the_replayed_state(ledger, [SNAPSHOT_INTERVAL,
                                                          2 * SNAPSHOT_INTERVAL])


def test_an_imported_history_gets_its_snapshots(database_url: str, tmp_path: Path) -> None:
    with Ledger(store_environment(f"sqlite:///{tmp_path}/source.db")) as source:
        fill(source)
        export(source.recorder, tmp_path / "log.jsonl")
        head = source.recorder.max_notification_id()
    with Ledger(store_environment(database_url)) as target:
        count, bins = import_into(target.recorder, tmp_path / "log.jsonl")
        assert count == head
        assert target.snapshot_bins(bins) == 2
        # One snapshot per bin, at the last multiple of the interval.
        assert_snapshots_load_the_replayed_state(target, [2 * SNAPSHOT_INTERVAL])
