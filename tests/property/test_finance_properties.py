"""The books agree with the stock, with each other and with time, for any history of business.

Each example records a random history through `Ledger` on a fresh SQLite event store: plain
receipts, dispatches, transfers and counts (with and without revaluation), purchase orders
(created, reviewed, received, returned, invoiced at their own or other prices with tax, paid,
closed or cancelled) and sales orders (placed, reviewed, reserved, dispatched, shipped,
delivered, invoiced with tax, paid, returned with a credit note, cancelled), for a FIFO and a
moving-average item at two locations. Every command carries an explicit effective time, never
earlier than the one before (often the same), written in one of several zones. A read-model
database follows the history command by command. Then:

1. every journal entry balances, and there is exactly one entry per stored event of a posting
   topic, with the lines `ledger.posting.entry` gives it; each movement's inventory lines move
   the location's inventory by what the bin's value moved;
2. the trial balance balances, and equals the sum of the entries of every stored event; each
   account's balance also equals what the design's posting rules book from the events' recorded
   facts, worked out here without `posting.entry`;
3. `reconcile` answers ok, every check ok (now, and as of instants of item 6);
4. the valuation holds what the bins hold (quantity, value, FIFO layers), its total is the sum
   of the bins' values, and per location it equals the inventory account; stock in transit is
   empty (a transfer goes out and comes in at once); AR and AP per party equal what the orders
   say is owed;
5. rebuilding the journal and the cost layers from position zero gives the live digests;
6. as of an instant before anything, every instant something happened, half an hour after each
   and now: the trial balance equals a replay of the entries dated at or before it (the event's
   effective time, or its record time when it has none), and the valuation equals, per bin, the
   balance after its last movement effective at or before it (the reconciliation is asked
   at every third of these instants).

A scripted history that goes through every kind of event runs the same checks, and asserts it
posted every kind of entry, so the checks never pass for want of coverage.
"""

from __future__ import annotations

import tempfile
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from decimal import ROUND_DOWN, Decimal
from pathlib import Path
from typing import Any
from uuid import UUID

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from hypothesis.errors import InvalidArgument
from sqlalchemy import select

from ledger import posting
from ledger import purchasing as p
from ledger import selling as s
from ledger.application import Ledger
from ledger.commands import Count, CountLine, Dispatch, DispatchLine, Receipt, ReceiptLine, Transfer
from ledger.config import Settings, read_models_url, store_environment
from ledger.costing import ValuationMethod
from ledger.domain.context import CommandMeta
from ledger.domain.item import ItemDetails
from ledger.domain.party import PartyDetails
from ledger.domain.purchase_order import PurchaseOrder
from ledger.domain.sales_order import SalesOrder
from ledger.domain.stock_bin import StockBin
from ledger.errors import LedgerError
from ledger.numbers import ZERO, ZERO_MONEY
from projections import finance as q
from projections.encoding import e2, instant, money_of
from projections.finance_reports import trial_balance, valuation
from projections.rebuild import rebuild
from projections.reconciliation import reconcile
from projections.service import ReadModels

ITEMS: dict[str, ValuationMethod] = {"FIFO-A": "fifo", "AVG-A": "moving_average"}
SKUS = tuple(ITEMS)
LOCATIONS = ("WH-1", "WH-2")
BINS = [(sku, location) for sku in SKUS for location in LOCATIONS]
SUPPLIERS = ("SUP-1", "SUP-2")
CUSTOMERS = ("CUS-1", "CUS-2")
META = CommandMeta(actor="finance-property")
# Well in the past, so every effective time is accepted; whole hours, so that half an hour after
# an instant is strictly between two instants.
HISTORY_START = datetime(2024, 5, 1, 8, 0, tzinfo=UTC)
TIME_STEP = timedelta(hours=1)
ZONES = (UTC, timezone(timedelta(hours=8)), timezone(timedelta(hours=-5, minutes=-30)))
QUANTITY_STEP = Decimal("0.001")
CENT = Decimal("0.01")
LOG_PAGE = 500
RETURN_SHARE = Decimal("0.3")  # an order's usual path takes some back at shares up to this
# The read models every finance view reads (as the finance routes take them).
FINANCE_TABLES = ("journal", "stock_levels", "stock_card", "cost_layers", "purchase_orders",
                  "sales_orders", "audit_log")
REBUILT = ("journal", "cost_layers")
PROPERTY_SETTINGS = settings(max_examples=30, deadline=None,
                             suppress_health_check=[HealthCheck.too_slow,
                                                    HealthCheck.data_too_large])

# Strategies.

quantities = st.decimals(min_value=Decimal("0.5"), max_value=Decimal("30"), places=3)
unit_costs = st.decimals(min_value=ZERO, max_value=Decimal("80"), places=6)
prices = st.decimals(min_value=ZERO, max_value=Decimal("120"), places=6)
other_prices = st.none() | st.decimals(min_value=ZERO, max_value=Decimal("150"), places=2)
shares = st.decimals(min_value=Decimal("0.1"), max_value=Decimal("1"), places=2)
count_factors = st.sampled_from([Decimal("0"), Decimal("0.5"), Decimal("1"), Decimal("1.25")])
tax_rates = st.sampled_from([Decimal("0"), Decimal("0.06"), Decimal("0.13"), Decimal("0.1667")])
skus = st.sampled_from(SKUS)
locations = st.sampled_from(LOCATIONS)
picks = st.integers(0, 7)
order_lines = st.lists(st.tuples(skus, locations, quantities, prices), min_size=1, max_size=2)
sales_lines = st.lists(st.tuples(skus, locations, st.decimals(
    min_value=Decimal("0.5"), max_value=Decimal("8"), places=3), prices), min_size=1, max_size=2)


@dataclass(frozen=True)
class Step:
    """One command of a history: what, with which draws, and how many hours after the last."""

    action: str
    args: tuple[Any, ...]
    hours_later: int
    zone: timezone


