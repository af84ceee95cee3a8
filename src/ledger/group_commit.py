"""Group commit: concurrent commands decided in order and saved in one transaction.

Callers queue their commands; one writer thread takes up to `batch_max` of them (waiting at
most `window` for more once the first arrived, less once as many are queued as the largest
batch lately), decides each in order against the same
in-memory aggregates — so two commands on one bin see each other — and saves every
command's events in one `save()`. A command refused by its own rules is dropped from the
batch without touching the others (it is decided on copies of the aggregates, merged back
only when it succeeds). Idempotency keys are recorded per command in the same save.
Another process winning a race makes the save fail as a whole: the batch is decided
again from fresh state (bounded), and then, if still losing, each command runs alone.

Each caller gets exactly the result or error it would have had without batching.
"""

from __future__ import annotations

import _thread
import contextlib
import queue
import socket
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError
from eventsourcing.domain import Aggregate
from eventsourcing.persistence import Notification

from ledger.domain.command_record import CommandRecord
from ledger.domain.context import CommandMeta
from ledger.errors import LedgerClosed, LedgerError, PeriodClosed, StaleRead
from ledger.random_ids import new_id
from ledger.workspace import Workspace

if TYPE_CHECKING:
    from ledger.application import CommandResult, Ledger

BATCH_ATTEMPTS_MAX = 8
MISSING = object()  # the cache's mark for an aggregate that does not exist (yet)
# More events than this from other writers since the last batch: the cache starts afresh.
FOREIGN_MAX = 10_000


@dataclass(frozen=True)
class GroupCommitSettings:
    batch_max: int = 256
    window_seconds: float = 0.0005  # seconds, not money: float-ok
    cache_max: int = 100_000
    # On PostgreSQL, decide the next batch while the last is stored (`pipelined_commit`).
    pipelined: bool = True


class Signal:
    """`threading.Event`'s `set`, `is_set` and `wait` for one waiter, on one bare lock: an
    Event builds a Condition (and its lock) per instance and another lock per wait, and
    each command has one (3.1 µs against 0.2 µs to create, set and wait on, measured)."""

    __slots__ = ("_lock", "_set")

    def __init__(self) -> None:
        self._lock = _thread.allocate_lock()
        self._lock.acquire()
        self._set = False

    def set(self) -> None:
        if not self._set:
            self._set = True
            self._lock.release()

    def is_set(self) -> bool:
        return self._set

    def wait(self) -> None:
        if not self._set:
            with self._lock:  # released by `set`: taken and handed straight back
                pass


@dataclass
class Pending:
    """One queued command and, once decided and saved, its answer."""

    kind: str
    command: Any
    meta: CommandMeta
    decide: Callable[..., dict[str, Any]]
    fingerprint: str
    document_id: UUID = field(default_factory=new_id)
    done: Signal = field(default_factory=Signal)
    result: CommandResult | None = None
    error: BaseException | None = None
    body: dict[str, Any] | None = None
    events: list[tuple[UUID, int]] = field(default_factory=list)
    # Called (in the writer's thread) once answered: how an awaiting caller learns of it.
    on_done: Callable[[], None] | None = None

    @property
    def key(self) -> tuple[str, str] | None:
        key = self.meta.idempotency_key
        return None if key is None else (self.meta.actor, key)

    def answer(self, result: CommandResult | None = None,
               error: BaseException | None = None) -> None:
        self.result, self.error = result, error
        self.done.set()
        if self.on_done is not None:
            self.on_done()

    def outcome(self) -> CommandResult:
        """The result, or the error raised, once answered."""
        if self.error is not None:
            raise self.error
        assert self.result is not None
        return self.result


