"""Waiting: runners wait for new events; queries wait for a position (read your writes)."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from typing import Any, Protocol

import psycopg
from eventsourcing.persistence import ApplicationRecorder
from eventsourcing.postgres import PostgresApplicationRecorder

from projections import state
from projections.database import ReadDatabase

POLL_SECONDS = 0.02
WAIT_SECONDS_MAX = 30.0


class Wakeup:
    """A runner's idle wait, cut short in-process when this process records events."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def wake(self) -> None:
        self._event.set()

    def wait(self, timeout: float) -> None:
        self._event.wait(timeout)
        self._event.clear()


class PostgresListener:
    """A runner's idle wait on PostgreSQL: LISTEN on the event table's channel.

    The event store NOTIFYs in every inserting transaction, so any process's events
    wake us as soon as they commit.
    """

    def __init__(self, recorder: PostgresApplicationRecorder) -> None:
        datastore = recorder.datastore
        pool_kwargs = datastore.pool.kwargs
        assert isinstance(pool_kwargs, dict), "the event store's pool keeps its kwargs"
        self._connect_kwargs: dict[str, Any] = dict(pool_kwargs)
        self._channel = recorder.channel_name
        self._connection = self._connect()
        self._connection.execute(f'LISTEN "{self._channel}"')

    def wait(self, timeout: float) -> None:
        for _ in self._connection.notifies(timeout=timeout, stop_after=1):
            break

    def _connect(self) -> psycopg.Connection[Any]:
        return psycopg.connect(autocommit=True, **self._connect_kwargs)

    def wake(self) -> None:
        """Cut a wait short (on stopping): a NOTIFY from another connection."""
        with self._connect() as connection:
            connection.execute(f'NOTIFY "{self._channel}"')

    def close(self) -> None:
        self._connection.close()


class Waiter(Protocol):
    def wait(self, timeout: float) -> None: ...


def idle_waiter(recorder: ApplicationRecorder, wakeup: Wakeup) -> tuple[Waiter, float]:
    """The object whose `wait(timeout)` a runner idles on, and how long it waits at most."""
    if isinstance(recorder, PostgresApplicationRecorder):
        return PostgresListener(recorder), 1.0
    # SQLite has no notifications: in-process writers wake us, other processes are polled.
    return wakeup, 0.1


def wait_for_position(database: ReadDatabase, names: Sequence[str], position: int,
                      timeout: float, advanced: threading.Condition | None = None
                      ) -> dict[str, state.State] | None:
    """The projections' states once all are at `position` or beyond; None after `timeout`."""
    assert 0 <= timeout <= WAIT_SECONDS_MAX, "waits are bounded"
    deadline = time.monotonic() + timeout
    while True:
        with database.reader.connect() as connection:
            states = state.read(connection, names)
        if state.reached(states, names, position):
            return states
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return None
        if advanced is not None:
            with advanced:
                advanced.wait(min(remaining, POLL_SECONDS))
        else:
            time.sleep(min(remaining, POLL_SECONDS))
