"""Purchase orders through `Ledger` in random order keep the purchasing invariants.

Each rule is a purchasing command (create, approve, reject, receive, return, invoice, pay,
cancel, close) or a dispatch that sells some of what was received, on any order whatever its
status, so that steps out of order and quantities over the limits are tried as often as good
ones. A plain model predicts each answer. After every step the machine checks, per order line,
received ≤ ordered × (1 + tolerance), returned ≤ received, invoiced ≤ received − returned, and
paid ≤ invoiced total; that no bin is below zero and FIFO layers add up to the bin; and that the
`purchase_orders` read model, caught up by a runner, shows what the aggregates hold.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import ROUND_DOWN, Decimal
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from ledger import purchasing as p
from ledger.application import Ledger
from ledger.commands import Dispatch, DispatchLine
from ledger.config import Settings, read_models_url, store_environment
from ledger.costing import ValuationMethod
from ledger.domain.context import CommandMeta
from ledger.domain.item import ItemDetails
from ledger.domain.party import PartyDetails
from ledger.errors import InsufficientStock, InvalidInput, InvalidTransition, OrderLimitExceeded
from ledger.numbers import ZERO, money
from projections import queries, state
from projections.encoding import money_of
from projections.service import ReadModels

ITEMS: dict[str, ValuationMethod] = {"FIFO-A": "fifo", "AVG-A": "moving_average"}
LOCATIONS = ("WH-1", "WH-2")
SUPPLIERS = ("SUP-1", "SUP-2")
CUSTOMER = "CUS-1"
META = CommandMeta(actor="state-machine")
STEP = Decimal("0.001")
ORDERS_MAX = 10
OPEN_ORDERS_MAX = 2
FINAL = frozenset({"rejected", "cancelled", "closed"})
NEXT_STEP = {"pending_review": "approve", "approved": "receive",
             "partially_received": "receive", "received": "invoice", "invoiced": "pay"}
# (order line, refusal code, asked for, the most allowed)
Limit = tuple[int | None, str, Decimal, Decimal]
ALLOWED = {
    "approve": {"pending_review"},
    "reject": {"pending_review"},
    "receive": {"approved", "partially_received", "received", "invoiced", "paid"},
    "return": {"partially_received", "received", "invoiced", "paid", "closed"},
    "invoice": {"partially_received", "received", "invoiced", "paid", "closed"},
    "pay": {"partially_received", "received", "invoiced", "closed"},
    "cancel": {"pending_review", "approved", "partially_received"},
    "close": {"approved", "partially_received", "received", "invoiced", "paid"},
}

order_lines = st.lists(st.tuples(
    st.sampled_from(tuple(ITEMS)), st.sampled_from(LOCATIONS),
    st.decimals(min_value=STEP, max_value=Decimal("50"), places=3),
    st.decimals(min_value=ZERO, max_value=Decimal("100"), places=2)), min_size=1, max_size=3)
# Shares of what a line may still take: mostly within it, one time in five too much. (The
# simplest draws, which hypothesis favours, are the good ones throughout.)
shares = st.integers(0, 4).flatmap(lambda pick: st.decimals(
    min_value=Decimal("1.01") if pick == 4 else Decimal("0.1"),
    max_value=Decimal("1.3") if pick == 4 else Decimal("1"), places=2))
tax_rates = st.sampled_from([Decimal("0"), Decimal("0.06"), Decimal("0.13"), Decimal("0.1667")])
prices = st.none() | st.decimals(min_value=ZERO, max_value=Decimal("100"), places=2)


@dataclass
class LineModel:
    sku: str
    location: str
    ordered: Decimal
    price: Decimal
    received: Decimal = ZERO
    returned: Decimal = ZERO
    invoiced: Decimal = ZERO


@dataclass
class OrderModel:
    order_id: UUID
    supplier: str
    lines: dict[int, LineModel]
    review: str | None = None
    ended: str | None = None
    invoiced_total: Decimal = ZERO
    paid: Decimal = ZERO
    version: int = 1
    history: list[str] = field(default_factory=list)

    @property
    def status(self) -> str:
        if self.ended is not None:
            return self.ended
        if self.review != "approved":
            return self.review or "pending_review"
        if all(line.received == ZERO for line in self.lines.values()):
            return "approved"
        if any(line.received < line.ordered for line in self.lines.values()):
            return "partially_received"
        if self.invoiced_total > ZERO:
            return "paid" if self.paid >= self.invoiced_total else "invoiced"
        return "received"


def share_of(amount: Decimal, share: Decimal) -> Decimal:
    return max((amount * share).quantize(STEP, rounding=ROUND_DOWN), STEP)


class PurchasingMachine(RuleBasedStateMachine):
    """Purchasing commands, good and bad, against a model of each order and bin."""

    def __init__(self) -> None:
        super().__init__()
        self.directory = tempfile.TemporaryDirectory(prefix="ledger-purchasing-")
        self.url = f"sqlite:///{Path(self.directory.name, 'ledger.db').as_posix()}"
        self.orders: list[OrderModel] = []
        self.on_hand: dict[tuple[str, str], Decimal] = {}
        self.ledger: Ledger | None = None
        self.read_models: ReadModels | None = None
        self.tolerance = ZERO

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

    @initialize(tolerance=st.sampled_from([Decimal("0"), Decimal("0.1")]))
    def open_ledger(self, tolerance: Decimal) -> None:
        self.tolerance = tolerance
        self.ledger = Ledger(store_environment(self.url), over_receipt_tolerance=tolerance)
        for sku, method in ITEMS.items():
            self.app.register_item(sku, ItemDetails(sku, "ea", method), META)
        for code in LOCATIONS:
            self.app.register_location(code, code, META)
        for code in SUPPLIERS:
            self.app.register_party(code, PartyDetails(code, ("supplier",)), META)
        self.app.register_party(CUSTOMER, PartyDetails(CUSTOMER, ("customer",)), META)
        self.read_models = ReadModels.open(read_models_url(Settings(database_url=self.url)))
        self.runner = self.read_models.runner(self.app.recorder, self.app.mapper)
        self.runner.prepare()

    # Running a command against the model's prediction.

    def expect(self, order: OrderModel, action: str, command: Any, method: str,
               limits: Sequence[Limit]) -> bool:
        """Run `command`; it must be refused as predicted, or accepted. True if accepted.

        `limits` are (line number, refusal code, requested, allowed) in command order.
        """
        status = order.status
        head = self.app.head_position()
        call = getattr(self.app, method)
        if status not in ALLOWED[action]:
            with pytest.raises(InvalidTransition) as refusal:
                call(command, META)
            assert (refusal.value.status, refusal.value.action) == (status, action)
        elif over := next(((n, code) for n, code, asked, most in limits if asked > most), None):
            with pytest.raises(OrderLimitExceeded) as exceeded:
                call(command, META)
            assert (exceeded.value.line_number, exceeded.value.code) == over
        else:
            result = call(command, META)
            assert result.data["status"] is not None
            order.version += 1
            order.history.append(action)
            return True
        assert self.app.head_position() == head
        return False

    def open_orders(self) -> list[OrderModel]:
        return [order for order in self.orders if order.status not in FINAL]

    def pick(self, data: st.DataObject, action: str) -> OrderModel:
        """Mostly an order that may take `action` (so that orders get somewhere), else any."""
        candidates = [order for order in self.orders if order.status in ALLOWED[action]]
        if not candidates or data.draw(st.integers(0, 9)) == 9:
            candidates = self.orders
        return data.draw(st.sampled_from(candidates))

    def chosen_lines(self, data: st.DataObject, order: OrderModel,
                     headroom: dict[int, Decimal]) -> list[int]:
        """Some lines of the order: mostly those with room left, now and then any."""
        numbers = sorted(n for n, room in headroom.items() if room > ZERO)
        if not numbers or data.draw(st.integers(0, 9)) == 9:
            numbers = sorted(order.lines)
        return data.draw(st.lists(st.sampled_from(numbers), min_size=1, max_size=len(numbers),
                                  unique=True))

    # Rules.

    @precondition(lambda self: self.ledger is not None and len(self.orders) < ORDERS_MAX
                  and len(self.open_orders()) < OPEN_ORDERS_MAX)
    @rule(supplier=st.sampled_from((*SUPPLIERS, CUSTOMER)), lines=order_lines)
    def create(self, supplier: str, lines: list[tuple[str, str, Decimal, Decimal]]) -> None:
        command = p.CreateOrder(supplier=supplier, lines=tuple(
            p.OrderLine(sku, location, ordered, price) for sku, location, ordered, price in lines))
        if supplier == CUSTOMER:
            head = self.app.head_position()
            with pytest.raises(InvalidInput):
                self.app.create_purchase_order(command, META)
            assert self.app.head_position() == head
            return
        result = self.app.create_purchase_order(command, META)
        assert result.data["status"] == "pending_review"
        self.orders.append(OrderModel(result.data["order_id"], supplier, {
            n: LineModel(sku, location, ordered, price)
            for n, (sku, location, ordered, price) in enumerate(lines, start=1)}))

    @precondition(lambda self: any(order.status in NEXT_STEP for order in self.orders))
    @rule(data=st.data(), share=shares, rate=tax_rates)
    def advance(self, data: st.DataObject, share: Decimal, rate: Decimal) -> None:
        """Take an open order one step along the usual path, so that orders get far."""
        order = data.draw(st.sampled_from([o for o in self.orders if o.status in NEXT_STEP]))
        action = NEXT_STEP[order.status]
        if action == "approve":
            self.review_order(order, approved=True)
        elif action == "receive":
            self.receive_order(order, data, share)
        elif action == "invoice":
            self.invoice_order(order, data, share, rate, None)
        else:
            self.pay_order(order, share)

    @precondition(lambda self: bool(self.orders))
    @rule(data=st.data(), approved=st.sampled_from([True, True, True, False]))
    def review(self, data: st.DataObject, approved: bool) -> None:
        self.review_order(self.pick(data, "approve" if approved else "reject"), approved)

    def review_order(self, order: OrderModel, approved: bool) -> None:
        command = p.Review(order_id=order.order_id, approved=approved,
                           reason=None if approved else "too dear")
        if self.expect(order, "approve" if approved else "reject", command,
                       "review_purchase_order", []):
            order.review = "approved" if approved else "rejected"

    @precondition(lambda self: bool(self.orders))
    @rule(data=st.data(), share=shares)
    def receive(self, data: st.DataObject, share: Decimal) -> None:
        self.receive_order(self.pick(data, "receive"), data, share)

    def receive_order(self, order: OrderModel, data: st.DataObject, share: Decimal) -> None:
        room = {n: line.ordered * (1 + self.tolerance) - line.received
                for n, line in order.lines.items()}
        wanted, limits = [], []
        for n in self.chosen_lines(data, order, room):
            most = room[n]
            asked = share_of(max(most, STEP), share)
            wanted.append((n, asked))
            limits.append((n, "over_receipt", asked, most))
        command = p.Quantities(order_id=order.order_id, quantities=tuple(wanted))
        if self.expect(order, "receive", command, "receive_purchase_order", limits):
            for n, asked in wanted:
                line = order.lines[n]
                line.received += asked
                self.on_hand[line.sku, line.location] = self.held(line) + asked

    @precondition(lambda self: bool(self.orders))
    @rule(data=st.data(), share=shares)
    def return_goods(self, data: st.DataObject, share: Decimal) -> None:
        order = self.pick(data, "return")
        # Only goods not yet invoiced go back (invoiced ones need the supplier's credit note).
        room = {n: line.received - line.returned - line.invoiced
                for n, line in order.lines.items()}
        wanted, limits = [], []
        for n in self.chosen_lines(data, order, room):
            kept = room[n]
            asked = share_of(max(kept, STEP), share)
            wanted.append((n, asked))
            limits.append((n, "over_return", asked, kept))
        command = p.Quantities(order_id=order.order_id, quantities=tuple(wanted),
                               reason="damaged")
        if self.short_of_stock(order, wanted, limits):
            head = self.app.head_position()
            with pytest.raises(InsufficientStock):
                self.app.return_purchase_order(command, META)
            assert self.app.head_position() == head
            return
        values = {key: self.bin_value(*key) for key in self.on_hand}
        if self.expect(order, "return", command, "return_purchase_order", limits):
            for n, asked in wanted:
                line = order.lines[n]
                line.returned += asked
                self.on_hand[line.sku, line.location] = self.held(line) - asked
            for key, before in values.items():
                assert ZERO <= self.bin_value(*key) <= before

    def short_of_stock(self, order: OrderModel, wanted: list[tuple[int, Decimal]],
                       limits: Sequence[Limit]) -> bool:
        """Whether an otherwise good return takes more than a bin holds (sold since)."""
        if order.status not in ALLOWED["return"] or any(a > m for _, _, a, m in limits):
            return False
        left = dict(self.on_hand)
        for n, asked in wanted:
            key = (order.lines[n].sku, order.lines[n].location)
            if asked > left.get(key, ZERO):
                return True
            left[key] -= asked
        return False

    @precondition(lambda self: bool(self.orders))
    @rule(data=st.data(), share=shares, rate=tax_rates, price=prices)
    def invoice(self, data: st.DataObject, share: Decimal, rate: Decimal,
                price: Decimal | None) -> None:
        self.invoice_order(self.pick(data, "invoice"), data, share, rate, price)

    def invoice_order(self, order: OrderModel, data: st.DataObject, share: Decimal,
                      rate: Decimal, price: Decimal | None) -> None:
        room = {n: line.received - line.returned - line.invoiced
                for n, line in order.lines.items()}
        billed, limits = [], []
        for n in self.chosen_lines(data, order, room):
            billable = room[n]
            asked = share_of(max(billable, STEP), share)
            billed.append((n, asked, price, rate))
            limits.append((n, "over_invoice", asked, billable))
        command = p.Invoice(order_id=order.order_id, invoice_number=f"INV-{order.version}",
                            lines=tuple(billed))
        if self.expect(order, "invoice", command, "invoice_purchase_order", limits):
            for n, asked, given_price, tax_rate in billed:
                line = order.lines[n]
                amount = money(asked * (line.price if given_price is None else given_price))
                order.invoiced_total += amount + money(amount * tax_rate)
                line.invoiced += asked

    @precondition(lambda self: bool(self.orders))
    @rule(data=st.data(), share=shares)
    def pay(self, data: st.DataObject, share: Decimal) -> None:
        self.pay_order(self.pick(data, "pay"), share)

    def pay_order(self, order: OrderModel, share: Decimal) -> None:
        owed = order.invoiced_total - order.paid
        amount = max((owed * share).quantize(Decimal("0.01"), rounding=ROUND_DOWN),
                     Decimal("0.01"))
        command = p.Payment(order_id=order.order_id, amount=amount)
        if self.expect(order, "pay", command, "pay_purchase_order",
                       [(None, "over_payment", amount, owed)]):
            order.paid += amount

    @precondition(lambda self: bool(self.orders))
    @rule(data=st.data(), outcome=st.sampled_from([None, "closed", None, "cancelled"]))
    def end(self, data: st.DataObject, outcome: str | None) -> None:
        """Cancel or close (half the time nothing: ended orders get nowhere)."""
        if outcome is None:
            return
        action = "cancel" if outcome == "cancelled" else "close"
        order = self.pick(data, action)
        command = p.End(order_id=order.order_id, outcome=outcome)
        if self.expect(order, action, command, "end_purchase_order", []):
            order.ended = outcome

    @precondition(lambda self: any(held > ZERO for held in self.on_hand.values()))
    @rule(data=st.data(), share=shares)
    def sell(self, data: st.DataObject, share: Decimal) -> None:
        """A dispatch takes some received stock, so that later returns find less."""
        stocked = sorted(key for key, held in self.on_hand.items() if held > ZERO)
        sku, location = data.draw(st.sampled_from(stocked))
        asked = min(share_of(self.on_hand[sku, location], share), self.on_hand[sku, location])
        self.app.dispatch(Dispatch(location=location, lines=(DispatchLine(sku, asked),)), META)
        self.on_hand[sku, location] -= asked

    # Helpers on bins.

    def held(self, line: LineModel) -> Decimal:
        return self.on_hand.get((line.sku, line.location), ZERO)

    def bin_value(self, sku: str, location: str) -> Decimal:
        stock_bin = self.app.stock_bin(sku, location)
        return ZERO if stock_bin is None else stock_bin.value

    # Invariants.

    @invariant()
    def lines_stay_within_their_limits(self) -> None:
        for order in self.orders:
            for n, line in order.lines.items():
                where = (f"order {order.order_id} line {n} after {order.history}: ordered "
                         f"{line.ordered}, received {line.received}, returned {line.returned}, "
                         f"invoiced {line.invoiced}")
                assert line.received <= line.ordered * (1 + self.tolerance), where
                assert line.returned <= line.received, where
                assert line.invoiced <= line.received - line.returned, where
            assert order.paid <= order.invoiced_total, order.history

    @invariant()
    def aggregates_hold_what_the_model_holds(self) -> None:
        for order in self.orders:
            stored = self.app.purchase_order(order.order_id)
            assert (stored.status, stored.version, stored.invoiced_total, stored.paid) == (
                order.status, order.version, order.invoiced_total, order.paid), order.history
            for n, line in order.lines.items():
                held = stored.lines[n]
                assert (held["received"], held["returned"], held["invoiced"]) == (
                    line.received, line.returned, line.invoiced)

    @invariant()
    def bins_are_never_negative_and_match_their_layers(self) -> None:
        for (sku, location), expected in self.on_hand.items():
            stock_bin = self.app.stock_bin(sku, location)
            assert stock_bin is not None
            assert stock_bin.quantity_on_hand == expected >= ZERO
            assert stock_bin.value >= ZERO
            if expected == ZERO:
                assert stock_bin.value == ZERO
            if ITEMS[sku] == "fifo":
                layers = stock_bin.cost.layers
                assert sum((held.value for held in layers), ZERO) == stock_bin.value
                assert sum((held.quantity for held in layers), ZERO) == expected

    @invariant()
    def the_read_model_shows_what_the_aggregates_hold(self) -> None:
        if self.read_models is None:
            return
        self.runner.catch_up()
        projection = self.read_models.by_name["purchase_orders"]
        with self.read_models.database.reader.connect() as connection:
            generation = state.read(connection, ["purchase_orders"])["purchase_orders"].generation
            page = queries.orders(connection, projection, generation, status=None,
                                  party=("supplier", None), after=0, limit=ORDERS_MAX + 1)
        assert [row["order_id"] for row in page.rows] == [str(o.order_id) for o in self.orders]
        for row, order in zip(page.rows, self.orders, strict=True):
            stored = self.app.purchase_order(order.order_id)
            assert (row["status"], row["supplier"], row["version"]) == (
                stored.status, stored.supplier, stored.version)
            assert (money_of(row["invoiced_total_e2"]), money_of(row["paid_e2"])) == (
                stored.invoiced_total, stored.paid)
            lines = {line["line_number"]: line for line in json.loads(row["lines"])}
            for n, held in stored.lines.items():
                assert tuple(Decimal(lines[n][k]) for k in ("received", "returned", "invoiced",
                                                            "quantity", "unit_price")) == (
                    held["received"], held["returned"], held["invoiced"], held["quantity"],
                    held["unit_price"])


# Every step is a real transaction and a read-model catch-up, so shrinking a failure would take
# minutes: it is skipped, and each assertion names the order's history instead.
PurchasingMachine.TestCase.settings = settings(
    max_examples=50,
    stateful_step_count=50,
    deadline=None,
    phases=(Phase.explicit, Phase.reuse, Phase.generate),
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
test_purchasing_state_machine = PurchasingMachine.TestCase
