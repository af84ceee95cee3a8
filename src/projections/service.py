"""The read side as the API and CLI use it: open, run embedded, wait, report."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import psycopg
from eventsourcing.persistence import ApplicationRecorder, Mapper, PersistenceError
from sqlalchemy import Connection, select
from sqlalchemy.exc import SQLAlchemyError

from projections import state
from projections.database import ReadDatabase, connect
from projections.registry import all_projections
from projections.runner import ProjectionRunner
from projections.waiting import Wakeup, idle_waiter, wait_for_position

LOG = logging.getLogger("ledger.projections")
FAILURE_BACKOFF_SECONDS = 1.0


class ProjectionLag(Exception):
    """The read models did not reach a position within the wait allowed."""

    code = "projection_lag"

    def __init__(self, position: int, timeout: float) -> None:
        super().__init__(f"The read models did not reach position {position} within "
                         f"{timeout} s; retry shortly.")
        self.position = position
        self.timeout = timeout


@dataclass(frozen=True)
class Status:
    name: str
    generation: int
    position: int
    digest: str


class ReadModels:
    """The read-model database and every projection in it."""

    def __init__(self, database: ReadDatabase) -> None:
        self.database = database
        self.projections = all_projections()
        self.by_name = {projection.name: projection for projection in self.projections}
        self._advanced: threading.Condition | None = None

    @classmethod
    def open(cls, url: str, *, fresh: bool = False) -> ReadModels:
        """The read models at `url`; with `fresh`, erased first (scratch replays)."""
        database = connect(url)
        if fresh:
            database.erase()
            database = connect(url)
        database.ensure_schema()
        read_models = cls(database)
        with read_models.database.writer.begin() as connection:
            state.ensure(connection, read_models.projections)
        return read_models

    def runner(self, recorder: ApplicationRecorder, mapper: Mapper[Any],
               names: Sequence[str] = ()) -> ProjectionRunner:
        chosen = [p for p in self.projections if not names or p.name in names]
        runner = ProjectionRunner(self.database, recorder, mapper, chosen)
        self._advanced = runner.advanced
        return runner

    def wait(self, names: Sequence[str], position: int, timeout: float) -> dict[str, state.State]:
        """The states of `names` once they reached `position` (read your writes)."""
        states = wait_for_position(self.database, names, position, timeout, self._advanced)
        if states is None:
            raise ProjectionLag(position, timeout)
        return states

    @contextmanager
    def reading(self, names: Sequence[str], position: int, timeout: float
                ) -> Iterator[tuple[Connection, dict[str, state.State]]]:
        """A reader connection and the states of `names` once they reached `position`.

        The states are read on the connection the query then uses: one pool checkout per
        request, and on SQLite one read transaction for both. Only when the read models are
        behind is the connection given back while waiting (a pooled connection is not held
        idle), and a fresh one taken once they caught up.
        """
        connection = self.database.reader.connect()
        try:
            states = state.read(connection, names)
            if not state.reached(states, names, position):
                connection.close()
                states = self.wait(names, position, timeout)
                connection = self.database.reader.connect()
            yield connection, states
        finally:
            connection.close()  # (closing a closed connection does nothing)

    def status(self) -> list[Status]:
        with self.database.reader.connect() as connection:
            states = state.read(connection, [p.name for p in self.projections])
            return [
                Status(p.name, states[p.name].generation, states[p.name].position,
                       p.digest(connection, states[p.name].generation))
                for p in self.projections if p.name in states
            ]

    def chain_links(self, page_size: int = 5000) -> Iterator[tuple[int, str]]:
        """The audit log's (position, link) pairs in log order, read a page at a time."""
        audit = self.by_name["audit_log"]
        position = 0
        while True:
            with self.database.reader.connect() as connection:
                generation = state.read(connection, [audit.name])[audit.name].generation
                table = audit.tables(generation)["audit_log"]
                page = connection.execute(
                    select(table.c.position, table.c.link).where(table.c.position > position)
                    .order_by(table.c.position).limit(page_size)).all()
            yield from ((row.position, row.link) for row in page)
            if len(page) < page_size:
                return
            position = page[-1].position

    def close(self) -> None:
        self.database.dispose()


class EmbeddedRunner:
    """Projections running in a background thread of the API process."""

    def __init__(self, runner: ProjectionRunner, recorder: ApplicationRecorder) -> None:
        self.runner = runner
        self.wakeup = Wakeup()
        self.waiter, self.idle_seconds = idle_waiter(recorder, self.wakeup)
        self.stop_event = threading.Event()
        self.thread = threading.Thread(target=self._run, name="projections", daemon=True)

    def start(self) -> None:
        self.runner.prepare()
        self.thread.start()

    def _run(self) -> None:
        while not self.stop_event.is_set():
            try:
                self.runner.run(self.stop_event, self.waiter.wait, self.idle_seconds)
            except (SQLAlchemyError, PersistenceError, psycopg.Error, OSError):
                # A database hiccup must not end the read side for the life of the process:
                # say so loudly, back off, and resume from the stored position. Anything else
                # is a bug in a fold: it ends the thread, and queries answer projection_lag.
                LOG.exception("projection runner failed; retrying")
                self.stop_event.wait(FAILURE_BACKOFF_SECONDS)

    def stop(self) -> None:
        self.stop_event.set()
        self.wakeup.wake()
        wake_listener = getattr(self.waiter, "wake", None)
        if wake_listener is not None and self.waiter is not self.wakeup:
            wake_listener()
        self.thread.join(timeout=10)
        close = getattr(self.waiter, "close", None)
        if close is not None:
            close()