Drawn = tuple[str, tuple[Any, ...]]  # an action's name and its draws


def _action(name: str, *args: st.SearchStrategy[Any]) -> st.SearchStrategy[Drawn]:
    return st.tuples(st.just(name), st.tuples(*args))


def _receipt() -> st.SearchStrategy[Drawn]:
    return _action("receive", locations, st.lists(st.tuples(skus, quantities, unit_costs),
                                                  min_size=1, max_size=2))


def _advance() -> st.SearchStrategy[Drawn]:
    """Take some order one step along its usual path, so that orders get far."""
    return _action("advance", picks, shares, tax_rates, st.integers(1, 6))


# st.one_of draws its branches alike (and drops a strategy object listed twice): the common
# steps are built more than once.
ACTIONS = st.one_of(
    _receipt(), _receipt(), _receipt(),
    _action("dispatch", locations, skus, shares),
    _action("transfer", locations, skus, shares),
    _action("count", locations, skus, count_factors, st.none() | unit_costs),
    *(_action("po_create", st.sampled_from(SUPPLIERS), order_lines) for _ in range(3)),
    _action("po_review", picks, st.sampled_from([True, True, True, False])),
    _action("po_receive", picks, shares),
    _action("po_return", picks, shares),
    _action("po_invoice", picks, shares, other_prices, tax_rates),
    _action("po_pay", picks, shares),
    _action("po_end", picks, st.sampled_from(["closed", "cancelled"])),
    *(_action("so_place", st.sampled_from(CUSTOMERS), sales_lines) for _ in range(2)),
    _action("so_review", picks, st.sampled_from([True, True, True, False])),
    _action("so_reserve", picks),
    _action("so_dispatch", picks, st.none() | shares),
    _action("so_ship", picks),
    _action("so_deliver", picks),
    _action("so_invoice", picks, shares, other_prices, tax_rates),
    _action("so_pay", picks, shares),
    _action("so_return", picks, shares),
    _action("so_cancel", picks),
    *(_advance() for _ in range(10)),
)
steps = st.builds(lambda chosen, hours, zone: Step(chosen[0], chosen[1], hours, zone),
                  ACTIONS, st.sampled_from((0, 1, 1, 2)), st.sampled_from(ZONES))
# Opening stock in every bin (so that sales, dispatches and transfers find some), then the rest.
opening = st.tuples(*(st.builds(
    lambda location, found, zone: Step("receive", (location, found), 0, zone), st.just(location),
    st.tuples(*(st.tuples(st.just(sku), quantities, unit_costs) for sku in SKUS)).map(list),
    st.sampled_from(ZONES)) for location in LOCATIONS))
histories = st.builds(lambda first, rest: [*first, *rest], opening, st.lists(
    steps, min_size=10, max_size=40))


def share_of(amount: Decimal, share: Decimal, unit: Decimal = QUANTITY_STEP) -> Decimal:
    """A share of `amount`, rounded down to `unit`, at least one unit."""
    return max((amount * share).quantize(unit, rounding=ROUND_DOWN), unit)


def tally(text: str) -> None:
    """Count `text` in hypothesis' statistics (when running under hypothesis)."""
    with suppress(InvalidArgument):
        event(text)


# Recording a history.

