"""Purchase and sales orders through `Ledger` in random order keep the selling invariants.

Purchase orders (create, approve, receive) bring stock into bins; sales orders are placed
(priced or not, for a customer with or without a credit limit, now and then again with the
same lines, or for a party that is no customer), approved (with or without confirming a
duplicate) or rejected, reserved, dispatched (named quantities, sometimes too many, or all
that is reserved), shipped, delivered, invoiced, paid and returned (sometimes too much) and
cancelled; plain dispatches and stock counts work on the same bins (a count finding less than
is reserved releases the newest reservations first: the model keeps each bin's reservations in
the order the bin took them). Every rule runs on any order whatever its status, so that steps
out of order are tried as often as good ones. A plain model predicts each answer: every refusal
is a `LedgerError` with the predicted code that appends nothing, every acceptance changes what
the model says it changes.

After every step the machine checks, from the aggregates: on every bin reserved ≤ on hand,
on hand ≥ 0, and the bin's reservations are the orders' reserved quantities; per order line
dispatched ≤ approved ≤ ordered, reserved + dispatched ≤ ordered, shipped ≤ dispatched,
delivered ≤ shipped, returned ≤ delivered and invoiced − credited ≤ delivered − returned; per
order paid ≤ invoiced and credited ≤ invoiced (a payment beyond what is owed is refused);
that each customer's account is exposed for exactly the sum
of their orders' exposures (and, right after an approval, no more than their credit limit);
and that the `sales_orders` and `stock_levels` read models, caught up by a runner, show what
the aggregates hold.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import ROUND_DOWN, Decimal
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from eventsourcing.application import AggregateNotFoundError
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from ledger import purchasing as p
from ledger import selling as s
from ledger.application import CommandResult, Ledger
from ledger.commands import Count, CountLine, Dispatch, DispatchLine
from ledger.config import Settings, read_models_url, store_environment
from ledger.costing import ValuationMethod
from ledger.domain.context import CommandMeta
from ledger.domain.customer_account import CustomerAccount
from ledger.domain.identity import customer_account_id
from ledger.domain.item import ItemDetails
from ledger.domain.party import PartyDetails
from ledger.domain.purchase_order import PurchaseOrder
from ledger.domain.sales_order import SalesOrder
from ledger.domain.stock_bin import StockBin
from ledger.errors import LedgerError
from ledger.numbers import ZERO, money
from projections import queries, state
from projections.encoding import e3, money_of
from projections.service import ReadModels

ITEMS: dict[str, ValuationMethod] = {"FIFO-A": "fifo", "AVG-A": "moving_average"}
LOCATIONS = ("WH-1", "WH-2")
BINS = tuple((sku, location) for sku in ITEMS for location in LOCATIONS)
SUPPLIER = "SUP-1"
OPEN_CUSTOMER = "CUS-1"  # no credit limit
LIMITED_CUSTOMER = "CUS-2"  # a credit limit drawn per run
CUSTOMERS = (OPEN_CUSTOMER, LIMITED_CUSTOMER)
# Who may place an order, and the refusal for those who may not.
PLACERS = {OPEN_CUSTOMER: None, LIMITED_CUSTOMER: None, SUPPLIER: "validation_error",
           "NOBODY": "unknown_party"}
META = CommandMeta(actor="state-machine")
STEP = Decimal("0.001")
CENT = Decimal("0.01")
PURCHASES_MAX = 8
SALES_MAX = 9
CANCELLABLE = frozenset({"pending_review", "approved", "backordered"})
FIGURES = ("reserved", "dispatched", "shipped", "delivered", "invoiced", "returned", "credited")
MONEY = ("invoiced_amount", "invoiced_tax", "credited_amount", "credited_tax")

quantities = st.decimals(min_value=Decimal("0.5"), max_value=Decimal("8"), places=3)
unit_prices = st.decimals(min_value=ZERO, max_value=Decimal("40"), places=2)
purchase_lines = st.lists(st.tuples(
    st.sampled_from(tuple(ITEMS)), st.sampled_from(LOCATIONS),
    st.decimals(min_value=Decimal("1"), max_value=Decimal("15"), places=3),
    st.decimals(min_value=Decimal("1"), max_value=Decimal("30"), places=2)),
    min_size=1, max_size=2)
# Mostly priced lines; a line without a price keeps its order from approval.
sales_lines = st.lists(st.tuples(
    st.sampled_from(tuple(ITEMS)), st.sampled_from(LOCATIONS), quantities,
    st.integers(0, 7).flatmap(lambda pick: st.none() if pick == 7 else unit_prices)),
    min_size=1, max_size=3)
# Shares of what may still be taken: mostly within it, one time in five too much. (The simplest
# draws, which hypothesis favours, are the good ones throughout.)
shares = st.integers(0, 4).flatmap(lambda pick: st.decimals(
    min_value=Decimal("1.01") if pick == 4 else Decimal("0.1"),
    max_value=Decimal("1.3") if pick == 4 else Decimal("1"), places=2))
tax_rates = st.sampled_from([Decimal("0"), Decimal("0.06"), Decimal("0.13"), Decimal("0.1667")])
invoice_prices = st.none() | st.decimals(min_value=ZERO, max_value=Decimal("60"), places=2)

Key = tuple[str, str]
SalesLineSpec = tuple[str, str, Decimal, Decimal | None]


@dataclass(frozen=True)
class Refusal:
    """A predicted refusal: the error's code and facts the error must carry."""

    code: str
    facts: dict[str, Any] = field(default_factory=dict)


def transition(status: str, action: str) -> Refusal:
    return Refusal("invalid_transition", {"status": status, "action": action})


def over(code: str, line_number: int | None) -> Refusal:
    return Refusal(code, {"line_number": line_number})


