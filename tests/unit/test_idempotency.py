"""Idempotency keys: a retried command returns its original result and appends nothing."""

from __future__ import annotations

from decimal import Decimal

import pytest

from ledger.application import CommandResult, Ledger
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
from ledger.domain.command_record import CommandRecord
from ledger.domain.context import CommandMeta
from ledger.domain.identity import command_record_id
from ledger.errors import IdempotencyConflict, InsufficientStock

D = Decimal
ALICE = CommandMeta("alice")


def keyed(key: str, actor: str = "alice") -> CommandMeta:
    return CommandMeta(actor, idempotency_key=key)


def receipt_of(quantity_in: str = "10", cost: str = "2", sku: str = "FIFO-1") -> Receipt:
    return Receipt(location="WH-1", lines=(ReceiptLine(sku, D(quantity_in), D(cost)),))


def on_hand(ledger: Ledger, sku: str = "FIFO-1", location: str = "WH-1") -> Decimal:
    stock_bin = ledger.stock_bin(sku, location)
    return D("0") if stock_bin is None else stock_bin.quantity_on_hand


COMMANDS = {
    "receipt": lambda ledger, meta: ledger.receive(receipt_of("3"), meta),
    "dispatch": lambda ledger, meta: ledger.dispatch(
        Dispatch(location="WH-1", lines=(DispatchLine("FIFO-1", D("3")),)), meta),
    "transfer": lambda ledger, meta: ledger.transfer(
        Transfer(from_location="WH-1", to_location="WH-2",
                 lines=(DispatchLine("FIFO-1", D("3")),)), meta),
    "count": lambda ledger, meta: ledger.count(
        Count(location="WH-1", reason="cycle", lines=(CountLine("FIFO-1", D("4")),)), meta),
}


@pytest.mark.parametrize("kind", COMMANDS)
def test_the_same_key_and_command_return_the_original_result_and_append_nothing(
        ledger: Ledger, kind: str) -> None:
    ledger.receive(receipt_of("10"), ALICE)
    first: CommandResult = COMMANDS[kind](ledger, keyed("key-1"))
    head = ledger.head_position()
    stock = on_hand(ledger)

    again: CommandResult = COMMANDS[kind](ledger, keyed("key-1"))

    assert (again.document_id, again.position, again.lines) == (
        first.document_id, first.position, first.lines)
    assert (first.replayed, again.replayed) == (False, True)
    assert first.position == head
    assert ledger.head_position() == head
    assert on_hand(ledger) == stock


def test_a_key_is_remembered_by_a_ledger_opened_later(
        ledger: Ledger, sqlite_url: str) -> None:
    first = ledger.receive(receipt_of(), keyed("key-1"))

    with Ledger(store_environment(sqlite_url)) as reopened:
        again = reopened.receive(receipt_of(), keyed("key-1"))

        assert again.replayed and again.document_id == first.document_id
        assert on_hand(reopened) == D("10")


def test_the_same_key_with_a_different_command_is_refused(ledger: Ledger) -> None:
    ledger.receive(receipt_of("10"), keyed("key-1"))
    head = ledger.head_position()

    with pytest.raises(IdempotencyConflict) as refusal:
        ledger.receive(receipt_of("11"), keyed("key-1"))

    assert refusal.value.facts() == {"idempotency_key": "key-1"}
    assert ledger.head_position() == head
    assert on_hand(ledger) == D("10")


def test_the_same_key_for_another_kind_of_command_is_refused(ledger: Ledger) -> None:
    ledger.receive(receipt_of("10"), keyed("key-1"))
    head = ledger.head_position()

    with pytest.raises(IdempotencyConflict):
        ledger.dispatch(Dispatch(location="WH-1", lines=(DispatchLine("FIFO-1", D("10")),)),
                        keyed("key-1"))

    assert ledger.head_position() == head


@pytest.mark.parametrize(
    ("first", "retried"),
    [
        pytest.param(receipt_of("1"), receipt_of("1.000"), id="quantity 1 and 1.000"),
        pytest.param(receipt_of("100"), receipt_of("1E+2"), id="quantity 100 and 1E+2"),
        pytest.param(receipt_of(cost="2.5"), receipt_of(cost="2.500000"),
                     id="unit cost 2.5 and 2.500000"),
        pytest.param(receipt_of(cost="0"), receipt_of(cost="-0"), id="unit cost 0 and -0"),
    ],
)
def test_equal_commands_written_differently_are_the_same_command(
        ledger: Ledger, first: Receipt, retried: Receipt) -> None:
    original = ledger.receive(first, keyed("key-1"))
    head = ledger.head_position()

    again = ledger.receive(retried, keyed("key-1"))

    assert again.replayed and again.lines == original.lines
    assert ledger.head_position() == head


def test_keys_belong_to_the_actor_who_used_them(ledger: Ledger) -> None:
    ledger.receive(receipt_of("10"), keyed("key-1", actor="alice"))

    bobs = ledger.receive(receipt_of("10"), keyed("key-1", actor="bob"))

    assert not bobs.replayed
    assert on_hand(ledger) == D("20")


def test_without_a_key_a_repeated_command_is_recorded_again(ledger: Ledger) -> None:
    first = ledger.receive(receipt_of("10"), ALICE)
    second = ledger.receive(receipt_of("10"), ALICE)

    assert first.document_id != second.document_id
    assert on_hand(ledger) == D("20")


def test_a_refused_command_does_not_use_up_its_key(ledger: Ledger) -> None:
    dispatch = Dispatch(location="WH-1", lines=(DispatchLine("FIFO-1", D("5")),))
    head = ledger.head_position()
    with pytest.raises(InsufficientStock):
        ledger.dispatch(dispatch, keyed("key-1"))
    assert ledger.head_position() == head

    ledger.receive(receipt_of("5"), ALICE)
    retried = ledger.dispatch(dispatch, keyed("key-1"))

    assert not retried.replayed
    assert on_hand(ledger) == D("0")


def test_the_key_is_recorded_with_the_command_and_its_result(ledger: Ledger) -> None:
    result = ledger.receive(receipt_of("10"), keyed("key-1"))

    [recorded] = ledger.events.get(command_record_id("alice", "key-1"))

    assert isinstance(recorded, CommandRecord.Recorded)
    assert (recorded.actor, recorded.idempotency_key, recorded.command) == (
        "alice", "key-1", "receipt")
    assert recorded.result == {"document_id": result.document_id, "lines": result.lines}
    assert len(recorded.fingerprint) == 64


def test_a_command_record_is_identified_by_actor_and_key() -> None:
    record = CommandRecord.record("alice", "key-1", "receipt", "f" * 64, {"lines": []})

    [recorded] = record.collect_events()

    assert isinstance(recorded, CommandRecord.Recorded)
    assert recorded.originator_id == command_record_id("alice", "key-1")
    assert command_record_id("alice", "key-1") != command_record_id("bob", "key-1")