@dataclass
class Scenario:
    """A ledger on a fresh SQLite file with reference data, and read models that follow it."""

    directory: Path
    ledger: Ledger
    read_models: ReadModels
    runner: Any
    purchases: list[UUID] = field(default_factory=list)
    sales: list[UUID] = field(default_factory=list)
    moment: datetime = HISTORY_START
    refused: list[str] = field(default_factory=list)
    tolerance: Decimal = ZERO

    # The ledger's state, read from the aggregates.

    def on_hand(self, sku: str, location: str) -> Decimal:
        stock_bin = self.ledger.stock_bin(sku, location)
        return ZERO if stock_bin is None else stock_bin.quantity_on_hand

    def available(self, sku: str, location: str) -> Decimal:
        stock_bin = self.ledger.stock_bin(sku, location)
        return ZERO if stock_bin is None else stock_bin.quantity_available

    def purchase(self, order_id: UUID) -> PurchaseOrder:
        return self.ledger.purchase_order(order_id)

    def sale(self, order_id: UUID) -> SalesOrder:
        return self.ledger.sales_order(order_id)

    # Running a step.

    def record(self, history: list[Step]) -> None:
        for step in history:
            self.moment += step.hours_later * TIME_STEP
            self.run(step.action, step.args, self.moment.astimezone(step.zone))
            self.runner.catch_up()

    def run(self, action: str, args: tuple[Any, ...], at: datetime) -> None:
        """Run one step at `at`; a step with nothing to act on records nothing."""
        command: Callable[[], Any] | None = getattr(self, f"_{action}")(at, *args)
        if command is None:
            tally(f"{action}: nothing to do")
            return
        try:
            command()
        except LedgerError as refusal:
            # Every step is drawn within the limits, so refusals are rare; none is expected
            # in the scripted history.
            self.refused.append(f"{action}: {type(refusal).__name__}: {refusal}")
            tally(f"{action}: refused ({type(refusal).__name__})")

    def _choose(self, candidates: list[UUID], pick: int) -> UUID | None:
        return candidates[pick % len(candidates)] if candidates else None

    # Stock documents.

    def _receive(self, at: datetime, location: str,
                 lines: list[tuple[str, Decimal, Decimal]]) -> Callable[[], Any]:
        receipt = Receipt(location=location, lines=tuple(
            ReceiptLine(sku, quantity, cost) for sku, quantity, cost in lines), effective_at=at)
        return lambda: self.ledger.receive(receipt, META)

    def _stocked_sku(self, sku: str, location: str) -> str | None:
        """`sku` if it has stock available at `location`, else another that has, else None."""
        for code in (sku, *SKUS):
            if self.available(code, location) > ZERO:
                return code
        return None

    def _dispatch(self, at: datetime, location: str, sku: str,
                  share: Decimal) -> Callable[[], Any] | None:
        code = self._stocked_sku(sku, location)
        if code is None:
            return None
        line = DispatchLine(code, share_of(self.available(code, location), share))
        dispatch = Dispatch(location=location, lines=(line,), reason="scrap", effective_at=at)
        return lambda: self.ledger.dispatch(dispatch, META)

    def _transfer(self, at: datetime, location: str, sku: str,
                  share: Decimal) -> Callable[[], Any] | None:
        code = self._stocked_sku(sku, location)
        if code is None:
            return None
        other = next(code for code in LOCATIONS if code != location)
        line = DispatchLine(code, share_of(self.available(code, location), share))
        transfer = Transfer(from_location=location, to_location=other, lines=(line,),
                            effective_at=at)
        return lambda: self.ledger.transfer(transfer, META)

    def _count(self, at: datetime, location: str, sku: str, factor: Decimal,
               cost: Decimal | None) -> Callable[[], Any]:
        counted = (self.on_hand(sku, location) * factor).quantize(QUANTITY_STEP,
                                                                   rounding=ROUND_DOWN)
        count = Count(location=location, reason="cycle count",
                      lines=(CountLine(sku, counted, cost),), effective_at=at)
        return lambda: self.ledger.count(count, META)

    # Purchase orders.

    def _po_create(self, at: datetime, supplier: str,
                   lines: list[tuple[str, str, Decimal, Decimal]]) -> Callable[[], Any]:
        command = p.CreateOrder(supplier=supplier, effective_at=at, lines=tuple(
            p.OrderLine(sku, location, quantity, price) for sku, location, quantity, price
            in lines))

        def create() -> None:
            self.purchases.append(self.ledger.create_purchase_order(command, META).document_id)

        return create

    def _purchases_where(self, test: Callable[[PurchaseOrder], bool]) -> list[UUID]:
        return [order_id for order_id in self.purchases if test(self.purchase(order_id))]

    def _po_review(self, at: datetime, pick: int,
                   approved: bool) -> Callable[[], Any] | None:
        order_id = self._choose(self._purchases_where(
            lambda order: order.status == "pending_review"), pick)
        if order_id is None:
            return None
        command = p.Review(order_id=order_id, approved=approved, effective_at=at,
                           reason=None if approved else "too dear")
        return lambda: self.ledger.review_purchase_order(command, META)

    def _po_receive(self, at: datetime, pick: int, share: Decimal) -> Callable[[], Any] | None:
        def room(order: PurchaseOrder) -> dict[int, Decimal]:
            return {n: most for n, line in order.lines.items() if (most := line["quantity"] * (
                1 + self.tolerance) - line["received"]) >= QUANTITY_STEP}

        # Over the ordered quantity (within the tolerance) even after it was all received.
        order_id = self._choose(self._purchases_where(lambda order: order.status in (
            "approved", "partially_received", "received", "invoiced", "paid")
            and bool(room(order))), pick)
        if order_id is None:
            return None
        wanted = tuple((n, share_of(left, share))
                       for n, left in room(self.purchase(order_id)).items())
        command = p.Quantities(order_id=order_id, quantities=wanted, effective_at=at)
        return lambda: self.ledger.receive_purchase_order(command, META)

    def _po_return(self, at: datetime, pick: int, share: Decimal) -> Callable[[], Any] | None:
        def room(order: PurchaseOrder) -> dict[int, Decimal]:
            """Received, kept and not invoiced, within what the bins have available."""
            left = {key: self.available(*key) for key in BINS}
            found = {}
            for n, line in order.lines.items():
                key = (line["sku"], line["location"])
                most = min(line["received"] - line["returned"] - line["invoiced"], left[key])
                if most > ZERO:
                    found[n] = most
                    left[key] -= most
            return found

        order_id = self._choose(self._purchases_where(lambda order: order.status in (
            "partially_received", "received", "invoiced", "paid", "closed")
            and bool(room(order))), pick)
        if order_id is None:
            return None
        wanted = tuple((n, share_of(most, share))
                       for n, most in room(self.purchase(order_id)).items())
        command = p.Quantities(order_id=order_id, quantities=wanted, reason="damaged",
                               effective_at=at)
        return lambda: self.ledger.return_purchase_order(command, META)

    def _po_invoice(self, at: datetime, pick: int, share: Decimal, price: Decimal | None,
                    rate: Decimal) -> Callable[[], Any] | None:
        def room(order: PurchaseOrder) -> dict[int, Decimal]:
            return {n: billable for n, line in order.lines.items()
                    if (billable := line["received"] - line["returned"] - line["invoiced"])
                    > ZERO}

        order_id = self._choose(self._purchases_where(lambda order: order.status in (
            "partially_received", "received", "invoiced", "paid", "closed")
            and bool(room(order))), pick)
        if order_id is None:
            return None
        order = self.purchase(order_id)
        lines = tuple((n, share_of(billable, share), price, rate)
                      for n, billable in room(order).items())
        command = p.Invoice(order_id=order_id, invoice_number=f"PINV-{order.version}",
                            lines=lines, effective_at=at)
        return lambda: self.ledger.invoice_purchase_order(command, META)

    def _po_pay(self, at: datetime, pick: int, share: Decimal) -> Callable[[], Any] | None:
        order_id = self._choose(self._purchases_where(lambda order: order.status in (
            "invoiced", "partially_received", "received", "closed")
            and order.outstanding > ZERO), pick)
        if order_id is None:
            return None
        amount = share_of(self.purchase(order_id).outstanding, share, CENT)
        command = p.Payment(order_id=order_id, amount=amount, reference="BANK-P",
                            effective_at=at)
        return lambda: self.ledger.pay_purchase_order(command, META)

    def _po_end(self, at: datetime, pick: int, outcome: str) -> Callable[[], Any] | None:
        allowed = (("pending_review", "approved", "partially_received") if outcome == "cancelled"
                   else ("approved", "partially_received", "received", "invoiced", "paid"))
        order_id = self._choose(self._purchases_where(lambda order: order.status in allowed),
                                pick)
        if order_id is None:
            return None
        command = p.End(order_id=order_id, outcome=outcome, effective_at=at)
        return lambda: self.ledger.end_purchase_order(command, META)

    # Sales orders.

    def _so_place(self, at: datetime, customer: str,
                  lines: list[tuple[str, str, Decimal, Decimal]]) -> Callable[[], Any]:
        stocked = [key for key in BINS if self.available(*key) > ZERO]

        def where(sku: str, location: str) -> tuple[str, str]:
            """Mostly a bin with stock to sell, so that orders get reserved and go out."""
            if self.available(sku, location) > ZERO or not stocked:
                return sku, location
            return stocked[len(sku + location) % len(stocked)]

        command = s.PlaceOrder(customer=customer, effective_at=at, lines=tuple(
            s.SalesLine(*where(sku, location), quantity, price)
            for sku, location, quantity, price in lines))

        def place() -> None:
            self.sales.append(self.ledger.place_sales_order(command, META).document_id)

        return place

    def _sales_where(self, test: Callable[[SalesOrder], bool]) -> list[UUID]:
        return [order_id for order_id in self.sales if test(self.sale(order_id))]

    @staticmethod
    def _open(order: SalesOrder) -> bool:
        return order.review_outcome == "approved" and not order.cancelled

    def _so_review(self, at: datetime, pick: int,
                   approved: bool) -> Callable[[], Any] | None:
        order_id = self._choose(self._sales_where(
            lambda order: order.status == "pending_review"), pick)
        if order_id is None:
            return None
        command = s.SalesReview(order_id=order_id, approved=approved, confirm_duplicate=True,
                                reason=None if approved else "on hold", effective_at=at)
        return lambda: self.ledger.review_sales_order(command, META)

    def _so_reserve(self, at: datetime, pick: int) -> Callable[[], Any] | None:
        def can_reserve(order: SalesOrder) -> bool:
            return self._open(order) and any(
                short > ZERO and self.available(order.lines[n]["sku"],
                                                order.lines[n]["location"]) > ZERO
                for n, short in order.short().items())

        order_id = self._choose(self._sales_where(can_reserve), pick)
        if order_id is None:
            return None
        command = p.OrderStep(order_id=order_id, effective_at=at)
        return lambda: self.ledger.reserve_sales_order(command, META)

    def _so_dispatch(self, at: datetime, pick: int,
                     share: Decimal | None) -> Callable[[], Any] | None:
        order_id = self._choose(self._sales_where(lambda order: self._open(order) and any(
            line["reserved"] > ZERO for line in order.lines.values())), pick)
        if order_id is None:
            return None
        wanted: tuple[tuple[int, Decimal], ...] = ()
        if share is not None:  # None: everything reserved
            wanted = tuple((n, share_of(line["reserved"], share))
                           for n, line in self.sale(order_id).lines.items()
                           if line["reserved"] > ZERO)
        command = p.Quantities(order_id=order_id, quantities=wanted, effective_at=at)
        return lambda: self.ledger.dispatch_sales_order(command, META)

    def _so_ship(self, at: datetime, pick: int) -> Callable[[], Any] | None:
        order_id = self._choose(self._sales_where(lambda order: self._open(order) and any(
            line["dispatched"] > line["shipped"] for line in order.lines.values())), pick)
        if order_id is None:
            return None
        command = s.Ship(order_id=order_id, carrier="DHL", tracking_number="T-1",
                         effective_at=at)
        return lambda: self.ledger.ship_sales_order(command, META)

    def _so_deliver(self, at: datetime, pick: int) -> Callable[[], Any] | None:
        order_id = self._choose(self._sales_where(lambda order: self._open(order) and any(
            line["shipped"] > line["delivered"] for line in order.lines.values())), pick)
        if order_id is None:
            return None
        command = s.Deliver(order_id=order_id, signed_by="Ann Lee", effective_at=at)
        return lambda: self.ledger.deliver_sales_order(command, META)

    def _so_invoice(self, at: datetime, pick: int, share: Decimal, price: Decimal | None,
                    rate: Decimal) -> Callable[[], Any] | None:
        def room(order: SalesOrder) -> dict[int, Decimal]:
            return {n: billable for n in order.lines
                    if (billable := order.billable(n)) > ZERO}

        order_id = self._choose(self._sales_where(
            lambda order: self._open(order) and bool(room(order))), pick)
        if order_id is None:
            return None
        order = self.sale(order_id)
        lines = tuple((n, share_of(billable, share), price, rate)
                      for n, billable in room(order).items())
        command = p.Invoice(order_id=order_id, invoice_number=f"SINV-{order.version}",
                            lines=lines, effective_at=at)
        return lambda: self.ledger.invoice_sales_order(command, META)

    def _so_pay(self, at: datetime, pick: int, share: Decimal) -> Callable[[], Any] | None:
        order_id = self._choose(self._sales_where(
            lambda order: self._open(order) and order.outstanding > ZERO), pick)
        if order_id is None:
            return None
        amount = share_of(self.sale(order_id).outstanding, share, CENT)
        command = p.Payment(order_id=order_id, amount=amount, reference="BANK-S",
                            effective_at=at)
        return lambda: self.ledger.pay_sales_order(command, META)

    def _so_return(self, at: datetime, pick: int, share: Decimal) -> Callable[[], Any] | None:
        def room(order: SalesOrder) -> dict[int, Decimal]:
            return {n: kept for n, line in order.lines.items()
                    if (kept := line["delivered"] - line["returned"]) > ZERO}

        order_id = self._choose(self._sales_where(
            lambda order: self._open(order) and bool(room(order))), pick)
        if order_id is None:
            return None
        wanted = tuple((n, share_of(kept, share))
                       for n, kept in room(self.sale(order_id)).items())
        command = p.Quantities(order_id=order_id, quantities=wanted, reason="damaged",
                               effective_at=at)
        return lambda: self.ledger.return_sales_order(command, META)

    def _so_cancel(self, at: datetime, pick: int) -> Callable[[], Any] | None:
        order_id = self._choose(self._sales_where(lambda order: order.status in (
            "pending_review", "approved", "backordered")), pick)
        if order_id is None:
            return None
        command = p.OrderStep(order_id=order_id, reason="changed their mind", effective_at=at)
        return lambda: self.ledger.cancel_sales_order(command, META)

    def _advance(self, at: datetime, pick: int, share: Decimal, rate: Decimal,
                 times: int) -> Callable[[], Any] | None:
        """The next usual steps (up to `times`) of some order that has one."""
        candidates = [order_id for order_id in (*self.purchases, *self.sales)
                      if self._next_step(order_id, at, share, rate) is not None]
        order_id = self._choose(candidates, pick)
        if order_id is None:
            return None

        def advance() -> None:
            for _ in range(times):
                command = self._next_step(order_id, at, share, rate)
                if command is None:
                    return
                command()

        return advance

    def _next_step(self, order_id: UUID, at: datetime, share: Decimal,
                   rate: Decimal) -> Callable[[], Any] | None:
        """The command that takes one order one step along its usual path, if any."""
        if order_id in self.purchases:
            status = self.purchase(order_id).status
            step = {"pending_review": lambda: self._po_review(at, 0, True),
                    "approved": lambda: self._po_receive(at, 0, Decimal(1)),
                    "partially_received": lambda: self._po_receive(at, 0, Decimal(1)),
                    "received": lambda: self._po_invoice(at, 0, share, None, rate),
                    "invoiced": lambda: self._po_pay(at, 0, share)}.get(status)
            return None if step is None else self._only(order_id, "purchases", step)
        order = self.sale(order_id)
        lines = order.lines.values()
        if order.status == "pending_review":
            step = lambda: self._so_review(at, 0, True)  # noqa: E731
        elif not self._open(order):
            return None
        elif any(line["reserved"] > ZERO for line in lines):
            step = lambda: self._so_dispatch(at, 0, None)  # noqa: E731
        elif any(line["dispatched"] > line["shipped"] for line in lines):
            step = lambda: self._so_ship(at, 0)  # noqa: E731
        elif any(line["shipped"] > line["delivered"] for line in lines):
            step = lambda: self._so_deliver(at, 0)  # noqa: E731
        elif share <= RETURN_SHARE and any(line["delivered"] > line["returned"]
                                           for line in lines):
            # Now and then a return instead (before, after or between invoices and payments).
            step = lambda: self._so_return(at, 0, share)  # noqa: E731
        elif any(order.billable(n) > ZERO for n in order.lines):
            step = lambda: self._so_invoice(at, 0, Decimal(1), None, rate)  # noqa: E731
        elif order.outstanding > ZERO:
            step = lambda: self._so_pay(at, 0, share)  # noqa: E731
        else:
            step = lambda: self._so_reserve(at, 0)  # noqa: E731
        return self._only(order_id, "sales", step)

    def _only(self, order_id: UUID, kind: str,
              step: Callable[[], Callable[[], Any] | None]) -> Callable[[], Any] | None:
        """The step decided with `order_id` as the only order of its kind."""
        every = getattr(self, kind)
        setattr(self, kind, [order_id])
        try:
            command = step()
        finally:
            setattr(self, kind, every)
        return command


