"""Receipts (入库): each line goes into its bin at its unit cost; a new bin is opened for it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest

from ledger.application import Ledger
from ledger.commands import Receipt, ReceiptLine
from ledger.costing import ValuationMethod
from ledger.documents import decide_receipt
from ledger.domain.context import CommandMeta
from ledger.domain.identity import bin_id
from ledger.domain.stock_bin import StockBin
from ledger.errors import UnknownItem, UnknownLocation
from unit.support import (
    LOCATION,
    SKU,
    bins,
    context,
    events_of,
    figures,
    given,
    item,
    layer,
    location,
    receive,
    when,
    workspace,
)

D = Decimal


def receipt(*lines: tuple[str, str, str], at: str = LOCATION) -> Receipt:
    return Receipt(location=at, lines=tuple(
        ReceiptLine(sku, D(quantity_in), D(cost)) for sku, quantity_in, cost in lines))


@pytest.mark.parametrize(
    ("quantity_in", "cost", "value"),
    [
        ("3.000", "3.333333", "10.00"),
        ("1.000", "0.125000", "0.13"),  # half up; banker's rounding would say 0.12
        ("0.500", "0.010000", "0.01"),
        ("2.500", "1.234567", "3.09"),
        ("4.000", "0.000000", "0.00"),
    ],
)
def test_a_receipt_is_valued_at_quantity_times_unit_cost_to_the_cent(
        quantity_in: str, cost: str, value: str) -> None:
    stock_bin = given("fifo")

    [received] = when(stock_bin, receive(quantity_in, cost))

    assert isinstance(received, StockBin.Received)
    assert received.removed == ()
    assert received.added == (layer(quantity_in, cost, value),)
    assert figures(received) == {
        "quantity": quantity_in, "unit_cost": cost, "value": value,
        "quantity_on_hand_after": quantity_in, "value_after": value,
    }


@pytest.mark.parametrize("method", ["fifo", "moving_average"])
def test_the_first_receipt_opens_the_bin_with_the_item_valuation_method(
        method: ValuationMethod) -> None:
    space = workspace(item(method=method), location())

    decide_receipt(receipt((SKU, "10.000", "2.000000")), space, context())

    [stock_bin] = space.changed()
    opened, received = stock_bin.pending_events
    assert isinstance(opened, StockBin.Opened)
    assert (opened.sku, opened.location, opened.valuation_method) == (SKU, LOCATION, method)
    assert opened.originator_id == bin_id(SKU, LOCATION)
    assert isinstance(received, StockBin.Received)


def test_a_receipt_into_a_bin_that_exists_opens_nothing() -> None:
    existing = given("fifo", receive("1", "1.00"))
    space = workspace(item(), location(), existing)

    decide_receipt(receipt((SKU, "2.000", "1.000000")), space, context())

    assert [type(event) for event in events_of(space.changed())] == [StockBin.Received]
    assert existing.quantity_on_hand == D("3")


def test_the_bin_is_not_opened_after_the_receipt_it_was_opened_for() -> None:
    space = workspace(item(), location())
    document = context()

    decide_receipt(receipt((SKU, "1.000", "1.000000")), space, document)

    opened, received = events_of(space.changed())
    assert received.timestamp == document.recorded_at
    assert opened.timestamp <= received.timestamp


def test_lines_of_one_receipt_for_the_same_sku_add_up_in_order() -> None:
    space = workspace(item(), location())

    lines = decide_receipt(
        receipt((SKU, "10.000", "2.000000"), (SKU, "5.000", "3.000000")), space, context())

    assert lines == [
        {"sku": SKU, "location": LOCATION, "quantity": D("10.000"), "unit_cost": D("2.000000"),
         "value": D("20.00"), "quantity_on_hand_after": D("10.000"), "value_after": D("20.00")},
        {"sku": SKU, "location": LOCATION, "quantity": D("5.000"), "unit_cost": D("3.000000"),
         "value": D("15.00"), "quantity_on_hand_after": D("15.000"), "value_after": D("35.00")},
    ]
    [stock_bin] = bins(space)
    assert stock_bin.cost.layers == (layer("10", "2", "20.00"), layer("5", "3", "15.00"))


def test_every_event_of_a_document_carries_its_metadata() -> None:
    space = workspace(item("A"), item("B"), location())
    effective_at = datetime(2025, 2, 28, 17, 30, tzinfo=timezone(timedelta(hours=8)))
    document = context(
        actor="bob", effective_at=effective_at, reference="PO-7", note="dock 3",
        reason="supplier delivery", idempotency_key="key-1", correlation_id="corr-1")

    decide_receipt(receipt(("A", "1.000", "1.000000"), ("B", "2.000", "1.000000")),
                   space, document)

    movements = [event for event in events_of(space.changed())
                 if isinstance(event, StockBin.Movement)]
    assert [(event.sku, event.line_number) for event in movements] == [("A", 1), ("B", 2)]
    for event in movements:
        assert (event.document_id, event.actor, event.effective_at, event.reference,
                event.note, event.reason, event.idempotency_key, event.correlation_id,
                event.timestamp) == (
            document.document_id, "bob", effective_at, "PO-7", "dock 3",
            "supplier delivery", "key-1", "corr-1", document.recorded_at)


def test_a_receipt_of_an_unregistered_item_is_refused() -> None:
    space = workspace(location())

    with pytest.raises(UnknownItem) as refusal:
        decide_receipt(receipt(("NOPE", "1.000", "1.000000")), space, context())

    assert refusal.value.facts() == {"sku": "NOPE"}


def test_a_receipt_at_an_unregistered_location_is_refused() -> None:
    space = workspace(item())

    with pytest.raises(UnknownLocation) as refusal:
        decide_receipt(receipt((SKU, "1.000", "1.000000"), at="WH-9"), space, context())

    assert refusal.value.facts() == {"location": "WH-9"}


def test_stored_receipt_events_carry_the_command_metadata(ledger: Ledger) -> None:
    effective_at = datetime.now(UTC) - timedelta(days=1)
    command = Receipt(location="WH-1", reference="PO-1", effective_at=effective_at,
                      lines=(ReceiptLine("FIFO-1", D("4"), D("2.5")),))

    result = ledger.receive(command, CommandMeta("bob", "key-9", "corr-9"))

    stored: list[Any] = list(ledger.events.get(bin_id("FIFO-1", "WH-1")))
    assert [type(event) for event in stored] == [StockBin.Opened, StockBin.Received]
    received = stored[1]
    assert (received.document_id, received.line_number, received.actor,
            received.idempotency_key, received.correlation_id, received.reference,
            received.effective_at) == (
        result.document_id, 1, "bob", "key-9", "corr-9", "PO-1", effective_at)
    assert figures(received) == {
        "quantity": "4.000", "unit_cost": "2.500000", "value": "10.00",
        "quantity_on_hand_after": "4.000", "value_after": "10.00",
    }


def test_a_receipt_without_effective_at_is_effective_when_recorded(ledger: Ledger) -> None:
    before = datetime.now(UTC)
    ledger.receive(Receipt(location="WH-1", lines=(ReceiptLine("FIFO-1", D("1"), D("1")),)),
                   CommandMeta("bob"))

    received: Any = list(ledger.events.get(bin_id("FIFO-1", "WH-1")))[-1]
    assert received.effective_at == received.timestamp
    assert before <= received.effective_at <= datetime.now(UTC)
