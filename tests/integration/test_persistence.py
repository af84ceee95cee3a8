"""What one application writes, another reads back whole, on SQLite and on PostgreSQL.

Also: a document with one bad line is recorded not at all, and an idempotency key keeps
working across application instances (a restart, or another API process).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest

from ledger.application import Ledger
from ledger.commands import (
    Count,
    CountLine,
    Dispatch,
    DispatchLine,
    Receipt,
    ReceiptLine,
    Transfer,
)
from ledger.config import store_environment
from ledger.costing import Layer, ValuationMethod
from ledger.domain.context import CommandMeta
from ledger.domain.identity import bin_id
from ledger.domain.item import ItemDetails
from ledger.domain.stock_bin import StockBin
from ledger.errors import (
    IdempotencyConflict,
    InsufficientStock,
    InvalidQuantity,
    LedgerError,
    UnknownItem,
)

D = Decimal
OPERATOR = CommandMeta(actor="operator")
OpenLedger = Callable[[], Ledger]


@pytest.fixture
def open_ledger(database_url: str) -> Iterator[OpenLedger]:
    """Opens application instances on the test's store; closes them all afterwards."""
    opened: list[Ledger] = []

    def open_one() -> Ledger:
        app = Ledger(store_environment(database_url))
        opened.append(app)
        return app

    yield open_one
    for app in opened:
        app.close()


def register(app: Ledger, items: dict[str, ValuationMethod], locations: tuple[str, ...]) -> None:
    for sku, method in items.items():
        app.register_item(sku, ItemDetails(f"Item {sku}", "ea", method), OPERATOR)
    for code in locations:
        app.register_location(code, f"Location {code}", OPERATOR)


def bin_state(app: Ledger, sku: str, location: str) -> tuple[Any, ...] | None:
    stock_bin = app.stock_bin(sku, location)
    if stock_bin is None:
        return None
    return (stock_bin.version, stock_bin.cost, stock_bin.quantity_reserved)


def test_a_new_application_reads_back_items_locations_bins_and_event_metadata(
    open_ledger: OpenLedger,
) -> None:
    writer = open_ledger()
    writer.register_item("BOLT", ItemDetails("Hex bolt M8", "ea", "fifo", D("5")), OPERATOR)
    writer.register_item("NUT", ItemDetails("Nut M8", "box", "moving_average"), OPERATOR)
    writer.register_location("MAIN", "Main warehouse", OPERATOR)
    writer.register_location("STORE", "Shop floor", OPERATOR)
    effective_at = datetime(2024, 3, 1, 9, 30, tzinfo=timezone(timedelta(hours=8)))
    meta = CommandMeta(actor="alice", idempotency_key="grn-0001", correlation_id="corr-7")
    receipt = writer.receive(Receipt(
        location="MAIN", reference="PO-42", note="two pallets", effective_at=effective_at,
        lines=(ReceiptLine("BOLT", D("10"), D("1.25")), ReceiptLine("BOLT", D("5"), D("1.4")),
               ReceiptLine("NUT", D("8"), D("0.333333")))), meta)
    dispatch = writer.dispatch(Dispatch(location="MAIN", lines=(DispatchLine("BOLT", D("12")),)),
                               CommandMeta(actor="bob"))
    writer.transfer(Transfer(from_location="MAIN", to_location="STORE",
                             lines=(DispatchLine("NUT", D("3")),)), OPERATOR)
    writer.count(Count(location="MAIN", reason="damaged box",
                       lines=(CountLine("NUT", D("4")),)), OPERATOR)

    reader = open_ledger()
    assert reader.head_position() == writer.head_position()
    assert reader.item("BOLT").details == ItemDetails("Hex bolt M8", "ea", "fifo", D("5"))
    assert reader.item("NUT").valuation_method == "moving_average"
    location = reader.location("STORE")
    assert location is not None and location.name == "Shop floor"
    bolts = reader.stock_bin("BOLT", "MAIN")
    assert bolts is not None
    # FIFO: the 12 out took all 10 at 1.25 and 2 of the 5 at 1.40; 3 at 1.40 remain.
    assert bolts.cost.layers == (Layer(D("3"), D("1.4"), D("4.20")),)
    assert (bolts.quantity_on_hand, bolts.value, bolts.version) == (D("3"), D("4.20"), 4)
    nuts = reader.stock_bin("NUT", "MAIN")
    moved = reader.stock_bin("NUT", "STORE")
    assert nuts is not None and moved is not None
    # 8 at 0.333333 is worth 2.67; 3 out at 0.33375 carry 1.00; the count loses 1 at 0.334.
    assert (nuts.quantity_on_hand, nuts.value) == (D("4"), D("1.34"))
    assert (moved.quantity_on_hand, moved.value) == (D("3"), D("1.00"))
    for sku, code in (("BOLT", "MAIN"), ("NUT", "MAIN"), ("NUT", "STORE")):
        assert bin_state(reader, sku, code) == bin_state(writer, sku, code)

    events = list(reader.repository.event_store.get(bin_id("BOLT", "MAIN")))
    assert [type(event) for event in events] == [
        StockBin.Opened, StockBin.Received, StockBin.Received, StockBin.Dispatched]
    first, second, out = events[1], events[2], events[3]
    assert isinstance(first, StockBin.Received) and isinstance(second, StockBin.Received)
    assert isinstance(out, StockBin.Dispatched)
    assert (first.document_id, first.line_number, second.line_number) == (
        receipt.document_id, 1, 2)
    assert (first.actor, first.idempotency_key, first.correlation_id) == (
        "alice", "grn-0001", "corr-7")
    assert (first.reference, first.note, first.reason) == ("PO-42", "two pallets", None)
    # The same instant, stored in UTC (one instant written in two zones is one command).
    assert first.effective_at == effective_at
    assert first.effective_at.utcoffset() == timedelta(0)
    # The record time is the library's; it is when the command ran, not its business time.
    assert first.timestamp > effective_at
    assert (out.document_id, out.actor, out.idempotency_key) == (dispatch.document_id, "bob", None)
    assert out.effective_at == out.timestamp
    assert (out.quantity, out.unit_cost, out.value) == (D("12"), D("1.275"), D("15.30"))
    assert list(out.removed) == [Layer(D("10"), D("1.25"), D("12.50")),
                                 Layer(D("2"), D("1.4"), D("2.80"))]

    *_, moved_out, counted = reader.repository.event_store.get(bin_id("NUT", "MAIN"))
    *_, moved_in = reader.repository.event_store.get(bin_id("NUT", "STORE"))
    assert isinstance(moved_out, StockBin.TransferredOut)
    assert isinstance(moved_in, StockBin.TransferredIn)
    assert isinstance(counted, StockBin.Counted)
    assert moved_in.document_id == moved_out.document_id
    assert (moved_out.to_location, moved_in.from_location) == ("STORE", "MAIN")
    assert moved_in.value == moved_out.value == D("1.00")
    assert (counted.reason, counted.quantity_difference, counted.value_difference) == (
        "damaged box", D("-1"), D("-0.33"))