@dataclass
class PurchaseModel:
    order_id: UUID
    lines: dict[int, list[Any]]  # number: [sku, location, ordered, price, received]
    approved: bool = False

    @property
    def status(self) -> str:
        if not self.approved:
            return "pending_review"
        if all(line[4] == ZERO for line in self.lines.values()):
            return "approved"
        if any(line[4] < line[2] for line in self.lines.values()):
            return "partially_received"
        return "received"


@dataclass
class SalesLineModel:
    sku: str
    location: str
    ordered: Decimal
    price: Decimal | None
    reserved: Decimal = ZERO
    dispatched: Decimal = ZERO
    shipped: Decimal = ZERO
    delivered: Decimal = ZERO
    invoiced: Decimal = ZERO
    returned: Decimal = ZERO
    credited: Decimal = ZERO
    invoiced_amount: Decimal = ZERO
    invoiced_tax: Decimal = ZERO
    credited_amount: Decimal = ZERO
    credited_tax: Decimal = ZERO

    @property
    def key(self) -> Key:
        return (self.sku, self.location)

    @property
    def short(self) -> Decimal:
        return self.ordered - self.dispatched - self.reserved

    @property
    def billable(self) -> Decimal:
        return self.delivered - self.returned - (self.invoiced - self.credited)


@dataclass
class SalesModel:
    order_id: UUID
    customer: str
    lines: dict[int, SalesLineModel]
    duplicate_of: list[UUID]
    review: str | None = None
    cancelled: bool = False
    invoiced_total: Decimal = ZERO
    credited_total: Decimal = ZERO
    paid: Decimal = ZERO
    version: int = 1
    history: list[str] = field(default_factory=list)

    def total(self, figure: str) -> Decimal:
        return sum((getattr(line, figure) for line in self.lines.values()), ZERO)

    @property
    def status(self) -> str:
        """As the brief states it (not as the code computes it)."""
        if self.cancelled:
            return "cancelled"
        if self.review is None:
            return "pending_review"
        if self.review == "rejected":
            return "rejected"
        lines = self.lines.values()
        if self.total("dispatched") == ZERO:
            return "backordered" if any(line.short > ZERO for line in lines) else "approved"
        if any(line.dispatched < line.ordered for line in lines):
            return "partially_dispatched"
        if self.total("shipped") < self.total("dispatched"):
            return "dispatched"
        if self.total("delivered") < self.total("shipped"):
            return "shipped"
        if self.total("returned") == self.total("delivered"):
            return "returned"
        if self.invoiced_total == ZERO:
            return "delivered"
        if self.paid >= self.invoiced_total - self.credited_total:
            return "paid"
        return "partially_paid" if self.paid > ZERO else "invoiced"

    @property
    def open(self) -> bool:
        return self.review == "approved" and not self.cancelled

    @property
    def value(self) -> Decimal:
        return sum((money(line.ordered * (line.price or ZERO)) for line in self.lines.values()),
                   ZERO)

    @property
    def outstanding(self) -> Decimal:
        return self.invoiced_total - self.credited_total - self.paid

    def exposure(self, approved: bool | None = None) -> Decimal:
        if not (self.open if approved is None else approved):
            return ZERO
        return max(max(self.value, self.invoiced_total) - self.credited_total - self.paid, ZERO)

    def can(self, action: str) -> bool:
        """Whether `action` would be accepted (with quantities within the limits)."""
        status = self.status
        checks: dict[str, Callable[[], bool]] = {
            "approve": lambda: status == "pending_review",
            "reject": lambda: status == "pending_review",
            "cancel": lambda: status in CANCELLABLE,
            "reserve": lambda: self.open and self.total("reserved") < self.total("ordered")
            - self.total("dispatched"),
            "dispatch": lambda: self.total("reserved") > ZERO,
            "ship": lambda: self.open and self.total("dispatched") > self.total("shipped"),
            "deliver": lambda: self.open and self.total("shipped") > self.total("delivered"),
            "invoice": lambda: self.open and any(
                line.billable > ZERO for line in self.lines.values()),
            "pay": lambda: self.open and self.outstanding > ZERO,
            "return": lambda: self.open and self.total("delivered") > self.total("returned"),
        }
        return checks[action]()


@dataclass(frozen=True)
class Stored:
    """The aggregates the invariants read, as of a log position."""

    head: int
    sales: list[tuple[SalesModel, SalesOrder]]
    bins: dict[Key, StockBin | None]
    accounts: dict[str, CustomerAccount | None]
    purchases: list[PurchaseOrder]


def share_of(amount: Decimal, share: Decimal, unit: Decimal = STEP) -> Decimal:
    return max((amount * share).quantize(unit, rounding=ROUND_DOWN), unit)


def part_of(total: Decimal, part: Decimal, whole: Decimal) -> Decimal:
    """`part` of `whole`'s money `total` (the brief: a share, exact when it is all of it)."""
    if part == whole:
        return total
    if part == ZERO:
        return ZERO
    return money(total * part / whole)


