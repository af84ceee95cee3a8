"""Sales orders under real threads: reservations, dispatches and credit never overcommit.

Eight threads released together approve, dispatch and retry against one bin and one customer
account. Each test runs with one shared `Ledger` (many API threads in one process) and with
one `Ledger` per thread (separate connection pools, like separate API processes), on SQLite
and on PostgreSQL. What a user would notice: stock reserved twice (more reserved than is on
the shelf), reserved stock sold to a walk-in dispatch, a customer approved past their credit
limit, an approval lost or recorded twice, or read models that disagree with the bins.
"""

from __future__ import annotations

import threading
import traceback
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from typing import Any
from uuid import UUID

import pytest
from concurrency_support import THREADS, WAIT_SECONDS_MAX, Apps, at_once, retried
from sqlalchemy import select

from ledger import purchasing as p
from ledger import selling as s
from ledger.application import CommandResult, Ledger
from ledger.commands import Count, CountLine, Dispatch, DispatchLine, Receipt, ReceiptLine
from ledger.config import Settings, read_models_url
from ledger.domain.context import CommandMeta
from ledger.domain.customer_account import CustomerAccount
from ledger.domain.identity import bin_id, customer_account_id
from ledger.domain.item import ItemDetails
from ledger.domain.party import PartyDetails
from ledger.domain.sales_order import SalesFigures, SalesOrder
from ledger.domain.stock_bin import StockBin, reservation_key
from ledger.errors import (
    CreditLimitExceeded,
    InsufficientStock,
    InvalidTransition,
    OrderLimitExceeded,
)
from ledger.numbers import ZERO, ZERO_MONEY, extend
from projections.encoding import quantity_of
from projections.sales_orders import figures_of
from projections.service import ReadModels

D = Decimal
READ_WAIT_SECONDS = 5.0
OPERATOR = CommandMeta(actor="operator")
SKU = "TEA-TIN"
LOCATION = "MAIN"
CUSTOMERS = ("ACME", "BETA", "CAFE", "DELI")


# Set-up and inspection.


def set_up(app: Ledger, stock: Decimal, limits: dict[str, Decimal | None]) -> None:
    """One FIFO item in one location holding `stock` (two cost layers), and the customers."""
    app.register_item(SKU, ItemDetails("Tea tin", "ea", "fifo"), OPERATOR)
    app.register_location(LOCATION, "Main store", OPERATOR)
    for code, limit in limits.items():
        app.register_party(code, PartyDetails(f"Customer {code}", ("customer",), limit),
                           OPERATOR)
    half = (stock / 2).quantize(D("0.001"))
    for quantity, cost in ((half, D("2.5")), (stock - half, D("3.333333"))):
        app.receive(Receipt(location=LOCATION, lines=(ReceiptLine(SKU, quantity, cost),)),
                    OPERATOR)


def order_for(number: int, customers: tuple[str, ...] = CUSTOMERS) -> s.PlaceOrder:
    """Order `number`: 1–3 units at a price of its own (so that none looks like a duplicate)."""
    return s.PlaceOrder(customer=customers[number % len(customers)], lines=(
        s.SalesLine(SKU, LOCATION, D(number % 3 + 1), D("9") + D(number) / 100),))


def place_all(app: Ledger, orders: list[s.PlaceOrder]) -> list[UUID]:
    ids = []
    for order in orders:
        result = app.place_sales_order(order, OPERATOR)
        assert result.data["possible_duplicate_of"] == []
        ids.append(result.document_id)
    return ids


def approval(order_id: UUID) -> s.SalesReview:
    return s.SalesReview(order_id=order_id, approved=True)


def the_bin(app: Ledger) -> StockBin:
    stock_bin = app.stock_bin(SKU, LOCATION)
    assert stock_bin is not None
    return stock_bin


def account_of(app: Ledger, customer: str) -> CustomerAccount:
    account = app.repository.get(customer_account_id(customer))
    assert isinstance(account, CustomerAccount)
    return account


def events_since(app: Ledger, position: int) -> list[Any]:
    """The domain events appended after `position`, in log order."""
    found: list[Any] = []
    while page := app.recorder.select_notifications(start=position, limit=500,
                                                    inclusive_of_start=False):
        found += [app.mapper.to_domain_event(notification) for notification in page]
        position = page[-1].id
    return found


