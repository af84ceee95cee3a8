"""Which snapshots a save takes, taken from the saved aggregates themselves.

The library's `Application._take_snapshots` takes a snapshot of an aggregate whenever a
saved event's version is a multiple of its interval, by loading the aggregate again from
the store (`take_snapshot`: its last snapshot and the events since, read and decoded) and
putting the snapshot alone. In a group-commit batch that was half of the writer's time once
the benchmark's bins passed version 100: each snapshot cost two round trips and a replay of
a hundred events, in the path every command waits on. The saved aggregate is the state
the store would give at its own version, so when that is the snapshot's version it is
snapshotted as it stands, encoded at once (an aggregate changes in place when it is next
decided on) and the batch's snapshots are put together. A snapshot due at an earlier
version (the aggregate saved more than one event past it) is left to the library's way.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any
from uuid import UUID

from eventsourcing.persistence import StoredEvent


def snapshots_due(events: Iterable[Any], aggregates: Mapping[UUID, Any],
                  intervals: Mapping[type[Any], int], stored_snapshot: Callable[[Any], StoredEvent],
                  ) -> tuple[list[StoredEvent], list[tuple[UUID, int]]]:
    """The snapshots the saved `events` call for: those taken from `aggregates` as they
    stand, and the (aggregate id, version) of those to take from the store."""
    taken: list[StoredEvent] = []
    from_store: list[tuple[UUID, int]] = []
    for event in events:
        aggregate = aggregates.get(event.originator_id)
        if aggregate is None:
            continue
        interval = intervals.get(type(aggregate))
        version = event.originator_version
        if interval is None or version % interval:
            continue
        if aggregate.version == version:
            taken.append(stored_snapshot(aggregate))
        else:
            from_store.append((event.originator_id, version))
    return taken, from_store