class GroupCommitter:
    """The queue and the writer thread of one `Ledger`."""

    def __init__(self, ledger: Ledger, settings: GroupCommitSettings) -> None:
        self.ledger = ledger
        self.settings = settings
        self.cache = AggregateCache(ledger, settings.cache_max)
        self.closing = False
        # How many commands a batch is expected to gather: the largest batch lately (each
        # smaller batch lowers it by one).
        self.expected = 0
        # While the writer waits out a window: how many queued commands complete its batch
        # (0: it is not waiting), and the event the caller that queues the last of them sets.
        self.awaited = 0
        self.complete = threading.Event()
        # While it waits beside a batch in flight (pipelined), the writer waits on that
        # batch's connection and on this pair's reading end, which a caller queueing the
        # last command awaited writes to (sockets: `select` takes them everywhere).
        self.wake_reader, self.wake_writer = socket.socketpair()
        self.wake_reader.setblocking(False)
        self.wake_writer.setblocking(False)
        # SimpleQueue: put and get in C, without Queue's conditions and task counting.
        self.queue: queue.SimpleQueue[Pending | None] = queue.SimpleQueue()
        self.thread = threading.Thread(target=self._run, name="group-commit", daemon=True)
        self.thread.start()

    def submit(self, pending: Pending) -> CommandResult:
        """Queue a command and wait for its answer."""
        self.enqueue(pending)
        pending.done.wait()
        return pending.outcome()

    def enqueue(self, pending: Pending) -> None:
        """Queue a command; it is answered through `pending` (its `done`, its `on_done`)."""
        if self.closing:
            raise LedgerClosed()
        self.queue.put(pending)
        if self.awaited and self.queue.qsize() >= self.awaited:
            self.complete.set()
            self._wake()

    def close(self) -> None:
        self.closing = True
        self.queue.put(None)
        self.complete.set()  # a window being waited out ends now
        self._wake()  # and so does a wait beside a batch in flight
        self.thread.join(timeout=10)
        self._refuse_queued()
        if not self.thread.is_alive():
            self.wake_reader.close()
            self.wake_writer.close()

    def _wake(self) -> None:
        # Full, the writer has plenty to read; closed, the ledger is (a caller racing it).
        with contextlib.suppress(OSError):
            self.wake_writer.send(b"\0")

    def _refuse_queued(self) -> None:
        """Answer whatever was queued behind the stop: the ledger is closed."""
        while True:
            try:
                item = self.queue.get_nowait()
            except queue.Empty:
                return
            if item is not None:
                item.answer(error=LedgerClosed())

    def _run(self) -> None:
        from ledger.pipelined_commit import Pipeline  # (it builds on this module)

        pipeline = Pipeline(self.ledger)
        carried: list[Pending] = []
        stopping = False
        while True:
            batch = carried
            if not batch and pipeline.flight is not None:
                batch, stopping = self._gather_beside(pipeline.flight, stopping)
                if not batch:  # its answer came first, or the stop
                    self._settle(pipeline, [], pipeline.finish)
                    continue
            head = None
            if not batch:
                first = None if stopping else self.queue.get()
                if first is None:
                    self._refuse_queued()
                    return
                batch = [first]
                if not stopping:
                    # The cache is brought current while the batch's window is open: the
                    # read's round trip is time the writer would otherwise spend asleep.
                    # (On PostgreSQL the save itself checks, once the cache's position is
                    # known.)
                    started = time.perf_counter()
                    try:
                        head = None if self.cache.checked_at_save() else self.cache.check()
                    except Exception as error:  # as the batch's own check would: answered
                        for pending in batch:
                            pending.answer(error=error)
                        carried = []
                        continue
                    stopping = self._fill(batch, time.perf_counter() - started)
            batch, carried = _one_per_key(batch)
            if self.settings.pipelined and self.cache.checked_at_save():
                self._settle(pipeline, batch, self.ledger.execute_pipelined, batch, pipeline)
            else:
                self._settle(pipeline, batch, self.ledger.execute_batch, batch, head)

    @staticmethod
    def _settle(pipeline: Any, batch: list[Pending], work: Callable[..., None],
                *arguments: Any) -> None:
        """Run `work`; whatever escapes it, the batch in flight is landed and every
        caller of `batch` answered."""
        try:
            work(*arguments)
        except BaseException as error:  # every caller must be answered, whatever happens
            pipeline.abandon(error)
            for pending in batch:
                if not pending.done.is_set():
                    pending.answer(error=error)

    def _gather_beside(self, flight: Any, stopping: bool) -> tuple[list[Pending], bool]:
        """The commands queued while `flight` is stored, once as many are queued as
        expected beside it (as many as lately were in flight and queued together, less the
        flight's), or as soon as its answer begins to arrive; and whether told to stop."""
        writer = self.ledger.batch_writer
        assert writer is not None and flight.sent is not None
        if stopping:
            return [], True
        awaited = max(self.expected - flight.size, 1)
        with contextlib.suppress(BlockingIOError):
            while self.wake_reader.recv(4096):  # wake-ups from before: spent
                pass
        self.awaited = awaited  # set before the queue is looked at: no wake-up is lost
        if self.queue.qsize() < awaited:
            writer.wait(flight.sent, self.wake_reader.fileno())
        self.awaited = 0
        batch: list[Pending] = []
        stopping = self._take_queued(batch)
        if batch:
            self.expected = max(len(batch) + flight.size, self.expected - 1)
        return batch, stopping

    def _fill(self, batch: list[Pending], spent: float = 0.0) -> bool:
        """Take what else is queued once the window (less `spent` of it already) has
        passed, or as soon as as many commands are queued as the largest batch lately took
        (`expected`: two at least, so a lone command still waits the window for company;
        each smaller batch lowers it by one, so that batches gathered while requests trickle
        in do not shrink it at once); True when told to stop.

        The writer waits out the window and then takes what arrived, rather than waking for
        each command as it is queued: each wake-up would take the interpreter lock back
        from the callers that are busy queueing the rest of the batch. The caller that
        queues the command completing the batch wakes it: callers that each wait for their
        answer before they send again were all answered at the end of the last batch, are
        back well before the window ends, and the rest of it was idle."""
        expected = self.expected
        if self.settings.pipelined and self.cache.checked_at_save():
            expected = (expected + 1) // 2  # the rest are decided while these are stored
        awaited = min(max(expected, 2), self.settings.batch_max) - len(batch)
        left = self.settings.window_seconds - spent
        if awaited > 0 and left > 0:
            self.complete.clear()
            self.awaited = awaited  # set before the queue is looked at: no wake-up is lost
            if self.queue.qsize() < awaited:
                self.complete.wait(left)
            self.awaited = 0
        stopping = self._take_queued(batch)
        self.expected = max(len(batch), self.expected - 1)
        return stopping

    def _take_queued(self, batch: list[Pending]) -> bool:
        """Add what is queued to `batch`, up to the batch maximum; True when told to stop."""
        while len(batch) < self.settings.batch_max:
            try:
                item = self.queue.get_nowait()
            except queue.Empty:
                return False
            if item is None:
                return True
            batch.append(item)
        return False