def count_of(events: list[Any], kind: type) -> int:
    return sum(isinstance(event, kind) for event in events)


def assert_bin_history_sound(app: Ledger) -> None:
    """Every state the bin ever had: 0 ≤ reserved ≤ on hand, and no line over its reservation.

    The bin's events are replayed by hand from the figures they record, so that a wrong
    `apply` cannot hide a state that broke the rule.
    """
    on_hand, reservations = ZERO, {}
    for event in app.events.get(bin_id(SKU, LOCATION)):
        if isinstance(event, StockBin.Reserved):
            key = reservation_key(event.order_id, event.order_line)
            assert event.quantity > ZERO
            assert event.quantity <= on_hand - sum(reservations.values(), ZERO), event
            reservations[key] = reservations.get(key, ZERO) + event.quantity
            assert event.quantity_reserved_after == sum(reservations.values(), ZERO)
        elif isinstance(event, StockBin.ReservationReleased):
            key = reservation_key(event.order_id, event.order_line)
            assert ZERO < event.quantity <= reservations.get(key, ZERO), event
            reservations[key] -= event.quantity
            assert event.quantity_reserved_after == sum(reservations.values(), ZERO)
        elif isinstance(event, StockBin.Dispatched):
            reserved = sum(reservations.values(), ZERO)
            if event.order_id is None:
                # A plain dispatch only takes what nobody reserved.
                assert event.quantity <= on_hand - reserved, event
            else:
                key = reservation_key(event.order_id, event.order_line)
                assert event.quantity <= reservations.get(key, ZERO), event
                reservations[key] -= event.quantity
            assert event.quantity_on_hand_after == on_hand - event.quantity
        if isinstance(event, StockBin.Movement):
            on_hand = event.quantity_on_hand_after
        reserved = sum(reservations.values(), ZERO)
        assert all(held >= ZERO for held in reservations.values())
        assert ZERO <= reserved <= on_hand, (event, reserved, on_hand)
    stock_bin = the_bin(app)
    assert stock_bin.quantity_on_hand == on_hand
    assert stock_bin.reservations == {key: held for key, held in reservations.items() if held}


def read_side(app: Ledger, url: str) -> tuple[dict[str, Any], dict[str, SalesFigures]]:
    """The bin's stock_levels row and every order's sales_orders figures, caught up."""
    read_models = ReadModels.open(read_models_url(Settings(database_url=url)))
    try:
        names = ["stock_levels", "sales_orders"]
        runner = read_models.runner(app.recorder, app.mapper, names)
        runner.prepare()
        runner.catch_up()
        states = read_models.wait(names, app.head_position(), READ_WAIT_SECONDS)
        levels = read_models.by_name["stock_levels"].tables(
            states["stock_levels"].generation)["stock_levels"]
        orders = read_models.by_name["sales_orders"].tables(
            states["sales_orders"].generation)["sales_orders"]
        with read_models.database.reader.connect() as connection:
            level_rows = [dict(row) for row in connection.execute(select(levels)).mappings()]
            order_rows = [dict(row) for row in connection.execute(select(orders)).mappings()]
    finally:
        read_models.close()
    assert [(row["sku"], row["location"]) for row in level_rows] == [(SKU, LOCATION)]
    return level_rows[0], {row["order_id"]: figures_of(row) for row in order_rows}


def assert_read_side_agrees(app: Ledger, url: str, order_ids: list[UUID]) -> None:
    """stock_levels: on hand and reserved as in the bin, reserved ≤ on hand; orders as folded."""
    level, figures = read_side(app, url)
    stock_bin = the_bin(app)
    on_hand = quantity_of(level["quantity_on_hand_e3"])
    reserved = quantity_of(level["quantity_reserved_e3"])
    assert (on_hand, reserved) == (stock_bin.quantity_on_hand, stock_bin.quantity_reserved)
    assert ZERO <= reserved <= on_hand
    assert sorted(figures) == sorted(str(order_id) for order_id in order_ids)
    for order_id in order_ids:
        order = app.sales_order(order_id)
        row = figures[str(order_id)]
        assert row.status == order.status
        assert row.lines == order.lines