@contextmanager
def scenario(tolerance: Decimal = ZERO) -> Iterator[Scenario]:
    with tempfile.TemporaryDirectory(prefix="ledger-finance-") as name:
        directory = Path(name)
        url = f"sqlite:///{(directory / 'ledger.db').as_posix()}"
        ledger = Ledger(store_environment(url), over_receipt_tolerance=tolerance)
        read_models = ReadModels.open(read_models_url(Settings(database_url=url)))
        try:
            for sku, method in ITEMS.items():
                ledger.register_item(sku, ItemDetails(f"Item {sku}", "ea", method), META)
            for code in LOCATIONS:
                ledger.register_location(code, f"Location {code}", META)
            for code in SUPPLIERS:
                ledger.register_party(code, PartyDetails(code, ("supplier",)), META)
            for code in CUSTOMERS:
                ledger.register_party(code, PartyDetails(code, ("customer",)), META)
            runner = read_models.runner(ledger.recorder, ledger.mapper)
            runner.prepare()
            runner.catch_up()
            yield Scenario(directory, ledger, read_models, runner, tolerance=tolerance)
        finally:
            read_models.close()
            ledger.close()


# What the event store holds, read independently of the read models.

@dataclass(frozen=True)
class Stored:
    position: int
    topic: str
    event: Any

    @property
    def dated(self) -> datetime:
        """When its entry counts: its effective time, or its record time when it has none."""
        effective_at: datetime | None = getattr(self.event, "effective_at", None)
        return effective_at if effective_at is not None else self.event.timestamp


