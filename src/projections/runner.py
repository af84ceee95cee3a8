"""Running projections: catch up from the stored position in pages, then wait for more.

One page is one transaction: the projections' state rows are locked (PostgreSQL
`FOR UPDATE`, SQLite `BEGIN IMMEDIATE`), the events after the lowest position are
read from the notification log, each projection folds those after its own
position, and every position moves to the page's last notification id. Two
runners on one database therefore never apply an event twice; gaps in
notification ids are harmless because we always read "after" a position.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Any

from eventsourcing.persistence import ApplicationRecorder, Mapper, Notification
from sqlalchemy import Connection

from projections import state
from projections.base import Carried, Envelope, Projection
from projections.database import ReadDatabase

PAGE_SIZE = 500
PAGE_SIZE_MAX = 10_000
GATHER_SECONDS_MAX = 1.0


class ProjectionRunner:
    """Applies the event log to a set of projections, exactly once, a page at a time."""

    def __init__(self, database: ReadDatabase, recorder: ApplicationRecorder,
                 mapper: Mapper[Any], projections: Sequence[Projection],
                 page_size: int = PAGE_SIZE, stop_at: int | None = None) -> None:
        assert 1 <= page_size <= PAGE_SIZE_MAX, "page size out of bounds"
        self.database = database
        self.recorder = recorder
        self.mapper = mapper
        self.projections = list(projections)
        self.page_size = page_size
        # Replays for audits stop at a position: nothing after it is applied.
        self.stop_at = stop_at
        self.advanced = threading.Condition()
        self._paging = threading.Lock()
        # What this runner's last committed page left: each state, and what it carries.
        self._left: dict[str, state.State] = {}
        self._carried = {projection.name: Carried() for projection in self.projections}

    @property
    def names(self) -> list[str]:
        return [projection.name for projection in self.projections]

    def prepare(self) -> None:
        """Create the state table and first-generation tables that do not exist yet."""
        with self.database.writer.begin() as connection:
            state.ensure(connection, self.projections)

    def advance(self) -> int:
        """Apply one page; returns how many notifications it consumed (0 when caught up)."""
        with self._paging:
            try:
                notifications = self._page()
            except BaseException:
                self._forget(self.names)
                raise
        if notifications:
            with self.advanced:
                self.advanced.notify_all()
        return len(notifications)

    def _page(self) -> Sequence[Notification]:
        with self.database.writer.begin() as connection:
            states = state.read(connection, self.names, for_update=True)
            self._forget([name for name in self.names
                          if states.get(name) != self._left.get(name)])
            start = min(current.position for current in states.values())
            notifications = self.recorder.select_notifications(
                start=start, limit=self.page_size, stop=self.stop_at, inclusive_of_start=False)
            left = states
            if notifications:
                left = apply_notifications(connection, self.mapper, self.projections, states,
                                           notifications, carried=self._carried)
        self._left = dict(left)
        return notifications

    def _forget(self, names: Sequence[str]) -> None:
        for name in names:
            self._carried[name].clear()
            self._left.pop(name, None)

    def catch_up(self, pages_max: int = 1_000_000) -> int:
        """Apply pages until the log is exhausted; returns the notifications consumed."""
        consumed = 0
        for _ in range(pages_max):
            count = self.advance()
            consumed += count
            if count == 0:
                break
        return consumed

    def run(self, stop: threading.Event, wait: Callable[[float], None],
            idle_timeout: float = 1.0, gather_seconds: float = 0.0) -> None:
        """Catch up, then wait for new events, until `stop` is set.

        After a page that did not fill, the runner lets events gather for `gather_seconds`
        before the next: under a steady stream of small batches it then applies one larger
        page instead of many small ones, each a transaction and a round of statements per
        projection. The first event after a quiet spell is still applied as it arrives."""
        assert 0 <= gather_seconds <= GATHER_SECONDS_MAX, "gathering is bounded"
        while not stop.is_set():
            count = self.advance()
            if count == 0:
                wait(idle_timeout)
            elif count < self.page_size and gather_seconds:
                stop.wait(gather_seconds)


def apply_notifications(connection: Connection, mapper: Mapper[Any],
                        projections: Sequence[Projection], states: dict[str, state.State],
                        notifications: Sequence[Notification], *,
                        write_state: bool = True,
                        carried: dict[str, Carried] | None = None) -> dict[str, state.State]:
    """Fold notifications into each projection past its position; move every position
    (written unless `write_state` is false, and returned)."""
    envelopes = [
        Envelope(n, mapper) for n in notifications
        if any(projection.reads(n.topic) for projection in projections)
    ]
    last = notifications[-1].id
    for projection in projections:
        current = states[projection.name]
        mine = [e for e in envelopes
                if e.position > current.position and projection.reads(e.topic)]
        if mine:
            projection.apply_page(connection, projection.tables(current.generation), mine,
                                  None if carried is None else carried[projection.name])
    moved = {projection.name: state.State(states[projection.name].generation,
                                          max(states[projection.name].position, last))
             for projection in projections}
    if write_state:
        state.write_all(connection, moved)
    return moved
