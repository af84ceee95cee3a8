"""`ledger project`: projections as a worker process, one active instance per projection.

On PostgreSQL the worker holds a session advisory lock per projection for its whole
life; a second worker for the same projection waits as a standby until the first
one stops or dies (the lock goes with its connection). Exactly-once does not rest
on the lock — page transactions lock the state rows — the lock only keeps two
workers from doing the same work.
"""

from __future__ import annotations

import hashlib
import signal
import threading
from collections.abc import Sequence
from typing import Any

import psycopg
from eventsourcing.persistence import ApplicationRecorder, Mapper
from eventsourcing.postgres import PostgresApplicationRecorder

from projections.service import LOG, ReadModels
from projections.waiting import Wakeup, idle_waiter

STANDBY_RETRY_SECONDS = 2.0


def advisory_key(name: str, place: str) -> int:
    """A stable signed 64-bit key for one projection of one set of read models."""
    digest = hashlib.sha256(f"ledger-projection:{place}:{name}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


class AdvisoryLocks:
    """Session advisory locks on the event store's PostgreSQL, one per projection."""

    def __init__(self, recorder: PostgresApplicationRecorder, place: str) -> None:
        self.place = place
        kwargs = recorder.datastore.pool.kwargs
        assert isinstance(kwargs, dict), "the event store's pool keeps its kwargs"
        self.connection = psycopg.connect(autocommit=True, **kwargs)

    def try_acquire(self, names: Sequence[str]) -> bool:
        acquired: list[str] = []
        for name in names:
            row = self.connection.execute(
                "SELECT pg_try_advisory_lock(%s) AS locked",
                (advisory_key(name, self.place),)).fetchone()
            if not row or not row["locked"]:
                self.release(acquired)
                return False
            acquired.append(name)
        return True

    def release(self, names: Sequence[str]) -> None:
        for name in names:
            self.connection.execute("SELECT pg_advisory_unlock(%s)",
                                    (advisory_key(name, self.place),))

    def close(self) -> None:
        self.connection.close()


def run_worker(read_models: ReadModels, recorder: ApplicationRecorder, mapper: Mapper[Any],
               names: Sequence[str], stop: threading.Event | None = None,
               gather_seconds: float = 0.0) -> None:
    """Run the named projections until SIGTERM/SIGINT (or `stop`), letting events gather
    for `gather_seconds` after a page that did not fill (`ProjectionRunner.run`)."""
    stop = stop or _stop_on_signals()
    runner = read_models.runner(recorder, mapper, names)
    place = ":".join(read_models.database.place)
    locks = (AdvisoryLocks(recorder, place)
             if isinstance(recorder, PostgresApplicationRecorder) else None)
    try:
        while locks is not None and not locks.try_acquire(runner.names):
            LOG.info("standby: another worker runs %s", ", ".join(runner.names))
            if stop.wait(STANDBY_RETRY_SECONDS):
                return
        runner.prepare()
        waiter, idle_seconds = idle_waiter(recorder, Wakeup())
        LOG.info("projecting %s", ", ".join(runner.names))
        runner.run(stop, waiter.wait, idle_seconds, gather_seconds)
    finally:
        if locks is not None:
            locks.close()


def _stop_on_signals() -> threading.Event:
    stop = threading.Event()
    for signal_number in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signal_number, lambda *_: stop.set())
    return stop
