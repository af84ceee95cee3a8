"""A refused command is recorded not at all: no line of it, no event, no key."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from ledger.application import Ledger
from ledger.commands import Count, CountLine, Dispatch, DispatchLine, Receipt, ReceiptLine, Transfer
from ledger.domain.context import CommandMeta
from ledger.errors import (
    FutureEffectiveTime,
    InsufficientStock,
    InvalidCost,
    InvalidInput,
    InvalidQuantity,
    LedgerError,
    UnknownItem,
    UnknownLocation,
)

D = Decimal
META = CommandMeta("alice", idempotency_key="key-1")
Command = Callable[[Ledger], object]


def receipt(*lines: ReceiptLine, effective_at: datetime | None = None,
            at: str = "WH-1") -> Command:
    return lambda ledger: ledger.receive(
        Receipt(location=at, lines=lines, effective_at=effective_at), META)


def dispatch(*lines: DispatchLine) -> Command:
    return lambda ledger: ledger.dispatch(Dispatch(location="WH-1", lines=lines), META)


GOOD = ReceiptLine("FIFO-1", D("1"), D("1"))

REFUSALS = [
    pytest.param(receipt(GOOD, ReceiptLine("NOPE", D("1"), D("1"))), UnknownItem,
                 id="unknown item on line 2"),
    pytest.param(receipt(GOOD, at="WH-9"), UnknownLocation, id="unknown location"),
    pytest.param(receipt(GOOD, ReceiptLine("AVG-1", D("0"), D("1"))), InvalidQuantity,
                 id="zero quantity on line 2"),
    pytest.param(receipt(GOOD, ReceiptLine("AVG-1", D("1"), D("-1"))), InvalidCost,
                 id="negative cost on line 2"),
    pytest.param(receipt(GOOD, effective_at=datetime(9999, 1, 1, tzinfo=UTC)),
                 FutureEffectiveTime, id="future effective_at"),
    pytest.param(receipt(GOOD, effective_at=datetime(2025, 1, 1, 9, 0)), InvalidInput,
                 id="naive effective_at"),
    pytest.param(dispatch(DispatchLine("FIFO-1", D("1")), DispatchLine("AVG-1", D("5.5"))),
                 InsufficientStock, id="short on line 2 of a dispatch"),
    pytest.param(lambda ledger: ledger.transfer(Transfer(
        from_location="WH-1", to_location="WH-2",
        lines=(DispatchLine("FIFO-1", D("1")), DispatchLine("FIFO-1", D("5")))), META),
        InsufficientStock, id="short on line 2 of a transfer"),
    pytest.param(lambda ledger: ledger.count(Count(
        location="WH-1", reason="cycle",
        lines=(CountLine("FIFO-1", D("1")), CountLine("FIFO-1", D("2")))), META),
        InvalidInput, id="duplicate sku in a count"),
]


@pytest.mark.parametrize(("command", "error"), REFUSALS)
def test_a_refused_command_appends_nothing(
        ledger: Ledger, command: Command, error: type[LedgerError]) -> None:
    ledger.receive(Receipt(location="WH-1", lines=(
        ReceiptLine("FIFO-1", D("5"), D("2")), ReceiptLine("AVG-1", D("5"), D("3")))),
        CommandMeta("alice"))
    head = ledger.head_position()

    with pytest.raises(error):
        command(ledger)

    assert ledger.head_position() == head
    for sku, value in (("FIFO-1", "10.00"), ("AVG-1", "15.00")):
        stock_bin = ledger.stock_bin(sku, "WH-1")
        assert stock_bin is not None
        assert (str(stock_bin.quantity_on_hand), str(stock_bin.value)) == ("5.000", value)
    assert ledger.stock_bin("FIFO-1", "WH-2") is None