# Tests.


def test_many_approvals_at_once_reserve_exactly_the_scarce_stock(apps: Apps) -> None:
    """24 orders (48 units) approved at once against 20 units: 20 reserved, in one history."""
    app = apps.shared
    stock = D("20")
    set_up(app, stock, dict.fromkeys(CUSTOMERS))
    orders = [order_for(number) for number in range(3 * THREADS)]
    ordered = {number: order.lines[0].quantity for number, order in enumerate(orders)}
    demand = sum(ordered.values(), ZERO)
    assert demand > stock

    # Placed at once too: each customer's account takes every placement.
    placed = at_once(lambda thread, ledger: [
        (number, retried(lambda number=number: ledger.place_sales_order(
            orders[number], OPERATOR)))
        for number in range(thread, len(orders), THREADS)], apps)
    order_ids: dict[int, UUID] = {}
    for number, result in (pair for pairs in placed for pair in pairs):
        assert result.data["status"] == "pending_review"
        assert result.data["possible_duplicate_of"] == []
        order_ids[number] = result.document_id
    assert len(set(order_ids.values())) == len(orders)
    for customer in CUSTOMERS:
        account = account_of(app, customer)
        assert sorted(account.orders) == sorted(
            str(order_ids[number]) for number, order in enumerate(orders)
            if order.customer == customer)
    head = app.head_position()

    approved = at_once(lambda thread, ledger: [
        (number, retried(lambda number=number: ledger.review_sales_order(
            approval(order_ids[number]), OPERATOR)))
        for number in range(thread, len(orders), THREADS)], apps)

    results = dict(pair for pairs in approved for pair in pairs)
    assert sorted(results) == list(range(len(orders)))
    assert not any(result.replayed for result in results.values())
    assert len({result.document_id for result in results.values()}) == len(orders)
    reserved: dict[int, Decimal] = {}
    for number, result in results.items():
        [line] = result.data["reservations"]
        assert line["line_number"] == 1 and line["reserved_now"] == line["reserved"]
        assert line["reserved"] + line["short"] == ordered[number]
        assert ZERO <= line["reserved"] <= ordered[number]
        assert result.data["status"] == ("approved" if line["short"] == ZERO else "backordered")
        reserved[number] = line["reserved"]
    # Exactly min(stock, demand) reserved: never more, and none left on the shelf.
    assert sum(reserved.values(), ZERO) == min(stock, demand)
    # Each order got all it asked for while stock lasted: at most one got part of it.
    assert sum(ZERO < reserved[n] < ordered[n] for n in reserved) <= 1

    stock_bin = the_bin(app)
    assert (stock_bin.quantity_on_hand, stock_bin.quantity_reserved) == (stock, min(stock,
                                                                                    demand))
    assert stock_bin.quantity_available == ZERO
    for number, order_id in order_ids.items():
        order = app.sales_order(order_id)
        line = order.lines[1]
        assert order.review_outcome == "approved"
        assert line["reserved"] == reserved[number] == stock_bin.reserved_for(order_id, 1)
        assert order.short() == {1: ordered[number] - reserved[number]}
        assert order.status == results[number].data["status"]
        # Placed, Reviewed and, if it got any stock, Reserved: nothing twice.
        assert order.version == 2 + (reserved[number] > ZERO)
    assert sum(reserved.values(), ZERO) == stock_bin.quantity_reserved
    assert stock_bin.reservations == {
        reservation_key(order_ids[n], 1): held for n, held in reserved.items() if held}

    # The bin's reservations form one serial history: each saw what the previous one left.
    bin_reservations = [event for event in app.events.get(bin_id(SKU, LOCATION))
                        if isinstance(event, StockBin.Reserved)]
    number_of = {order_id: number for number, order_id in order_ids.items()}
    held = ZERO
    for event in bin_reservations:
        number = number_of[event.order_id]
        assert event.quantity == min(ordered[number], stock - held)
        held += event.quantity
        assert event.quantity_reserved_after == held
    assert_bin_history_sound(app)

    # Every customer's account carries each of its approved orders' value, once.
    for customer in CUSTOMERS:
        account = account_of(app, customer)
        values = {str(order_ids[n]): extend(order.lines[0].quantity, order.lines[0].unit_price)
                  for n, order in enumerate(orders) if order.customer == customer}
        assert account.exposures == values
        assert account.total_exposure == sum(values.values(), ZERO_MONEY)

    # No approval lost or recorded twice: exactly these events were appended.
    appended = events_since(app, head)
    reserving = sum(held > ZERO for held in reserved.values())
    assert count_of(appended, SalesOrder.Reviewed) == len(orders)
    assert count_of(appended, SalesOrder.Reserved) == reserving
    assert count_of(appended, StockBin.Reserved) == reserving == len(bin_reservations)
    assert count_of(appended, CustomerAccount.ExposureChanged) == len(orders)
    assert len(appended) == 2 * len(orders) + 2 * reserving
    assert apps.conflicts() > 0
    assert_read_side_agrees(apps.open(), apps.url, list(order_ids.values()))


