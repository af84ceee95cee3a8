"""The ledger's application service: load → decide → save, one transaction per command.

Every stock command runs through `_execute`, which decides metadata once, tries
the decision against freshly loaded aggregates, saves all they changed in one
`save()` (all lines or none), retries a bounded number of times when another
writer got there first, and records the idempotency key in the same transaction.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, ClassVar, TypeVar
from uuid import UUID

from eventsourcing.application import (
    AggregateNotFoundError,
    Application,
    ProcessingEvent,
    Repository,
)
from eventsourcing.persistence import (
    IntegrityError,
    JSONTranscoder,
    Notification,
    Recording,
    StoredEvent,
    Transcoder,
)

from ledger import documents
from ledger.commands import (
    Count,
    Dispatch,
    Receipt,
    Transfer,
    checked_count,
    checked_dispatch,
    checked_effective_at,
    checked_receipt,
    checked_transfer,
)
from ledger.config import Settings, event_store_environment, group_commit_settings
from ledger.domain.command_record import CommandRecord
from ledger.domain.context import CommandMeta, MovementContext
from ledger.domain.identity import (
    bin_id,
    command_record_id,
)
from ledger.domain.item import Item
from ledger.domain.location import Location
from ledger.domain.party import Party
from ledger.domain.purchase_order import PurchaseOrder
from ledger.domain.sales_order import SalesOrder
from ledger.domain.stock_bin import StockBin
from ledger.errors import (
    ConcurrentModification,
    IdempotencyConflict,
    LedgerError,
    StaleRead,
)
from ledger.fast_json import FastJSONTranscoder
from ledger.group_commit import (
    BATCH_ATTEMPTS_MAX,
    GroupCommitSettings,
    GroupCommitter,
    Pending,
    decide_batch,
    save_batch,
    write_batch,
)
from ledger.period_close import PeriodClose
from ledger.pg_batch_write import BatchWriter
from ledger.pg_reads import read_in_binary
from ledger.pg_rows import use_fast_rows
from ledger.pg_statements import name_channel_by_schema, render_statements
from ledger.pipelined_commit import Pipeline
from ledger.purchase_orders import PurchaseOrders
from ledger.random_ids import new_id
from ledger.reference import ReferenceData
from ledger.repository import LedgerRepository, replay
from ledger.sales_orders import SalesOrders
from ledger.snapshotting import snapshots_due
from ledger.store import position_of, stored_events
from ledger.transcodings import CostStateAsDict, LayerAsDict
from ledger.workspace import Workspace

CommandT = TypeVar("CommandT")
StockDocument = Receipt | Dispatch | Transfer | Count
Decide = Callable[[CommandT, Workspace, MovementContext], dict[str, Any]]
AggregateT = TypeVar("AggregateT", Item, Location, Party, StockBin, CommandRecord,
                     PurchaseOrder, SalesOrder)
COMMAND_ATTEMPTS_MAX = 32
DUPLICATE_ORDER_WINDOW = timedelta(days=1)
SNAPSHOT_INTERVAL = 100


@dataclass(frozen=True)
class CommandResult:
    """What a stock command recorded: its document, the log position, the lines."""

    document_id: UUID
    position: int
    lines: list[dict[str, Any]]
    replayed: bool = False
    data: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Staged:
    """A batch's new events taken from its aggregates, in log order, and as stored."""

    processing: ProcessingEvent[UUID]
    stored: list[StoredEvent]