def stored_events(ledger: Ledger) -> list[Stored]:
    found: list[Stored] = []
    position = 0
    while True:
        page = ledger.recorder.select_notifications(
            start=position, limit=LOG_PAGE, inclusive_of_start=False)
        if not page:
            return found
        found.extend(Stored(notification.id, notification.topic,
                            ledger.mapper.to_domain_event(notification))
                     for notification in page)
        position = page[-1].id


def postable(events: list[Stored]) -> list[Stored]:
    return [stored for stored in events if stored.topic in posting.POSTING_TOPICS]


Balances = dict[tuple[str, str | None], tuple[int, int]]


def replayed_balances(events: list[Stored], moment: datetime | None) -> Balances:
    """Debits and credits (e2) per account (inventory: per location) of the entries up to
    `moment` (all of them when None), summed from `posting.entry` of each stored event."""
    totals: dict[tuple[str, str | None], list[int]] = defaultdict(lambda: [0, 0])
    for stored in postable(events):
        if moment is not None and stored.dated > moment:
            continue
        for line in posting.entry(stored.event).postings:
            key = (line.account, line.location if line.account == posting.INVENTORY else None)
            totals[key][0] += e2(line.debit)
            totals[key][1] += e2(line.credit)
    return {key: (debit, credit) for key, (debit, credit) in totals.items()}