# A plain dispatch asks for these in turn: uneven, so that the last ones do not fit.
ASKS = [D("0.5"), D("1.25"), D("0.75"), D("2"), D("0.125"), D("1")]


def test_reserved_dispatches_racing_plain_dispatches_never_oversell(apps: Apps) -> None:
    """36 on hand, 24 reserved by 12 orders: 4 threads dispatch the orders, 4 sell the rest.

    Each sales thread dispatches orders of its own (two dispatches of one order racing each
    other are the forced interleavings below); all eight race on the one bin.
    """
    app = apps.shared
    stock = D("36")
    set_up(app, stock, dict.fromkeys(CUSTOMERS))
    orders = [order_for(number) for number in range(12)]
    order_ids = place_all(app, orders)
    for order_id in order_ids:
        app.review_sales_order(approval(order_id), OPERATOR)
    stocked = the_bin(app)
    reserved = stocked.quantity_reserved
    assert reserved == sum((order.lines[0].quantity for order in orders), ZERO) == D("24")
    available = stock - reserved
    value = stocked.value
    sales_threads = THREADS // 2

    def dispatch_orders(number: int, ledger: Ledger) -> tuple[list[CommandResult], int]:
        """This thread's orders, until nothing is reserved on them."""
        accepted: list[CommandResult] = []
        refusals = 0
        for order_id in order_ids[number::sales_threads]:
            # Even threads take one unit at a time, odd ones everything reserved.
            quantities = ((1, D("1")),) if number % 2 == 0 else ()
            command = p.Quantities(order_id=order_id, quantities=quantities)
            for _ in range(10):
                try:
                    accepted.append(retried(lambda command=command: ledger.dispatch_sales_order(
                        command, OPERATOR)))
                except OrderLimitExceeded as refusal:
                    assert refusal.code == "over_shipment" and quantities
                    refusals += 1
                    break
                except InvalidTransition as refusal:
                    assert refusal.action == "dispatch: nothing is reserved" and not quantities
                    refusals += 1
                    break
            else:
                raise AssertionError("an order was still reserved after 10 dispatches")
        return accepted, refusals

    def dispatch_plain(number: int, ledger: Ledger) -> tuple[list[CommandResult], int]:
        """Walk-in sales (POST /dispatches): take what is available until there is none."""
        accepted: list[CommandResult] = []
        refusals = 0
        quantity = ASKS[number % len(ASKS)]
        for ask in range(number + 1, number + 100):
            dispatch = Dispatch(location=LOCATION, lines=(DispatchLine(SKU, quantity),))
            try:
                accepted.append(retried(lambda dispatch=dispatch: ledger.dispatch(
                    dispatch, OPERATOR)))
            except InsufficientStock as refusal:
                refusals += 1
                # What is available never includes reserved stock.
                assert ZERO <= refusal.available < quantity and refusal.available <= available
                if refusal.available == ZERO:
                    return accepted, refusals
                quantity = refusal.available
                continue
            quantity = ASKS[ask % len(ASKS)]
        raise AssertionError("the available stock was still not gone after 100 dispatches")

    outcomes = at_once(lambda number, ledger: (dispatch_orders if number < sales_threads
                                               else dispatch_plain)(number, ledger), apps)

    sales = [result for results, _ in outcomes[:sales_threads] for result in results]
    plain = [result for results, _ in outcomes[sales_threads:] for result in results]
    # Walk-in sales took exactly the stock nobody reserved; the orders got all theirs.
    assert sum((result.lines[0]["quantity"] for result in plain), ZERO) == available
    assert sum((line["quantity"] for result in sales for line in result.lines), ZERO) \
        == reserved
    assert all(refusals >= 1 for _, refusals in outcomes)
    for result in sales + plain:
        [line] = result.lines
        assert line["quantity_on_hand_after"] >= ZERO
    for result in sales:
        assert result.data["status"] in ("partially_dispatched", "dispatched")
    # Every unit went out once, at cost: the value of the bin is gone, to the cent.
    assert sum((result.lines[0]["value"] for result in sales + plain), ZERO_MONEY) == value

    emptied = the_bin(apps.open())
    assert (emptied.quantity_on_hand, emptied.quantity_reserved, emptied.value) == (
        ZERO, ZERO, ZERO)
    assert emptied.reservations == {}
    assert emptied.version == stocked.version + len(sales) + len(plain)
    for order_id, order in zip(order_ids, orders, strict=True):
        placed = app.sales_order(order_id)
        line = placed.lines[1]
        assert (line["reserved"], line["dispatched"]) == (ZERO, order.lines[0].quantity)
        assert placed.status == "dispatched"
        dispatched = [result for result in sales if result.data["order_id"] == order_id]
        assert sum((r.lines[0]["quantity"] for r in dispatched), ZERO) == line["dispatched"]
        assert sum((r.lines[0]["value"] for r in dispatched), ZERO_MONEY) \
            == line["dispatched_value"]
    assert_bin_history_sound(app)
    assert apps.conflicts() > 0
    assert_read_side_agrees(apps.open(), apps.url, order_ids)