class Ledger(ReferenceData, PurchaseOrders, SalesOrders, PeriodClose, Application[UUID]):
    """Items, locations and stock movements, on the `eventsourcing` event store."""

    name = "ledger"
    # A bin with a long history loads from its latest snapshot plus at most this many events.
    snapshotting_intervals: ClassVar[dict[type[Any], int]] = {StockBin: SNAPSHOT_INTERVAL}

    def __init__(self, env: Mapping[str, str] | None = None,
                 attempts_max: int = COMMAND_ATTEMPTS_MAX,
                 over_receipt_tolerance: Decimal = Decimal(0),
                 duplicate_order_window: timedelta = DUPLICATE_ORDER_WINDOW,
                 group_commit: GroupCommitSettings | None = None) -> None:
        super().__init__(env)
        use_fast_rows(self.recorder)  # PostgreSQL: the faster stored-event dumper
        name_channel_by_schema(self.recorder)  # PostgreSQL: one NOTIFY channel per schema
        render_statements(self.recorder)  # PostgreSQL: its insert statements rendered once
        read_in_binary(self.recorder)  # PostgreSQL: the log read in binary, into tuples
        # PostgreSQL: a group-commit batch checked and saved in one round trip.
        self.batch_writer = BatchWriter.for_recorder(self.recorder)
        self.attempts_max = attempts_max
        self.over_receipt_tolerance = over_receipt_tolerance
        self.duplicate_order_window = duplicate_order_window
        self.on_recorded: list[Callable[[], None]] = []
        self.group_committer = (None if group_commit is None
                                else GroupCommitter(self, group_commit))

    def construct_repository(self) -> Repository[UUID]:
        # The library's repository, configured as the library configures it, replaying with
        # `ledger.repository.replay`.
        repository = super().construct_repository()
        repository.__class__ = LedgerRepository
        return repository

    def construct_transcoder(self) -> Transcoder:
        # The library's JSON format, written and read with orjson (`ledger.fast_json`).
        transcoder = FastJSONTranscoder()
        self.register_transcodings(transcoder)
        return transcoder

    def register_transcodings(self, transcoder: JSONTranscoder) -> None:
        super().register_transcodings(transcoder)
        transcoder.register(LayerAsDict())
        transcoder.register(CostStateAsDict())

    def stock_bin(self, sku: str, location: str) -> StockBin | None:
        try:
            return self._load(bin_id(sku, location), StockBin)
        except AggregateNotFoundError:
            return None

    # Stock documents.

    def receive(self, receipt: Receipt, meta: CommandMeta) -> CommandResult:
        """Record a receipt (入库): every line in at its unit cost."""
        return self.record(receipt, meta)

    def dispatch(self, dispatch: Dispatch, meta: CommandMeta) -> CommandResult:
        """Record a dispatch (出库): every line out at cost, never below available."""
        return self.record(dispatch, meta)

    def transfer(self, transfer: Transfer, meta: CommandMeta) -> CommandResult:
        """Record a transfer (调拨): out of one location and into another, at cost."""
        return self.record(transfer, meta)

    def count(self, count: Count, meta: CommandMeta) -> CommandResult:
        """Record a stock count (盘点): on-hand becomes the counted quantity."""
        return self.record(count, meta)

    def record(self, document: StockDocument, meta: CommandMeta) -> CommandResult:
        """Record a stock document (receipt, dispatch, transfer or count), waiting for it."""
        kind, command, decide = _stock_document(document)
        return self._execute(kind, command, meta, decide)

    def enqueue(self, document: StockDocument, meta: CommandMeta,
                on_done: Callable[[], None]) -> Pending | None:
        """Queue a stock document for the group commit without waiting, when that needs no
        database read first; `on_done` is called (in the writer's thread) once it is
        answered, and `Pending.outcome()` then gives its result or raises its error.

        None, with nothing queued, when it does need one: group commit off, an idempotency
        key (a replay is looked up first) or a given effective time (its period is checked
        first). Record such a document with `record` instead. A document that fails its
        own checks raises here, as `record` would.
        """
        if self.group_committer is None or meta.idempotency_key is not None \
                or getattr(document, "effective_at", None) is not None:
            return None
        kind, command, decide = _stock_document(document)
        pending = Pending(kind, command, meta, decide, _fingerprint(kind, command, meta),
                          on_done=on_done)
        self.group_committer.enqueue(pending)
        return pending

    def _execute(self, kind: str, command: CommandT, meta: CommandMeta,
                 decide: Decide[CommandT]) -> CommandResult:
        fingerprint = _fingerprint(kind, command, meta)
        if self.group_committer is None:
            return self._execute_alone(kind, command, meta, decide, fingerprint, new_id())
        # Replays and closed periods are answered here, in the caller's thread.
        replayed = self._replay(meta, fingerprint)
        if replayed is not None:
            return replayed
        self.check_open(getattr(command, "effective_at", None))
        return self.group_committer.submit(Pending(kind, command, meta, decide, fingerprint))

    def _execute_alone(self, kind: str, command: CommandT, meta: CommandMeta,
                       decide: Decide[CommandT], fingerprint: str,
                       document_id: UUID) -> CommandResult:
        replayed = self._replay(meta, fingerprint)
        if replayed is not None:
            return replayed
        # A defaulted time is now, always in the open period; a given one may be too early.
        self.check_open(getattr(command, "effective_at", None))
        for _ in range(self.attempts_max):
            context = _context(command, meta, document_id)
            workspace = Workspace(self.repository.get, context.recorded_at)
            try:
                body = decide(command, workspace, context)
            except StaleRead:
                continue  # an aggregate read before another writer's save: decide again
            except LedgerError:
                # A retry may have been decided against the state its own original command
                # left behind (e.g. the stock it already took): answer as the original did.
                replayed = self._replay(meta, fingerprint)
                if replayed is not None:
                    return replayed
                raise
            result = {"document_id": document_id, **body}
            changed = workspace.changed()
            if meta.idempotency_key is not None:
                changed.append(CommandRecord.record(
                    meta.actor, meta.idempotency_key, kind, fingerprint, result))
            try:
                position = self._save_position(*changed)
            except IntegrityError:
                replayed = self._replay(meta, fingerprint)
                if replayed is not None:
                    return replayed
                continue
            return CommandResult(document_id, position, body.get("lines", []), data=result)
        raise ConcurrentModification(self.attempts_max)

    def execute_batch(self, batch: list[Pending], checked: int | None = None) -> None:
        """Decide and save a batch of commands in one transaction; answer each (group commit).

        `checked`: the position the writer's cache was brought current at just before (see
        `GroupCommitter._run`); else the first attempt checks, as every retry does."""
        assert self.group_committer is not None
        cache = self.group_committer.cache
        live = batch
        for _ in range(BATCH_ATTEMPTS_MAX):
            if not live:
                return
            checked_at_save = cache.checked_at_save()
            head = 0
            if not checked_at_save:
                head = cache.check() if checked is None else checked
            checked = None
            workspace = Workspace(cache.load, datetime.now(UTC))
            try:
                decided = decide_batch(self, live, workspace, self.context_of)
                if checked_at_save:
                    saved = write_batch(self, workspace, decided, cache)
                    if saved is None:
                        continue  # others changed what it read: decide again, brought forward
                    positions = saved
                else:
                    positions, span = save_batch(self, workspace, decided)
                    cache.saved(head, span, workspace.aggregates())
            except (StaleRead, IntegrityError):
                # Another process got there first: decide again on fresh state.
                cache.clear()
                live = [pending for pending in live if not self._answered_by_replay(pending)]
                continue
            self.answer_batch(live, positions)
            return
        for pending in live:  # still losing to other writers: each command alone
            try:
                pending.answer(self._execute_alone(pending.kind, pending.command, pending.meta,
                                                   pending.decide, pending.fingerprint,
                                                   pending.document_id))
            except BaseException as error:  # the caller gets its own error, whatever it is
                pending.answer(error=error)

    def execute_pipelined(self, batch: list[Pending], pipeline: Pipeline) -> None:
        """Decide a batch while the one ahead of it is stored, then send it (PostgreSQL:
        `pipelined_commit`); or, where it cannot go so, decide and save it in step."""
        pipeline.step(batch)

    def _answered_by_replay(self, pending: Pending) -> bool:
        """A command whose key was recorded meanwhile answers as the recorded one did."""
        try:
            replayed = self._replay(pending.meta, pending.fingerprint)
        except LedgerError as error:
            pending.answer(error=error)
            return True
        if replayed is not None:
            pending.answer(replayed)
        return replayed is not None

    def close(self) -> None:
        if self.group_committer is not None:
            self.group_committer.close()
            self.group_committer = None
        super().close()

    def _replay(self, meta: CommandMeta, fingerprint: str) -> CommandResult | None:
        """The original result for a repeated idempotency key, or None for a new key."""
        if meta.idempotency_key is None:
            return None
        record_id = command_record_id(meta.actor, meta.idempotency_key)
        try:
            record = self._load(record_id, CommandRecord)
        except AggregateNotFoundError:
            return None
        if record.fingerprint != fingerprint:
            raise IdempotencyConflict(meta.idempotency_key)
        position = position_of(self.recorder, record_id, 1)
        assert position is not None, "a loaded command record has a position"
        return CommandResult(record.result["document_id"], position,
                             record.result.get("lines", []), replayed=True, data=record.result)

    # Infrastructure.

    def _load(self, aggregate_id: UUID, kind: type[AggregateT]) -> AggregateT:
        aggregate: Any = self.repository.get(aggregate_id)
        assert isinstance(aggregate, kind), f"{aggregate_id} is not a {kind.__name__}"
        return aggregate

    def _notify(self, recordings: list[Recording[UUID]]) -> None:
        # The library's hook after every save: wake in-process read-model runners.
        for listener in self.on_recorded:
            listener()

    def _take_snapshots(self, processing: ProcessingEvent[UUID]) -> None:
        """The library's, each snapshot taken from the saved aggregate where it stands at
        the snapshot's version (`snapshotting`), and those put in one insert."""
        if self.snapshots is None or not self.snapshotting_intervals:
            return
        taken, from_store = snapshots_due(processing.events, processing.aggregates,
                                          self.snapshotting_intervals, self.stored_snapshot)
        if taken:
            self.snapshots.recorder.insert_events(taken)
        for aggregate_id, version in from_store:
            self.take_snapshot(aggregate_id, version, projector_func=replay)

    def save_in_order(self, aggregates: list[Any],
                      order: Callable[[Any], Any]) -> list[Recording[UUID]]:
        """Save like `save()`, the events put in log order by `order` (group commit)."""
        processing = _in_order(aggregates, order)
        recordings = self._record(processing)
        self._take_snapshots(processing)
        self._notify(recordings)
        return recordings

    def save_checked(self, aggregates: list[Any], order: Callable[[Any], Any], position: int,
                     looked_up: list[UUID], limit: int,
                     ) -> tuple[list[Notification], list[Recording[UUID]] | None]:
        """Like `save_in_order`, unless another writer stored an event of an aggregate in
        `looked_up` after `position` (then nothing is saved: the recordings are None), in
        one round trip (`pg_batch_write`); with the events others stored after `position`
        (at most `limit`)."""
        assert self.batch_writer is not None, "PostgreSQL only"
        staged = self.stage(aggregates, order)
        written = self.batch_writer.write(staged.stored, position, looked_up, limit)
        if written.positions is None:
            return written.foreign, None
        return written.foreign, self.recorded(staged, written.positions)

    def stage(self, aggregates: list[Any], order: Callable[[Any], Any]) -> Staged:
        """The aggregates' new events taken from them, in log order by `order`, and as
        they will be stored (`save_checked`, the pipelined writer)."""
        processing = _in_order(aggregates, order)
        return Staged(processing, [self.mapper.to_stored_event(event)
                                   for event in processing.events])

    def recorded(self, staged: Staged, positions: list[int]) -> list[Recording[UUID]]:
        """After `staged` was stored at `positions`: its recordings, the snapshots it made
        due taken, and in-process listeners told."""
        recordings = [Recording(event, Notification(
            id=at, originator_id=row.originator_id, originator_version=row.originator_version,
            topic=row.topic, state=row.state))
            for event, row, at in zip(staged.processing.events, staged.stored, positions,
                                      strict=True)]
        self._take_snapshots(staged.processing)
        self._notify(recordings)
        return recordings

    def context_of(self, pending: Pending) -> MovementContext:
        """A queued command's context, as it is decided (group commit)."""
        return _context(pending.command, pending.meta, pending.document_id)

    def answer_batch(self, live: list[Pending], positions: dict[UUID, int]) -> None:
        """Answer a saved batch's commands: each decided one its result at its position
        (by document id), each refused one its error (or, with a key recorded meanwhile,
        as the recorded command was answered)."""
        for pending in live:
            if pending.body is not None:
                pending.answer(CommandResult(
                    pending.document_id, positions[pending.document_id],
                    pending.body.get("lines", []), data=pending.body))
            elif pending.key is None or not self._answered_by_replay(pending):
                # (A retry refused by the state its own original left answers as that.)
                pending.answer(error=pending.error)

    def _save_position(self, *aggregates: Any) -> int:
        if not aggregates:
            # A command that changed nothing (a reservation retry that found no stock).
            return self.head_position()
        recordings = self.save(*aggregates)
        return max(recording.notification.id for recording in recordings)

    def snapshot_bins(self, versions: dict[UUID, int],
                      taken: Mapping[UUID, StoredEvent] | None = None) -> int:
        """Snapshot each bin at its latest multiple of the interval (after an import, which
        inserts stored events directly); returns how many were taken. A bin's snapshot in
        `taken` at that version (`import_replay`) is stored as it is; any other bin is
        replayed from the store."""
        ready: list[StoredEvent] = []
        taken = taken or {}
        for bin_id_, version in versions.items():
            at = version - version % SNAPSHOT_INTERVAL
            if not at:
                continue
            found = taken.get(bin_id_)
            if found is not None and found.originator_version == at:
                ready.append(found)
            else:
                self._snapshot_at(bin_id_, at)
        if ready:
            assert self.snapshots is not None, "the ledger snapshots its bins"
            self.snapshots.recorder.insert_events(ready)
        return sum(1 for version in versions.values() if version >= SNAPSHOT_INTERVAL)

    def stored_snapshot(self, aggregate: Any) -> StoredEvent:
        """An aggregate's snapshot, as the snapshot store holds it."""
        snapshot_class: Any = getattr(type(aggregate), "Snapshot", type(self).snapshot_class)
        return self.mapper.to_stored_event(snapshot_class.take(aggregate))

    def _snapshot_at(self, aggregate_id: UUID, version: int) -> None:
        """The library's `take_snapshot`, its events read by `store.stored_events`."""
        assert self.snapshots is not None, "the ledger snapshots its bins"
        events = (self.mapper.to_domain_event(stored)
                  for stored in stored_events(self.recorder, aggregate_id, version))
        self.snapshots.recorder.insert_events([self.stored_snapshot(replay(None, events))])

    def stored_event(self, position: int) -> Notification | None:
        """The stored event at a log position, exactly as the store holds it."""
        found = self.recorder.select_notifications(start=position, limit=1, stop=position)
        return found[0] if found else None

    def head_position(self) -> int:
        """The position of the newest event in the store (0 when empty)."""
        return self.recorder.max_notification_id() or 0