def booked_by_the_rules(events: list[Stored], moment: datetime | None
                        ) -> dict[tuple[str, str | None], Decimal]:
    """Debit − credit per account up to `moment`, from the events' recorded facts by the rules
    of the design (not through `posting.entry`): what each account must hold."""
    nets: dict[tuple[str, str | None], Decimal] = defaultdict(lambda: ZERO_MONEY)

    def book(account: str, amount: Decimal, location: str | None = None) -> None:
        nets[account, location] += amount

    for stored in postable(events):
        if moment is not None and stored.dated > moment:
            continue
        fact = stored.event
        if isinstance(fact, StockBin.Counted):
            book(posting.INVENTORY, fact.value_difference, fact.location)
            book(posting.INVENTORY_ADJUSTMENTS, -fact.value_difference)
        elif isinstance(fact, StockBin.Movement):
            value: Decimal = fact.value  # type: ignore[attr-defined]
            into, out_of = {
                StockBin.Received: (posting.INVENTORY, posting.GRNI),
                StockBin.Dispatched: (posting.COGS if fact.order_id is not None
                                      else posting.INVENTORY_ADJUSTMENTS, posting.INVENTORY),
                StockBin.TransferredOut: (posting.STOCK_IN_TRANSIT, posting.INVENTORY),
                StockBin.TransferredIn: (posting.INVENTORY, posting.STOCK_IN_TRANSIT),
                StockBin.ReturnedToSupplier: (posting.GRNI, posting.INVENTORY),
                StockBin.ReturnedByCustomer: (posting.INVENTORY, posting.COGS),
            }[type(fact)]
            book(into, value, fact.location if into == posting.INVENTORY else None)
            book(out_of, -value, fact.location if out_of == posting.INVENTORY else None)
        elif isinstance(fact, PurchaseOrder.Invoiced):
            for line in fact.lines:
                book(posting.GRNI, line["grni_value"])
                book(posting.PURCHASE_PRICE_VARIANCE, line["amount"] - line["grni_value"])
            book(posting.TAX_RECEIVABLE, fact.tax)
            book(posting.ACCOUNTS_PAYABLE, -fact.total)
        elif isinstance(fact, PurchaseOrder.Paid):
            book(posting.ACCOUNTS_PAYABLE, fact.amount)
            book(posting.BANK, -fact.amount)
        elif isinstance(fact, SalesOrder.Invoiced):
            book(posting.ACCOUNTS_RECEIVABLE, fact.total)
            for line in fact.lines:
                book(posting.SALES_REVENUE, -line["amount"])
            book(posting.TAX_PAYABLE, -fact.tax)
        elif isinstance(fact, SalesOrder.Paid):
            book(posting.BANK, fact.amount)
            book(posting.ACCOUNTS_RECEIVABLE, -fact.amount)
        else:
            assert isinstance(fact, SalesOrder.Returned), stored.topic
            for line in fact.lines:
                book(posting.SALES_RETURNS, line["credit_amount"])
            book(posting.TAX_PAYABLE, fact.credit_tax)
            book(posting.ACCOUNTS_RECEIVABLE, -fact.credit_total)
    return dict(nets)


def nets_of(balances: Balances) -> dict[tuple[str, str | None], Decimal]:
    return {key: money_of(debit - credit) for key, (debit, credit) in balances.items()}


def replayed_valuation(events: list[Stored], moment: datetime | None
                       ) -> dict[tuple[str, str], tuple[Decimal, Decimal]]:
    """Per bin, on-hand and value after its last movement effective at or before `moment`."""
    last: dict[tuple[str, str], tuple[datetime, int, Any]] = {}
    for stored in events:
        movement = stored.event
        if not isinstance(movement, StockBin.Movement):
            continue
        if moment is not None and movement.effective_at > moment:
            continue
        key = (movement.sku, movement.location)
        candidate = (movement.effective_at, stored.position, movement)
        if key not in last or candidate[:2] > last[key][:2]:
            last[key] = candidate
    return {key: (movement.quantity_on_hand_after, movement.value_after)
            for key, (_, _, movement) in last.items()}


# The read side.

def tables_of(read_models: ReadModels) -> q.Tables:
    states = read_models.wait(list(FINANCE_TABLES), 0, timeout=1)
    return q.Tables(**{name: read_models.by_name[name].tables(states[name].generation)[name]
                       for name in FINANCE_TABLES})


def read_balances(connection: Any, tables: q.Tables, moment: datetime | None) -> Balances:
    return {(row["account"], row["location"]): (row["debit_e2"], row["credit_e2"])
            for row in q.trial_balance(connection, tables.journal, moment)}


def read_valuation(connection: Any, tables: q.Tables, moment: datetime | None
                   ) -> dict[tuple[str, str], tuple[Decimal, Decimal]]:
    items = valuation(connection, tables, as_of=moment, sku=None, location=None)["items"]
    return {(item["sku"], item["location"]): (item["quantity"], item["value"])
            for item in items}


def digests(read_models: ReadModels) -> dict[str, tuple[int, str]]:
    return {status.name: (status.position, status.digest) for status in read_models.status()
            if status.name in REBUILT}


# The checks.