def with_a_stale_order(apps: Apps, monkeypatch: pytest.MonkeyPatch,
                       late: Callable[[Ledger], CommandResult],
                       early: Callable[[Ledger], CommandResult]) -> CommandResult | Exception:
    """`late` loads the order, then the bin only after `early` changed both and was saved.

    Two API processes at the worst moment, forced, so that the outcome is certain: `late`
    must lose its save to `early` and decide again, never act on the order it loaded first.
    Returns what `late` answered, or what it raised.
    """
    early_api, late_api = apps.for_thread(0), apps.for_thread(1)
    late_at_bin, early_saved = threading.Event(), threading.Event()
    load = late_api.repository.get

    def load_bin_after_early(aggregate_id: UUID, *args: Any, **kwargs: Any) -> Any:
        if aggregate_id == bin_id(SKU, LOCATION) and not late_at_bin.is_set():
            late_at_bin.set()
            assert early_saved.wait(WAIT_SECONDS_MAX)
        return load(aggregate_id, *args, **kwargs)

    monkeypatch.setattr(late_api.repository, "get", load_bin_after_early)
    with ThreadPoolExecutor(max_workers=1) as pool:
        late_future = pool.submit(late, late_api)
        assert late_at_bin.wait(WAIT_SECONDS_MAX)
        try:
            early(early_api)
        finally:
            early_saved.set()
        try:
            return late_future.result(timeout=WAIT_SECONDS_MAX)
        except Exception as error:  # the caller says which outcome is right
            return error


def raised(outcome: object) -> str:
    """Where an unexpected exception came from, for the failure message."""
    if not isinstance(outcome, Exception):
        return repr(outcome)
    frames = traceback.extract_tb(outcome.__traceback__)
    where = f"{frames[-1].filename}:{frames[-1].lineno} {frames[-1].line}" if frames else ""
    return f"{type(outcome).__name__}({outcome}) at {where}"


@pytest.fixture
def two_apps(database_url: str) -> Iterator[Apps]:
    opened = Apps(database_url, per_thread=True)
    yield opened
    opened.close()


def one_reserved_order(app: Ledger) -> UUID:
    """3 on hand, all reserved by one order of 3."""
    set_up(app, D("3"), {"ACME": None})
    [order_id] = place_all(app, [order_for(2, ("ACME",))])
    result = app.review_sales_order(approval(order_id), OPERATOR)
    assert result.data["status"] == "approved"
    return order_id