def test_event_positions_in_the_log_match_the_command_results(open_ledger: OpenLedger) -> None:
    writer = open_ledger()
    register(writer, {"BOLT": "fifo"}, ("MAIN",))
    start = writer.head_position()
    results = [
        writer.receive(Receipt(location="MAIN", lines=(ReceiptLine("BOLT", D(n), D("2")),)),
                       OPERATOR)
        for n in (1, 2, 3)
    ]

    reader = open_ledger()
    notifications = reader.recorder.select_notifications(start=start + 1, limit=10)
    events = [reader.mapper.to_domain_event(notification) for notification in notifications]
    # The first receipt opened the bin: its Opened event comes first, in the same transaction.
    assert [type(event) for event in events] == [StockBin.Opened] + [StockBin.Received] * 3
    received = [
        (notification.id, event) for notification, event in zip(notifications, events, strict=True)
        if isinstance(event, StockBin.Received)
    ]
    assert [(result.position, result.document_id) for result in results] == [
        (position, event.document_id) for position, event in received]
    assert [event.quantity_on_hand_after for _, event in received] == [D("1"), D("3"), D("6")]
    assert reader.head_position() == results[-1].position


FIFTY_SKUS: dict[str, ValuationMethod] = {
    f"SKU-{n:03d}": ("fifo" if n % 2 else "moving_average") for n in range(1, 51)}


def bad_receipt() -> tuple[Any, type[LedgerError]]:
    lines = [ReceiptLine(sku, D("1"), D("3.5")) for sku in FIFTY_SKUS]
    lines[36] = ReceiptLine("NO-SUCH-SKU", D("1"), D("3.5"))
    return Receipt(location="MAIN", lines=tuple(lines)), UnknownItem


def bad_dispatch() -> tuple[Any, type[LedgerError]]:
    lines = [DispatchLine(sku, D("1")) for sku in FIFTY_SKUS]
    lines[36] = DispatchLine(lines[36].sku, D("10.001"))
    return Dispatch(location="MAIN", lines=tuple(lines)), InsufficientStock


def badly_written_receipt() -> tuple[Any, type[LedgerError]]:
    lines = [ReceiptLine(sku, D("1"), D("3.5")) for sku in FIFTY_SKUS]
    lines[36] = ReceiptLine(lines[36].sku, D("1.0005"), D("3.5"))
    return Receipt(location="MAIN", lines=tuple(lines)), InvalidQuantity


@pytest.mark.parametrize("make_document", [bad_receipt, bad_dispatch, badly_written_receipt],
                         ids=["unknown-sku", "insufficient-stock", "four-places"])
