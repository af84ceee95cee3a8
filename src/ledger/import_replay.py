"""Stock bins replayed while an import reads them, so their snapshots need no second read.

An import inserts stored events directly, so no snapshot is taken as they go in; the bins
with long histories are snapshotted afterwards (`Ledger.snapshot_bins`). Done then, each
such bin's whole history is read back from the store and decoded: for the benchmark's
1,000,000-event export with one 100,000-event bin, 2.7–3.6 s after the load. While the
database's COPY is the slower side of the load, the importing thread has the time to decode
and apply those events as they pass (docs/audit.md has the measurements).

`BinReplays` watches the bin events an import verifies, in file order (each bin's versions
ascending from 1, as the store that was exported holds them):

* A bin's events are kept, as stored, until it has `min_events` of them; then they are
  replayed and every later event of the bin is applied as it arrives. At each multiple of
  `interval` the bin's snapshot is taken and encoded at once (an aggregate's state changes
  in place), so the last one taken is the one `snapshot_bins` wants.
* The events kept for bins not yet replayed are bounded by `buffer_bytes`: past it, every
  such bin is given up. So is a bin whose versions do not follow on, or whose event the
  mapper cannot read. A bin given up is snapshotted the old way, from the store.

Nothing here writes: an import that is refused drops the replays with it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from uuid import UUID

from eventsourcing.persistence import Mapper, StoredEvent

from ledger.repository import replay

REPLAY_BUFFER_BYTES = 64 << 20


class _Replayed:
    """One bin being replayed: the aggregate so far and its last snapshot, as stored."""

    __slots__ = ("aggregate", "snapshot")

    def __init__(self, aggregate: Any, snapshot: Any) -> None:
        self.aggregate = aggregate
        self.snapshot = snapshot


class BinReplays:
    """The bins of an import with at least `min_events` events, replayed as they pass."""

    def __init__(self, mapper: Mapper[Any], take: Callable[[Any], StoredEvent], min_events: int,
                 interval: int, buffer_bytes: int = REPLAY_BUFFER_BYTES) -> None:
        assert min_events > 0 and interval > 0, "positive bounds"
        self.mapper = mapper
        self.take = take  # an aggregate's snapshot, as the snapshot store would hold it
        self.min_events = min_events
        self.interval = interval
        self.buffer_bytes = buffer_bytes
        self.kept: dict[str, list[StoredEvent]] = {}
        self.kept_bytes = 0
        self.given_up: set[str] = set()
        self.replayed: dict[str, _Replayed] = {}

    def see(self, key: str, aggregate_id: UUID, version: int, topic: str,
            state: bytes) -> None:
        """The next verified event of the bin `key` (its aggregate id's text)."""
        replayed = self.replayed.get(key)
        if replayed is not None:
            self._apply(key, replayed, StoredEvent(aggregate_id, version, topic, state))
        elif key not in self.given_up:
            self._keep(key, StoredEvent(aggregate_id, version, topic, state))

    def snapshots(self) -> dict[UUID, StoredEvent]:
        """The last snapshot taken of each bin replayed to the end, by bin id."""
        return {replayed.snapshot.originator_id: replayed.snapshot
                for replayed in self.replayed.values() if replayed.snapshot is not None}

    def _keep(self, key: str, stored: StoredEvent) -> None:
        kept = self.kept.setdefault(key, [])
        if stored.originator_version != len(kept) + 1:
            self._give_up(key)
            return
        kept.append(stored)
        self.kept_bytes += len(stored.state)
        if len(kept) == self.min_events:
            self._start(key, self.kept.pop(key))
        elif self.kept_bytes > self.buffer_bytes:
            self.given_up.update(self.kept)
            self.kept.clear()
            self.kept_bytes = 0

    def _start(self, key: str, kept: list[StoredEvent]) -> None:
        self.kept_bytes -= sum(len(stored.state) for stored in kept)
        replayed = _Replayed(None, None)
        self.replayed[key] = replayed
        for stored in kept:
            if not self._apply(key, replayed, stored):
                return

    def _apply(self, key: str, replayed: _Replayed, stored: StoredEvent) -> bool:
        aggregate = replayed.aggregate
        if stored.originator_version != (0 if aggregate is None else aggregate.version) + 1:
            self._give_up(key)
            return False
        try:
            aggregate = replay(aggregate, [self.mapper.to_domain_event(stored)])
            if aggregate.version % self.interval == 0:
                replayed.snapshot = self.take(aggregate)
        except Exception:  # the store's replay, afterwards, raises it where it belongs
            self._give_up(key)
            return False
        replayed.aggregate = aggregate
        return True

    def _give_up(self, key: str) -> None:
        self.given_up.add(key)
        self.replayed.pop(key, None)
        kept = self.kept.pop(key, None)
        if kept:
            self.kept_bytes -= sum(len(stored.state) for stored in kept)
