"""Effective time: a bin's movements never count earlier than one already recorded."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from ledger.application import Ledger
from ledger.commands import Dispatch, DispatchLine, Receipt, ReceiptLine
from ledger.domain.context import CommandMeta
from ledger.errors import BackdatedMovement, FutureEffectiveTime, InvalidInput
from unit.support import RECORDED_AT, context, given, receive

D = Decimal
OPS = CommandMeta("ops")


def test_a_movement_given_an_earlier_effective_time_than_the_bins_latest_is_refused() -> None:
    stock_bin = given("fifo", receive("5", "1.00"))
    earlier = RECORDED_AT - timedelta(hours=1)

    with pytest.raises(BackdatedMovement) as refusal:
        stock_bin.dispatch(D("1.000"), context(effective_at=earlier, effective_at_given=True), 1)

    assert refusal.value.facts() == {
        "sku": stock_bin.sku, "location": stock_bin.location,
        "effective_at": earlier.isoformat(), "latest_effective_at": RECORDED_AT.isoformat()}
    assert stock_bin.quantity_on_hand == D("5.000")


def test_a_defaulted_effective_time_behind_the_bins_latest_moves_up_to_it() -> None:
    # Another process's clock may run slightly ahead: "now" must not be refused for it.
    stock_bin = given("fifo", receive("5", "1.00"))
    behind = RECORDED_AT - timedelta(milliseconds=3)

    stock_bin.dispatch(D("1.000"), context(effective_at=behind, recorded_at=behind), 1)

    assert stock_bin.pending_events[-1].effective_at == RECORDED_AT
    assert stock_bin.latest_effective_at == RECORDED_AT


def test_a_backdated_line_refuses_the_whole_document(ledger: Ledger) -> None:
    now = datetime.now(UTC)
    ledger.receive(Receipt(location="WH-1", effective_at=now - timedelta(minutes=1),
                           lines=(ReceiptLine("FIFO-1", D("5"), D("1")),)), OPS)
    head = ledger.head_position()

    with pytest.raises(BackdatedMovement):
        ledger.receive(Receipt(location="WH-1", effective_at=now - timedelta(hours=2), lines=(
            ReceiptLine("AVG-1", D("1"), D("1")),      # a new bin: fine on its own
            ReceiptLine("FIFO-1", D("1"), D("1")))), OPS)  # earlier than the bin's receipt

    assert ledger.head_position() == head


def test_an_effective_time_earlier_than_other_bins_movements_is_accepted(ledger: Ledger) -> None:
    now = datetime.now(UTC)
    ledger.receive(Receipt(location="WH-1", lines=(ReceiptLine("FIFO-1", D("5"), D("1")),)), OPS)

    result = ledger.receive(Receipt(location="WH-2", effective_at=now - timedelta(days=3),
                                    lines=(ReceiptLine("FIFO-1", D("2"), D("1")),)), OPS)

    assert result.lines[0]["quantity_on_hand_after"] == D("2.000")


def test_a_future_effective_time_is_refused(ledger: Ledger) -> None:
    later = datetime.now(UTC) + timedelta(minutes=5)
    with pytest.raises(FutureEffectiveTime):
        ledger.dispatch(Dispatch(location="WH-1", effective_at=later,
                                 lines=(DispatchLine("FIFO-1", D("1")),)), OPS)


def test_an_effective_time_before_1900_is_refused(ledger: Ledger) -> None:
    with pytest.raises(InvalidInput) as refusal:
        ledger.receive(Receipt(location="WH-1", effective_at=datetime(999, 12, 31, tzinfo=UTC),
                               lines=(ReceiptLine("FIFO-1", D("1"), D("1")),)), OPS)
    assert refusal.value.field == "effective_at"
