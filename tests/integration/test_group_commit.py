"""Group commit: commands batched by one writer are each answered as if they ran alone.

The batch tests are deterministic: they either hand `Ledger.execute_batch` a list of
`Pending` commands built the way `Ledger._execute` builds them, or hold the writer thread
on a gate while callers queue their commands through the public methods, so that all of
them land in the next batch in a known order. The thread tests race real threads (one
`Ledger`, then two `Ledger`s — two "processes", each with its own writer — on one store),
on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import itertools
import random
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID

import pytest
from concurrency_support import retried
from eventsourcing.application import AggregateNotFoundError
from eventsourcing.persistence import IntegrityError, OperationalError

from ledger import documents, group_commit
from ledger.application import CommandResult, Ledger, _fingerprint, _lines
from ledger.commands import (
    Dispatch,
    DispatchLine,
    Receipt,
    ReceiptLine,
    Transfer,
    checked_dispatch,
    checked_receipt,
    checked_transfer,
)
from ledger.config import store_environment
from ledger.domain.command_record import CommandRecord
from ledger.domain.context import CommandMeta
from ledger.domain.identity import bin_id, command_record_id
from ledger.domain.item import ItemDetails
from ledger.domain.stock_bin import StockBin
from ledger.errors import (
    IdempotencyConflict,
    InsufficientStock,
    InvalidInput,
    LedgerClosed,
    PeriodClosed,
)
from ledger.group_commit import BATCH_ATTEMPTS_MAX, GroupCommitSettings, Pending
from ledger.numbers import ZERO
from ledger.period_close import ClosePeriod

D = Decimal
WAIT_SECONDS_MAX = 60
OPERATOR = CommandMeta(actor="operator")
FIFO = "FIFO-A"
AVG = "AVG-B"
WH = "WH"
SHOP = "SHOP"
Outcome = CommandResult | Exception


class BatchLedger(Ledger):
    """A group-committing ledger that remembers each batch its writer decided and counts
    the saves that lost to another writer (a duplicate version, or on PostgreSQL the
    save's own check finding another writer's event).

    Its writer decides in step unless told otherwise (the batch tests below are about
    `execute_batch`); the pipelined writer (ledger.pipelined_commit) has tests of its own
    at the end, and the races run both ways."""

    name = "ledger"  # the same tables as `Ledger` (a subclass would be named after itself)

    def __init__(self, env: dict[str, str],
                 settings: GroupCommitSettings | None = None) -> None:
        self.batches: list[list[Pending]] = []
        self.conflicts = 0
        self.lock = threading.Lock()
        super().__init__(env, group_commit=settings or GroupCommitSettings(
            window_seconds=0, pipelined=False))
        writer = self.batch_writer
        if writer is not None:  # a pipelined batch's answer is read by `receive`
            receive = writer.receive

            def counted(flight: Any) -> Any:
                try:
                    written = receive(flight)
                except IntegrityError:
                    self.conflicts += 1
                    raise
                if written.positions is None:
                    with self.lock:
                        self.conflicts += 1
                return written

            writer.receive = counted  # type: ignore[method-assign]

    def execute_batch(self, batch: list[Pending], checked: int | None = None) -> None:
        with self.lock:
            self.batches.append(list(batch))
        super().execute_batch(batch, checked)

    def execute_pipelined(self, batch: list[Pending], pipeline: Any) -> None:
        with self.lock:
            self.batches.append(list(batch))
        super().execute_pipelined(batch, pipeline)

    def save(self, *objs: Any, **kwargs: Any) -> Any:
        try:
            return super().save(*objs, **kwargs)
        except IntegrityError:
            with self.lock:
                self.conflicts += 1
            raise

    def save_in_order(self, aggregates: list[Any], order: Any) -> Any:
        # Batches are saved with their events in command order.
        try:
            return super().save_in_order(aggregates, order)
        except IntegrityError:
            with self.lock:
                self.conflicts += 1
            raise

    def save_checked(self, *arguments: Any) -> Any:
        # PostgreSQL: the save that checks for others' events finds one of the batch's.
        foreign, recordings = super().save_checked(*arguments)
        if recordings is None:
            with self.lock:
                self.conflicts += 1
        return foreign, recordings


def register(app: Ledger) -> None:
    app.register_item(FIFO, ItemDetails("Bolt", "ea", "fifo"), OPERATOR)
    app.register_item(AVG, ItemDetails("Oil", "l", "moving_average"), OPERATOR)
    app.register_location(WH, "Warehouse", OPERATOR)
    app.register_location(SHOP, "Shop", OPERATOR)


@pytest.fixture
def ledger(database_url: str) -> Iterator[BatchLedger]:
    with BatchLedger(store_environment(database_url)) as app:
        register(app)
        yield app


# Commands, as the public methods check them, and as the writer queues them.


def receipt(sku: str, quantity: str, cost: str = "2", location: str = WH) -> Receipt:
    return Receipt(location=location, lines=(ReceiptLine(sku, D(quantity), D(cost)),))


def dispatch(*lines: tuple[str, str], location: str = WH) -> Dispatch:
    return Dispatch(location=location,
                    lines=tuple(DispatchLine(sku, D(quantity)) for sku, quantity in lines))


def transfer(sku: str, quantity: str, source: str = WH, destination: str = SHOP) -> Transfer:
    return Transfer(from_location=source, to_location=destination,
                    lines=(DispatchLine(sku, D(quantity)),))


CHECKS: dict[str, tuple[Callable[[Any], Any], Callable[..., Any]]] = {
    "receipt": (checked_receipt, documents.decide_receipt),
    "dispatch": (checked_dispatch, documents.decide_dispatch),
    "transfer": (checked_transfer, documents.decide_transfer),
}


def pending(kind: str, command: Any, meta: CommandMeta = OPERATOR,
            decide: Callable[..., dict[str, Any]] | None = None) -> Pending:
    """A queued command exactly as `Ledger._execute` builds it (optionally another decide)."""
    check, decider = CHECKS[kind]
    checked = check(command)
    return Pending(kind, checked, meta, decide or _lines(decider),
                   _fingerprint(kind, checked, meta))


def outcome(queued: Pending) -> Outcome:
    assert queued.done.is_set(), "every command of a batch is answered"
    if queued.error is not None:
        assert queued.result is None
        assert isinstance(queued.error, Exception)
        return queued.error
    assert queued.result is not None
    return queued.result


def run_batch(app: BatchLedger, batch: list[Pending]) -> list[Outcome]:
    """One batch, decided and saved by `execute_batch` in this thread (the writer is idle)."""
    app.execute_batch(batch)
    return [outcome(queued) for queued in batch]


def result_of(found: Outcome) -> CommandResult:
    assert isinstance(found, CommandResult), found
    return found


def wait_until(condition: Callable[[], bool]) -> None:
    deadline = time.monotonic() + WAIT_SECONDS_MAX
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.001)


def hold_writer(app: BatchLedger) -> threading.Event:
    """Hold the writer thread in a batch of its own until the returned event is set."""
    committer = app.group_committer
    assert committer is not None
    entered, release = threading.Event(), threading.Event()

    def hold(_command: Any, _workspace: Any, _context: Any) -> dict[str, Any]:
        entered.set()
        assert release.wait(WAIT_SECONDS_MAX)
        return {"lines": []}

    committer.queue.put(Pending("gate", Receipt(location=WH, lines=()), CommandMeta("gate"),
                                hold, "gate"))
    assert entered.wait(WAIT_SECONDS_MAX)
    return release


def queue_calls(app: BatchLedger, calls: list[Callable[[], CommandResult]],
                outcomes: dict[int, Outcome]) -> list[threading.Thread]:
    """Start each call on its own thread, the next once the previous one is queued (or was
    answered in its caller's thread: a replay, a closed period)."""
    committer = app.group_committer
    assert committer is not None

    def call(number: int) -> None:
        try:
            outcomes[number] = calls[number]()
        except Exception as error:
            outcomes[number] = error

    threads = []
    queued = committer.queue.qsize()
    for number in range(len(calls)):
        thread = threading.Thread(target=call, args=(number,), daemon=True)
        thread.start()
        threads.append(thread)
        wait_until(lambda number=number, queued=queued: number in outcomes
                   or committer.queue.qsize() == queued + 1)
        queued = committer.queue.qsize()
    return threads


def in_one_batch(app: BatchLedger, calls: list[Callable[[], CommandResult]]) -> list[Outcome]:
    """Run each call on its own thread while the writer is held, in this order; then let the
    writer go, so that every call it queued is in its next batch, in this order."""
    release = hold_writer(app)
    outcomes: dict[int, Outcome] = {}
    threads = queue_calls(app, calls, outcomes)
    release.set()
    for thread in threads:
        thread.join(WAIT_SECONDS_MAX)
        assert not thread.is_alive()
    return [outcomes[number] for number in range(len(calls))]


# Reading the log.


def new_events(app: Ledger, after: int) -> list[tuple[int, Any]]:
    """(position, domain event) of everything appended after `after`."""
    return [(notification.id, app.mapper.to_domain_event(notification))
            for notification in app.recorder.select_notifications(start=after + 1,
                                                                  limit=100_000)]


def document_of(event: Any) -> UUID | None:
    if isinstance(event, CommandRecord.Recorded):
        return UUID(str(event.result["document_id"]))
    return getattr(event, "document_id", None)


def positions_by_document(app: Ledger, after: int) -> dict[UUID, list[int]]:
    found: dict[UUID, list[int]] = {}
    for position, event in new_events(app, after):
        document = document_of(event)
        if document is not None:
            found.setdefault(document, []).append(position)
    return found


def on_hand(app: Ledger, sku: str = FIFO, location: str = WH) -> Decimal:
    stock_bin = app.stock_bin(sku, location)
    return ZERO if stock_bin is None else stock_bin.quantity_on_hand


def recorded(app: Ledger, actor: str, key: str) -> CommandRecord | None:
    try:
        record = app.repository.get(command_record_id(actor, key))
    except AggregateNotFoundError:
        return None
    assert isinstance(record, CommandRecord)
    return record


def raising_after(decide: Callable[..., Any]) -> Callable[..., dict[str, Any]]:
    """A decider that does all its work on the workspace, then blows up."""

    def decide_then_raise(command: Any, workspace: Any, context: Any) -> dict[str, Any]:
        decide(command, workspace, context)
        raise RuntimeError("the decider failed after changing its bins")

    return decide_then_raise


# 1a. A poisoned command fails alone; nothing of it is applied.


def test_a_dispatch_with_a_short_second_line_fails_alone_and_its_first_line_is_not_applied(
        ledger: BatchLedger) -> None:
    ledger.receive(receipt(FIFO, "10"), OPERATOR)
    ledger.receive(receipt(AVG, "1"), OPERATOR)
    head = ledger.head_position()
    poisoned_key = CommandMeta("picker", idempotency_key="poisoned")
    batch = [
        pending("dispatch", dispatch((FIFO, "3"))),
        pending("dispatch", dispatch((FIFO, "4"), (AVG, "5")), poisoned_key),
        # Fits only if the poisoned dispatch's first line (4 of FIFO) was not applied.
        pending("dispatch", dispatch((FIFO, "7"))),
        pending("receipt", receipt(AVG, "2")),
    ]

    first, poisoned, rest, received = run_batch(ledger, batch)

    assert isinstance(poisoned, InsufficientStock)
    assert (poisoned.sku, poisoned.location) == (AVG, WH)
    assert (poisoned.requested, poisoned.available) == (D("5"), D("1"))
    assert result_of(first).lines[0]["quantity_on_hand_after"] == D("7")
    assert result_of(rest).lines[0]["quantity_on_hand_after"] == ZERO
    assert result_of(received).lines[0]["quantity_on_hand_after"] == D("3")
    assert (on_hand(ledger, FIFO), on_hand(ledger, AVG)) == (ZERO, D("3"))
    logged = positions_by_document(ledger, head)
    assert set(logged) == {batch[0].document_id, batch[2].document_id, batch[3].document_id}
    assert ledger.head_position() - head == len(new_events(ledger, head)) == 3
    # A refused command does not use up its key.
    assert recorded(ledger, "picker", "poisoned") is None


def test_a_decider_that_raises_fails_alone_with_its_own_error(ledger: BatchLedger) -> None:
    ledger.receive(receipt(FIFO, "10"), OPERATOR)
    head = ledger.head_position()
    batch = [
        pending("receipt", receipt(FIFO, "5")),
        pending("dispatch", dispatch((FIFO, "5")),
                decide=raising_after(_lines(documents.decide_dispatch))),
        # Fits only if the failed dispatch took nothing.
        pending("dispatch", dispatch((FIFO, "15"))),
    ]

    received, failed, emptied = run_batch(ledger, batch)

    assert isinstance(failed, RuntimeError)
    assert "decider failed" in str(failed)
    assert result_of(received).lines[0]["quantity_on_hand_after"] == D("15")
    assert result_of(emptied).lines[0]["quantity_on_hand_after"] == ZERO
    assert set(positions_by_document(ledger, head)) == {batch[0].document_id,
                                                        batch[2].document_id}
    assert on_hand(ledger) == ZERO
    # The writer thread is still serving callers.
    assert ledger.receive(receipt(FIFO, "1"), OPERATOR).lines[0]["quantity_on_hand_after"] == 1


def test_callers_in_one_batch_each_get_their_own_error_or_result(ledger: BatchLedger) -> None:
    ledger.receive(receipt(FIFO, "10"), OPERATOR)
    ledger.receive(receipt(AVG, "1"), OPERATOR)
    head = ledger.head_position()

    outcomes = in_one_batch(ledger, [
        lambda: ledger.dispatch(dispatch((FIFO, "6")), OPERATOR),
        lambda: ledger.dispatch(dispatch((FIFO, "4"), (AVG, "2")), OPERATOR),
        lambda: ledger.dispatch(dispatch((FIFO, "4")), OPERATOR),
        lambda: ledger.transfer(transfer(AVG, "1"), OPERATOR),
    ])

    assert [len(batch) for batch in ledger.batches[-2:]] == [1, 4]  # the gate, then all four
    first, poisoned, rest, moved = outcomes
    assert isinstance(poisoned, InsufficientStock)
    assert (poisoned.sku, poisoned.requested, poisoned.available) == (AVG, D("2"), D("1"))
    assert result_of(first).lines[0]["quantity_on_hand_after"] == D("4")
    assert result_of(rest).lines[0]["quantity_on_hand_after"] == ZERO
    assert result_of(moved).lines[0]["to_quantity_on_hand_after"] == D("1")
    assert (on_hand(ledger, FIFO), on_hand(ledger, AVG), on_hand(ledger, AVG, SHOP)) == (
        ZERO, ZERO, D("1"))
    assert len(new_events(ledger, head)) == 1 + 1 + 3  # two dispatches, a transfer (+ open)


def test_commands_queued_within_the_window_share_one_batch(database_url: str) -> None:
    """The writer waits the window once the first command arrived: a second command queued
    50 ms later, inside a 2 s window, is decided and saved in the same batch."""
    with BatchLedger(store_environment(database_url),
                     GroupCommitSettings(window_seconds=2.0)) as app:
        register(app)
        batches = len(app.batches)
        answered: list[str] = []
        first = app.enqueue(receipt(FIFO, "3"), OPERATOR, lambda: answered.append("first"))
        time.sleep(0.05)
        second = app.enqueue(dispatch((FIFO, "2")), OPERATOR,
                             lambda: answered.append("second"))
        assert first is not None and second is not None
        wait_until(lambda: len(answered) == 2)

        assert [len(batch) for batch in app.batches[batches:]] == [2]
        assert second.outcome().lines[0]["quantity_on_hand_after"] == D("1")


def test_once_as_many_are_queued_as_the_last_batch_took_the_window_is_not_waited_out(
        database_url: str) -> None:
    """Callers that each wait for their answer before they send again are all back well
    before the window ends: the writer takes the batch once it is as large as the last one
    (two at least), not when the window (an hour here) has passed."""
    with BatchLedger(store_environment(database_url)) as app:
        register(app)  # a lone command waits the whole window for company: not here
    with BatchLedger(store_environment(database_url),
                     GroupCommitSettings(window_seconds=3600.0)) as app:
        answered: list[str] = []
        for round_number, quantity in enumerate(("3", "4"), start=1):
            batches = len(app.batches)
            for sku in (FIFO, AVG):
                assert app.enqueue(receipt(sku, quantity), OPERATOR,
                                   lambda sku=sku: answered.append(sku)) is not None
            wait_until(lambda count=2 * round_number: len(answered) == count)
            assert [len(batch) for batch in app.batches[batches:]] == [2]
        assert (on_hand(app), on_hand(app, AVG)) == (D("7"), D("7"))


def test_a_burst_larger_than_batch_max_is_decided_in_order_in_several_batches(
        database_url: str) -> None:
    settings = GroupCommitSettings(batch_max=2, window_seconds=0, pipelined=False)
    with BatchLedger(store_environment(database_url), settings) as app:
        register(app)
        app.receive(receipt(FIFO, "10"), OPERATOR)
        batches = len(app.batches)

        outcomes = in_one_batch(app, [lambda: app.dispatch(dispatch((FIFO, "3")), OPERATOR)
                                      for _ in range(5)])

        assert [len(batch) for batch in app.batches[batches:]] == [1, 2, 2, 1]  # gate first
        assert [result_of(found).lines[0]["quantity_on_hand_after"]
                for found in outcomes[:3]] == [D("7"), D("4"), D("1")]
        assert all(isinstance(found, InsufficientStock) and found.available == D("1")
                   for found in outcomes[3:])
        assert on_hand(app) == D("1")


# 1b. Commands on one bin in one batch see each other.


def test_a_dispatch_sees_the_receipt_before_it_in_the_same_batch(ledger: BatchLedger) -> None:
    batch = [
        pending("receipt", receipt(FIFO, "4", "1.5", location=SHOP)),  # opens the bin
        pending("dispatch", dispatch((FIFO, "4"), location=SHOP)),
        pending("receipt", receipt(AVG, "2", "3")),
        pending("transfer", transfer(AVG, "2")),
        pending("dispatch", dispatch((AVG, "2"), location=SHOP)),
    ]

    outcomes = [result_of(found) for found in run_batch(ledger, batch)]

    assert [result.lines[0]["quantity_on_hand_after"] for result in outcomes] == [
        D("4"), ZERO, D("2"), ZERO, ZERO]
    assert outcomes[1].lines[0]["value"] == D("6.00")
    assert outcomes[4].lines[0]["value"] == D("6.00")
    for sku, location in ((FIFO, SHOP), (AVG, WH), (AVG, SHOP)):
        stock_bin = ledger.stock_bin(sku, location)
        assert stock_bin is not None
        assert (stock_bin.quantity_on_hand, stock_bin.value) == (ZERO, ZERO)
        assert stock_bin.version == 3  # opened, in, out


def test_two_dispatches_in_one_batch_exceeding_the_stock_together(ledger: BatchLedger) -> None:
    ledger.receive(receipt(FIFO, "10"), OPERATOR)
    head = ledger.head_position()
    batch = [pending("dispatch", dispatch((FIFO, "6"))),
             pending("dispatch", dispatch((FIFO, "6")))]

    first, second = run_batch(ledger, batch)

    assert result_of(first).lines[0]["quantity_on_hand_after"] == D("4")
    assert isinstance(second, InsufficientStock)
    assert (second.requested, second.available) == (D("6"), D("4"))
    assert on_hand(ledger) == D("4")
    assert len(new_events(ledger, head)) == 1


# 1c. Each caller's position is its own.


@pytest.mark.parametrize("keyed", [False, True], ids=["no-key", "keyed"])
def test_each_callers_position_is_the_last_of_its_own_events(
        ledger: BatchLedger, keyed: bool) -> None:
    ledger.receive(receipt(FIFO, "10"), OPERATOR)
    head = ledger.head_position()
    commands = [("receipt", receipt(FIFO, "1")), ("receipt", receipt(AVG, "1")),
                ("transfer", transfer(FIFO, "2")), ("dispatch", dispatch((FIFO, "1"))),
                ("dispatch", dispatch((FIFO, "2"), (AVG, "1")))]
    batch = [pending(kind, command,
                     CommandMeta("clerk", idempotency_key=f"k{number}") if keyed else OPERATOR)
             for number, (kind, command) in enumerate(commands)]

    results = [result_of(found) for found in run_batch(ledger, batch)]

    logged = positions_by_document(ledger, head)
    assert set(logged) == {queued.document_id for queued in batch}
    for queued, result in zip(batch, results, strict=True):
        assert result.document_id == queued.document_id
        assert result.position == max(logged[queued.document_id])
        stored = ledger.stored_event(result.position)
        assert stored is not None
        assert document_of(ledger.mapper.to_domain_event(stored)) == queued.document_id
        if keyed:
            record = recorded(ledger, "clerk", queued.meta.idempotency_key or "")
            assert record is not None
            assert record.result["document_id"] == queued.document_id


def test_positions_follow_batch_order_across_bins(ledger: BatchLedger) -> None:
    """Without batching, each command's events come after the previous command's."""
    head = ledger.head_position()
    batch = [pending("receipt", receipt(FIFO, "1")),
             pending("receipt", receipt(AVG, "1")),
             pending("receipt", receipt(FIFO, "2"))]

    results = [result_of(found) for found in run_batch(ledger, batch)]

    positions = [result.position for result in results]
    assert positions == sorted(positions) and len(set(positions)) == len(positions), positions
    logged = positions_by_document(ledger, head)
    for earlier, later in itertools.pairwise(batch):
        assert max(logged[earlier.document_id]) < min(logged[later.document_id])


# 1d. Idempotency keys within one burst.


@pytest.mark.parametrize("kind", ["receipt", "dispatch-all"])
def test_the_same_key_twice_in_one_burst_is_recorded_once(
        ledger: BatchLedger, kind: str) -> None:
    ledger.receive(receipt(FIFO, "5"), OPERATOR)
    head = ledger.head_position()
    meta = CommandMeta("scanner", idempotency_key="k-1")

    def call() -> CommandResult:
        if kind == "receipt":
            return ledger.receive(receipt(FIFO, "2.5"), meta)
        return ledger.dispatch(dispatch((FIFO, "5")), meta)

    outcomes = [result_of(found) for found in in_one_batch(ledger, [call, call])]

    first, second = outcomes
    assert (first.document_id, first.position, first.lines) == (
        second.document_id, second.position, second.lines)
    assert [result.replayed for result in outcomes] == [False, True]
    assert len(new_events(ledger, head)) == 2  # one movement, one command record
    assert on_hand(ledger) == (D("7.5") if kind == "receipt" else ZERO)
    record = recorded(ledger, "scanner", "k-1")
    assert record is not None and record.result["document_id"] == first.document_id


def test_the_same_key_with_another_body_in_one_burst_is_a_conflict(
        ledger: BatchLedger) -> None:
    head = ledger.head_position()
    meta = CommandMeta("scanner", idempotency_key="k-1")

    first, second = in_one_batch(ledger, [
        lambda: ledger.receive(receipt(FIFO, "1"), meta),
        lambda: ledger.receive(receipt(FIFO, "2"), meta),
    ])

    assert isinstance(second, IdempotencyConflict)
    assert not result_of(first).replayed
    assert on_hand(ledger) == D("1")
    assert len(new_events(ledger, head)) == 3  # opened, received, command record


def test_a_repeated_key_in_a_burst_does_not_disturb_the_others(ledger: BatchLedger) -> None:
    ledger.receive(receipt(FIFO, "10"), OPERATOR)
    head = ledger.head_position()
    meta = CommandMeta("picker", idempotency_key="pick-1")
    pick = dispatch((FIFO, "4"))

    outcomes = in_one_batch(ledger, [
        lambda: ledger.dispatch(pick, meta),
        lambda: ledger.dispatch(dispatch((FIFO, "3")), OPERATOR),
        lambda: ledger.dispatch(pick, meta),
        lambda: ledger.dispatch(dispatch((FIFO, "3")), OPERATOR),
        lambda: ledger.dispatch(pick, meta),
    ])

    results = [result_of(found) for found in outcomes]
    picks = [results[0], results[2], results[4]]
    assert [result.replayed for result in picks] == [False, True, True]
    assert len({(r.document_id, r.position) for r in picks}) == 1
    assert on_hand(ledger) == ZERO
    assert len(new_events(ledger, head)) == 3 + 1  # three dispatches, one record


# Closed periods are answered in the caller's thread: a close queued first still counts.


def test_a_backdated_receipt_behind_a_period_close_in_one_batch_is_refused(
        ledger: BatchLedger) -> None:
    today = datetime.now(UTC).date()
    backdated = datetime.combine(today - timedelta(days=3), datetime.min.time(), tzinfo=UTC)
    late = Receipt(location=WH, effective_at=backdated,
                   lines=(ReceiptLine(FIFO, D("1"), D("1")),))

    closed, late_outcome = in_one_batch(ledger, [
        lambda: ledger.close_period(ClosePeriod(until=today - timedelta(days=1)), OPERATOR),
        lambda: ledger.receive(late, OPERATOR),
    ])

    result_of(closed)
    assert isinstance(late_outcome, PeriodClosed), late_outcome
    assert ledger.stock_bin(FIFO, WH) is None


# Another writer: the batch is decided again from fresh state; the cache is emptied.


@pytest.fixture
def other(database_url: str, ledger: BatchLedger) -> Iterator[Ledger]:
    """Another process on the same store (no group commit)."""
    with Ledger(store_environment(database_url)) as app:
        yield app


def test_a_batch_that_loses_to_another_writer_is_decided_again_on_fresh_state(
        ledger: BatchLedger, other: Ledger) -> None:
    ledger.receive(receipt(FIFO, "10"), OPERATOR)
    ledger.dispatch(dispatch((FIFO, "1")), OPERATOR)  # the writer's cache holds the bin at 9
    head = ledger.head_position()
    taken: list[CommandResult] = []

    def dispatch_while_another_takes_it_all(command: Any, workspace: Any,
                                            context: Any) -> dict[str, Any]:
        if not taken:
            taken.append(other.dispatch(dispatch((FIFO, "9")), OPERATOR))
        return {"lines": documents.decide_dispatch(command, workspace, context)}

    batch = [pending("dispatch", dispatch((FIFO, "5")),
                     decide=dispatch_while_another_takes_it_all),
             pending("receipt", receipt(AVG, "1"))]

    refused, received = run_batch(ledger, batch)

    assert ledger.conflicts == 1
    assert isinstance(refused, InsufficientStock)
    assert (refused.requested, refused.available) == (D("5"), ZERO)
    assert result_of(received).lines[0]["quantity_on_hand_after"] == D("1")
    assert on_hand(ledger) == ZERO
    avg_bin = ledger.stock_bin(AVG, WH)
    assert avg_bin is not None and avg_bin.version == 2  # the receipt was saved once
    assert set(positions_by_document(ledger, head)) == {taken[0].document_id,
                                                        batch[1].document_id}


def test_a_batch_that_keeps_losing_falls_back_to_each_command_alone(
        ledger: BatchLedger, other: Ledger) -> None:
    ledger.receive(receipt(FIFO, "10"), OPERATOR)
    head = ledger.head_position()
    interruptions: list[CommandResult] = []

    def dispatch_then_another_receives(command: Any, workspace: Any,
                                       context: Any) -> dict[str, Any]:
        lines = documents.decide_dispatch(command, workspace, context)
        if len(interruptions) < BATCH_ATTEMPTS_MAX:
            interruptions.append(other.receive(receipt(FIFO, "1"), OPERATOR))
        return {"lines": lines}

    keyed = CommandMeta("picker", idempotency_key="pick-1")
    batch = [pending("dispatch", dispatch((FIFO, "5")), keyed,
                     decide=dispatch_then_another_receives),
             pending("receipt", receipt(AVG, "1"))]

    dispatched, received = (result_of(found) for found in run_batch(ledger, batch))

    assert ledger.conflicts == BATCH_ATTEMPTS_MAX
    assert dispatched.lines[0]["quantity_on_hand_after"] == D("10") + BATCH_ATTEMPTS_MAX - 5
    assert received.lines[0]["quantity_on_hand_after"] == D("1")
    assert on_hand(ledger) == D("10") + BATCH_ATTEMPTS_MAX - 5
    assert on_hand(ledger, AVG) == D("1")
    logged = positions_by_document(ledger, head)
    assert len(logged[batch[0].document_id]) == 2  # one movement, one command record
    assert len(logged[batch[1].document_id]) == 1  # received once
    avg_bin = ledger.stock_bin(AVG, WH)
    assert avg_bin is not None and avg_bin.version == 2  # opened, received
    assert dispatched.position == max(logged[batch[0].document_id])
    again = ledger.dispatch(dispatch((FIFO, "5")), keyed)
    assert again.replayed and again.document_id == dispatched.document_id


def test_the_writer_cache_is_emptied_when_another_process_wrote(
        ledger: BatchLedger, other: Ledger) -> None:
    ledger.receive(receipt(FIFO, "10"), OPERATOR)
    ledger.dispatch(dispatch((FIFO, "1")), OPERATOR)  # cached at 9
    other.receive(receipt(FIFO, "5"), OPERATOR)

    # A refusal never rests on the stale 9: all 14 can go.
    taken = ledger.dispatch(dispatch((FIFO, "14")), OPERATOR)

    assert taken.lines[0]["quantity_on_hand_after"] == ZERO
    other.receive(receipt(FIFO, "2"), OPERATOR)
    other.dispatch(dispatch((FIFO, "2")), OPERATOR)
    with pytest.raises(InsufficientStock) as refusal:
        ledger.dispatch(dispatch((FIFO, "1")), OPERATOR)
    assert refusal.value.available == ZERO
    assert ledger.conflicts == 0
    assert ledger.receive(receipt(FIFO, "3"), OPERATOR).lines[0]["quantity_on_hand_after"] == 3


def test_the_writer_cache_follows_what_another_process_wrote(
        ledger: BatchLedger, other: Ledger, monkeypatch: pytest.MonkeyPatch) -> None:
    ledger.receive(receipt(FIFO, "10"), OPERATOR)
    ledger.receive(receipt(AVG, "10"), OPERATOR)  # both bins cached
    other.receive(receipt(AVG, "5"), OPERATOR)
    other.register_location("WH-2", "Second warehouse", OPERATOR)  # absent, then created
    loaded: list[Any] = []
    load = ledger.repository.get
    monkeypatch.setattr(ledger.repository, "get",
                        lambda aggregate_id, **options: loaded.append(aggregate_id)
                        or load(aggregate_id, **options))

    taken = ledger.dispatch(Dispatch(location=WH, lines=(
        DispatchLine(FIFO, D("1")), DispatchLine(AVG, D("15")))), OPERATOR)

    # The bin the other process wrote was brought forward with its receipt (all 15 could
    # go) without being loaded again; nothing else was loaded either.
    assert [line["quantity_on_hand_after"] for line in taken.lines] == [D("9"), ZERO]
    assert loaded == []
    assert ledger.conflicts == 0
    followed = ledger.group_committer.cache.aggregates[bin_id(AVG, WH)]  # type: ignore[union-attr]
    fresh = other.stock_bin(AVG, WH)
    assert fresh is not None and vars(followed) == vars(fresh)
    moved = ledger.transfer(Transfer(from_location=WH, to_location="WH-2", lines=(
        DispatchLine(FIFO, D("2")),)), OPERATOR)
    assert moved.lines[0]["to_quantity_on_hand_after"] == D("2")


def test_another_writers_event_elsewhere_during_a_batch_is_followed_not_retried(
        ledger: BatchLedger, other: Ledger) -> None:
    """An event another process stores while a batch is decided, on an aggregate the batch
    never looked up, does not make it decide again; the writer's cache takes it in."""
    ledger.receive(receipt(FIFO, "10"), OPERATOR)
    ledger.receive(receipt(AVG, "10"), OPERATOR)  # both bins cached
    decisions: list[Any] = []

    def dispatch_while_another_receives_elsewhere(command: Any, workspace: Any,
                                                  context: Any) -> dict[str, Any]:
        if not decisions:
            other.receive(receipt(AVG, "5"), OPERATOR)
        decisions.append(command)
        return {"lines": documents.decide_dispatch(command, workspace, context)}

    (taken,) = run_batch(ledger, [pending("dispatch", dispatch((FIFO, "4")),
                                          decide=dispatch_while_another_receives_elsewhere)])

    assert result_of(taken).lines[0]["quantity_on_hand_after"] == D("6")
    assert len(decisions) == 1 and ledger.conflicts == 0
    # The cache holds the other process's receipt: all 15 can go, without a conflict.
    gone = ledger.dispatch(dispatch((AVG, "15")), OPERATOR)
    assert gone.lines[0]["quantity_on_hand_after"] == ZERO
    assert ledger.conflicts == 0


@pytest.mark.parametrize("batch_changes", [False, True], ids=["refused", "written"])
def test_more_events_from_another_writer_than_the_cache_follows_empty_it(
        ledger: BatchLedger, other: Ledger, monkeypatch: pytest.MonkeyPatch,
        batch_changes: bool) -> None:
    """Past `FOREIGN_MAX` of others' events the cache starts afresh: whether the batch that
    finds them was refused on the stale state (it is decided again on fresh state) or was
    written (it touched none of them; the next command loads what they changed)."""
    monkeypatch.setattr(group_commit, "FOREIGN_MAX", 3)
    ledger.receive(receipt(FIFO, "10"), OPERATOR)
    ledger.receive(receipt(AVG, "10"), OPERATOR)  # both bins cached
    for _ in range(5):
        other.receive(receipt(FIFO, "1"), OPERATOR)

    if batch_changes:
        assert ledger.receive(receipt(AVG, "1"), OPERATOR).lines[0][
            "quantity_on_hand_after"] == D("11")
    taken = ledger.dispatch(dispatch((FIFO, "15")), OPERATOR)  # 10 cached, 15 stored

    assert taken.lines[0]["quantity_on_hand_after"] == ZERO
    assert ledger.conflicts == 0
    left = ledger.dispatch(dispatch((AVG, "1")), OPERATOR).lines[0]["quantity_on_hand_after"]
    assert left == (D("10") if batch_changes else D("9"))


def test_on_postgresql_a_batch_reads_the_log_only_in_its_save(
        ledger: BatchLedger, monkeypatch: pytest.MonkeyPatch) -> None:
    """Once the writer's position is known, the check for others' events rides in the
    save's round trip on PostgreSQL (ledger.pg_batch_write): no separate read of the log
    per batch. On SQLite the writer reads the log before each batch."""
    ledger.receive(receipt(FIFO, "10"), OPERATOR)
    reads: list[str] = []
    for name in ("select_notifications", "max_notification_id"):
        method = getattr(ledger.recorder, name)
        monkeypatch.setattr(ledger.recorder, name, lambda *a, _m=method, _n=name, **k:
                            reads.append(_n) or _m(*a, **k))

    for _ in range(3):
        ledger.dispatch(dispatch((FIFO, "1")), OPERATOR)
        ledger.receive(receipt(AVG, "1"), OPERATOR)

    if ledger.batch_writer is None:
        assert reads.count("select_notifications") >= 6
    else:
        assert reads == []
    assert on_hand(ledger) == D("7") and on_hand(ledger, AVG) == D("3")


def test_a_read_of_the_log_that_fails_answers_its_batch_with_the_error_and_the_writer_goes_on(
        ledger: BatchLedger, monkeypatch: pytest.MonkeyPatch) -> None:
    """The writer reads the log for others' events: before it fills a batch (its cache
    check) or, on PostgreSQL, in the batch's save itself. When that read fails, the
    batch's callers get the error, nothing is saved, and the next batch runs."""
    ledger.receive(receipt(FIFO, "10"), OPERATOR)
    cache = ledger.group_committer.cache  # type: ignore[union-attr]
    at_save = cache.checked_at_save()
    assert at_save == (ledger.batch_writer is not None)
    target: Any = ledger.batch_writer if at_save else cache
    name = "write" if at_save else "check"
    read = getattr(target, name)
    failures = [OperationalError("the database went away")]

    def failing_once(*arguments: Any) -> Any:
        if failures:
            raise failures.pop()
        return read(*arguments)

    monkeypatch.setattr(target, name, failing_once)
    batches_before = len(ledger.batches)
    with pytest.raises(OperationalError, match="went away"):
        ledger.dispatch(dispatch((FIFO, "4")), OPERATOR)
    assert not failures, "the read was made, and failed"
    # Before the batch (the check), nothing was decided; in the save, nothing was saved.
    assert len(ledger.batches) == batches_before + (1 if at_save else 0)
    assert on_hand(ledger) == D("10")
    taken = ledger.dispatch(dispatch((FIFO, "4")), OPERATOR)
    assert taken.lines[0]["quantity_on_hand_after"] == D("6")


# Closing: every caller is answered.


def test_commands_queued_before_the_ledger_closes_are_all_answered(database_url: str) -> None:
    app = BatchLedger(store_environment(database_url))
    register(app)
    committer = app.group_committer
    assert committer is not None
    release = hold_writer(app)
    outcomes: dict[int, Outcome] = {}
    threads = queue_calls(app, [
        lambda: app.receive(receipt(FIFO, "3"), OPERATOR),
        lambda: app.dispatch(dispatch((FIFO, "2")), OPERATOR),
        lambda: app.dispatch(dispatch((FIFO, "2")), OPERATOR),
    ], outcomes)
    closing = threading.Thread(target=app.close)
    closing.start()
    wait_until(lambda: committer.queue.qsize() == 4)  # three commands, then the stop

    release.set()
    closing.join(WAIT_SECONDS_MAX)
    for thread in threads:
        thread.join(1)
        assert not thread.is_alive(), "a caller was never answered"

    assert result_of(outcomes[0]).lines[0]["quantity_on_hand_after"] == D("3")
    assert result_of(outcomes[1]).lines[0]["quantity_on_hand_after"] == D("1")
    assert isinstance(outcomes[2], InsufficientStock)
    with Ledger(store_environment(database_url)) as reader:
        assert on_hand(reader) == D("1")


def test_a_command_sent_while_the_ledger_is_closing_is_answered(database_url: str) -> None:
    """The stop is queued while the writer is busy; a caller queues behind it (the ledger
    still has its writer until `close` returns). It must get an answer, whatever it is."""
    app = BatchLedger(store_environment(database_url))
    register(app)
    committer = app.group_committer
    assert committer is not None
    release = hold_writer(app)
    closing = threading.Thread(target=app.close)
    closing.start()
    wait_until(lambda: committer.queue.qsize() == 1)  # the stop
    outcomes: dict[int, Outcome] = {}
    [late] = queue_calls(app, [lambda: app.receive(receipt(FIFO, "1"), OPERATOR)], outcomes)

    release.set()
    closing.join(WAIT_SECONDS_MAX)
    late.join(1)

    assert not late.is_alive(), "the caller is still waiting for an answer that never comes"


# Queued without waiting: how the API's async endpoints record stock documents.


def test_enqueued_documents_are_answered_in_order_through_their_callbacks(
        ledger: BatchLedger) -> None:
    release = hold_writer(ledger)
    answered: list[str] = []
    first = ledger.enqueue(receipt(FIFO, "3"), OPERATOR, lambda: answered.append("receipt"))
    second = ledger.enqueue(dispatch((FIFO, "2")), OPERATOR, lambda: answered.append("out"))
    third = ledger.enqueue(dispatch((FIFO, "2")), OPERATOR, lambda: answered.append("short"))
    assert first is not None and second is not None and third is not None
    assert answered == []  # queued behind the held writer; nobody waited in a thread

    release.set()
    wait_until(lambda: len(answered) == 3)

    assert answered == ["receipt", "out", "short"]
    assert first.outcome().lines[0]["quantity_on_hand_after"] == D("3")
    assert second.outcome().lines[0]["quantity_on_hand_after"] == D("1")
    with pytest.raises(InsufficientStock):
        third.outcome()
    assert on_hand(ledger) == D("1")


@pytest.mark.parametrize("needs", ["an idempotency key", "an effective time"])
def test_a_document_that_needs_a_read_first_is_not_enqueued(ledger: BatchLedger,
                                                             needs: str) -> None:
    committer = ledger.group_committer
    assert committer is not None
    document, meta = receipt(FIFO, "1"), OPERATOR
    if needs == "an idempotency key":
        meta = CommandMeta(actor="operator", idempotency_key="k-1")
    else:
        document = Receipt(location=WH, lines=document.lines,
                           effective_at=datetime.now(UTC) - timedelta(hours=1))

    assert ledger.enqueue(document, meta, lambda: None) is None
    assert committer.queue.qsize() == 0
    assert ledger.record(document, meta).lines[0]["quantity_on_hand_after"] == D("1")


def test_an_invalid_document_is_refused_before_it_is_queued(ledger: BatchLedger) -> None:
    committer = ledger.group_committer
    assert committer is not None
    with pytest.raises(InvalidInput):
        ledger.enqueue(receipt(FIFO, "-1"), OPERATOR, lambda: None)
    assert committer.queue.qsize() == 0


def test_without_group_commit_nothing_is_enqueued(database_url: str) -> None:
    with Ledger(store_environment(database_url)) as app:
        register(app)
        assert app.enqueue(receipt(FIFO, "1"), OPERATOR, lambda: None) is None


# 2. Real threads.

THREADS = 16
STEPS = 15


def race(apps: list[Ledger], bins: list[str], twins: bool) -> dict[str, list[Any]]:
    """THREADS threads, spread over `apps`, each receiving into and dispatching from `bins`
    (SKUs at WH), some commands keyed. With `twins`, threads 2k and 2k+1 (on different apps
    when there are two) send the very same keyed commands, as a client and its retry would.
    What each thread saw."""
    barrier = threading.Barrier(THREADS, timeout=WAIT_SECONDS_MAX)
    seen: dict[str, list[Any]] = {"accepted": [], "replayed": [], "refused": [], "errors": []}
    lock = threading.Lock()

    def work(number: int) -> None:
        app = apps[number % len(apps)]
        client = number // 2 if twins else number
        rng = random.Random(client)
        barrier.wait()
        for step in range(STEPS):
            sku = rng.choice(bins)
            key = f"{step}" if twins or step % 3 == 0 else None
            meta = CommandMeta(f"client-{client}", idempotency_key=key)
            if rng.random() < 0.35:
                kind = "receipt"
                quantity = D(rng.randint(1, 3000)) / 1000
                command: Any = receipt(sku, str(quantity), str(D(rng.randint(1, 400)) / 100))
                call = app.receive
            else:
                kind = "dispatch"
                quantity = D(rng.randint(1, 2500)) / 1000
                command = dispatch((sku, str(quantity)))
                call = app.dispatch
            try:
                result = retried(lambda call=call, command=command, meta=meta: call(command,
                                                                                    meta))
            except InsufficientStock as refusal:
                with lock:
                    seen["refused"].append((sku, quantity, refusal, meta))
                continue
            except Exception as error:  # anything else fails the test
                with lock:
                    seen["errors"].append(error)
                continue
            with lock:
                seen["replayed" if result.replayed else "accepted"].append(
                    (kind, sku, quantity, result, meta))

    threads = [threading.Thread(target=work, args=(number,)) for number in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(WAIT_SECONDS_MAX * 2)
        assert not thread.is_alive()
    return seen


def check_race(reader: Ledger, seen: dict[str, list[Any]], bins: list[str],
               start: dict[str, CommandResult]) -> None:
    assert seen["errors"] == []
    accepted = seen["accepted"]
    # Each key was recorded once, for the one command that was not a replay.
    keys = [(meta.actor, meta.idempotency_key) for *_, meta in accepted
            if meta.idempotency_key is not None]
    assert len(keys) == len(set(keys))
    originals = {(meta.actor, meta.idempotency_key): result for *_, result, meta in accepted}
    for *_, result, meta in accepted:
        if meta.idempotency_key is not None:
            record = recorded(reader, meta.actor, meta.idempotency_key)
            assert record is not None and record.result["document_id"] == result.document_id
    for *_, again, meta in seen["replayed"]:
        original = originals[meta.actor, meta.idempotency_key]
        assert (again.document_id, again.position, again.lines) == (
            original.document_id, original.position, original.lines)
    for sku, quantity, refusal, meta in seen["refused"]:
        assert (refusal.sku, refusal.requested) == (sku, quantity)
        assert refusal.available < quantity
        if meta.idempotency_key is not None and (meta.actor, meta.idempotency_key) not in \
                originals:
            assert recorded(reader, meta.actor, meta.idempotency_key) is None
    for sku in bins:
        mine = [(kind, quantity, result) for kind, s, quantity, result, _ in accepted
                if s == sku]
        stock_bin = reader.stock_bin(sku, WH)
        assert stock_bin is not None
        # Never oversold; on hand is receipts less successful dispatches.
        expected = start[sku].lines[0]["quantity"] + sum(
            (q if kind == "receipt" else -q for kind, q, _ in mine), ZERO)
        assert stock_bin.quantity_on_hand == expected >= ZERO
        # Every success recorded exactly once on its bin, and nothing else: none lost.
        movements = [event for event in reader.events.get(bin_id(sku, WH))
                     if isinstance(event, StockBin.Movement)]
        assert sorted(str(event.document_id) for event in movements) == sorted(
            str(result.document_id) for _, _, result in [*mine, ("receipt", 0, start[sku])])
        assert stock_bin.version == 1 + len(movements)
        # One serial history: each movement saw what the previous one left, as its caller
        # was told.
        told = {result.document_id: result.lines[0] for _, _, result in mine}
        held = value = ZERO
        for event in movements:
            sign = 1 if isinstance(event, StockBin.Received) else -1
            held += sign * event.quantity
            value += sign * event.value
            assert held >= ZERO
            assert (event.quantity_on_hand_after, event.value_after) == (held, value)
            if event.document_id in told:
                line = told[event.document_id]
                assert (line["quantity_on_hand_after"], line["value_after"]) == (held, value)
        assert stock_bin.value == value


def stock_up(app: Ledger, bins: list[str], quantity: str) -> dict[str, CommandResult]:
    return {sku: app.receive(receipt(sku, quantity, "1.25"), OPERATOR) for sku in bins}


# Each store, and on PostgreSQL the writer both in step and pipelined.
RACE_STORES = [
    pytest.param("sqlite_url", False, id="sqlite"),
    pytest.param("fresh_postgres_url", False, id="postgres", marks=pytest.mark.postgres),
    pytest.param("fresh_postgres_url", True, id="postgres-pipelined",
                 marks=pytest.mark.postgres),
]


@pytest.mark.parametrize(("store", "pipelined"), RACE_STORES)
@pytest.mark.parametrize("twins", [False, True], ids=["clients-tiny-cache", "twin-clients"])
def test_threads_racing_on_one_bin_with_group_commit(request: pytest.FixtureRequest, store: str,
                                                     pipelined: bool, twins: bool) -> None:
    database_url = str(request.getfixturevalue(store))
    # (Without twins, a writer cache of two aggregates: evicted all the time.)
    settings = GroupCommitSettings(window_seconds=0.002, cache_max=100_000 if twins else 2,
                                   pipelined=pipelined)
    with BatchLedger(store_environment(database_url), settings) as app:
        register(app)
        start = stock_up(app, [FIFO], "20")

        seen = race([app], [FIFO], twins)

        assert max(len(batch) for batch in app.batches) > 1  # commands were batched
        assert app.conflicts == 0 or twins  # (a twin's record conflicts with its original's)
        assert len(seen["refused"]) > 0 and len(seen["accepted"]) > THREADS
        assert len(seen["replayed"]) > 0 or not twins
        with Ledger(store_environment(database_url)) as reader:
            check_race(reader, seen, [FIFO], start)


@pytest.mark.parametrize(("store", "pipelined"), RACE_STORES)
@pytest.mark.parametrize("twins", [False, True], ids=["clients", "twin-clients"])
def test_two_processes_with_group_commit_racing_on_the_same_bins(
        request: pytest.FixtureRequest, store: str, pipelined: bool, twins: bool) -> None:
    url = str(request.getfixturevalue(store))
    if url.startswith("postgresql"):
        url += "&pool_size=4&max_overflow=4"
    settings = GroupCommitSettings(window_seconds=0.002, pipelined=pipelined)
    with BatchLedger(store_environment(url), settings) as first, \
            BatchLedger(store_environment(url), settings) as second:
        register(first)
        bins = [FIFO, AVG]
        start = stock_up(first, bins, "15")

        seen = race([first, second], bins, twins)

        assert first.batches and second.batches
        assert first.conflicts + second.conflicts > 0  # they really raced, and retried
        assert len(seen["refused"]) > 0 and len(seen["accepted"]) > THREADS
        assert len(seen["replayed"]) > 0 or not twins
        with Ledger(store_environment(url)) as reader:
            check_race(reader, seen, bins, start)


# The pipelined writer (PostgreSQL, ledger.pipelined_commit): the next batch is decided
# while the one ahead of it is stored. Batches of two, so that commands queued together
# while the writer is held go out as a flight and a batch decided beside it.


@pytest.fixture
def piped(fresh_postgres_url: str) -> Iterator[BatchLedger]:
    settings = GroupCommitSettings(batch_max=2, window_seconds=0, pipelined=True)
    with BatchLedger(store_environment(fresh_postgres_url), settings) as app:
        register(app)
        app.receive(receipt(FIFO, "10"), OPERATOR)  # the writer's position is known
        yield app


@pytest.fixture
def piped_other(fresh_postgres_url: str, piped: BatchLedger) -> Iterator[Ledger]:
    """Another process on the pipelined ledger's store (no group commit)."""
    with Ledger(store_environment(fresh_postgres_url)) as app:
        yield app


def beside(app: BatchLedger, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The size of each batch decided while another was in flight (recorded as it goes)."""
    from ledger.pipelined_commit import Pipeline

    sizes: list[int] = []
    step = Pipeline.step

    def recording(pipeline: Pipeline, batch: list[Pending]) -> None:
        if pipeline.flight is not None:
            sizes.append(len(batch))
        step(pipeline, batch)

    monkeypatch.setattr(Pipeline, "step", recording)
    return sizes


def queued_while_held(app: BatchLedger, batch: list[Pending]) -> list[Outcome]:
    """Queue `batch` in order while the writer is held; let it go; every outcome."""
    committer = app.group_committer
    assert committer is not None
    release = hold_writer(app)
    for queued in batch:
        committer.enqueue(queued)
    release.set()
    for queued in batch:
        wait_until(queued.done.is_set)
    return [outcome(queued) for queued in batch]


def with_first(side_effect: Callable[[], Any], decide: Callable[..., Any]
               ) -> Callable[..., dict[str, Any]]:
    """A decider that runs `side_effect` once, the first time, before deciding."""
    done: list[Any] = []

    def deciding(command: Any, workspace: Any, context: Any) -> dict[str, Any]:
        if not done:
            done.append(side_effect())
        return {"lines": decide(command, workspace, context)}

    return deciding


@pytest.mark.postgres
def test_a_batch_decided_beside_a_flight_sees_what_the_flight_stores(
        piped: BatchLedger, monkeypatch: pytest.MonkeyPatch) -> None:
    decided_beside = beside(piped, monkeypatch)
    head = piped.head_position()
    batch = [pending("receipt", receipt(FIFO, "5")), pending("receipt", receipt(AVG, "1")),
             pending("dispatch", dispatch((FIFO, "12"))),
             pending("dispatch", dispatch((FIFO, "4")))]

    received, received_avg, taken, refused = queued_while_held(piped, batch)

    assert decided_beside == [2]  # the dispatches, while the receipts were stored
    assert result_of(received).lines[0]["quantity_on_hand_after"] == D("15")
    assert result_of(received_avg).lines[0]["quantity_on_hand_after"] == D("1")
    assert result_of(taken).lines[0]["quantity_on_hand_after"] == D("3")
    assert isinstance(refused, InsufficientStock) and refused.available == D("3")
    assert on_hand(piped) == D("3") and on_hand(piped, AVG) == D("1")
    logged = positions_by_document(piped, head)
    stored = [logged[queued.document_id] for queued in batch[:3]]
    assert batch[3].document_id not in logged
    assert all(len(positions) == 1 for positions in stored) and stored == sorted(stored)
    assert [result_of(found).position for found in (received, received_avg, taken)] == [
        positions[0] for positions in stored]  # in log order, as queued
    assert piped.conflicts == 0


@pytest.mark.postgres
def test_another_writer_before_the_flight_changes_what_the_next_batch_read(
        piped: BatchLedger, piped_other: Ledger, monkeypatch: pytest.MonkeyPatch) -> None:
    """Another process takes 6 of the 10 before the flight is sent: the flight (another
    bin) is stored, and its answer carries the other's event; the batch decided beside it
    on the stale 10 is decided again, in step, and refused."""
    decided_beside = beside(piped, monkeypatch)
    taken_by_other = with_first(lambda: piped_other.dispatch(dispatch((FIFO, "6")), OPERATOR),
                                documents.decide_receipt)
    batch = [pending("receipt", receipt(AVG, "1"), decide=taken_by_other),
             pending("receipt", receipt(AVG, "1")),
             pending("dispatch", dispatch((FIFO, "8"))), pending("receipt", receipt(AVG, "1"))]

    first, second, refused, third = queued_while_held(piped, batch)

    assert decided_beside == [2]
    assert [result_of(found).lines[0]["quantity_on_hand_after"]
            for found in (first, second, third)] == [D("1"), D("2"), D("3")]
    assert isinstance(refused, InsufficientStock) and refused.available == D("4")
    assert on_hand(piped) == D("4") and on_hand(piped, AVG) == D("3")


@pytest.mark.postgres
def test_another_writer_while_the_flight_is_stored_fails_the_next_batch_save(
        piped: BatchLedger, piped_other: Ledger, monkeypatch: pytest.MonkeyPatch) -> None:
    """Another process takes 6 of the 10 while the next batch is decided beside the
    flight: that batch's own save finds the other's event, stores nothing, and the batch
    is decided again, in step, and refused."""
    decided_beside = beside(piped, monkeypatch)
    taking = with_first(lambda: piped_other.dispatch(dispatch((FIFO, "6")), OPERATOR),
                        documents.decide_dispatch)
    batch = [pending("receipt", receipt(AVG, "1")), pending("receipt", receipt(AVG, "1")),
             pending("dispatch", dispatch((FIFO, "8")), decide=taking),
             pending("receipt", receipt(AVG, "1"))]

    *received, refused, third = queued_while_held(piped, batch)

    assert decided_beside == [2]
    assert piped.conflicts == 1
    assert isinstance(refused, InsufficientStock) and refused.available == D("4")
    assert [result_of(found).lines[0]["quantity_on_hand_after"]
            for found in (*received, third)] == [D("1"), D("2"), D("3")]
    assert on_hand(piped) == D("4") and on_hand(piped, AVG) == D("3")
    avg_bin = piped.stock_bin(AVG, WH)
    assert avg_bin is not None and avg_bin.version == 4  # opened, and three receipts once


@pytest.mark.postgres
def test_a_flight_that_is_not_stored_is_decided_again_and_so_is_the_batch_beside_it(
        piped: BatchLedger, piped_other: Ledger, monkeypatch: pytest.MonkeyPatch) -> None:
    """Another process takes 4 of the 10 just before the flight is sent: the flight,
    decided on the stale 10, stores nothing; the batch decided beside it on the flight's
    5 left is decided again too, each in step, in order."""
    decided_beside = beside(piped, monkeypatch)
    head = piped.head_position()
    racing = with_first(lambda: piped_other.dispatch(dispatch((FIFO, "4")), OPERATOR),
                        documents.decide_dispatch)
    batch = [pending("dispatch", dispatch((FIFO, "5")), decide=racing),
             pending("receipt", receipt(AVG, "1")),
             pending("dispatch", dispatch((FIFO, "3"))), pending("receipt", receipt(AVG, "2"))]

    taken, received, refused, received_more = queued_while_held(piped, batch)

    assert decided_beside == [2]
    assert piped.conflicts == 1
    assert result_of(taken).lines[0]["quantity_on_hand_after"] == D("1")
    assert isinstance(refused, InsufficientStock) and refused.available == D("1")
    assert result_of(received).lines[0]["quantity_on_hand_after"] == D("1")
    assert result_of(received_more).lines[0]["quantity_on_hand_after"] == D("3")
    assert on_hand(piped) == D("1") and on_hand(piped, AVG) == D("3")
    logged = positions_by_document(piped, head)
    assert sorted(logged) == sorted(
        [queued.document_id for queued in (batch[0], batch[1], batch[3])]
        + [UUID(str(new_events(piped, head)[0][1].document_id))])  # the other's dispatch
    assert all(len(positions) == 1 for positions in logged.values())


@pytest.mark.postgres
def test_a_flight_that_is_not_stored_costs_the_writer_only_what_it_changed(
        piped: BatchLedger, piped_other: Ledger, monkeypatch: pytest.MonkeyPatch) -> None:
    """As above, another process takes 4 of the 10 just before the flight is sent: the
    flight's bin is loaded again, but every other bin the writer holds stays as it was
    (several API processes on one store lose flights to each other all the time; dropping
    the whole cache at each made two of them slower than one)."""
    piped.receive(receipt(AVG, "1", location=SHOP), OPERATOR)
    cache = piped.group_committer.cache  # type: ignore[union-attr]
    held = cache.aggregates[bin_id(AVG, SHOP)]
    decided_beside = beside(piped, monkeypatch)
    racing = with_first(lambda: piped_other.dispatch(dispatch((FIFO, "4")), OPERATOR),
                        documents.decide_dispatch)
    batch = [pending("dispatch", dispatch((FIFO, "5")), decide=racing),
             pending("receipt", receipt(AVG, "1")),
             pending("dispatch", dispatch((FIFO, "3"))), pending("receipt", receipt(AVG, "2"))]

    taken, _, refused, _ = queued_while_held(piped, batch)

    assert decided_beside == [2] and piped.conflicts == 1
    assert result_of(taken).lines[0]["quantity_on_hand_after"] == D("1")
    assert isinstance(refused, InsufficientStock) and refused.available == D("1")
    assert cache.aggregates[bin_id(AVG, SHOP)] is held  # kept, not loaded again
    assert cache.in_flight == {} and cache.position == piped.head_position()
    assert piped.receive(receipt(AVG, "1", location=SHOP), OPERATOR).lines[0][
        "quantity_on_hand_after"] == D("2")


@pytest.mark.postgres
def test_an_error_beside_a_flight_answers_its_batch_and_the_flight_is_still_answered(
        piped: BatchLedger, monkeypatch: pytest.MonkeyPatch) -> None:
    """Something unforeseen fails while a batch is decided beside a flight: the flight is
    still landed and its callers get their results; the batch's callers get the error, and
    nothing of it is stored; the writer goes on."""
    writer = piped.batch_writer
    assert writer is not None
    encode = writer.encode
    calls: list[int] = []

    def failing_second(*arguments: Any) -> Any:
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("the encoder broke")
        return encode(*arguments)

    monkeypatch.setattr(writer, "encode", failing_second)
    batch = [pending("receipt", receipt(FIFO, "1")), pending("receipt", receipt(AVG, "1")),
             pending("dispatch", dispatch((FIFO, "2"))), pending("receipt", receipt(AVG, "5"))]

    first, second, *failed = queued_while_held(piped, batch)

    assert result_of(first).lines[0]["quantity_on_hand_after"] == D("11")
    assert result_of(second).lines[0]["quantity_on_hand_after"] == D("1")
    assert all(isinstance(error, RuntimeError) for error in failed)
    assert on_hand(piped) == D("11") and on_hand(piped, AVG) == D("1")
    after = piped.dispatch(dispatch((FIFO, "2")), OPERATOR)
    assert after.lines[0]["quantity_on_hand_after"] == D("9")


@pytest.mark.postgres
def test_commands_queued_before_a_pipelined_ledger_closes_are_all_answered(
        fresh_postgres_url: str) -> None:
    settings = GroupCommitSettings(batch_max=2, window_seconds=0, pipelined=True)
    app = BatchLedger(store_environment(fresh_postgres_url), settings)
    register(app)
    app.receive(receipt(FIFO, "1"), OPERATOR)
    committer = app.group_committer
    assert committer is not None
    release = hold_writer(app)
    batch = [pending("receipt", receipt(FIFO, "1")) for _ in range(5)]
    for queued in batch:
        committer.enqueue(queued)
    closing = threading.Thread(target=app.close)
    closing.start()
    wait_until(lambda: committer.queue.qsize() == 6)  # five commands, then the stop

    release.set()
    closing.join(WAIT_SECONDS_MAX)

    assert [result_of(outcome(queued)).lines[0]["quantity_on_hand_after"]
            for queued in batch] == [D(n) for n in range(2, 7)]
    with Ledger(store_environment(fresh_postgres_url)) as reader:
        assert on_hand(reader) == D("6")


def test_the_pipelined_setting_is_read_from_the_environment() -> None:
    from ledger.config import Settings, group_commit_settings

    assert group_commit_settings(Settings.from_environ({})).pipelined is True  # type: ignore[union-attr]
    off = Settings.from_environ({"LEDGER_GROUP_COMMIT_PIPELINE": "off"})
    assert group_commit_settings(off).pipelined is False  # type: ignore[union-attr]


def test_a_closed_ledger_gives_back_its_writers_wake_up_sockets(database_url: str) -> None:
    app = BatchLedger(store_environment(database_url))
    committer = app.group_committer
    assert committer is not None
    sockets = (committer.wake_reader, committer.wake_writer)
    assert all(end.fileno() >= 0 for end in sockets)

    app.close()

    assert all(end.fileno() == -1 for end in sockets)
    with pytest.raises(LedgerClosed):
        committer.enqueue(pending("receipt", receipt(FIFO, "1")))