EARLY_STEPS: dict[str, Callable[[Ledger, UUID], CommandResult]] = {
    # Another clerk dispatches one unit of the same order.
    "dispatch-one": lambda ledger, order_id: ledger.dispatch_sales_order(
        p.Quantities(order_id=order_id, quantities=((1, D("1")),)), OPERATOR),
    # A count finds 2: the order's reservation shrinks to 2 (shortfall release).
    "count-shortfall": lambda ledger, order_id: ledger.count(
        Count(location=LOCATION, reason="cycle count", lines=(CountLine(SKU, D("2")),)),
        OPERATOR),
}


@pytest.mark.parametrize("early_step", sorted(EARLY_STEPS))
def test_a_dispatch_deciding_on_a_stale_order_is_retried(
        two_apps: Apps, monkeypatch: pytest.MonkeyPatch, early_step: str) -> None:
    """Dispatch everything reserved, while another command takes 1 of the order's 3.

    Right: the dispatch loses its save, decides again and dispatches the 2 still reserved.
    """
    app = two_apps.for_thread(0)
    order_id = one_reserved_order(app)

    outcome = with_a_stale_order(
        two_apps, monkeypatch,
        late=lambda ledger: ledger.dispatch_sales_order(
            p.Quantities(order_id=order_id, quantities=()), OPERATOR),
        early=lambda ledger: EARLY_STEPS[early_step](ledger, order_id))

    assert isinstance(outcome, CommandResult), raised(outcome)
    assert [line["quantity"] for line in outcome.lines] == [D("2")]
    order = app.sales_order(order_id)
    assert order.lines[1]["reserved"] == ZERO
    assert order.lines[1]["dispatched"] == (D("3") if early_step == "dispatch-one" else D("2"))
    stock_bin = the_bin(app)
    assert (stock_bin.quantity_on_hand, stock_bin.quantity_reserved) == (ZERO, ZERO)
    assert_bin_history_sound(app)


def test_a_cancel_deciding_on_a_stale_order_is_retried(
        two_apps: Apps, monkeypatch: pytest.MonkeyPatch) -> None:
    """Cancel an approved order while another clerk dispatches 1 of its 3 reserved.

    Right: the cancel loses its save, decides again and is refused (409 invalid_transition:
    the order is partially dispatched); the 2 still reserved stay reserved.
    """
    app = two_apps.for_thread(0)
    order_id = one_reserved_order(app)

    outcome = with_a_stale_order(
        two_apps, monkeypatch,
        late=lambda ledger: ledger.cancel_sales_order(p.OrderStep(order_id=order_id),
                                                      OPERATOR),
        early=lambda ledger: EARLY_STEPS["dispatch-one"](ledger, order_id))

    assert isinstance(outcome, InvalidTransition), raised(outcome)
    assert (outcome.status, outcome.action) == ("partially_dispatched", "cancel")
    order = app.sales_order(order_id)
    assert (order.status, order.lines[1]["reserved"]) == ("partially_dispatched", D("2"))
    stock_bin = the_bin(app)
    assert (stock_bin.quantity_on_hand, stock_bin.quantity_reserved) == (D("2"), D("2"))
    assert_bin_history_sound(app)


