"""Real threads writing at once never oversell, never record a command twice, never lose one.

Each test runs with one shared `Ledger` (many API threads in one process) and with one
`Ledger` per thread (separate connection pools, like separate API processes), on SQLite
and on PostgreSQL.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from typing import Any
from uuid import UUID

import pytest
from concurrency_support import THREADS, WAIT_SECONDS_MAX, Apps, at_once, retried

from ledger.application import CommandResult, Ledger
from ledger.commands import Dispatch, DispatchLine, Receipt, ReceiptLine
from ledger.domain.context import CommandMeta
from ledger.domain.identity import bin_id
from ledger.domain.item import ItemDetails
from ledger.errors import IdempotencyConflict, InsufficientStock
from ledger.numbers import ZERO, money

D = Decimal
OPERATOR = CommandMeta(actor="operator")


def appended_since(app: Ledger, position: int, limit: int = 10_000) -> int:
    """How many events were appended after `position` (PostgreSQL ids may have gaps)."""
    return len(app.recorder.select_notifications(start=position + 1, limit=limit))


def register(app: Ledger, skus: list[str], locations: tuple[str, ...]) -> None:
    for number, sku in enumerate(skus):
        method = "fifo" if number % 2 == 0 else "moving_average"
        app.register_item(sku, ItemDetails(f"Item {sku}", "ea", method), OPERATOR)
    for code in locations:
        app.register_location(code, f"Location {code}", OPERATOR)


# Quantities a thread asks for in turn: uneven, so that the last ones do not fit.
ASKS = [D("1.5"), D("0.75"), D("2"), D("0.125"), D("3.333"), D("1")]


@pytest.mark.parametrize("sku", ["FIFO-BOLT", "AVG-NUT"])
def test_threads_dispatching_from_one_bin_never_oversell(apps: Apps, sku: str) -> None:
    app = apps.shared
    register(app, ["FIFO-BOLT", "AVG-NUT"], ("MAIN",))
    # Three receipts at different costs, so that FIFO dispatches cross layers.
    stock = D("0")
    for quantity, cost in ((D("30"), D("1.25")), (D("25.5"), D("1.333333")), (D("20"), D("2"))):
        app.receive(Receipt(location="MAIN", lines=(ReceiptLine(sku, quantity, cost),)), OPERATOR)
        stock += quantity
    stocked = app.stock_bin(sku, "MAIN")
    assert stocked is not None and stocked.quantity_on_hand == stock
    value = stocked.value

    def dispatch_until_empty(number: int, ledger: Ledger) -> tuple[list[CommandResult], int]:
        accepted: list[CommandResult] = []
        refusals = 0
        quantity = ASKS[number % len(ASKS)]
        for ask in range(number + 1, number + 200):
            dispatch = Dispatch(location="MAIN", lines=(DispatchLine(sku, quantity),))
            try:
                result = retried(lambda dispatch=dispatch: ledger.dispatch(dispatch, OPERATOR))
            except InsufficientStock as refusal:
                refusals += 1
                assert refusal.requested == quantity and refusal.available < quantity
                if refusal.available == ZERO:
                    return accepted, refusals
                # Ask for what is left; another thread may take it first.
                quantity = refusal.available
                continue
            accepted.append(result)
            quantity = ASKS[ask % len(ASKS)]
        raise AssertionError("the bin was still not empty after 200 dispatches")

    outcomes = at_once(dispatch_until_empty, apps)

    accepted = sorted((result for results, _ in outcomes for result in results),
                      key=lambda result: result.position)
    assert sum(result.lines[0]["quantity"] for result in accepted) == stock
    assert sum(result.lines[0]["value"] for result in accepted) == value
    assert all(refusals >= 1 for _, refusals in outcomes)
    assert len(accepted) > THREADS * 4
    # The accepted dispatches form one serial history: each saw what the previous one left.
    held = stock
    for result in accepted:
        held -= result.lines[0]["quantity"]
        assert result.lines[0]["quantity_on_hand_after"] == held
    # The threads really raced: saves lost to other writers and were retried.
    assert apps.conflicts() > 0
    emptied = apps.open().stock_bin(sku, "MAIN")
    assert emptied is not None
    assert (emptied.quantity_on_hand, emptied.value) == (ZERO, ZERO)
    assert str(money(emptied.value)) == "0.00"
    assert emptied.version == 1 + 3 + len(accepted)


def test_two_threads_racing_with_the_same_idempotency_key_record_it_once(apps: Apps) -> None:
    app = apps.shared
    register(app, ["BOLT"], ("MAIN",))
    app.receive(Receipt(location="MAIN", lines=(ReceiptLine("BOLT", D("1"), D("1")),)),
                OPERATOR)
    receipt = Receipt(location="MAIN", lines=(ReceiptLine("BOLT", D("2.5"), D("4")),))
    rounds = 15
    for round_number in range(rounds):
        head = app.head_position()
        meta = CommandMeta(actor="scanner", idempotency_key=f"grn-{round_number}")

        results = at_once(lambda _number, ledger, meta=meta: ledger.receive(receipt, meta),
                          apps, threads=2)

        assert results[0].document_id == results[1].document_id
        assert results[0].position == results[1].position
        assert results[0].lines == results[1].lines
        assert sorted(result.replayed for result in results) == [False, True]
        # One Received event and one command record: the receipt was recorded once.
        assert appended_since(app, head) == 2
        stock_bin = app.stock_bin("BOLT", "MAIN")
        assert stock_bin is not None
        assert stock_bin.quantity_on_hand == D("1") + D("2.5") * (round_number + 1)
    assert apps.conflicts() > 0
    stock_bin = apps.open().stock_bin("BOLT", "MAIN")
    assert stock_bin is not None
    assert (stock_bin.quantity_on_hand, stock_bin.version) == (D("1") + D("2.5") * rounds,
                                                               2 + rounds)


def test_concurrent_receipts_on_many_bins_all_land(apps: Apps) -> None:
    app = apps.shared
    skus = [f"SKU-{number:02d}" for number in range(12)]
    locations = ("MAIN", "STORE")
    register(app, skus, locations)
    receipts_per_thread = 12
    head = app.head_position()

    def receipt_for(number: int, step: int) -> Receipt:
        # Neighbouring threads share bins; each receipt has two lines on different SKUs.
        first = skus[(number + step) % len(skus)]
        second = skus[(number + step + 5) % len(skus)]
        quantity = D(number + 1) + D(step) / 1000
        return Receipt(location=locations[step % 2], lines=(
            ReceiptLine(first, quantity, D("1.5")),
            ReceiptLine(second, D("0.5"), D(number) + D("0.25"))))

    def receive_all(number: int, ledger: Ledger) -> None:
        for step in range(receipts_per_thread):
            retried(lambda step=step: ledger.receive(receipt_for(number, step), OPERATOR))

    at_once(receive_all, apps)

    expected: dict[tuple[str, str], list[Any]] = {}
    for number in range(THREADS):
        for step in range(receipts_per_thread):
            receipt = receipt_for(number, step)
            for line in receipt.lines:
                totals = expected.setdefault((line.sku, receipt.location), [ZERO, ZERO, 0])
                totals[0] += line.quantity
                totals[1] += money(line.quantity * line.unit_cost)
                totals[2] += 1
    reader = apps.open()
    for (sku, location), (quantity, value, receipts) in expected.items():
        stock_bin = reader.stock_bin(sku, location)
        assert stock_bin is not None
        assert (stock_bin.quantity_on_hand, stock_bin.value) == (quantity, value), (sku, location)
        assert stock_bin.version == 1 + receipts
    events_appended = sum(receipts + 1 for _, _, receipts in expected.values())
    assert appended_since(reader, head) == events_appended


def test_two_threads_racing_with_one_key_and_different_commands_record_one(apps: Apps) -> None:
    app = apps.shared
    register(app, ["BOLT"], ("MAIN",))
    receipts = [Receipt(location="MAIN", lines=(ReceiptLine("BOLT", D(n), D("4")),))
                for n in (1, 2)]
    rounds = 10
    on_hand = ZERO
    for round_number in range(rounds):
        head = app.head_position()
        meta = CommandMeta(actor="scanner", idempotency_key=f"grn-{round_number}")

        def receive(number: int, ledger: Ledger, meta: CommandMeta = meta) -> Any:
            try:
                return ledger.receive(receipts[number], meta)
            except IdempotencyConflict as conflict:
                return conflict

        outcomes = at_once(receive, apps, threads=2)

        recorded = [outcome for outcome in outcomes if isinstance(outcome, CommandResult)]
        assert len(recorded) == 1 and not recorded[0].replayed
        assert sum(isinstance(outcome, IdempotencyConflict) for outcome in outcomes) == 1
        first_event = 1 if round_number == 0 else 0
        assert appended_since(app, head) == first_event + 2
        on_hand += recorded[0].lines[0]["quantity"]
        stock_bin = app.stock_bin("BOLT", "MAIN")
        assert stock_bin is not None and stock_bin.quantity_on_hand == on_hand


def test_a_retry_racing_its_original_dispatch_gets_the_original_result(
    database_url: str, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A client retries a dispatch of the last 5 while the original is still being saved.

    The retry checks its key before the original is saved and loads the bin after: it must
    still answer with the original's result, not refuse for want of the stock that the
    original (the same command) took. The interleaving is forced, so the outcome is certain.
    """
    apps = Apps(database_url, per_thread=True)
    try:
        original_api, retry_api = apps.for_thread(0), apps.for_thread(1)
        register(original_api, ["BOLT"], ("MAIN",))
        original_api.receive(
            Receipt(location="MAIN", lines=(ReceiptLine("BOLT", D("5"), D("2")),)), OPERATOR)
        dispatch = Dispatch(location="MAIN", lines=(DispatchLine("BOLT", D("5")),))
        meta = CommandMeta(actor="picker", idempotency_key="pick-1")
        retry_at_bin, original_saved = threading.Event(), threading.Event()
        load = retry_api.repository.get

        def load_bin_after_the_original(aggregate_id: UUID, *args: Any, **kwargs: Any) -> Any:
            if aggregate_id == bin_id("BOLT", "MAIN") and not retry_at_bin.is_set():
                retry_at_bin.set()
                assert original_saved.wait(WAIT_SECONDS_MAX)
            return load(aggregate_id, *args, **kwargs)

        monkeypatch.setattr(retry_api.repository, "get", load_bin_after_the_original)
        with ThreadPoolExecutor(max_workers=1) as pool:
            retry = pool.submit(retry_api.dispatch, dispatch, meta)
            assert retry_at_bin.wait(WAIT_SECONDS_MAX)
            try:
                original = original_api.dispatch(dispatch, meta)
            finally:
                original_saved.set()
            head = original_api.head_position()
            retried_result = retry.result(timeout=WAIT_SECONDS_MAX)

        assert retried_result.replayed
        assert retried_result.document_id == original.document_id
        assert retried_result.lines == original.lines
        assert original_api.head_position() == head
        emptied = original_api.stock_bin("BOLT", "MAIN")
        assert emptied is not None and emptied.quantity_on_hand == ZERO
    finally:
        apps.close()