def check_every_event_posts_one_balanced_entry(connection: Any, tables: q.Tables,
                                               events: list[Stored]) -> None:
    journal = tables.journal
    lines: dict[int, list[Any]] = defaultdict(list)
    for row in connection.execute(select(journal).order_by(journal.c.position,
                                                           journal.c.line_number)).mappings():
        lines[row["position"]].append(row)
    posted = {stored.position: stored for stored in postable(events)}
    assert sorted(lines) == sorted(posted), "one entry per event of a posting topic"
    for position, rows in lines.items():
        stored = posted[position]
        assert sum(row["debit_e2"] for row in rows) == sum(row["credit_e2"] for row in rows), (
            position, stored.topic)
        assert [row["line_number"] for row in rows] == list(range(1, len(rows) + 1))
        assert len({row["event_id"] for row in rows}) == 1
        expected = posting.entry(stored.event)
        assert expected.balanced, (position, stored.topic)
        assert {row["kind"] for row in rows} == {expected.kind}
        assert {row["effective_at"] for row in rows} == {instant(stored.dated)}
        assert [(row["account"], row["location"], row["debit_e2"], row["credit_e2"])
                for row in rows] == [
            (line.account, line.location, e2(line.debit), e2(line.credit))
            for line in expected.postings], (position, stored.topic)


def check_inventory_moves_with_the_bins(events: list[Stored]) -> None:
    """Each movement's inventory lines move its location's inventory by the bin's change."""
    values: dict[tuple[str, str], Decimal] = defaultdict(lambda: ZERO_MONEY)
    for stored in events:
        movement = stored.event
        if not isinstance(movement, StockBin.Movement):
            continue
        key = (movement.sku, movement.location)
        net = sum((line.debit - line.credit for line in posting.entry(movement).postings
                   if line.account == posting.INVENTORY and line.location == movement.location),
                  ZERO_MONEY)
        assert net == movement.value_after - values[key], (stored.position, stored.topic)
        values[key] = movement.value_after


def check_trial_balance(connection: Any, tables: q.Tables, events: list[Stored]) -> None:
    from ledger.accounts import Chart

    balance = trial_balance(connection, tables, Chart.parse(), None)
    assert balance["balanced"]
    assert balance["total_debit"] == balance["total_credit"]
    read = read_balances(connection, tables, None)
    assert read == replayed_balances(events, None)
    assert nets_of(read) == booked_by_the_rules(events, None)


def check_reconciliation(connection: Any, tables: q.Tables, position: int,
                         moment: datetime | None) -> None:
    answer = reconcile(connection, tables, as_of=moment, position=position)
    failed = [check for check in answer["checks"] if not check["ok"]]
    assert failed == [], (moment, failed)
    assert answer["ok"], moment


def check_valuation(connection: Any, tables: q.Tables, opened: Scenario) -> None:
    ledger = opened.ledger
    valued = valuation(connection, tables, as_of=None, sku=None, location=None)
    items = {(item["sku"], item["location"]): item for item in valued["items"]}
    total = ZERO_MONEY
    for sku, location in BINS:
        stock_bin = ledger.stock_bin(sku, location)
        item = items.pop((sku, location), None)
        if stock_bin is None:
            assert item is None, (sku, location)
            continue
        assert item is not None, (sku, location)
        total += stock_bin.value
        assert (item["quantity"], item["value"]) == (stock_bin.quantity_on_hand,
                                                     stock_bin.value), (sku, location)
        if ITEMS[sku] == "fifo":
            assert item["layers"] is not None
            assert [(layer["quantity"], layer["unit_cost"], layer["value"])
                    for layer in item["layers"]] == [
                (layer.quantity, layer.unit_cost, layer.value)
                for layer in stock_bin.cost.layers], (sku, location)
    assert items == {}
    assert valued["total_value"] == total
    balances = read_balances(connection, tables, None)
    for location in LOCATIONS:
        debit, credit = balances.get((posting.INVENTORY, location), (0, 0))
        bins = [ledger.stock_bin(sku, location) for sku in SKUS]
        held = sum((stock_bin.value for stock_bin in bins if stock_bin is not None), ZERO_MONEY)
        valued_here = sum((item["value"] for item in valued["items"]
                           if item["location"] == location), ZERO_MONEY)
        assert money_of(debit - credit) == held == valued_here, location
    debit, credit = balances.get((posting.STOCK_IN_TRANSIT, None), (0, 0))
    assert debit == credit, "stock in transit is empty"


def check_parties_owe_what_the_orders_say(connection: Any, tables: q.Tables,
                                          opened: Scenario) -> None:
    receivable: dict[str, Decimal] = defaultdict(lambda: ZERO_MONEY)
    for order_id in opened.sales:
        sale = opened.sale(order_id)
        receivable[sale.customer] += sale.outstanding
    payable: dict[str, Decimal] = defaultdict(lambda: ZERO_MONEY)
    for order_id in opened.purchases:
        purchase = opened.purchase(order_id)
        payable[purchase.supplier] += purchase.outstanding
    booked_ar = q.party_balances(connection, tables.journal, posting.ACCOUNTS_RECEIVABLE)
    booked_ap = q.party_balances(connection, tables.journal, posting.ACCOUNTS_PAYABLE)
    for customer in CUSTOMERS:
        assert money_of(booked_ar.get(customer, 0)) == receivable[customer], customer
    for supplier in SUPPLIERS:
        assert money_of(-booked_ap.get(supplier, 0)) == payable[supplier], supplier
    assert set(booked_ar) <= set(CUSTOMERS)
    assert set(booked_ap) <= set(SUPPLIERS)


def instants(events: list[Stored], after: datetime) -> list[datetime]:
    """A minute before anything, every entry or movement instant, half an hour after each,
    and `after` (later than everything recorded)."""
    boundaries = sorted({stored.dated for stored in postable(events)}
                        | {stored.event.effective_at for stored in events
                           if isinstance(stored.event, StockBin.Movement)})
    boundaries = [moment for moment in boundaries if moment < after]
    between = [moment + TIME_STEP / 2 for moment in boundaries]
    return [HISTORY_START - timedelta(minutes=1), *boundaries, *between, after]