def check_period(workspace: Workspace, effective_at: Any) -> None:
    """Refuse a business time before the open period, as the workspace sees the books."""
    if effective_at is None or effective_at.utcoffset() is None:
        return
    periods = workspace.existing_periods()
    if periods is not None and periods.open_from is not None \
            and effective_at < periods.open_from:
        raise PeriodClosed(effective_at, periods.closed_until)


def _one_per_key(batch: list[Pending]) -> tuple[list[Pending], list[Pending]]:
    """A batch with each idempotency key once; the repeats wait for the next batch (where
    they are answered as replays of the first)."""
    seen: set[tuple[str, str]] = set()
    now, later = [], []
    for pending in batch:
        if pending.key is not None and pending.key in seen:
            later.append(pending)
            continue
        if pending.key is not None:
            seen.add(pending.key)
        now.append(pending)
    return now, later


def decide_batch(ledger: Ledger, batch: list[Pending], workspace: Workspace,
                 context_of: Callable[[Pending], Any]) -> list[Pending]:
    """Decide each command in order on copies of the shared aggregates; the decided ones."""
    decided = []
    for pending in batch:
        pending.events, pending.body, pending.error = [], None, None
        trial = workspace.fork()
        context = context_of(pending)
        try:
            # A close decided earlier in this very batch counts too.
            check_period(workspace, getattr(pending.command, "effective_at", None))
            body = pending.decide(pending.command, trial, context)
        except StaleRead:
            raise
        except LedgerError as error:
            pending.error = error
            continue
        except Exception as error:
            pending.error = error
            continue
        result = {"document_id": pending.document_id, **body}
        events = workspace.absorb(trial)
        if pending.key is not None:
            record = CommandRecord.record(pending.meta.actor, pending.meta.idempotency_key or "",
                                          pending.kind, pending.fingerprint, result)
            workspace.add(record)
            events.extend((event.originator_id, event.originator_version)
                          for event in record.pending_events)
        pending.events = events
        pending.body = result
        decided.append(pending)
    return decided