def _stock_document(document: StockDocument) -> tuple[str, Any, Decide[Any]]:
    """A stock document's kind, its checked command and its decider."""
    if isinstance(document, Receipt):
        return "receipt", checked_receipt(document), _lines(documents.decide_receipt)
    if isinstance(document, Dispatch):
        return "dispatch", checked_dispatch(document), _lines(documents.decide_dispatch)
    if isinstance(document, Transfer):
        return "transfer", checked_transfer(document), _lines(documents.decide_transfer)
    return "count", checked_count(document), _lines(documents.decide_count)


def _lines(decide: Callable[[CommandT, Workspace, MovementContext], list[dict[str, Any]]]
           ) -> Decide[CommandT]:
    """A document decider's lines as a command's result body."""
    return lambda command, workspace, context: {"lines": decide(command, workspace, context)}


def _in_order(aggregates: list[Any], order: Callable[[Any], Any]) -> ProcessingEvent[UUID]:
    """The aggregates' new events, put in log order by `order`: what `collect_events` does
    for aggregates, without its two runtime-protocol isinstance checks per aggregate (each
    walks the protocol's members)."""
    processing = ProcessingEvent[UUID]()
    for aggregate in aggregates:
        processing.events.extend(aggregate.collect_events())
        processing.aggregates[aggregate.id] = aggregate
    processing.events.sort(key=order)
    return processing


