"""Period close (结账) through `Ledger`: dated commands in a closed period are refused.

Closing through a day D refuses every command whose explicit `effective_at` falls on or
before the end of D in UTC (`period_closed`), and appends nothing; the next day from 00:00 UTC
is open, and so is a defaulted time (now). Periods close only forward, and never through
today (UTC).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime, time, timedelta, timezone
from decimal import Decimal
from typing import Any
from uuid import UUID

import pytest

from ledger import purchasing as p
from ledger import selling as s
from ledger.application import Ledger
from ledger.commands import Count, CountLine, Dispatch, DispatchLine, Receipt, ReceiptLine, Transfer
from ledger.domain.context import CommandMeta
from ledger.domain.party import PartyDetails
from ledger.errors import InvalidInput, PeriodClosed
from ledger.period_close import ClosePeriod

D = Decimal
CLERK = CommandMeta("clerk")
ACCOUNTANT = CommandMeta("accountant")
ONE_MICROSECOND = timedelta(microseconds=1)


def today() -> date:
    return datetime.now(UTC).date()


def midnight(day: date) -> datetime:
    """00:00 UTC of a day."""
    return datetime.combine(day, time(), tzinfo=UTC)


def last_instant(day: date) -> datetime:
    """The last microsecond of a day in UTC."""
    return midnight(day + timedelta(days=1)) - ONE_MICROSECOND


def close(ledger: Ledger, until: date, reason: str | None = "month end") -> Any:
    return ledger.close_period(ClosePeriod(until=until, reason=reason), ACCOUNTANT)


def receipt(ledger: Ledger, at: datetime | None, amount: str = "1",
            meta: CommandMeta = CLERK) -> Any:
    return ledger.receive(Receipt(location="WH-1", lines=(ReceiptLine("FIFO-1", D(amount),
                                                                      D("2.00")),),
                                  effective_at=at), meta)


def dispatch(ledger: Ledger, at: datetime | None) -> Any:
    return ledger.dispatch(Dispatch(location="WH-1", lines=(DispatchLine("FIFO-1", D("1")),),
                                    effective_at=at), CLERK)


def count(ledger: Ledger, at: datetime | None, counted: str) -> Any:
    return ledger.count(Count(location="WH-1", lines=(CountLine("FIFO-1", D(counted)),),
                              reason="cycle count", effective_at=at), CLERK)


def transfer(ledger: Ledger, at: datetime | None) -> Any:
    return ledger.transfer(Transfer(from_location="WH-1", to_location="WH-2",
                                    lines=(DispatchLine("FIFO-1", D("1")),), effective_at=at),
                           CLERK)


def refused_as_closed(ledger: Ledger, command: Callable[[], object]) -> PeriodClosed:
    """The command is refused `period_closed` and nothing is appended."""
    head = ledger.head_position()
    with pytest.raises(PeriodClosed) as refusal:
        command()
    assert refusal.value.code == "period_closed"
    assert ledger.head_position() == head
    return refusal.value


def refused_as_invalid(ledger: Ledger, command: Callable[[], object]) -> InvalidInput:
    head = ledger.head_position()
    with pytest.raises(InvalidInput) as refusal:
        command()
    assert refusal.value.code == "validation_error"
    assert ledger.head_position() == head
    return refusal.value


def test_closing_answers_how_far_the_books_are_closed(ledger: Ledger) -> None:
    closed_day = today() - timedelta(days=10)
    assert ledger.periods() is None

    result = close(ledger, closed_day, reason="March")

    assert result.data["closed_until"] == closed_day.isoformat()
    assert result.data["open_from"] == midnight(closed_day + timedelta(days=1))
    assert result.position == ledger.head_position()
    periods = ledger.periods()
    assert periods is not None
    assert periods.closed_until == closed_day
    assert periods.open_from == midnight(closed_day + timedelta(days=1))
    assert [{key: close[key] for key in ("until", "reason", "actor")}
            for close in periods.closes] == [
        {"until": closed_day.isoformat(), "reason": "March", "actor": "accountant"}]


def test_stock_documents_dated_on_or_before_the_closed_day_are_refused(ledger: Ledger) -> None:
    closed_day = today() - timedelta(days=10)
    receipt(ledger, midnight(closed_day - timedelta(days=5)), amount="10")
    close(ledger, closed_day)
    end_of_day = last_instant(closed_day)

    refusal = refused_as_closed(ledger, lambda: receipt(ledger, end_of_day))
    assert refusal.facts() == {"effective_at": end_of_day.isoformat(),
                               "closed_until": closed_day.isoformat()}
    refused_as_closed(ledger, lambda: receipt(ledger, midnight(closed_day)))
    refused_as_closed(ledger, lambda: receipt(ledger, midnight(closed_day - timedelta(days=30))))
    refused_as_closed(ledger, lambda: dispatch(ledger, end_of_day))
    refused_as_closed(ledger, lambda: count(ledger, end_of_day, "12"))
    refused_as_closed(ledger, lambda: count(ledger, end_of_day, "3"))
    refused_as_closed(ledger, lambda: transfer(ledger, end_of_day))
    # 01:00 at +02:00 the next day is 23:00 UTC on the closed day: closed.
    plus_two = timezone(timedelta(hours=2))
    next_day = closed_day + timedelta(days=1)
    refused_as_closed(ledger, lambda: receipt(ledger, datetime.combine(
        next_day, time(1, 0), tzinfo=plus_two)))
    assert ledger.stock_bin("FIFO-1", "WH-1").quantity_on_hand == D("10")


def test_the_next_day_from_midnight_utc_and_defaulted_times_are_open(ledger: Ledger) -> None:
    closed_day = today() - timedelta(days=10)
    receipt(ledger, midnight(closed_day - timedelta(days=5)), amount="10")
    close(ledger, closed_day)
    next_day = closed_day + timedelta(days=1)

    receipt(ledger, midnight(next_day))
    # 23:00 at −02:00 on the closed day is 01:00 UTC the next day: open.
    minus_two = timezone(timedelta(hours=-2))
    dispatch(ledger, datetime.combine(closed_day, time(23, 0), tzinfo=minus_two))
    count(ledger, midnight(next_day + timedelta(days=1)), "12")
    transfer(ledger, midnight(next_day + timedelta(days=2)))
    # Defaulted times are now: always open.
    receipt(ledger, None)
    dispatch(ledger, None)
    count(ledger, None, "11")
    transfer(ledger, None)

    stock_bin = ledger.stock_bin("FIFO-1", "WH-1")
    assert stock_bin is not None
    # 10 + 1 − 1 → counted 12 → −1 transferred → +1 − 1 → counted 11 → −1 transferred.
    assert str(stock_bin.quantity_on_hand) == "10.000"


def test_a_refused_command_records_nothing_not_even_its_idempotency_key(ledger: Ledger) -> None:
    closed_day = today() - timedelta(days=10)
    close(ledger, closed_day)
    keyed = CommandMeta("clerk", idempotency_key="receipt-1")

    refused_as_closed(ledger, lambda: receipt(ledger, last_instant(closed_day), meta=keyed))

    # The key was not taken: a different command under it is accepted, not a conflict.
    accepted = receipt(ledger, midnight(closed_day + timedelta(days=1)), amount="2", meta=keyed)
    assert accepted.replayed is False
    assert str(ledger.stock_bin("FIFO-1", "WH-1").quantity_on_hand) == "2.000"


def test_a_retry_of_a_command_recorded_before_the_close_is_answered_as_the_original(
        ledger: Ledger) -> None:
    closed_day = today() - timedelta(days=10)
    keyed = CommandMeta("clerk", idempotency_key="receipt-2")
    original = receipt(ledger, last_instant(closed_day), meta=keyed)
    close(ledger, closed_day)
    head = ledger.head_position()

    retried = receipt(ledger, last_instant(closed_day), meta=keyed)

    assert retried.replayed is True
    assert (retried.document_id, retried.position) == (original.document_id, original.position)
    assert ledger.head_position() == head


@pytest.fixture
def parties(ledger: Ledger) -> Ledger:
    ledger.register_party("CUS-1", PartyDetails("Corner shop", ("customer",)), CLERK)
    ledger.register_party("SUP-1", PartyDetails("Tea Co.", ("supplier",)), CLERK)
    return ledger


def test_purchase_order_steps_dated_in_a_closed_period_are_refused(parties: Ledger) -> None:
    ledger = parties
    closed_day = today() - timedelta(days=10)
    close(ledger, closed_day)
    closed_at, open_at = last_instant(closed_day), midnight(closed_day + timedelta(days=1))
    line = p.OrderLine("FIFO-1", "WH-1", D("10"), D("2.50"))

    refused_as_closed(ledger, lambda: ledger.create_purchase_order(
        p.CreateOrder(supplier="SUP-1", lines=(line,), effective_at=closed_at), CLERK))
    order_id: UUID = ledger.create_purchase_order(
        p.CreateOrder(supplier="SUP-1", lines=(line,)), CLERK).data["order_id"]
    refused_as_closed(ledger, lambda: ledger.review_purchase_order(
        p.Review(order_id=order_id, approved=True, effective_at=closed_at), CLERK))
    ledger.review_purchase_order(p.Review(order_id=order_id, approved=True), CLERK)

    def receive(at: datetime | None) -> Any:
        return ledger.receive_purchase_order(p.Quantities(
            order_id=order_id, quantities=((1, D("10")),), effective_at=at), CLERK)

    refused_as_closed(ledger, lambda: receive(closed_at))
    receive(open_at)
    refused_as_closed(ledger, lambda: ledger.return_purchase_order(p.Quantities(
        order_id=order_id, quantities=((1, D("1")),), reason="damaged",
        effective_at=closed_at), CLERK))
    refused_as_closed(ledger, lambda: ledger.invoice_purchase_order(p.Invoice(
        order_id=order_id, invoice_number="INV-1", lines=((1, D("9"), None, D("0.13")),),
        effective_at=closed_at), CLERK))
    ledger.invoice_purchase_order(p.Invoice(
        order_id=order_id, invoice_number="INV-1", lines=((1, D("9"), None, D("0.13")),)),
        CLERK)
    refused_as_closed(ledger, lambda: ledger.pay_purchase_order(p.Payment(
        order_id=order_id, amount=D("1.00"), effective_at=closed_at), CLERK))
    refused_as_closed(ledger, lambda: ledger.end_purchase_order(p.End(
        order_id=order_id, outcome="closed", effective_at=closed_at), CLERK))
    assert ledger.purchase_order(order_id).status == "invoiced"


def test_sales_order_steps_dated_in_a_closed_period_are_refused(parties: Ledger) -> None:
    ledger = parties
    closed_day = today() - timedelta(days=10)
    receipt(ledger, midnight(closed_day - timedelta(days=5)), amount="10")
    close(ledger, closed_day)
    closed_at, open_at = last_instant(closed_day), midnight(closed_day + timedelta(days=1))
    line = s.SalesLine("FIFO-1", "WH-1", D("4"), D("5.00"))

    refused_as_closed(ledger, lambda: ledger.place_sales_order(
        s.PlaceOrder(customer="CUS-1", lines=(line,), effective_at=closed_at), CLERK))
    order_id: UUID = ledger.place_sales_order(
        s.PlaceOrder(customer="CUS-1", lines=(line,)), CLERK).data["order_id"]
    refused_as_closed(ledger, lambda: ledger.review_sales_order(
        s.SalesReview(order_id=order_id, approved=True, effective_at=closed_at), CLERK))
    ledger.review_sales_order(s.SalesReview(order_id=order_id, approved=True), CLERK)
    refused_as_closed(ledger, lambda: ledger.reserve_sales_order(
        p.OrderStep(order_id=order_id, effective_at=closed_at), CLERK))

    def dispatch_order(at: datetime | None) -> Any:
        return ledger.dispatch_sales_order(p.Quantities(
            order_id=order_id, quantities=(), effective_at=at), CLERK)

    refused_as_closed(ledger, lambda: dispatch_order(closed_at))
    dispatch_order(open_at)
    refused_as_closed(ledger, lambda: ledger.ship_sales_order(s.Ship(
        order_id=order_id, carrier="SF", tracking_number="SF-1", effective_at=closed_at),
        CLERK))
    ledger.ship_sales_order(s.Ship(order_id=order_id, carrier="SF", tracking_number="SF-1",
                                   effective_at=open_at), CLERK)
    refused_as_closed(ledger, lambda: ledger.deliver_sales_order(s.Deliver(
        order_id=order_id, signed_by="Ann", effective_at=closed_at), CLERK))
    ledger.deliver_sales_order(s.Deliver(order_id=order_id, signed_by="Ann"), CLERK)

    def invoice(at: datetime | None) -> Any:
        return ledger.invoice_sales_order(p.Invoice(
            order_id=order_id, invoice_number="S-1", lines=((1, D("4"), None, D("0.13")),),
            effective_at=at), CLERK)

    refused_as_closed(ledger, lambda: invoice(closed_at))
    invoice(None)
    refused_as_closed(ledger, lambda: ledger.pay_sales_order(p.Payment(
        order_id=order_id, amount=D("1.00"), effective_at=closed_at), CLERK))
    refused_as_closed(ledger, lambda: ledger.return_sales_order(p.Quantities(
        order_id=order_id, quantities=((1, D("1")),), reason="damaged",
        effective_at=closed_at), CLERK))
    ledger.pay_sales_order(p.Payment(order_id=order_id, amount=D("1.00")), CLERK)
    assert ledger.sales_order(order_id).status == "partially_paid"


def test_periods_close_only_forward(ledger: Ledger) -> None:
    closed_day = today() - timedelta(days=10)
    close(ledger, closed_day, reason="first")

    assert refused_as_invalid(ledger, lambda: close(ledger, closed_day)).field == "until"
    assert refused_as_invalid(
        ledger, lambda: close(ledger, closed_day - timedelta(days=1))).field == "until"

    close(ledger, closed_day + timedelta(days=1), reason="second")
    periods = ledger.periods()
    assert periods is not None
    assert periods.closed_until == closed_day + timedelta(days=1)
    assert [(close["until"], close["reason"]) for close in periods.closes] == [
        (closed_day.isoformat(), "first"),
        ((closed_day + timedelta(days=1)).isoformat(), "second")]


def test_a_period_closes_through_yesterday_at_the_latest(ledger: Ledger) -> None:
    assert refused_as_invalid(ledger, lambda: close(ledger, today())).field == "until"
    assert refused_as_invalid(
        ledger, lambda: close(ledger, today() + timedelta(days=1))).field == "until"
    # Nothing was appended: the books were never closed.
    assert ledger.periods() is None

    yesterday = today() - timedelta(days=1)
    close(ledger, yesterday)
    refused_as_closed(ledger, lambda: receipt(ledger, last_instant(yesterday)))
    # Today from 00:00 UTC, and now, are open.
    receipt(ledger, midnight(today()))
    receipt(ledger, None)
    assert str(ledger.stock_bin("FIFO-1", "WH-1").quantity_on_hand) == "2.000"


def test_a_naive_effective_at_on_an_order_step_is_invalid_input_after_a_close(
        parties: Ledger) -> None:
    """Without a close, an order step with a time without offset is a validation error;
    closing a period must not turn it into a crash comparing naive and aware times."""
    ledger = parties
    order_id: UUID = ledger.create_purchase_order(p.CreateOrder(supplier="SUP-1", lines=(
        p.OrderLine("FIFO-1", "WH-1", D("10"), D("2.50")),)), CLERK).data["order_id"]
    ledger.review_purchase_order(p.Review(order_id=order_id, approved=True), CLERK)
    naive = datetime.now(UTC).replace(tzinfo=None) - timedelta(days=1)

    def receive() -> Any:
        return ledger.receive_purchase_order(p.Quantities(
            order_id=order_id, quantities=((1, D("1")),), effective_at=naive), CLERK)

    assert refused_as_invalid(ledger, receive).field == "effective_at"
    close(ledger, today() - timedelta(days=10))
    assert refused_as_invalid(ledger, receive).field == "effective_at"
