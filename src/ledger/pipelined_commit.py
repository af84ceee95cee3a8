"""Pipelined group commit (PostgreSQL): the next batch decided while the last is stored.

In step, the writer decides a batch, sends it, and waits for the database's answer with
nothing to do: on this machine that round trip is a quarter to a third of a batch's time.
Pipelined, the writer sends a batch (a *flight*) and, while the database stores it, takes
the commands that queued meanwhile and decides them on the cached aggregates as the flight
leaves them, as if it were already stored. Then it reads the flight's answer, sends the
batch it decided, and only then answers the flight's callers. Callers that each wait for
their answer before they send again settle into two alternating halves.

Nothing is sent before the batch ahead of it is known to be stored, so the log holds what
the writer decided, in that order, and every caller gets exactly the answer it would have
had in step:

- the flight stored: the next batch is sent, checked from the flight's last position, once
  none of the events others stored before the flight (which its answer carries) touch an
  aggregate the next batch looked up; if one does, the next batch is decided again, in step;
- the flight not stored: both batches are decided again, in step, one after the other.
  When others changed what it looked up, the aggregates it changed are dropped from the
  cache and the rest brought forward with others' events, as in step; on any other failure
  (a version taken, an error) the whole cache is dropped.

Only the writer's thread runs this: no other thread hands the interpreter lock back and
forth (a flusher thread did, and cost more than it saved: docs/architecture.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from uuid import UUID

from eventsourcing.persistence import Notification

from ledger.errors import StaleRead
from ledger.group_commit import FOREIGN_MAX, Pending, decide_batch, event_order, touches
from ledger.pg_batch_write import InFlight
from ledger.workspace import Workspace

if TYPE_CHECKING:
    from ledger.application import Ledger, Staged


@dataclass
class Flight:
    """A batch decided (on the cache as the batch ahead leaves it) and, once launched, sent."""

    batch: list[Pending]  # every command of the batch, decided or refused
    decided: list[Pending]
    staged: Staged
    looked_up: list[UUID]
    parameters: list[bytes]
    sent: InFlight | None = None
    # Once landed: others' events stored before it (None: more than FOREIGN_MAX).
    foreign: list[Notification] | None = None

    @property
    def size(self) -> int:
        return len(self.batch)


def decide(ledger: Ledger, batch: list[Pending]) -> Flight | None:
    """`batch` decided on the writer's cache, ready to send; None when it is to be decided
    in step instead (it read stale state, or changed nothing)."""
    assert ledger.group_committer is not None and ledger.batch_writer is not None
    workspace = Workspace(ledger.group_committer.cache.load, datetime.now(UTC))
    try:
        decided = decide_batch(ledger, batch, workspace, ledger.context_of)
    except StaleRead:
        return None
    changed = workspace.changed()
    if not changed:
        return None
    order = event_order(decided)
    staged = ledger.stage(changed, lambda event: order[
        (event.originator_id, event.originator_version)])
    looked_up = workspace.looked_up()
    return Flight(batch, decided, staged, looked_up,
                  ledger.batch_writer.encode(staged.stored, looked_up))


def launch(ledger: Ledger, flight: Flight) -> Flight:
    """Send `flight`, checked from the cache's position; the cache then holds its
    aggregates as if stored, for the next batch to decide on."""
    assert ledger.group_committer is not None and ledger.batch_writer is not None
    cache = ledger.group_committer.cache
    assert cache.position is not None, "sent only with the cache's position known"
    flight.sent = ledger.batch_writer.send(flight.parameters, len(flight.staged.stored),
                                           cache.position, FOREIGN_MAX + 1)
    # The aggregates it changed (the rest it looked up are the cache's own already), held
    # apart too until it is answered: one trimmed from the cache meanwhile must not be
    # read again from the store, as it was before this batch.
    changed: dict[UUID, Any] = dict(flight.staged.processing.aggregates)
    cache.keep(list(changed.values()))
    cache.in_flight = changed
    return flight


def land(ledger: Ledger, flight: Flight) -> dict[UUID, int] | None:
    """The flight's answer read: the position of each of its decided commands (by
    document id), the cache current at its last event; None when it was not stored, or
    its fate is unknown: decide it again, in step (the cache brought forward with others'
    events, or dropped when the answer could not be read)."""
    assert ledger.group_committer is not None and ledger.batch_writer is not None
    assert flight.sent is not None
    cache = ledger.group_committer.cache
    try:
        written = ledger.batch_writer.receive(flight.sent)
    except Exception:  # the library's errors, or another: in step, it meets them again
        cache.clear()
        return None
    if written.positions is None:  # others changed what it looked up: nothing stored
        cache.drop_flight()
        cache.follow(written.foreign)  # as in step: the rest of the cache is kept
        return None
    cache.follow(written.foreign)  # (more than FOREIGN_MAX of them: the cache is emptied)
    # Others' events before it, all of them, or None when there were more than were read.
    flight.foreign = written.foreign if len(written.foreign) <= FOREIGN_MAX else None
    recordings = ledger.recorded(flight.staged, written.positions)
    stored = {(r.domain_event.originator_id, r.domain_event.originator_version):
              r.notification.id for r in recordings}
    last = max(stored.values())
    cache.advanced_to(last)  # its aggregates were kept when it was sent
    return {pending.document_id: max((stored[event] for event in pending.events),
                                     default=last) for pending in flight.decided}


class Pipeline:
    """The writer's batch in flight (at most one), always current here, so that whatever
    goes wrong, a batch sent is landed and its callers answered (`abandon`)."""

    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger
        self.flight: Flight | None = None

    def step(self, batch: list[Pending]) -> None:
        """Decide `batch` while the flight (if any) is stored, land the flight, then send
        the batch (now the flight) and answer the landed one's callers; or, where it
        cannot go pipelined, decide and answer the batch in step."""
        ledger = self.ledger
        upcoming = decide(ledger, batch)
        landed, self.flight = self.flight, None
        if landed is not None:
            positions = land(ledger, landed)
            if positions is None:
                _in_step(ledger, landed.batch)
                _in_step(ledger, batch)
                return
            if upcoming is not None and not _clear_of(landed.foreign, upcoming.looked_up):
                upcoming = None
            if upcoming is not None:
                self.flight = launch(ledger, upcoming)
            _answer(ledger, landed.batch, positions)
        elif upcoming is not None:
            self.flight = launch(ledger, upcoming)
        if upcoming is None:
            ledger.execute_batch(batch)

    def finish(self) -> None:
        """Land the flight, if any, and answer its callers (in step again, if it was not
        stored)."""
        landed, self.flight = self.flight, None
        if landed is None:
            return
        positions = land(self.ledger, landed)
        if positions is None:
            _in_step(self.ledger, landed.batch)
        else:
            _answer(self.ledger, landed.batch, positions)

    def abandon(self, error: BaseException) -> None:
        """After `error` escaped a step: the flight still landed and answered if that can
        be done, else its callers get the error."""
        landed = self.flight
        try:
            self.finish()
        except BaseException:  # every caller must be answered, whatever happens
            _answer_error(landed.batch if landed is not None else [], error)


def _clear_of(foreign: list[Notification] | None, looked_up: list[UUID]) -> bool:
    """Whether none of others' events (None: too many to know) is of an aggregate in
    `looked_up`."""
    return foreign is not None and not touches(foreign, looked_up)


def _in_step(ledger: Ledger, batch: list[Pending]) -> None:
    """`execute_batch`, and should it fail, each of the batch's callers answered."""
    try:
        ledger.execute_batch(batch)
    except BaseException as error:  # every caller must be answered, whatever happens
        _answer_error(batch, error)
        raise


def _answer(ledger: Ledger, batch: list[Pending], positions: dict[UUID, int]) -> None:
    """`answer_batch`, and should it fail, the rest answered with its error."""
    try:
        ledger.answer_batch(batch, positions)
    except BaseException as error:  # every caller must be answered, whatever happens
        _answer_error(batch, error)
        raise


def _answer_error(batch: list[Pending], error: BaseException) -> None:
    for pending in batch:
        if not pending.done.is_set():
            pending.answer(error=error)
