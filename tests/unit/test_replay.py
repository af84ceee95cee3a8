"""Replay: a bin rebuilt from its events, stored or not, equals the bin that triggered them."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from ledger.application import Ledger
from ledger.commands import Count, CountLine, Dispatch, DispatchLine, Receipt, ReceiptLine, Transfer
from ledger.config import store_environment
from ledger.costing import ValuationMethod
from ledger.domain.context import CommandMeta
from ledger.domain.stock_bin import StockBin
from unit.support import (
    LOCATION,
    OTHER_LOCATION,
    RECORDED_AT,
    SKU,
    Step,
    context,
    count,
    dispatch,
    layer,
    rebuilt,
    receive,
)

D = Decimal
ALICE = CommandMeta("alice")


def transfer_out(quantity_out: str) -> Step:
    return lambda stock_bin: stock_bin.transfer_out(
        D(quantity_out).quantize(D("0.001")), OTHER_LOCATION, context(), 1)


def transfer_in(*carried: tuple[str, str, str]) -> Step:
    layers = tuple(layer(*figures) for figures in carried)
    return lambda stock_bin: stock_bin.transfer_in(layers, OTHER_LOCATION, context(), 1)


EVERY_MOVEMENT: tuple[Step, ...] = (
    receive("3", "3.333333"),
    receive("2", "5.00"),
    dispatch("1"),
    transfer_in(("2.000", "1.250000", "2.50")),
    count("7"),
    transfer_out("2"),
    count("4", "2.10"),
    dispatch("4"),
    count("2"),
)


def live_bin(method: ValuationMethod) -> tuple[StockBin, list[Any]]:
    """A bin put through every kind of movement, and the events it triggered."""
    stock_bin = StockBin.open(SKU, LOCATION, method, RECORDED_AT)
    for step in EVERY_MOVEMENT:
        step(stock_bin)
    return stock_bin, list(stock_bin.collect_events())


@pytest.mark.parametrize("method", ["fifo", "moving_average"])
def test_a_bin_rebuilt_from_its_events_equals_the_live_bin(method: ValuationMethod) -> None:
    live, events = live_bin(method)

    assert [type(event).__name__ for event in events] == [
        "Opened", "Received", "Received", "Dispatched", "TransferredIn", "Counted",
        "TransferredOut", "Counted", "Dispatched", "Counted"]
    assert rebuilt(events) == live
    assert (str(live.quantity_on_hand), str(live.value)) == ("2.000", "4.20")


@pytest.mark.parametrize("method", ["fifo", "moving_average"])
def test_a_bin_rebuilt_from_its_stored_events_equals_the_live_bin(
        ledger: Ledger, method: ValuationMethod) -> None:
    live, events = live_bin(method)

    stored = [ledger.mapper.to_stored_event(event) for event in events]
    loaded = [ledger.mapper.to_domain_event(record) for record in stored]

    assert rebuilt(loaded) == live


def test_the_stored_ledger_holds_what_the_commands_reported(
        ledger: Ledger, sqlite_url: str) -> None:
    ledger.receive(Receipt(location="WH-1", lines=(
        ReceiptLine("FIFO-1", D("3"), D("3.333333")),
        ReceiptLine("FIFO-1", D("2"), D("5")))), ALICE)
    ledger.dispatch(Dispatch(location="WH-1", lines=(DispatchLine("FIFO-1", D("1")),)), ALICE)
    moved = ledger.transfer(Transfer(from_location="WH-1", to_location="WH-2",
                                     lines=(DispatchLine("FIFO-1", D("3")),)), ALICE)
    counted = ledger.count(Count(location="WH-2", reason="cycle",
                                 lines=(CountLine("FIFO-1", D("2")),)), ALICE)

    with Ledger(store_environment(sqlite_url)) as reopened:
        source = reopened.stock_bin("FIFO-1", "WH-1")
        destination = reopened.stock_bin("FIFO-1", "WH-2")
    assert source is not None and destination is not None
    [moved_line] = moved.lines
    [counted_line] = counted.lines
    assert (source.quantity_on_hand, source.value) == (
        moved_line["quantity_on_hand_after"], moved_line["value_after"])
    assert (destination.quantity_on_hand, destination.value) == (
        counted_line["quantity_on_hand_after"], counted_line["value_after"])
    # Source: 2 @ 3.333333 (6.67) and 2 @ 5 (10.00) less 3 → 1 @ 5. Destination: the 3 carried
    # (2 @ 3.333333, 1 @ 5) less 1 counted away from the oldest.
    assert source.cost.layers == (layer("1", "5", "5.00"),)
    assert destination.cost.layers == (layer("1", "3.333333", "3.34"), layer("1", "5", "5.00"))
    assert (str(destination.quantity_on_hand), str(destination.value)) == ("2.000", "8.34")