def test_approvals_at_once_never_exceed_a_credit_limit(apps: Apps) -> None:
    """24 orders of two customers with credit limits, approved at once: within each limit."""
    app = apps.shared
    limits = {"ACME": D("100.00"), "BETA": D("55.50")}
    customers = tuple(limits)
    set_up(app, D("1000"), dict(limits))
    orders = [order_for(number, customers) for number in range(3 * THREADS)]
    values = [extend(order.lines[0].quantity, order.lines[0].unit_price) for order in orders]
    order_ids = place_all(app, orders)
    head = app.head_position()

    def approve(thread: int, ledger: Ledger) -> list[tuple[int, CommandResult | Exception]]:
        outcomes: list[tuple[int, CommandResult | Exception]] = []
        for number in range(thread, len(orders), THREADS):
            try:
                outcomes.append((number, retried(lambda number=number: ledger.review_sales_order(
                    approval(order_ids[number]), OPERATOR))))
            except CreditLimitExceeded as refusal:
                outcomes.append((number, refusal))
        return outcomes

    outcomes = dict(pair for pairs in at_once(approve, apps) for pair in pairs)

    assert sorted(outcomes) == list(range(len(orders)))
    approved = {n for n, outcome in outcomes.items() if isinstance(outcome, CommandResult)}
    for customer, limit in limits.items():
        mine = [n for n, order in enumerate(orders) if order.customer == customer]
        exposure = sum((values[n] for n in mine if n in approved), ZERO_MONEY)
        assert exposure <= limit
        assert sum((values[n] for n in mine), ZERO_MONEY) > limit
        account = account_of(app, customer)
        assert account.total_exposure == exposure
        assert account.exposures == {str(order_ids[n]): values[n] for n in mine if n in approved}
        refused = [n for n in mine if n not in approved]
        assert refused and len(refused) < len(mine)
        for number in refused:
            refusal = outcomes[number]
            assert isinstance(refusal, CreditLimitExceeded)
            assert (refusal.customer, refusal.credit_limit) == (customer, limit)
            assert refusal.order_exposure == values[number]
            assert refusal.exposure + refusal.order_exposure > limit
            # Exposure only grew: what the refusal saw was committed, and still refuses it.
            assert refusal.exposure <= exposure
            assert exposure + values[number] > limit
            refused_order = app.sales_order(order_ids[number])
            assert (refused_order.status, refused_order.version) == ("pending_review", 1)
        # The account's exposure grew in one serial history, never past the limit.
        total = ZERO_MONEY
        for event in app.events.get(customer_account_id(customer)):
            if isinstance(event, CustomerAccount.ExposureChanged):
                total += event.exposure
                assert event.total_exposure == total <= limit
        assert total == exposure
    for number in approved:
        order = app.sales_order(order_ids[number])
        assert (order.status, order.lines[1]["reserved"]) == ("approved", ordered(orders, number))
    stock_bin = the_bin(app)
    assert stock_bin.quantity_reserved == sum((ordered(orders, n) for n in approved), ZERO)
    appended = events_since(app, head)
    assert count_of(appended, SalesOrder.Reviewed) == len(approved)
    assert count_of(appended, CustomerAccount.ExposureChanged) == len(approved)
    assert len(appended) == 4 * len(approved)
    assert_bin_history_sound(app)
    assert_read_side_agrees(apps.open(), apps.url, order_ids)


def ordered(orders: list[s.PlaceOrder], number: int) -> Decimal:
    return orders[number].lines[0].quantity


def test_one_approval_sent_by_many_threads_with_one_key_records_one_review(apps: Apps) -> None:
    app = apps.shared
    set_up(app, D("10"), dict.fromkeys(CUSTOMERS))
    orders = [order_for(number) for number in range(4)]
    order_ids = place_all(app, orders)
    reserved = ZERO
    for round_number, order_id in enumerate(order_ids):
        head = app.head_position()
        meta = CommandMeta(actor="reviewer", idempotency_key=f"approve-{round_number}")

        results = at_once(lambda _number, ledger, order_id=order_id, meta=meta:
                          ledger.review_sales_order(approval(order_id), meta), apps)

        assert sorted(result.replayed for result in results) == [False] + [True] * (THREADS - 1)
        first = results[0]
        assert all((result.document_id, result.position, result.data)
                   == (first.document_id, first.position, first.data) for result in results)
        quantity = ordered(orders, round_number)
        [line] = first.data["reservations"]
        assert (line["reserved"], line["short"]) == (quantity, ZERO)
        # One review: Reviewed and Reserved on the order, Reserved on the bin, the account's
        # exposure and the command record; nothing more.
        appended = events_since(app, head)
        assert count_of(appended, SalesOrder.Reviewed) == 1
        assert len(appended) == 5
        assert first.position == max(app.recorder.select_notifications(
            start=head, limit=10, inclusive_of_start=False), key=lambda n: n.id).id
        order = app.sales_order(order_id)
        assert (order.status, order.version) == ("approved", 3)
        reserved += quantity
        assert the_bin(app).quantity_reserved == reserved
    assert apps.conflicts() > 0
    assert_bin_history_sound(app)
    assert_read_side_agrees(apps.open(), apps.url, order_ids)
