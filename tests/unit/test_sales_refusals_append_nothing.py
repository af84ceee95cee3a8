"""A refused sales-order command is recorded not at all: no event, no key, no stock moved.

Every refusal is decided before the one `save()`, so the log's head, the orders, the
customer's account and the bins are as they were; the idempotency key stays unused.
Since a refusal changes nothing, the refusals share one ledger, set up once.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any
from uuid import UUID, uuid4

import pytest
from eventsourcing.application import AggregateNotFoundError

from ledger import purchasing as p
from ledger import selling as s
from ledger.application import Ledger
from ledger.commands import Receipt, ReceiptLine
from ledger.config import store_environment
from ledger.domain.context import CommandMeta
from ledger.domain.identity import command_record_id, customer_account_id
from ledger.domain.item import ItemDetails
from ledger.domain.party import PartyDetails
from ledger.errors import (
    CreditLimitExceeded,
    InvalidCost,
    InvalidInput,
    InvalidQuantity,
    InvalidTransition,
    LedgerError,
    MissingPrice,
    OrderLimitExceeded,
    PossibleDuplicate,
    UnknownItem,
    UnknownLocation,
    UnknownOrder,
    UnknownParty,
)

D = Decimal
SETUP = CommandMeta("clerk")
META = CommandMeta("clerk", idempotency_key="key-1")


@dataclass(frozen=True)
class Orders:
    """Orders in the states the refusals need (see the `shop` fixture)."""

    pending: UUID  # priced, not flagged, pending review
    unpriced: UUID  # line 2 has no price
    duplicate: UUID  # the same lines as `pending`, so flagged
    over_limit: UUID  # CUS-2's 30.00 against a 20.00 limit
    reserved: UUID  # approved, both lines reserved, nothing dispatched
    delivered: UUID  # delivered in full, line 1 invoiced in full (24.00, no tax)
    cancelled: UUID


Command = Callable[[Ledger, Orders], object]


def place(ledger: Ledger, *lines: tuple[str, str, str, str | None], customer: str = "CUS-1",
          meta: CommandMeta = SETUP) -> UUID:
    result = ledger.place_sales_order(s.PlaceOrder(customer=customer, lines=tuple(
        s.SalesLine(sku, at, D(amount), None if price is None else D(price))
        for sku, at, amount, price in lines)), meta)
    order_id: UUID = result.data["order_id"]
    return order_id


def approve(ledger: Ledger, order_id: UUID, meta: CommandMeta = SETUP,
            **fields: Any) -> object:
    return ledger.review_sales_order(s.SalesReview(order_id=order_id, approved=True,
                                                   **fields), meta)


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Ledger, Orders]]:
    path = (tmp_path_factory.mktemp("sales-refusals") / "ledger.db").resolve().as_posix()
    with Ledger(store_environment(f"sqlite:///{path}")) as ledger:
        yield ledger, stocked(ledger)


def stocked(ledger: Ledger) -> Orders:
    ledger.register_item("FIFO-1", ItemDetails("Bolt", "each", "fifo"), SETUP)
    ledger.register_item("AVG-1", ItemDetails("Oil", "litre", "moving_average"), SETUP)
    ledger.register_location("WH-1", "Main warehouse", SETUP)
    ledger.register_location("WH-2", "Shop", SETUP)
    ledger.register_party("CUS-1", PartyDetails("Corner shop", ("customer",)), SETUP)
    ledger.register_party("CUS-2", PartyDetails("Kiosk", ("customer",), D("20")), SETUP)
    ledger.register_party("SUP-1", PartyDetails("Tea Co.", ("supplier",)), SETUP)
    ledger.receive(Receipt(location="WH-1", lines=(ReceiptLine("FIFO-1", D("10"), D("2")),
                                                   ReceiptLine("AVG-1", D("10"), D("3")))),
                   SETUP)
    delivered = place(ledger, ("FIFO-1", "WH-1", "4", "6"), ("AVG-1", "WH-1", "3", "5"))
    approve(ledger, delivered)
    ledger.dispatch_sales_order(p.Quantities(order_id=delivered, quantities=()), SETUP)
    ledger.ship_sales_order(s.Ship(order_id=delivered, carrier="DHL", tracking_number="T-1"),
                            SETUP)
    ledger.deliver_sales_order(s.Deliver(order_id=delivered, signed_by="Ann"), SETUP)
    ledger.invoice_sales_order(p.Invoice(order_id=delivered, invoice_number="INV-1",
                                         lines=((1, D("4"), None, D("0")),)), SETUP)
    reserved = place(ledger, ("FIFO-1", "WH-1", "2", "6"), ("AVG-1", "WH-1", "2", "5"))
    approve(ledger, reserved)
    cancelled = place(ledger, ("FIFO-1", "WH-1", "1", "6"))
    approve(ledger, cancelled)
    ledger.cancel_sales_order(p.OrderStep(order_id=cancelled), SETUP)
    pending = place(ledger, ("AVG-1", "WH-2", "1", "5"))
    return Orders(
        pending=pending,
        unpriced=place(ledger, ("FIFO-1", "WH-1", "1", "6"), ("AVG-1", "WH-1", "1", None)),
        duplicate=place(ledger, ("AVG-1", "WH-2", "1", "5")),
        over_limit=place(ledger, ("FIFO-1", "WH-2", "5", "6"), customer="CUS-2"),
        reserved=reserved, delivered=delivered, cancelled=cancelled)


def placing(*lines: tuple[str, str, str, str | None], customer: str = "CUS-1") -> Command:
    return lambda ledger, orders: place(ledger, *lines, customer=customer, meta=META)


def dispatching(order: str, *pairs: tuple[int, str]) -> Command:
    return lambda ledger, orders: ledger.dispatch_sales_order(p.Quantities(
        order_id=getattr(orders, order), quantities=tuple((n, D(q)) for n, q in pairs)), META)


def returning(order: str, *pairs: tuple[int, str], reason: str | None = "damaged") -> Command:
    return lambda ledger, orders: ledger.return_sales_order(p.Quantities(
        order_id=getattr(orders, order), quantities=tuple((n, D(q)) for n, q in pairs),
        reason=reason), META)


def invoicing(order: str, *lines: tuple[int, str]) -> Command:
    return lambda ledger, orders: ledger.invoice_sales_order(p.Invoice(
        order_id=getattr(orders, order), invoice_number="INV-2",
        lines=tuple((n, D(q), None, D("0")) for n, q in lines)), META)


def paying(order: str, amount: str) -> Command:
    return lambda ledger, orders: ledger.pay_sales_order(p.Payment(
        order_id=getattr(orders, order), amount=D(amount)), META)


def approving(order: str, **fields: Any) -> Command:
    return lambda ledger, orders: approve(ledger, getattr(orders, order), META, **fields)


def rejecting(order: str, reason: str | None) -> Command:
    return lambda ledger, orders: ledger.review_sales_order(s.SalesReview(
        order_id=getattr(orders, order), approved=False, reason=reason), META)


def step(order: str, command: str) -> Command:
    """ship, deliver, reserve or cancel an order."""

    def run(ledger: Ledger, orders: Orders) -> object:
        order_id = getattr(orders, order)
        if command == "ship":
            return ledger.ship_sales_order(s.Ship(order_id=order_id, carrier="DHL",
                                                  tracking_number="T-2"), META)
        if command == "deliver":
            return ledger.deliver_sales_order(s.Deliver(order_id=order_id, signed_by="Bo"),
                                              META)
        if command == "reserve":
            return ledger.reserve_sales_order(p.OrderStep(order_id=order_id), META)
        assert command == "cancel"
        return ledger.cancel_sales_order(p.OrderStep(order_id=order_id), META)

    return run


BOLT = ("FIFO-1", "WH-1", "1", "6")
UNKNOWN = uuid4()

REFUSALS = [
    # Placement.
    pytest.param(placing(BOLT, customer="NOBODY"), UnknownParty, id="place: unknown party"),
    pytest.param(placing(BOLT, customer="SUP-1"), InvalidInput, id="place: supplier-only"),
    pytest.param(placing(BOLT, ("NOPE", "WH-1", "1", "1")), UnknownItem,
                 id="place: unknown item on line 2"),
    pytest.param(placing(BOLT, ("FIFO-1", "WH-9", "1", "1")), UnknownLocation,
                 id="place: unknown location on line 2"),
    pytest.param(placing(BOLT, ("FIFO-1", "WH-1", "0", "1")), InvalidQuantity,
                 id="place: zero quantity on line 2"),
    pytest.param(placing(BOLT, ("FIFO-1", "WH-1", "1", "-1")), InvalidCost,
                 id="place: negative price on line 2"),
    pytest.param(placing(), InvalidInput, id="place: no lines"),
    # Review.
    pytest.param(approving("unpriced"), MissingPrice, id="approve: missing price"),
    pytest.param(approving("duplicate"), PossibleDuplicate, id="approve: unconfirmed duplicate"),
    pytest.param(approving("over_limit"), CreditLimitExceeded, id="approve: over credit limit"),
    pytest.param(approving("reserved"), InvalidTransition, id="approve: already approved"),
    pytest.param(approving("cancelled"), InvalidTransition, id="approve: cancelled"),
    pytest.param(rejecting("pending", None), InvalidInput, id="reject: no reason"),
    pytest.param(rejecting("delivered", "late"), InvalidTransition, id="reject: delivered"),
    # Reserve, dispatch, ship, deliver.
    pytest.param(step("pending", "reserve"), InvalidTransition, id="reserve: pending"),
    pytest.param(step("cancelled", "reserve"), InvalidTransition, id="reserve: cancelled"),
    pytest.param(dispatching("reserved", (1, "2"), (2, "2.001")), OrderLimitExceeded,
                 id="dispatch: over-shipment on line 2"),
    pytest.param(dispatching("reserved", (3, "1")), InvalidInput,
                 id="dispatch: no such line"),
    pytest.param(dispatching("reserved", (1, "1"), (1, "1")), InvalidInput,
                 id="dispatch: a line twice"),
    pytest.param(dispatching("pending"), InvalidTransition, id="dispatch: pending"),
    pytest.param(dispatching("pending", (1, "1")), InvalidTransition,
                 id="dispatch: pending, with lines"),
    pytest.param(dispatching("delivered"), InvalidTransition, id="dispatch: nothing reserved"),
    pytest.param(dispatching("cancelled"), InvalidTransition, id="dispatch: cancelled"),
    pytest.param(step("reserved", "ship"), InvalidTransition, id="ship: nothing dispatched"),
    pytest.param(step("delivered", "ship"), InvalidTransition, id="ship: nothing left"),
    pytest.param(step("reserved", "deliver"), InvalidTransition, id="deliver: nothing shipped"),
    pytest.param(step("delivered", "deliver"), InvalidTransition, id="deliver: nothing left"),
    # Invoice, pay, return.
    pytest.param(invoicing("delivered", (2, "3"), (1, "0.001")), OrderLimitExceeded,
                 id="invoice: over-invoice on line 2 of the invoice"),
    pytest.param(invoicing("reserved", (1, "1")), OrderLimitExceeded,
                 id="invoice: nothing delivered"),
    pytest.param(invoicing("pending", (1, "1")), InvalidTransition, id="invoice: pending"),
    pytest.param(paying("delivered", "24.01"), OrderLimitExceeded, id="pay: over-payment"),
    pytest.param(paying("delivered", "0"), InvalidInput, id="pay: nothing"),
    pytest.param(paying("delivered", "0.001"), InvalidInput, id="pay: three places"),
    pytest.param(paying("cancelled", "1"), InvalidTransition, id="pay: cancelled"),
    pytest.param(returning("delivered", (1, "4"), (2, "3.001")), OrderLimitExceeded,
                 id="return: over-return on line 2"),
    pytest.param(returning("delivered", (1, "1"), reason=None), InvalidInput,
                 id="return: no reason"),
    pytest.param(returning("reserved", (1, "1")), OrderLimitExceeded,
                 id="return: nothing delivered"),
    # Cancel.
    pytest.param(step("delivered", "cancel"), InvalidTransition, id="cancel: delivered"),
    pytest.param(step("cancelled", "cancel"), InvalidTransition, id="cancel: cancelled"),
    # An order that is not there.
    pytest.param(lambda ledger, orders: ledger.cancel_sales_order(
        p.OrderStep(order_id=UNKNOWN), META), UnknownOrder, id="cancel: unknown order"),
    pytest.param(lambda ledger, orders: approve(ledger, UNKNOWN, META), UnknownOrder,
                 id="approve: unknown order"),
]


def state(ledger: Ledger, orders: Orders) -> dict[str, Any]:
    """Versions of the orders and accounts, and what the bins hold and have reserved."""
    found: dict[str, Any] = {name: ledger.sales_order(order_id).version
                             for name, order_id in vars(orders).items()}
    for customer in ("CUS-1", "CUS-2"):
        found[customer] = ledger.repository.get(customer_account_id(customer)).version
    for sku in ("FIFO-1", "AVG-1"):
        stock_bin = ledger.stock_bin(sku, "WH-1")
        assert stock_bin is not None
        found[sku] = (str(stock_bin.quantity_on_hand), str(stock_bin.value),
                      dict(stock_bin.reservations))
    return found


@pytest.mark.parametrize(("command", "error"), REFUSALS)
def test_a_refused_sales_command_appends_nothing(
        shop: tuple[Ledger, Orders], command: Command, error: type[LedgerError]) -> None:
    ledger, orders = shop
    head, before = ledger.head_position(), state(ledger, orders)

    with pytest.raises(error):
        command(ledger, orders)

    assert ledger.head_position() == head
    assert state(ledger, orders) == before
    assert ledger.stock_bin("FIFO-1", "WH-2") is None
    assert META.idempotency_key is not None
    with pytest.raises(AggregateNotFoundError):
        ledger.repository.get(command_record_id(META.actor, META.idempotency_key))


def test_the_fixture_states_are_what_the_refusals_assume(shop: tuple[Ledger, Orders]) -> None:
    ledger, orders = shop

    assert {name: ledger.sales_order(order_id).status
            for name, order_id in vars(orders).items()} == {
        "pending": "pending_review", "unpriced": "pending_review",
        "duplicate": "pending_review", "over_limit": "pending_review",
        "reserved": "approved", "delivered": "invoiced", "cancelled": "cancelled"}
    assert ledger.sales_order(orders.duplicate).possible_duplicate_of == [orders.pending]
    assert str(ledger.sales_order(orders.delivered).outstanding) == "24.00"
    held = ledger.stock_bin("FIFO-1", "WH-1")
    assert held is not None
    # 10 in, 4 delivered, 2 reserved for `reserved` (the cancelled order's 1 released).
    assert (str(held.quantity_on_hand), str(held.quantity_reserved)) == ("6.000", "2.000")


def test_a_reserve_that_finds_nothing_to_reserve_appends_nothing(
        shop: tuple[Ledger, Orders]) -> None:
    ledger, orders = shop
    head, before = ledger.head_position(), state(ledger, orders)

    result = ledger.reserve_sales_order(p.OrderStep(order_id=orders.reserved), SETUP)

    assert (result.position, ledger.head_position()) == (head, head)
    assert state(ledger, orders) == before