def test_a_fifty_line_document_with_one_bad_line_appends_nothing(
    open_ledger: OpenLedger, make_document: Callable[[], tuple[Any, type[LedgerError]]],
) -> None:
    app = open_ledger()
    register(app, FIFTY_SKUS, ("MAIN",))
    stocked = app.receive(Receipt(location="MAIN", lines=tuple(
        ReceiptLine(sku, D("10"), D("3.5")) for sku in FIFTY_SKUS)), OPERATOR)
    assert len(stocked.lines) == 50
    head = app.head_position()
    before = {sku: bin_state(app, sku, "MAIN") for sku in FIFTY_SKUS}
    document, error = make_document()

    method = app.receive if isinstance(document, Receipt) else app.dispatch
    with pytest.raises(error) as refusal:
        method(document, CommandMeta(actor="operator", idempotency_key="bad-document"))

    if isinstance(refusal.value, InsufficientStock):
        assert (refusal.value.sku, refusal.value.requested, refusal.value.available) == (
            "SKU-037", D("10.001"), D("10"))
    if isinstance(refusal.value, InvalidQuantity):
        assert refusal.value.field == "lines[36].quantity"
    restarted = open_ledger()
    for reader in (app, restarted):
        assert reader.head_position() == head
        assert {sku: bin_state(reader, sku, "MAIN") for sku in FIFTY_SKUS} == before
        assert reader.stock_bin("NO-SUCH-SKU", "MAIN") is None
    # The key of a refused document was not used up: a good document can take it.
    fixed = app.receive(Receipt(location="MAIN", lines=(ReceiptLine("SKU-001", D("1"), D("1")),)),
                        CommandMeta(actor="operator", idempotency_key="bad-document"))
    assert not fixed.replayed


def test_an_idempotent_replay_survives_a_new_application(open_ledger: OpenLedger) -> None:
    first = open_ledger()
    register(first, {"BOLT": "fifo"}, ("MAIN", "STORE"))
    meta = CommandMeta(actor="alice", idempotency_key="grn-7")
    receipt = Receipt(location="MAIN", lines=(ReceiptLine("BOLT", D("4"), D("2.5")),))
    original = first.receive(receipt, meta)
    transfer = Transfer(from_location="MAIN", to_location="STORE",
                        lines=(DispatchLine("BOLT", D("1.5")),))
    moved = first.transfer(transfer, CommandMeta(actor="alice", idempotency_key="move-1"))
    first.close()

    second = open_ledger()
    head = second.head_position()
    # Decimals written differently are the same command.
    again = second.receive(
        Receipt(location="MAIN", lines=(ReceiptLine("BOLT", D("4.000"), D("2.50")),)), meta)
    moved_again = second.transfer(transfer, CommandMeta(actor="alice", idempotency_key="move-1"))

    assert again.replayed and moved_again.replayed
    assert (again.document_id, again.position, again.lines) == (
        original.document_id, original.position, original.lines)
    assert (moved_again.document_id, moved_again.position, moved_again.lines) == (
        moved.document_id, moved.position, moved.lines)
    assert second.head_position() == head
    stock = second.stock_bin("BOLT", "MAIN")
    assert stock is not None and (stock.quantity_on_hand, stock.value) == (D("2.5"), D("6.25"))
    with pytest.raises(IdempotencyConflict):
        second.receive(Receipt(location="MAIN", lines=(ReceiptLine("BOLT", D("5"), D("2.5")),)),
                       meta)
    assert second.head_position() == head


def test_the_same_key_from_another_actor_is_another_command(open_ledger: OpenLedger) -> None:
    app = open_ledger()
    register(app, {"BOLT": "fifo"}, ("MAIN",))
    receipt = Receipt(location="MAIN", lines=(ReceiptLine("BOLT", D("1"), D("1")),))
    alice = app.receive(receipt, CommandMeta(actor="alice", idempotency_key="k"))
    bob = open_ledger().receive(receipt, CommandMeta(actor="bob", idempotency_key="k"))
    assert not bob.replayed and bob.document_id != alice.document_id
    stock = app.stock_bin("BOLT", "MAIN")
    assert stock is not None and stock.quantity_on_hand == D("2")


def test_effective_at_is_kept_exactly_and_utc_by_default(open_ledger: OpenLedger) -> None:
    app = open_ledger()
    register(app, {"BOLT": "fifo"}, ("MAIN",))
    before = datetime.now(UTC)
    app.receive(Receipt(location="MAIN", lines=(ReceiptLine("BOLT", D("1"), D("1")),)),
                OPERATOR)
    stored = list(open_ledger().repository.event_store.get(bin_id("BOLT", "MAIN")))[-1]
    assert isinstance(stored, StockBin.Received)
    assert before <= stored.effective_at <= datetime.now(UTC)
    assert stored.effective_at.utcoffset() == timedelta(0)