def save_batch(ledger: Ledger, workspace: Workspace,
               decided: list[Pending]) -> tuple[dict[UUID, int], tuple[int, int] | None]:
    """Save every decided command's events at once: the position of each (by document id),
    and the first and last positions the save took (None when nothing was saved).

    Raises IntegrityError when another writer got there first (nothing is saved).
    """
    changed = workspace.changed()
    if not changed:
        head = ledger.head_position()
        return {pending.document_id: head for pending in decided}, None
    order = event_order(decided)
    recordings = ledger.save_in_order(changed, lambda event: order[
        (event.originator_id, event.originator_version)])
    positions = {(r.domain_event.originator_id, r.domain_event.originator_version):
                 r.notification.id for r in recordings}
    first, last = min(positions.values()), max(positions.values())
    return {pending.document_id: max((positions[event] for event in pending.events),
                                     default=last) for pending in decided}, (first, last)


def event_order(decided: list[Pending]) -> dict[tuple[UUID, int], tuple[int, int]]:
    """Where each decided command's events go in the log: command by command, as if each
    had been saved alone."""
    return {event: (index, sequence) for index, pending in enumerate(decided)
            for sequence, event in enumerate(pending.events)}


def write_batch(ledger: Ledger, workspace: Workspace, decided: list[Pending],
                cache: AggregateCache) -> dict[UUID, int] | None:
    """`save_batch` with the cache's check in the same round trip (PostgreSQL,
    `pg_batch_write`): the position of each decided command (by document id); None when
    another writer changed an aggregate the batch looked up since the cache was current
    (nothing was saved, and the cache has been brought forward: decide again).

    Raises IntegrityError when a version was taken all the same (nothing is saved)."""
    position = cache.position
    assert position is not None, "the cache's position is known"
    looked_up = workspace.looked_up()
    changed = workspace.changed()
    if not changed:
        foreign = ledger.batch_writer.read_after(position, FOREIGN_MAX + 1)  # type: ignore[union-attr]
        cache.follow(foreign)
        if cache.position is None or touches(foreign, looked_up):
            return None
        return {pending.document_id: cache.position for pending in decided}
    order = event_order(decided)
    foreign, recordings = ledger.save_checked(changed, lambda event: order[
        (event.originator_id, event.originator_version)], position, looked_up, FOREIGN_MAX + 1)
    cache.follow(foreign)
    if recordings is None:
        return None
    positions = {(r.domain_event.originator_id, r.domain_event.originator_version):
                 r.notification.id for r in recordings}
    last = max(positions.values())
    cache.saved_at(last, workspace.aggregates())
    return {pending.document_id: max((positions[event] for event in pending.events),
                                     default=last) for pending in decided}


def touches(foreign: list[Notification], looked_up: list[UUID]) -> bool:
    """Whether any of others' events is of an aggregate in `looked_up`."""
    ids = set(looked_up)
    return any(UUID(str(notification.originator_id)) in ids for notification in foreign)