class OrdersMachine(RuleBasedStateMachine):
    """Purchasing and selling commands, good and bad, against a model of orders and bins."""

    def __init__(self) -> None:
        super().__init__()
        self.directory = tempfile.TemporaryDirectory(prefix="ledger-orders-")
        self.url = f"sqlite:///{Path(self.directory.name, 'ledger.db').as_posix()}"
        self.purchases: list[PurchaseModel] = []
        self.sales: list[SalesModel] = []
        self.on_hand: dict[Key, Decimal] = dict.fromkeys(BINS, ZERO)
        # Per bin, what each (order, line) holds, in the order the bin took them.
        self.reservations: dict[Key, dict[tuple[UUID, int], Decimal]] = {k: {} for k in BINS}
        self.credit_limit: Decimal | None = None
        self.limited_is_customer = True
        self.ledger: Ledger | None = None
        self.read_models: ReadModels | None = None
        self.snapshot: Stored | None = None
        self.read_models_checked = -1

    def teardown(self) -> None:
        if self.ledger is not None:
            self.ledger.close()
        if self.read_models is not None:
            self.read_models.close()
        self.directory.cleanup()

    @property
    def app(self) -> Ledger:
        assert self.ledger is not None
        return self.ledger

    @initialize(limit=st.sampled_from([Decimal("250.00"), Decimal("1000.00")]),
                stock=st.lists(st.tuples(st.sampled_from(BINS), st.decimals(
                    min_value=Decimal("1"), max_value=Decimal("20"), places=3)),
                    max_size=4, unique_by=lambda line: line[0]),
                orders=st.lists(st.tuples(st.sampled_from(CUSTOMERS), sales_lines),
                                min_size=1, max_size=3))
    def open_ledger(self, limit: Decimal, stock: list[tuple[Key, Decimal]],
                    orders: list[tuple[str, list[SalesLineSpec]]]) -> None:
        """The ledger with its reference data, some stock and some orders placed."""
        self.credit_limit = limit
        self.ledger = Ledger(store_environment(self.url))
        for sku, method in ITEMS.items():
            self.app.register_item(sku, ItemDetails(sku, "ea", method), META)
        for code in LOCATIONS:
            self.app.register_location(code, code, META)
        self.app.register_party(SUPPLIER, PartyDetails(SUPPLIER, ("supplier",)), META)
        self.app.register_party(OPEN_CUSTOMER, PartyDetails(OPEN_CUSTOMER, ("customer",)), META)
        self.register_limited(customer=True)
        self.read_models = ReadModels.open(read_models_url(Settings(database_url=self.url)))
        self.runner = self.read_models.runner(self.app.recorder, self.app.mapper)
        self.runner.prepare()
        if stock:
            self.restock_bins([(sku, location, quantity, Decimal("10"))
                               for (sku, location), quantity in stock])
        for customer, lines in orders:
            self.place_sale(customer, lines)

    def register_limited(self, *, customer: bool) -> None:
        roles = ("customer", "supplier") if customer else ("supplier",)
        self.app.register_party(LIMITED_CUSTOMER, PartyDetails(
            LIMITED_CUSTOMER, roles, self.credit_limit), META)
        self.limited_is_customer = customer

    # Running a command against the model's prediction.

    def attempt(self, refusal: Refusal | None, call: Callable[[], CommandResult],
                where: str) -> CommandResult | None:
        """Run `call`: refused as predicted (appending nothing), or accepted."""
        head = self.app.head_position()
        if refusal is None:
            return call()
        with pytest.raises(LedgerError) as raised:
            call()
        error = raised.value
        assert error.code == refusal.code, (where, refusal, error.code, error.detail)
        for name, expected in refusal.facts.items():
            assert getattr(error, name) == expected, (where, name, expected, error.detail)
        assert self.app.head_position() == head, where
        return None

    def sales_step(self, order: SalesModel, action: str, refusal: Refusal | None,
                   call: Callable[[], CommandResult]) -> CommandResult | None:
        where = f"{action} on order {order.order_id} ({order.status}) after {order.history}"
        result = self.attempt(refusal, call, where)
        order.history.append(action if result is not None else f"{action}✗")
        return result

    def after(self, order: SalesModel, result: CommandResult, events: int) -> None:
        """An accepted sales command: `events` more on the order; the answer's status."""
        order.version += events
        assert result.data["status"] == order.status, (order.history, result.data)

    def pick_sale(self, data: st.DataObject, action: str) -> SalesModel:
        """Mostly an order that may take `action` (so that orders get somewhere), else any."""
        candidates = [order for order in self.sales if order.can(action)]
        if not candidates or data.draw(st.integers(0, 9)) == 9:
            candidates = self.sales
        return data.draw(st.sampled_from(candidates))

    def chosen_lines(self, data: st.DataObject, order: SalesModel,
                     room: dict[int, Decimal]) -> list[int]:
        """Some lines of the order: mostly those with room left, now and then any."""
        numbers = sorted(n for n, left in room.items() if left > ZERO)
        if not numbers or data.draw(st.integers(0, 9)) == 9:
            numbers = sorted(order.lines)
        return data.draw(st.lists(st.sampled_from(numbers), min_size=1, max_size=len(numbers),
                                  unique=True))

    def asked(self, data: st.DataObject, order: SalesModel, room: dict[int, Decimal],
              share: Decimal, code: str) -> tuple[list[tuple[int, Decimal]], Refusal | None]:
        """Quantities for some lines (a share of each line's room) and the first refusal."""
        wanted: list[tuple[int, Decimal]] = []
        refusal = None
        for n in self.chosen_lines(data, order, room):
            quantity = share_of(max(room[n], STEP), share)
            wanted.append((n, quantity))
            if refusal is None and quantity > room[n]:
                refusal = over(code, n)
        return wanted, refusal

    # Purchasing: stock into the bins.

    @precondition(lambda self: self.ledger is not None and len(self.purchases) < PURCHASES_MAX)
    @rule(lines=purchase_lines)
    def create_purchase(self, lines: list[tuple[str, str, Decimal, Decimal]]) -> None:
        result = self.app.create_purchase_order(p.CreateOrder(supplier=SUPPLIER, lines=tuple(
            p.OrderLine(sku, location, quantity, price)
            for sku, location, quantity, price in lines)), META)
        assert result.data["status"] == "pending_review"
        self.purchases.append(PurchaseModel(result.data["order_id"], {
            n: [sku, location, quantity, price, ZERO]
            for n, (sku, location, quantity, price) in enumerate(lines, start=1)}))

    @precondition(lambda self: self.ledger is not None and len(self.purchases) < PURCHASES_MAX)
    @rule(lines=purchase_lines)
    def restock(self, lines: list[tuple[str, str, Decimal, Decimal]]) -> None:
        """A purchase order created, approved and received in full in one go."""
        self.restock_bins(lines)

    def restock_bins(self, lines: list[tuple[str, str, Decimal, Decimal]]) -> None:
        self.create_purchase(lines)
        order = self.purchases[-1]
        self.app.review_purchase_order(p.Review(order_id=order.order_id, approved=True), META)
        order.approved = True
        self.app.receive_purchase_order(p.Quantities(order_id=order.order_id, quantities=tuple(
            (n, line[2]) for n, line in order.lines.items())), META)
        for line in order.lines.values():
            line[4] = line[2]
            self.on_hand[line[0], line[1]] += line[2]
        assert order.status == "received"

    @precondition(lambda self: bool(self.purchases))
    @rule(data=st.data(), share=shares, action=st.sampled_from(["receive", "receive", "approve"]))
    def purchase(self, data: st.DataObject, share: Decimal, action: str) -> None:
        """Approve a purchase order, or receive on it (pending ones are mostly approved)."""
        order = data.draw(st.sampled_from(self.purchases))
        status = order.status
        if status == "pending_review" and data.draw(st.integers(0, 4)) > 0:
            action = "approve"
        if action == "approve":
            refusal = None if status == "pending_review" else transition(status, "approve")
            if self.attempt(refusal, lambda: self.app.review_purchase_order(
                    p.Review(order_id=order.order_id, approved=True), META), "approve PO"):
                order.approved = True
            return
        wanted, refusal = [], None
        for n, (_, _, ordered, _, received) in sorted(order.lines.items()):
            quantity = share_of(max(ordered - received, STEP), share)
            wanted.append((n, quantity))
            if refusal is None and quantity > ordered - received:
                refusal = over("over_receipt", n)
        if status == "pending_review":
            refusal = transition(status, "receive")
        command = p.Quantities(order_id=order.order_id, quantities=tuple(wanted))
        if self.attempt(refusal, lambda: self.app.receive_purchase_order(command, META),
                        "receive PO"):
            for n, quantity in wanted:
                line = order.lines[n]
                line[4] += quantity
                self.on_hand[line[0], line[1]] += quantity

    # Selling.

    @precondition(lambda self: self.ledger is not None and len(self.sales) < SALES_MAX)
    @rule(placer=st.sampled_from(
        [OPEN_CUSTOMER, LIMITED_CUSTOMER, OPEN_CUSTOMER, LIMITED_CUSTOMER, SUPPLIER, "NOBODY"]),
        lines=sales_lines)
    def place(self, placer: str, lines: list[SalesLineSpec]) -> None:
        self.place_sale(placer, lines)

    @precondition(lambda self: bool(self.sales) and len(self.sales) < SALES_MAX)
    @rule(data=st.data(), placer=st.sampled_from(
        [OPEN_CUSTOMER, LIMITED_CUSTOMER, OPEN_CUSTOMER, LIMITED_CUSTOMER, SUPPLIER]))
    def place_again(self, data: st.DataObject, placer: str) -> None:
        """The lines of an earlier order, in any order: a likely duplicate (same customer)."""
        earlier = data.draw(st.sampled_from(self.sales))
        self.place_sale(placer, data.draw(st.permutations([
            (line.sku, line.location, line.ordered, line.price)
            for line in earlier.lines.values()])))

    def place_sale(self, placer: str, lines: list[SalesLineSpec]) -> None:
        command = s.PlaceOrder(customer=placer, lines=tuple(
            s.SalesLine(sku, location, quantity, price)
            for sku, location, quantity, price in lines))
        code = PLACERS[placer]
        if placer == LIMITED_CUSTOMER and not self.limited_is_customer:
            code = "validation_error"
        if code is not None:
            self.attempt(Refusal(code), lambda: self.app.place_sales_order(command, META),
                         f"place for {placer}")
            return
        same = sorted(lines, key=repr)
        duplicates = [order.order_id for order in self.sales if order.customer == placer
                      and sorted(((line.sku, line.location, line.ordered, line.price)
                                  for line in order.lines.values()), key=repr) == same]
        result = self.app.place_sales_order(command, META)
        assert result.data["status"] == "pending_review"
        assert result.data["possible_duplicate_of"] == duplicates, (lines, duplicates)
        self.sales.append(SalesModel(result.data["order_id"], placer, {
            n: SalesLineModel(sku, location, quantity, price)
            for n, (sku, location, quantity, price) in enumerate(lines, start=1)}, duplicates))

    @precondition(lambda self: self.ledger is not None)
    @rule(customer=st.sampled_from([True, True, False]))
    def change_limited_customer(self, customer: bool) -> None:
        """The limited customer stops (or starts again) being a customer."""
        self.register_limited(customer=customer)

    @precondition(lambda self: bool(self.sales))
    @rule(data=st.data(), approved=st.sampled_from([True, True, True, False]),
          confirm=st.booleans(), reason=st.sampled_from(["too dear", "too dear", None]))
    def review(self, data: st.DataObject, approved: bool, confirm: bool,
               reason: str | None) -> None:
        order = self.pick_sale(data, "approve" if approved else "reject")
        self.review_sale(order, approved, confirm, reason)

    def review_sale(self, order: SalesModel, approved: bool, confirm: bool,
                    reason: str | None) -> None:
        action = "approve" if approved else "reject"
        refusal = self.review_refusal(order, approved, confirm, reason)
        command = s.SalesReview(order_id=order.order_id, approved=approved, reason=reason,
                                confirm_duplicate=confirm)
        result = self.sales_step(order, action, refusal,
                                 lambda: self.app.review_sales_order(command, META))
        if result is None:
            return
        order.review = "approved" if approved else "rejected"
        events = 1
        if approved:
            events += self.reserve_model(order)
            self.check_reservations(order, result)
            if order.customer == LIMITED_CUSTOMER:
                assert self.credit_limit is not None
                assert self.account_exposure(order.customer) <= self.credit_limit
        self.after(order, result, events)

    def review_refusal(self, order: SalesModel, approved: bool, confirm: bool,
                       reason: str | None) -> Refusal | None:
        status = order.status
        if not approved and reason is None:
            return Refusal("validation_error")
        if status != "pending_review":
            return transition(status, "approve" if approved else "reject")
        if not approved:
            return None
        if order.customer == LIMITED_CUSTOMER and not self.limited_is_customer:
            return Refusal("validation_error")
        unpriced = [n for n, line in order.lines.items() if line.price is None]
        if unpriced:
            return Refusal("missing_price", {"line_numbers": unpriced})
        if order.duplicate_of and not confirm:
            return Refusal("possible_duplicate", {
                "duplicate_of": [str(other) for other in order.duplicate_of]})
        if order.customer == LIMITED_CUSTOMER:
            assert self.credit_limit is not None
            others = sum((other.exposure() for other in self.sales
                          if other.customer == order.customer), ZERO)
            if others + order.value > self.credit_limit:
                return Refusal("credit_limit_exceeded", {
                    "exposure": others, "order_exposure": order.value,
                    "credit_limit": self.credit_limit})
        return None

    def reserve_model(self, order: SalesModel) -> int:
        """Reserve what each short line's bin has available; the events it takes (0 or 1)."""
        got = False
        for n, line in sorted(order.lines.items()):
            held = self.reservations[line.key]
            available = max(self.on_hand[line.key] - sum(held.values(), ZERO), ZERO)
            quantity = min(line.short, available)
            if quantity > ZERO:
                got = True
                line.reserved += quantity
                held[order.order_id, n] = held.get((order.order_id, n), ZERO) + quantity
        return int(got)

    def check_reservations(self, order: SalesModel, result: CommandResult) -> None:
        report = {row["line_number"]: (row["reserved"], row["short"])
                  for row in result.data["reservations"]}
        assert report == {n: (line.reserved, line.short) for n, line in order.lines.items()}

    @precondition(lambda self: bool(self.sales))
    @rule(data=st.data())
    def reserve(self, data: st.DataObject) -> None:
        order = self.pick_sale(data, "reserve")
        self.reserve_sale(order)

    def reserve_sale(self, order: SalesModel) -> None:
        refusal = None if order.open else transition(order.status, "reserve")
        head = self.app.head_position()
        result = self.sales_step(order, "reserve", refusal, lambda: self.app.reserve_sales_order(
            p.OrderStep(order_id=order.order_id), META))
        if result is None:
            return
        events = self.reserve_model(order)
        self.check_reservations(order, result)
        if not events:
            assert result.position == head == self.app.head_position(), order.history
        self.after(order, result, events)

    @precondition(lambda self: bool(self.sales))
    @rule(data=st.data(), everything=st.booleans(), share=shares)
    def dispatch(self, data: st.DataObject, everything: bool, share: Decimal) -> None:
        """Dispatch everything reserved, or named quantities (now and then too many)."""
        order = self.pick_sale(data, "dispatch")
        if everything:
            self.dispatch_sale(order, None, None)
            return
        wanted, refusal = self.asked(data, order, {n: line.reserved
                                                   for n, line in order.lines.items()},
                                     share, "over_shipment")
        self.dispatch_sale(order, wanted, refusal)

    def dispatch_sale(self, order: SalesModel, named: list[tuple[int, Decimal]] | None,
                      refusal: Refusal | None) -> None:
        """`named` quantities per line, or (None) everything reserved."""
        if named is None:
            wanted = [(n, line.reserved) for n, line in sorted(order.lines.items())
                      if line.reserved > ZERO]
            if not wanted:
                refusal = transition(order.status, "dispatch: nothing is reserved")
        else:
            wanted = named
            if not order.open:
                refusal = transition(order.status, "dispatch")
        command = p.Quantities(order_id=order.order_id, quantities=tuple(named or ()))
        result = self.sales_step(order, "dispatch", refusal,
                                 lambda: self.app.dispatch_sales_order(command, META))
        if result is None:
            return
        for n, quantity in wanted:
            line = order.lines[n]
            line.reserved -= quantity
            line.dispatched += quantity
            self.on_hand[line.key] -= quantity
            self.unreserve(line.key, (order.order_id, n), quantity)
        self.after(order, result, 1)

    def unreserve(self, key: Key, holder: tuple[UUID, int], quantity: Decimal) -> None:
        held = self.reservations[key]
        left = held[holder] - quantity
        if left > ZERO:
            held[holder] = left
        else:
            del held[holder]

    @precondition(lambda self: bool(self.sales))
    @rule(data=st.data(), deliver=st.booleans())
    def ship_or_deliver(self, data: st.DataObject, deliver: bool) -> None:
        order = self.pick_sale(data, "deliver" if deliver else "ship")
        if deliver:
            self.deliver_sale(order)
        else:
            self.ship_sale(order)

    def ship_sale(self, order: SalesModel) -> None:
        refusal = None if order.can("ship") else transition(order.status, "ship")
        command = s.Ship(order_id=order.order_id, carrier="DHL", tracking_number="TRK-1")
        if result := self.sales_step(order, "ship", refusal,
                                     lambda: self.app.ship_sales_order(command, META)):
            for line in order.lines.values():
                line.shipped = line.dispatched
            self.after(order, result, 1)

    def deliver_sale(self, order: SalesModel) -> None:
        refusal = None if order.can("deliver") else transition(order.status, "deliver")
        command = s.Deliver(order_id=order.order_id, signed_by="R. Customer")
        if result := self.sales_step(order, "deliver", refusal,
                                     lambda: self.app.deliver_sales_order(command, META)):
            for line in order.lines.values():
                line.delivered = line.shipped
            self.after(order, result, 1)

    @precondition(lambda self: bool(self.sales))
    @rule(data=st.data(), share=shares, rate=tax_rates, price=invoice_prices)
    def invoice(self, data: st.DataObject, share: Decimal, rate: Decimal,
                price: Decimal | None) -> None:
        order = self.pick_sale(data, "invoice")
        wanted, refusal = self.asked(data, order, {n: line.billable
                                                   for n, line in order.lines.items()},
                                     share, "over_invoice")
        self.invoice_sale(order, wanted, refusal, rate, price)

    def invoice_sale(self, order: SalesModel, wanted: list[tuple[int, Decimal]],
                     refusal: Refusal | None, rate: Decimal, price: Decimal | None) -> None:
        if not order.open:
            refusal = transition(order.status, "invoice")
        command = p.Invoice(order_id=order.order_id, invoice_number=f"SI-{order.version}",
                            lines=tuple((n, quantity, price, rate) for n, quantity in wanted))
        result = self.sales_step(order, "invoice", refusal,
                                 lambda: self.app.invoice_sales_order(command, META))
        if result is None:
            return
        for n, quantity in wanted:
            line = order.lines[n]
            unit_price = line.price if price is None else price
            assert unit_price is not None, "an approved order's lines are priced"
            amount = money(quantity * unit_price)
            tax = money(amount * rate)
            line.invoiced += quantity
            line.invoiced_amount += amount
            line.invoiced_tax += tax
            order.invoiced_total += amount + tax
        self.after(order, result, 1)

    @precondition(lambda self: bool(self.sales))
    @rule(data=st.data(), share=shares)
    def pay(self, data: st.DataObject, share: Decimal) -> None:
        """A share of what is owed (sometimes more); now and then an amount that is no amount."""
        order = self.pick_sale(data, "pay")
        amount = data.draw(st.sampled_from([None] * 8 + [ZERO, Decimal("0.005")]))
        self.pay_sale(order, share_of(max(order.outstanding, CENT), share, CENT)
                      if amount is None else amount)

    def pay_sale(self, order: SalesModel, amount: Decimal) -> None:
        if amount <= ZERO or amount != amount.quantize(CENT):
            refusal: Refusal | None = Refusal("validation_error")
        elif not order.open:
            refusal = transition(order.status, "pay")
        elif amount > order.outstanding:
            refusal = over("over_payment", None)
        else:
            refusal = None
        command = p.Payment(order_id=order.order_id, amount=amount)
        if result := self.sales_step(order, "pay", refusal,
                                     lambda: self.app.pay_sales_order(command, META)):
            order.paid += amount
            self.after(order, result, 1)

    @precondition(lambda self: bool(self.sales))
    @rule(data=st.data(), share=shares, reason=st.sampled_from(["damaged", "damaged", None]))
    def return_goods(self, data: st.DataObject, share: Decimal, reason: str | None) -> None:
        order = self.pick_sale(data, "return")
        wanted, refusal = self.asked(data, order, {n: line.delivered - line.returned
                                                   for n, line in order.lines.items()},
                                     share, "over_return")
        if not order.open:
            refusal = transition(order.status, "return")
        if reason is None:
            refusal = Refusal("validation_error")
        command = p.Quantities(order_id=order.order_id, quantities=tuple(wanted), reason=reason)
        result = self.sales_step(order, "return", refusal,
                                 lambda: self.app.return_sales_order(command, META))
        if result is None:
            return
        credit = ZERO
        for n, quantity in wanted:
            line = order.lines[n]
            net = line.invoiced - line.credited
            credited = min(quantity, net)
            amount = part_of(line.invoiced_amount - line.credited_amount, credited, net)
            tax = part_of(line.invoiced_tax - line.credited_tax, credited, net)
            line.returned += quantity
            line.credited += credited
            line.credited_amount += amount
            line.credited_tax += tax
            credit += amount + tax
            self.on_hand[line.key] += quantity
        order.credited_total += credit
        assert result.data["credit_note"]["total"] == credit, (order.history, result.data)
        self.after(order, result, 1)

    @precondition(lambda self: bool(self.sales))
    @rule(data=st.data(), reason=st.sampled_from(["changed mind", None]), skip=st.booleans())
    def cancel(self, data: st.DataObject, reason: str | None, skip: bool) -> None:
        """Cancel (half the time nothing: cancelled orders get nowhere)."""
        if skip:
            return
        order = self.pick_sale(data, "cancel")
        status = order.status
        refusal = None if status in CANCELLABLE else transition(status, "cancel")
        result = self.sales_step(order, "cancel", refusal, lambda: self.app.cancel_sales_order(
            p.OrderStep(order_id=order.order_id, reason=reason), META))
        if result is None:
            return
        released = False
        for n, line in order.lines.items():
            if line.reserved > ZERO:
                released = True
                self.unreserve(line.key, (order.order_id, n), line.reserved)
                line.reserved = ZERO
        order.cancelled = True
        self.after(order, result, 1 + int(released))

    @precondition(lambda self: bool(self.sales))
    @rule(data=st.data(), share=shares, rate=tax_rates, steps=st.integers(1, 2),
          partial=st.booleans())
    def advance(self, data: st.DataObject, share: Decimal, rate: Decimal, steps: int,
                partial: bool) -> None:
        """Take an order a few steps along the usual path, so that orders get far.

        A back-ordered order goes out in part only when `partial`: otherwise it keeps its
        reservations (for counts to find) until it is complete.
        """
        candidates = [order for order in self.sales
                      if self.next_step(order, partial) is not None]
        if not candidates:
            return
        order = data.draw(st.sampled_from(candidates))
        for _ in range(steps):
            self.advance_sale(order, share, rate, partial)

    @precondition(lambda self: bool(self.sales))
    @rule(data=st.data(), share=shares, rate=tax_rates, steps=st.integers(1, 2),
          partial=st.booleans())
    def advance_again(self, data: st.DataObject, share: Decimal, rate: Decimal, steps: int,
                      partial: bool) -> None:
        """The same (a second rule: hypothesis picks rules evenly, and this one matters)."""
        self.advance(data, share, rate, steps, partial)

    def advance_sale(self, order: SalesModel, share: Decimal, rate: Decimal,
                     partial: bool) -> None:
        step = self.next_step(order, partial)
        if step is None:
            return
        if step == "approve":
            self.review_sale(order, approved=True, confirm=True, reason=None)
        elif step == "dispatch":
            self.dispatch_sale(order, None, None)
        elif step == "reserve":
            self.reserve_sale(order)
        elif step == "ship":
            self.ship_sale(order)
        elif step == "deliver":
            self.deliver_sale(order)
        elif step == "invoice":
            self.invoice_sale(order, [(n, line.billable) for n, line in order.lines.items()
                                      if line.billable > ZERO], None, rate, None)
        else:
            self.pay_sale(order, share_of(order.outstanding, min(share, Decimal(1)), CENT))

    def next_step(self, order: SalesModel, partial: bool) -> str | None:
        if order.status == "pending_review":
            priced = all(line.price is not None for line in order.lines.values())
            return "approve" if priced else None
        if not order.open:
            return None
        later = next((step for step in ("ship", "deliver", "invoice", "pay") if order.can(step)),
                     None)
        if later is not None:
            return later
        lines = order.lines.values()
        if any(line.short > ZERO and self.available(line.key) > ZERO for line in lines):
            return "reserve"
        if order.can("dispatch") and (partial or all(line.short == ZERO for line in lines)):
            return "dispatch"
        return None

    # Plain stock documents on the same bins.

    def available(self, key: Key) -> Decimal:
        return self.on_hand[key] - sum(self.reservations[key].values(), ZERO)

    @precondition(lambda self: self.ledger is not None)
    @rule(where=st.sampled_from(BINS), share=shares)
    def plain_dispatch(self, where: Key, share: Decimal) -> None:
        """A dispatch outside any order: only what is available (not reserved)."""
        available = self.available(where)
        quantity = share_of(max(available, STEP), share)
        refusal = Refusal("insufficient_stock") if quantity > available else None
        sku, location = where
        command = Dispatch(location=location, lines=(DispatchLine(sku, quantity),))
        if self.attempt(refusal, lambda: self.app.dispatch(command, META), f"dispatch {where}"):
            self.on_hand[where] -= quantity

    @precondition(lambda self: self.ledger is not None)
    @rule(data=st.data(), share=st.decimals(min_value=ZERO, max_value=Decimal("1.2"), places=2),
          of_reserved=st.booleans())
    def count(self, data: st.DataObject, share: Decimal, of_reserved: bool) -> None:
        """A count finding a share of what is reserved, or of what is on hand.

        Mostly on a bin holding reservations, so that counts finding less release some.
        """
        reserved = [key for key in BINS if self.reservations[key]]
        if not reserved or data.draw(st.integers(0, 3)) == 3:
            reserved = list(BINS)
        where = data.draw(st.sampled_from(reserved))
        reserved_here = sum(self.reservations[where].values(), ZERO)
        base = reserved_here if of_reserved and reserved_here else self.on_hand[where]
        counted = (base * share).quantize(STEP, rounding=ROUND_DOWN)
        sku, location = where
        self.app.count(Count(location=location, reason="cycle count",
                             lines=(CountLine(sku, counted),)), META)
        orders = {order.order_id: order for order in self.sales}
        held = self.reservations[where]
        excess = sum(held.values(), ZERO) - counted
        for holder in reversed(list(held)):
            if excess <= ZERO:
                break
            amount = min(excess, held[holder])
            self.unreserve(where, holder, amount)
            order = orders[holder[0]]
            order.lines[holder[1]].reserved -= amount
            order.version += 1
            order.history.append(f"count released {amount} of line {holder[1]}")
            excess -= amount
        self.on_hand[where] = counted

    # Reading the aggregates.

    def account(self, customer: str) -> CustomerAccount | None:
        try:
            account: object = self.app.repository.get(customer_account_id(customer))
        except AggregateNotFoundError:
            return None
        assert isinstance(account, CustomerAccount)
        return account

    def account_exposure(self, customer: str) -> Decimal:
        account = self.account(customer)
        return ZERO if account is None else account.total_exposure

    def stored(self) -> Stored:
        """The aggregates as they stand, loaded again only when something was appended."""
        head = self.app.head_position()
        if self.snapshot is None or self.snapshot.head != head:
            self.snapshot = Stored(
                head, [(order, self.app.sales_order(order.order_id)) for order in self.sales],
                {key: self.app.stock_bin(*key) for key in BINS},
                {customer: self.account(customer) for customer in CUSTOMERS},
                [self.app.purchase_order(order.order_id) for order in self.purchases])
        return self.snapshot

    # Invariants.

    @invariant()
    def bins_hold_what_the_orders_reserve(self) -> None:
        if self.ledger is None:
            return
        stored = self.stored().sales
        for key in BINS:
            stock_bin = self.stored().bins[key]
            on_hand = ZERO if stock_bin is None else stock_bin.quantity_on_hand
            reserved = ZERO if stock_bin is None else stock_bin.quantity_reserved
            assert ZERO <= reserved <= on_hand, (key, reserved, on_hand)
            by_orders = sum((line["reserved"] for _, order in stored
                             for line in order.lines.values()
                             if (line["sku"], line["location"]) == key), ZERO)
            assert reserved == by_orders, (key, reserved, by_orders)
            holders = {} if stock_bin is None else stock_bin.reservations
            assert holders == {f"{order_id}/{n}": quantity for (order_id, n), quantity
                               in self.reservations[key].items()}, key
            assert on_hand == self.on_hand[key], (key, on_hand, self.on_hand[key])

    @invariant()
    def order_lines_stay_within_their_limits(self) -> None:
        if self.ledger is None:
            return
        for model, order in self.stored().sales:
            approved_order = order.review_outcome == "approved"
            for n, line in order.lines.items():
                ordered = line["quantity"]
                approved = ordered if approved_order else ZERO
                where = (model.order_id, n, model.history, line)
                assert line["dispatched"] <= approved <= ordered, where
                assert line["reserved"] >= ZERO, where
                assert line["reserved"] + line["dispatched"] <= ordered, where
                assert line["shipped"] <= line["dispatched"], where
                assert line["delivered"] <= line["shipped"], where
                assert line["returned"] <= line["delivered"], where
                assert (line["invoiced"] - line["credited"]
                        <= line["delivered"] - line["returned"]), where
                # Stock comes back at the cost it went out at: all of it when all came back.
                assert ZERO <= line["returned_value"] <= line["dispatched_value"], where
                if line["returned"] == line["dispatched"]:
                    assert line["returned_value"] == line["dispatched_value"], where
            # The rule: never more paid than invoiced (a payment is refused beyond what
            # is owed when it is made; a credit note after payment leaves a refund due, shown
            # as a negative outstanding), and never more credited than invoiced.
            facts = (model.order_id, model.history, order.paid, order.invoiced_total,
                     order.credited_total)
            assert order.paid <= order.invoiced_total, facts
            assert order.credited_total <= order.invoiced_total, facts

    @invariant()
    def aggregates_hold_what_the_model_holds(self) -> None:
        if self.ledger is None:
            return
        for model, order in self.stored().sales:
            where = (model.order_id, model.history)
            assert (order.status, order.version, order.customer) == (
                model.status, model.version, model.customer), where
            assert (order.invoiced_total, order.credited_total, order.paid) == (
                model.invoiced_total, model.credited_total, model.paid), where
            for n, line in model.lines.items():
                held = order.lines[n]
                assert {name: held[name] for name in (*FIGURES, *MONEY)} == {
                    name: getattr(line, name) for name in (*FIGURES, *MONEY)}, (*where, n)
            assert order.exposure() == model.exposure(), where
        for purchase, stored in zip(self.purchases, self.stored().purchases, strict=True):
            assert stored.status == purchase.status
            assert {n: held["received"] for n, held in stored.lines.items()} == {
                n: line[4] for n, line in purchase.lines.items()}

    @invariant()
    def accounts_are_exposed_for_their_orders(self) -> None:
        if self.ledger is None:
            return
        stored = self.stored()
        for customer in CUSTOMERS:
            account = stored.accounts[customer]
            mine = [order for _, order in stored.sales if order.customer == customer]
            total = sum((order.exposure() for order in mine), ZERO)
            assert (ZERO if account is None else account.total_exposure) == total, customer
            if account is not None:
                for order in mine:
                    assert account.exposure_of(order.id) == order.exposure(), customer

    @invariant()
    def read_models_show_what_the_aggregates_hold(self) -> None:
        if self.read_models is None or self.read_models_checked == self.app.head_position():
            return  # (nothing new to fold since the last check)
        self.runner.catch_up()
        orders_projection = self.read_models.by_name["sales_orders"]
        levels = self.read_models.by_name["stock_levels"]
        with self.read_models.database.reader.connect() as connection:
            generations = state.read(connection, ["sales_orders", "stock_levels"])
            page = queries.orders(connection, orders_projection,
                                  generations["sales_orders"].generation, status=None,
                                  party=("customer", None), after=0, limit=SALES_MAX + 1)
            stock = queries.stock(connection, levels, generations["stock_levels"].generation,
                                  sku=None, location=None, after=None, limit=len(BINS) + 1)
        assert [row["order_id"] for row in page.rows] == [str(o.order_id) for o in self.sales]
        for row, (model, order) in zip(page.rows, self.stored().sales, strict=True):
            where = (model.order_id, model.history)
            assert (row["status"], row["customer"], row["version"]) == (
                order.status, order.customer, order.version), where
            assert (money_of(row["invoiced_total_e2"]), money_of(row["credited_total_e2"]),
                    money_of(row["paid_e2"])) == (
                order.invoiced_total, order.credited_total, order.paid), where
            assert json.loads(row["possible_duplicate_of"]) == [
                str(other) for other in order.possible_duplicate_of], where
            timeline = json.loads(row["timeline"])
            assert [moment["position"] for moment in timeline] == sorted(
                {moment["position"] for moment in timeline}), where
            assert len(timeline) == order.version, where
            lines = {line["line_number"]: line for line in json.loads(row["lines"])}
            assert set(lines) == set(order.lines), where
            for n, held in order.lines.items():
                shown = lines[n]
                for name, value in held.items():
                    if isinstance(value, Decimal):
                        assert Decimal(shown[name]) == value, (*where, n, name)
                    else:
                        assert shown[name] == value, (*where, n, name)
        shown_bins = {(row["sku"], row["location"]): row for row in stock.rows}
        for key, stock_bin in self.stored().bins.items():
            if stock_bin is None:
                assert key not in shown_bins
                continue
            row = shown_bins[key]
            assert row["quantity_reserved_e3"] == e3(stock_bin.quantity_reserved), key
            assert row["quantity_on_hand_e3"] == e3(stock_bin.quantity_on_hand), key
        self.read_models_checked = self.app.head_position()


# Every step is a real transaction and a read-model catch-up, so shrinking a failure would take
# minutes: it is skipped, and each assertion names the order's history instead.
OrdersMachine.TestCase.settings = settings(
    max_examples=30,
    stateful_step_count=40,
    deadline=None,
    phases=(Phase.explicit, Phase.reuse, Phase.generate),
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
test_orders_state_machine = OrdersMachine.TestCase