def _context(command: Any, meta: CommandMeta, document_id: UUID) -> MovementContext:
    now = datetime.now(UTC)
    return MovementContext(
        document_id=document_id,
        actor=meta.actor,
        effective_at=checked_effective_at(command.effective_at, now),
        recorded_at=now,
        reference=command.reference,
        note=command.note,
        reason=command.reason,
        idempotency_key=meta.idempotency_key,
        correlation_id=meta.correlation_id,
        effective_at_given=command.effective_at is not None,
        order_id=getattr(command, "order_id", None),
    )


def _fingerprint(kind: str, command: Any, meta: CommandMeta) -> str:
    """A digest of a checked command: equal commands, equal fingerprints.

    Only a command with an idempotency key is ever compared (a replay), so one without
    gets "" and skips the digest (a fifth of a one-line command's time otherwise)."""
    if meta.idempotency_key is None:
        return ""
    canonical = json.dumps([kind, asdict(command)], sort_keys=True, default=str,
                           separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def open_ledger(settings: Settings) -> Ledger:
    """The ledger as the service runs it: the store, limits and group commit of `settings`."""
    return Ledger(event_store_environment(settings),
                  attempts_max=settings.command_attempts_max,
                  over_receipt_tolerance=settings.over_receipt_tolerance,
                  duplicate_order_window=timedelta(
                      seconds=settings.duplicate_order_window_seconds),
                  group_commit=group_commit_settings(settings))