def check_as_of(connection: Any, tables: q.Tables, events: list[Stored],
                moments: list[datetime], zone: timezone, position: int) -> None:
    # The reconciliation reads much more: it is asked at every third instant.
    for number, moment in enumerate(moments):
        asked = moment.astimezone(zone)  # the same instant, written in another zone
        read = read_balances(connection, tables, asked)
        assert read == replayed_balances(events, moment), moment
        assert nets_of(read) == booked_by_the_rules(events, moment), moment
        assert read_valuation(connection, tables, asked) == replayed_valuation(events, moment), (
            moment)
        if number % 3 == 0 or number == len(moments) - 1:
            check_reconciliation(connection, tables, position, asked)


def check_rebuild(opened: Scenario, page_size: int) -> None:
    read_models = opened.read_models
    live = digests(read_models)
    rebuild(read_models.database, opened.ledger.recorder, opened.ledger.mapper,
            [read_models.by_name[name] for name in REBUILT], page_size=page_size)
    assert digests(read_models) == live


def check_everything(opened: Scenario, zone: timezone, page_size: int) -> list[Stored]:
    """Every property of the module on the recorded history; the stored events."""
    ledger = opened.ledger
    opened.runner.catch_up()
    events = stored_events(ledger)
    head = ledger.head_position()
    assert events[-1].position == head
    after = datetime.now(UTC)
    check_inventory_moves_with_the_bins(events)
    tables = tables_of(opened.read_models)
    with opened.read_models.database.reader.connect() as connection:
        check_every_event_posts_one_balanced_entry(connection, tables, events)
        check_trial_balance(connection, tables, events)
        check_reconciliation(connection, tables, head, None)
        check_valuation(connection, tables, opened)
        check_parties_owe_what_the_orders_say(connection, tables, opened)
        check_as_of(connection, tables, events, instants(events, after), zone, head)
    check_rebuild(opened, page_size)
    return events


@PROPERTY_SETTINGS
@given(history=histories, zone=st.sampled_from(ZONES), page_size=st.sampled_from((1, 3, 500)),
       tolerance=st.sampled_from((ZERO, Decimal("0.1"))))
def test_the_books_agree_for_any_history(history: list[Step], zone: timezone, page_size: int,
                                         tolerance: Decimal) -> None:
    with scenario(tolerance) as opened:
        opened.record(history)
        events = check_everything(opened, zone, page_size)
        for kind in sorted({posting.entry(stored.event).kind for stored in postable(events)}):
            event(f"posted {kind}")


# A history through every kind of event (the checks above, with nothing left out).

D = Decimal
SCRIPT: list[tuple[str, tuple[Any, ...]]] = [
    ("receive", ("WH-1", [("FIFO-A", D("10"), D("2.5")), ("AVG-A", D("8"), D("3.3333"))])),
    ("po_create", ("SUP-1", [("FIFO-A", "WH-1", D("12"), D("2.75")),
                             ("AVG-A", "WH-2", D("7.5"), D("4.125"))])),
    ("po_review", (0, True)),
    ("po_receive", (0, D("0.5"))),
    ("po_receive", (0, D("1"))),
    ("po_return", (0, D("0.3"))),
    ("po_invoice", (0, D("0.5"), D("2.9"), D("0.13"))),
    ("po_invoice", (0, D("1"), None, D("0.06"))),
    ("po_pay", (0, D("0.4"))),
    ("dispatch", ("WH-1", "FIFO-A", D("0.25"))),
    ("transfer", ("WH-1", "AVG-A", D("0.5"))),
    ("transfer", ("WH-2", "FIFO-A", D("1"))),
    ("count", ("WH-1", "FIFO-A", D("1.25"), None)),
    ("count", ("WH-1", "AVG-A", D("0.5"), None)),
    ("count", ("WH-2", "AVG-A", D("1"), D("5.123"))),
    ("so_place", ("CUS-1", [("FIFO-A", "WH-1", D("6"), D("9.99")),
                            ("AVG-A", "WH-2", D("3"), D("12.345"))])),
    ("so_review", (0, True)),
    ("so_dispatch", (0, D("0.5"))),
    ("so_dispatch", (0, None)),
    ("so_ship", (0,)),
    ("so_deliver", (0,)),
    ("so_invoice", (0, D("0.5"), D("10.5"), D("0.13"))),
    ("so_return", (0, D("0.3"))),
    ("so_invoice", (0, D("1"), None, D("0.1667"))),
    ("so_pay", (0, D("0.5"))),
    ("so_return", (0, D("0.2"))),
    ("so_place", ("CUS-2", [("FIFO-A", "WH-2", D("2"), D("8"))])),
    ("so_review", (1, True)),
    ("so_cancel", (1,)),
    ("count", ("WH-1", "FIFO-A", D("0"), D("1.5"))),
    ("po_end", (0, "closed")),
]


def test_a_history_through_every_kind_of_event() -> None:
    zones = iter(ZONES * len(SCRIPT))
    with scenario() as opened:
        for number, (action, args) in enumerate(SCRIPT):
            opened.moment += TIME_STEP * (number % 2)
            opened.run(action, args, opened.moment.astimezone(next(zones)))
            opened.runner.catch_up()
        assert opened.refused == []
        events = check_everything(opened, ZONES[1], page_size=2)
    assert {posting.entry(stored.event).kind for stored in postable(events)} == {
        "receipt", "dispatch", "sales_dispatch", "transfer_out", "transfer_in",
        "supplier_return", "customer_return", "count", "supplier_invoice",
        "supplier_payment", "sales_invoice", "customer_payment", "credit_note"}
    topics = {stored.topic for stored in events}
    assert {SalesOrder.Cancelled.TOPIC, SalesOrder.Shipped.TOPIC, SalesOrder.Delivered.TOPIC,
            SalesOrder.Reserved.TOPIC, PurchaseOrder.Ended.TOPIC} <= topics
    assert any(isinstance(stored.event, StockBin.Counted) and stored.event.revalued
               for stored in events)