class AggregateCache:
    """The writer's aggregates as its last save left them. The writer reads the events
    stored after the position the cache is current at — before each batch, or on
    PostgreSQL in the batch's save itself (`write_batch`) — and a cached aggregate
    that another process (another API worker, another host) wrote since is brought forward
    by applying those events, in order (or dropped, to be loaded afresh when next needed, if
    they do not follow on from its version), so refusals never rest on stale state; a write
    that lands while a batch is decided fails that batch's save (on version, or on
    PostgreSQL by the save's own check, when it touches an aggregate the batch looked up),
    or is caught by the next check. When more than `FOREIGN_MAX` events came from
    elsewhere, or the position is unknown, everything is dropped.

    Aggregates are never changed while a batch decides: it decides on copies
    (`Workspace.fork`); only the check, between batches, moves a cached one forward.
    """

    def __init__(self, ledger: Ledger, size_max: int) -> None:
        self.ledger = ledger
        self.size_max = size_max
        self.aggregates: OrderedDict[UUID, Aggregate | object] = OrderedDict()
        # The log position the cache is current at (None: unknown), and the span of
        # positions after it that our own last save took (its aggregates are current).
        self.position: int | None = None
        self.own: tuple[int, int] | None = None
        # The aggregates of the batch in flight (pipelined), as it leaves them: never read
        # from the store before it is answered, even once trimmed from the cache.
        self.in_flight: dict[UUID, Aggregate] = {}

    def check(self) -> int:
        """Bring forward (or drop) what anyone else wrote since the cache was current;
        the position it is now current at."""
        if self.position is not None:
            foreign = self.ledger.recorder.select_notifications(
                start=self.position, limit=FOREIGN_MAX + 1, inclusive_of_start=False)
            if len(foreign) <= FOREIGN_MAX:
                own = self.own or (0, -1)
                for notification in foreign:
                    if not own[0] <= notification.id <= own[1]:
                        self._follow(notification)
                if foreign:
                    self.position = foreign[-1].id
                self.own = None
                return self.position
        self.clear()
        self.position = self.ledger.head_position()
        return self.position

    def checked_at_save(self) -> bool:
        """Whether the next save checks for others' events itself (`write_batch`): on
        PostgreSQL, once the position is known."""
        return self.ledger.batch_writer is not None and self.position is not None

    def follow(self, foreign: list[Notification]) -> None:
        """Bring the cache forward with events others stored after its position, as read
        by the save (more than `FOREIGN_MAX` of them: everything is dropped)."""
        if len(foreign) > FOREIGN_MAX:
            self.clear()
            return
        for notification in foreign:
            self._follow(notification)
        if foreign:
            self.position = foreign[-1].id

    def saved_at(self, position: int, aggregates: list[Aggregate]) -> None:
        """After a checked save: the cache is current at `position`, its last event."""
        self.keep(aggregates)
        self.position, self.own = position, None

    def advanced_to(self, position: int) -> None:
        """After a checked save whose aggregates the cache holds already (the pipelined
        writer keeps them as it sends the batch): current at `position`, its last event."""
        self.position, self.own, self.in_flight = position, None, {}

    def drop_flight(self) -> None:
        """The batch in flight was not stored: the aggregates it changed, kept as if it
        were, are dropped (loaded afresh when next needed); the rest stay."""
        for aggregate_id in self.in_flight:
            self.aggregates.pop(aggregate_id, None)
        self.in_flight = {}

    def _follow(self, notification: Notification) -> None:
        """Apply another writer's event to the cached aggregate it belongs to, if any."""
        aggregate_id = UUID(str(notification.originator_id))
        cached = self.aggregates.get(aggregate_id)
        if cached is None:
            return
        if isinstance(cached, Aggregate) and \
                cached.version == notification.originator_version - 1:
            event: Any = self.ledger.mapper.to_domain_event(notification)
            event.mutate(cached)
        else:  # absent until now, or events missed: load afresh when next needed
            del self.aggregates[aggregate_id]

    def saved(self, head: int, span: tuple[int, int] | None,
              aggregates: list[Aggregate]) -> None:
        """After a save (read the head at `head` before): keep the aggregates; the next
        check drops whatever others wrote after `head`, except our own span."""
        self.keep(aggregates)
        if span is not None and span[0] == head + 1:
            self.position, self.own = span[1], None
        else:
            self.position, self.own = head, span

    def load(self, aggregate_id: UUID) -> Aggregate:
        found = self.aggregates.get(aggregate_id)
        if found is MISSING:
            raise AggregateNotFoundError(aggregate_id)
        if isinstance(found, Aggregate):
            self.aggregates.move_to_end(aggregate_id)
            return found
        flown = self.in_flight.get(aggregate_id)
        if flown is not None:
            self.keep([flown])
            return flown
        try:
            loaded: Aggregate = self.ledger.repository.get(aggregate_id)
        except AggregateNotFoundError:
            # Nothing there yet: also current until someone else writes (see `check`).
            self.aggregates[aggregate_id] = MISSING
            self._trim()
            raise
        self.keep([loaded])
        return loaded

    def keep(self, aggregates: list[Aggregate]) -> None:
        for aggregate in aggregates:
            assert not aggregate.pending_events, "only saved state is cached"
            self.aggregates[aggregate.id] = aggregate
            self.aggregates.move_to_end(aggregate.id)
        self._trim()

    def _trim(self) -> None:
        while len(self.aggregates) > self.size_max:
            self.aggregates.popitem(last=False)

    def clear(self) -> None:
        self.aggregates.clear()
        self.in_flight = {}
        self.position = self.own = None
