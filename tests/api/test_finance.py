"""Finance and report routes over HTTP: the journal, trial balance, valuation, COGS, the sales
and turnover reports, AR/AP ageing, the reconciliation, and who may read them.

Every figure is worked out by hand in the comments from the posting rules (ledger/posting.py):
receipts Dr inventory / Cr GRNI at cost; a sales dispatch Dr COGS / Cr inventory at cost (FIFO
layers oldest first, or the moving average); a plain dispatch or a count loss goes to inventory
adjustments; a customer return comes back at the cost it went out at (Dr inventory / Cr COGS)
with a credit note (Dr sales returns and output tax / Cr AR). Money: amount = quantity × price,
tax = round(amount × rate, 2) half up. Movements carry explicit effective times (`at(day)` is
2025-01-<day> 09:00 UTC), so `as_of`, `from` and `to` fall exactly on, before or between them.
Reads wait for the store's head (`min_position`).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from api_support import (
    ADMIN,
    AUDITOR,
    AVERAGE_SKU,
    FIFO_SKU,
    FINANCE,
    OPERATIONS,
    STORE,
    WAREHOUSE,
    Body,
    assert_problem,
    bearer,
    seed,
)
from finance_support import (
    CODES,
    CUSTOMER,
    FINANCE_READS,
    OTHER_CUSTOMER,
    OTHER_SUPPLIER,
    SUPPLIER,
    Books,
    bill,
    collect,
    ledger_clock,
    purchased,
    register_parties,
    serving_books,
    sold,
    supplier_invoice,
    supplier_payment,
    take_back,
)
from read_support import ONE_MICROSECOND, at, card_instant, iso

JOURNAL = "/finance/journal"
TRIAL_BALANCE = "/finance/trial-balance"
VALUATION = "/finance/valuation"
COGS = "/finance/cogs"
SALES = "/reports/sales"
TURNOVER = "/reports/turnover"
RECEIVABLES = "/finance/receivables"
PAYABLES = "/finance/payables"
RECONCILIATION = "/finance/reconciliation"

# The stored event each kind of journal entry posts from.
TOPICS = {
    "receipt": "ledger:StockBin.Received", "dispatch": "ledger:StockBin.Dispatched",
    "sales_dispatch": "ledger:StockBin.Dispatched",
    "transfer_out": "ledger:StockBin.TransferredOut",
    "transfer_in": "ledger:StockBin.TransferredIn", "count": "ledger:StockBin.Counted",
    "customer_return": "ledger:StockBin.ReturnedByCustomer",
    "supplier_invoice": "ledger:PurchaseOrder.Invoiced",
    "supplier_payment": "ledger:PurchaseOrder.Paid",
    "sales_invoice": "ledger:SalesOrder.Invoiced", "customer_payment": "ledger:SalesOrder.Paid",
    "credit_note": "ledger:SalesOrder.Returned",
}


@pytest.fixture
def books(sqlite_url: str) -> Iterator[Books]:
    with serving_books(sqlite_url) as api:
        seed(api)
        register_parties(api)
        yield api


def stock_history(api: Books) -> dict[str, Body]:
    """FIFO stock in the warehouse, each movement a day apart.

    Layers: 10 @ 4.20 (42.00), then 5 @ 5.00 (25.00). The dispatch of 4 takes 4 × 4.20 = 16.80,
    the transfer of 2 to the store 2 × 4.20 = 8.40; the count finds 8 of the 9 left: a loss of
    1 × 4.20. The warehouse keeps 3 @ 4.20 + 5 @ 5.00 = 37.60, the store 2 @ 4.20 = 8.40.
    """
    return {
        "first": api.receive(WAREHOUSE, (FIFO_SKU, "10", "4.20"), effective_at=iso(at(1))),
        "second": api.receive(WAREHOUSE, (FIFO_SKU, "5", "5.00"), effective_at=iso(at(2))),
        "scrap": api.dispatch(WAREHOUSE, (FIFO_SKU, "4"), effective_at=iso(at(3)),
                              reason="damaged"),
        "transfer": api.transfer(WAREHOUSE, STORE, (FIFO_SKU, "2"), effective_at=iso(at(4))),
        "count": api.count(WAREHOUSE, {"sku": FIFO_SKU, "counted_quantity": "8"},
                           effective_at=iso(at(5))),
    }


def lines(entry: Body) -> list[tuple[Any, ...]]:
    """A journal entry's lines: account, location, SKU, quantity, debit, credit."""
    return [(line["account"], line["location"], line["sku"], line["quantity"], line["debit"],
             line["credit"]) for line in entry["lines"]]


def outline(entries: list[Body]) -> list[tuple[str, str]]:
    """Entries as (kind, effective time)."""
    return [(entry["kind"], entry["effective_at"]) for entry in entries]


STOCK_ENTRIES = [("receipt", card_instant(at(1))), ("receipt", card_instant(at(2))),
                 ("dispatch", card_instant(at(3))), ("transfer_out", card_instant(at(4))),
                 ("transfer_in", card_instant(at(4))), ("count", card_instant(at(5)))]


# The journal.


def test_each_movement_posts_one_balanced_entry_that_leads_back_to_its_event(
        books: Books) -> None:
    history = stock_history(books)

    entries = books.journal()

    assert outline(entries) == STOCK_ENTRIES
    first, second, scrap, out, into, count = entries
    assert lines(first) == [("inventory", WAREHOUSE, FIFO_SKU, "10.000", "42.00", "0.00"),
                            ("grni", WAREHOUSE, FIFO_SKU, "10.000", "0.00", "42.00")]
    assert lines(second) == [("inventory", WAREHOUSE, FIFO_SKU, "5.000", "25.00", "0.00"),
                             ("grni", WAREHOUSE, FIFO_SKU, "5.000", "0.00", "25.00")]
    # A dispatch outside any order is an adjustment, not a cost of sales: 4 × 4.20.
    assert lines(scrap) == [
        ("inventory_adjustments", WAREHOUSE, FIFO_SKU, "4.000", "16.80", "0.00"),
        ("inventory", WAREHOUSE, FIFO_SKU, "4.000", "0.00", "16.80")]
    # 2 × 4.20 leaves the warehouse for stock in transit, and arrives in the store.
    assert lines(out) == [("stock_in_transit", WAREHOUSE, FIFO_SKU, "2.000", "8.40", "0.00"),
                          ("inventory", WAREHOUSE, FIFO_SKU, "2.000", "0.00", "8.40")]
    assert lines(into) == [("inventory", STORE, FIFO_SKU, "2.000", "8.40", "0.00"),
                           ("stock_in_transit", STORE, FIFO_SKU, "2.000", "0.00", "8.40")]
    # The count's loss of 1 × 4.20: inventory credited, adjustments debited.
    assert lines(count) == [("inventory", WAREHOUSE, FIFO_SKU, "-1.000", "0.00", "4.20"),
                            ("inventory_adjustments", WAREHOUSE, FIFO_SKU, "-1.000", "4.20",
                             "0.00")]
    documents = [history[name]["document_id"] for name in ("first", "second", "scrap")] + [
        history["transfer"]["document_id"]] * 2 + [history["count"]["document_id"]]
    assert [entry["document_id"] for entry in entries] == documents
    for entry in entries:
        assert [line["line_number"] for line in entry["lines"]] == [1, 2]
        assert all(line["code"] == CODES[line["account"]] for line in entry["lines"]), entry
        assert all(line["party"] is line["order_id"] is line["order_line"] is None
                   for line in entry["lines"])
        event = books.query(f"/events/{entry['position']}", key=AUDITOR)
        assert (event["event_id"], event["type"], event["effective_at"],
                event["recorded_at"]) == (entry["event_id"], TOPICS[entry["kind"]],
                                          entry["effective_at"], entry["recorded_at"])
        assert event["data"]["document_id"] == entry["document_id"]
    positions = [entry["position"] for entry in entries]
    assert positions == sorted(set(positions))


def test_journal_periods_count_by_effective_time_from_inclusive_to_exclusive(
        books: Books) -> None:
    stock_history(books)

    def kinds(**params: Any) -> list[tuple[str, str]]:
        return outline(books.journal(**params))

    assert kinds(**{"from": iso(at(2)), "to": iso(at(4))}) == STOCK_ENTRIES[1:3]
    assert kinds(**{"from": iso(at(4))}) == STOCK_ENTRIES[3:]
    assert kinds(**{"from": iso(at(5))}) == STOCK_ENTRIES[5:]
    assert kinds(**{"from": iso(at(5) + ONE_MICROSECOND)}) == []
    assert kinds(to=iso(at(1))) == []
    assert kinds(to=iso(at(1) + ONE_MICROSECOND)) == STOCK_ENTRIES[:1]
    # The same instant written in another offset: 2025-01-03 17:00 +08:00 is 09:00 UTC.
    assert kinds(**{"from": "2025-01-03T17:00:00+08:00",
                    "to": "2025-01-03T17:00:00.000001+08:00"}) == STOCK_ENTRIES[2:3]
    assert kinds(**{"from": iso(at(3)), "to": iso(at(3))}) == []


def test_an_account_filter_lists_whole_entries_with_a_line_on_it(books: Books) -> None:
    stock_history(books)

    transit = books.journal(account="stock_in_transit")
    adjustments = books.journal(account="inventory_adjustments")

    assert outline(transit) == STOCK_ENTRIES[3:5]
    # Every line of each entry, not only the line on the account.
    assert [line["account"] for entry in transit for line in entry["lines"]] == [
        "stock_in_transit", "inventory", "inventory", "stock_in_transit"]
    assert outline(adjustments) == [STOCK_ENTRIES[2], STOCK_ENTRIES[5]]
    assert outline(books.journal(account="grni")) == STOCK_ENTRIES[:2]
    assert outline(books.journal(account="inventory")) == STOCK_ENTRIES
    assert books.journal(account="bank") == []
    assert outline(books.journal(account="inventory", **{"from": iso(at(3)),
                                                          "to": iso(at(5))})) == (
        STOCK_ENTRIES[2:5])


def test_the_journal_pages_by_cursor_and_the_pages_join_up(books: Books) -> None:
    stock_history(books)
    head = books.head()
    everything = books.journal()

    first = books.read(JOURNAL, limit=4)
    rest = books.read(JOURNAL, limit=4, cursor=first["next_cursor"])

    assert [entry["position"] for entry in first["items"] + rest["items"]] == [
        entry["position"] for entry in everything]
    assert first["next_cursor"] is not None and rest["next_cursor"] is None
    assert first["position"] >= head
    assert books.walk(JOURNAL, limit=1, min_position=head) == everything
    # A filter is sent again with each page's cursor.
    assert books.walk(JOURNAL, limit=1, account="inventory_adjustments",
                      min_position=head) == books.journal(account="inventory_adjustments")
    assert books.read(JOURNAL, limit=200)["items"] == everything


@pytest.mark.parametrize("params", [
    {"account": "cash"}, {"account": "INVENTORY"}, {"account": ""},
    {"from": "yesterday"}, {"to": "2025-13-01T00:00:00Z"},
    {"from": iso(at(2)), "to": iso(at(1))},
    {"limit": 201}, {"limit": 0}, {"cursor": "nonsense"}, {"min_position": -1},
], ids=["unknown account", "account in capitals", "empty account", "words", "month 13",
        "to before from", "limit 201", "limit 0", "bad cursor", "negative position"])
def test_bad_journal_queries_are_invalid_input(books: Books, params: Body) -> None:
    problem = assert_problem(books.get(JOURNAL, key=AUDITOR, **params), 422,
                             "validation_error")

    if "to" in params and "from" in params:
        assert problem["field"] == "to"


# Times without an offset are refused by every other route (`AwareDatetime`).
NAIVE = "2025-01-03T09:00:00"
TIME_PARAMETERS = [(JOURNAL, "from"), (JOURNAL, "to"), (TRIAL_BALANCE, "as_of"),
                   (VALUATION, "as_of"), (COGS, "from"), (SALES, "to"), (TURNOVER, "from"),
                   (RECEIVABLES, "as_of"), (PAYABLES, "as_of"), (RECONCILIATION, "as_of")]


def test_a_time_without_a_time_zone_is_invalid_input_on_every_finance_route(
        books: Books) -> None:
    stock_history(books)
    client = books.without_raising()

    statuses = {f"{path}?{name}": client.get(path, params={name: NAIVE},
                                             headers=bearer(AUDITOR)).status_code
                for path, name in TIME_PARAMETERS}

    # A bare date parses as midnight without an offset too.
    statuses[f"{JOURNAL}?from=<date>"] = client.get(
        JOURNAL, params={"from": "2025-01-03"}, headers=bearer(AUDITOR)).status_code

    assert statuses == dict.fromkeys(statuses, 422)
    assert books.get("/stock", key=AUDITOR, as_of=NAIVE).status_code == 422


# The trial balance.


def account_rows(balance: Body) -> list[tuple[Any, ...]]:
    return [(row["code"], row["account"], row["location"], row["debit"], row["credit"],
             row["balance"]) for row in balance["accounts"]]


def test_the_trial_balance_lists_every_account_with_inventory_per_location(
        books: Books) -> None:
    stock_history(books)

    balance = books.read(TRIAL_BALANCE)

    # Warehouse: in 42.00 + 25.00 = 67.00, out 16.80 + 8.40 + 4.20 = 29.40, left 37.60.
    # Adjustments: 16.80 + 4.20 = 21.00. Debits 8.40 + 67.00 + 8.40 + 21.00 = 104.80; credits
    # 29.40 + 8.40 + 67.00 = 104.80.
    assert account_rows(balance) == [
        ("1405", "inventory", STORE, "8.40", "0.00", "8.40"),
        ("1405", "inventory", WAREHOUSE, "67.00", "29.40", "37.60"),
        ("1406", "stock_in_transit", None, "8.40", "8.40", "0.00"),
        ("2202.99", "grni", None, "0.00", "67.00", "-67.00"),
        ("6711", "inventory_adjustments", None, "21.00", "0.00", "21.00")]
    assert (balance["total_debit"], balance["total_credit"], balance["balanced"],
            balance["as_of"]) == ("104.80", "104.80", True, None)
    assert [row["name"] for row in balance["accounts"]][:1] == ["Inventory 库存商品"]
    assert balance["position"] >= books.head()


def test_the_trial_balance_as_of_a_moment_counts_what_was_effective_by_then(
        books: Books) -> None:
    stock_history(books)

    before = books.read(TRIAL_BALANCE, as_of=iso(at(3) - ONE_MICROSECOND))
    on = books.read(TRIAL_BALANCE, as_of=iso(at(3)))
    nothing = books.read(TRIAL_BALANCE, as_of=iso(at(1) - ONE_MICROSECOND))

    # Before the dispatch: the two receipts only (67.00).
    assert account_rows(before) == [("1405", "inventory", WAREHOUSE, "67.00", "0.00", "67.00"),
                                    ("2202.99", "grni", None, "0.00", "67.00", "-67.00")]
    assert (before["total_debit"], before["total_credit"]) == ("67.00", "67.00")
    # On it (as_of is inclusive): the dispatch's 16.80, and nothing else, is added.
    assert account_rows(on) == [
        ("1405", "inventory", WAREHOUSE, "67.00", "16.80", "50.20"),
        ("2202.99", "grni", None, "0.00", "67.00", "-67.00"),
        ("6711", "inventory_adjustments", None, "16.80", "0.00", "16.80")]
    assert (on["total_debit"], on["total_credit"], on["balanced"]) == ("83.80", "83.80", True)
    assert on["as_of"] == "2025-01-03T09:00:00Z"
    assert (account_rows(nothing), nothing["total_debit"], nothing["total_credit"],
            nothing["balanced"]) == ([], "0.00", "0.00", True)


# The valuation.


def valued(body: Body) -> list[tuple[Any, ...]]:
    return [(item["sku"], item["location"], item["valuation_method"], item["quantity"],
             item["unit_cost"], item["value"]) for item in body["items"]]


def layers(item: Body) -> list[tuple[str, str, str]] | None:
    if item["layers"] is None:
        return None
    return [(layer["quantity"], layer["unit_cost"], layer["value"]) for layer in item["layers"]]


@pytest.fixture
def stocked(books: Books) -> Books:
    """The stock history, and paper in the store at the moving average: 4 × 2.00 on day 1,
    6 × 2.50 on day 6: 23.00 for 10, 2.30 each."""
    stock_history(books)
    books.receive(STORE, (AVERAGE_SKU, "4", "2.00"), effective_at=iso(at(1)))
    books.receive(STORE, (AVERAGE_SKU, "6", "2.50"), effective_at=iso(at(6)))
    return books


def test_the_valuation_values_each_bin_and_lists_its_fifo_layers(stocked: Books) -> None:
    valuation = stocked.read(VALUATION)

    assert valued(valuation) == [
        (FIFO_SKU, STORE, "fifo", "2.000", "4.200000", "8.40"),
        # 3 × 4.20 + 5 × 5.00 = 37.60 for 8: 4.70 each.
        (FIFO_SKU, WAREHOUSE, "fifo", "8.000", "4.700000", "37.60"),
        (AVERAGE_SKU, STORE, "moving_average", "10.000", "2.300000", "23.00")]
    assert [layers(item) for item in valuation["items"]] == [
        [("2.000", "4.200000", "8.40")],
        [("3.000", "4.200000", "12.60"), ("5.000", "5.000000", "25.00")],
        None]
    # 8.40 + 37.60 + 23.00.
    assert (valuation["total_value"], valuation["as_of"]) == ("69.00", None)


def test_the_valuation_as_of_a_moment_gives_the_figures_then_without_layers(
        stocked: Books) -> None:
    on_transfer = stocked.read(VALUATION, as_of=iso(at(4)))
    first_day = stocked.read(VALUATION, as_of=iso(at(1)))
    before = stocked.read(VALUATION, as_of=iso(at(1) - ONE_MICROSECOND))

    # Day 4: the warehouse held 15 − 4 − 2 = 9 worth 67.00 − 16.80 − 8.40 = 41.80 (4.644444
    # each); the store 2 × 4.20 and paper 4 × 2.00 (the second paper receipt is day 6).
    assert valued(on_transfer) == [
        (FIFO_SKU, STORE, "fifo", "2.000", "4.200000", "8.40"),
        (FIFO_SKU, WAREHOUSE, "fifo", "9.000", "4.644444", "41.80"),
        (AVERAGE_SKU, STORE, "moving_average", "4.000", "2.000000", "8.00")]
    assert [item["layers"] for item in on_transfer["items"]] == [None, None, None]
    assert on_transfer["total_value"] == "58.20"
    assert on_transfer["as_of"] == "2025-01-04T09:00:00Z"
    # Day 1: the two first receipts; the store had no ink yet.
    assert valued(first_day) == [
        (FIFO_SKU, WAREHOUSE, "fifo", "10.000", "4.200000", "42.00"),
        (AVERAGE_SKU, STORE, "moving_average", "4.000", "2.000000", "8.00")]
    assert first_day["total_value"] == "50.00"
    assert (before["items"], before["total_value"]) == ([], "0.00")


def test_the_valuation_filters_by_location_and_sku(stocked: Books) -> None:
    store = stocked.read(VALUATION, location=STORE)
    ink = stocked.read(VALUATION, sku=FIFO_SKU)
    one = stocked.read(VALUATION, sku=FIFO_SKU, location=WAREHOUSE)
    then = stocked.read(VALUATION, sku=FIFO_SKU, location=WAREHOUSE, as_of=iso(at(2)))

    assert [(row[0], row[1], row[5]) for row in valued(store)] == [
        (FIFO_SKU, STORE, "8.40"), (AVERAGE_SKU, STORE, "23.00")]
    assert store["total_value"] == "31.40"
    assert [(row[0], row[1], row[5]) for row in valued(ink)] == [
        (FIFO_SKU, STORE, "8.40"), (FIFO_SKU, WAREHOUSE, "37.60")]
    assert ink["total_value"] == "46.00"
    assert valued(one) == [(FIFO_SKU, WAREHOUSE, "fifo", "8.000", "4.700000", "37.60")]
    assert layers(one["items"][0]) == [("3.000", "4.200000", "12.60"),
                                       ("5.000", "5.000000", "25.00")]
    # Day 2: 42.00 + 25.00 for 15, 4.466667 each.
    assert valued(then) == [(FIFO_SKU, WAREHOUSE, "fifo", "15.000", "4.466667", "67.00")]
    assert stocked.read(VALUATION, sku="NO-SUCH-SKU") == {
        "as_of": None, "position": stocked.head(), "items": [], "total_value": "0.00"}
    assert_problem(stocked.get(VALUATION, key=AUDITOR, location="bad code!"), 422,
                   "validation_error")
    assert_problem(stocked.get(VALUATION, key=AUDITOR, as_of="soon"), 422, "validation_error")


# Cost of goods sold and the sales report.


def sales_history(api: Books) -> dict[str, str]:
    """Three orders and a scrapping, each step on its own day.

    Ink in the warehouse (FIFO): 10 @ 4.20 on day 1 and 5 @ 5.00 on day 2. Paper in the store
    (moving average): 10 @ 2.00 on day 1.
    * shop: 12 ink at 9.50, dispatched day 3 (10 × 4.20 + 2 × 5.00 = 52.00), invoiced day 4
      (114.00, no tax); 3 returned day 5, at 3/12 of 52.00 = 13.00, credit 3/12 of 114.00 =
      28.50.
    * mart: 4 paper at 3.00, dispatched day 3 (4 × 2.00 = 8.00), invoiced day 4 (12.00).
    * mart again: 2 paper at 3.00, dispatched day 6 (4.00), invoiced day 7 (6.00).
    * 1 paper scrapped on day 8 (2.00): an adjustment, not a cost of sales.
    """
    api.receive(WAREHOUSE, (FIFO_SKU, "10", "4.20"), effective_at=iso(at(1)))
    api.receive(WAREHOUSE, (FIFO_SKU, "5", "5.00"), effective_at=iso(at(2)))
    api.receive(STORE, (AVERAGE_SKU, "10", "2.00"), effective_at=iso(at(1)))
    shop = sold(api, CUSTOMER, FIFO_SKU, WAREHOUSE, "12", "9.50", at(3))
    mart = sold(api, OTHER_CUSTOMER, AVERAGE_SKU, STORE, "4", "3.00", at(3))
    bill(api, shop, "12", at(4))
    bill(api, mart, "4", at(4))
    take_back(api, shop, "3", at(5))
    again = sold(api, OTHER_CUSTOMER, AVERAGE_SKU, STORE, "2", "3.00", at(6))
    bill(api, again, "2", at(7))
    api.dispatch(STORE, (AVERAGE_SKU, "1"), effective_at=iso(at(8)), reason="damaged")
    return {"shop": shop, "mart": mart, "again": again}


def costs(body: Body) -> list[tuple[Any, str]]:
    return [(group["key"], group["cogs"]) for group in body["groups"]]


def test_cogs_per_sku_location_and_customer_nets_the_returns(books: Books) -> None:
    sales_history(books)

    by_sku = books.read(COGS, group_by="sku")
    by_location = books.read(COGS, group_by="location")
    by_customer = books.read(COGS, group_by="customer")

    # Ink: 52.00 out, 13.00 back = 39.00; paper: 8.00 + 4.00 = 12.00 (the scrapping is not a
    # sale). 51.00 in all, however it is grouped.
    assert (by_sku["group_by"], costs(by_sku), by_sku["total"]) == (
        "sku", [(FIFO_SKU, "39.00"), (AVERAGE_SKU, "12.00")], "51.00")
    assert (by_location["group_by"], costs(by_location), by_location["total"]) == (
        "location", [(STORE, "12.00"), (WAREHOUSE, "39.00")], "51.00")
    assert (by_customer["group_by"], costs(by_customer), by_customer["total"]) == (
        "customer", [(OTHER_CUSTOMER, "12.00"), (CUSTOMER, "39.00")], "51.00")
    assert books.read(COGS)["group_by"] == "sku"


def test_cogs_in_a_period_counts_what_was_effective_in_it(books: Books) -> None:
    sales_history(books)

    dispatches = books.read(COGS, **{"from": iso(at(3)), "to": iso(at(5))})
    returns = books.read(COGS, **{"from": iso(at(5)), "to": iso(at(6))})
    later = books.read(COGS, group_by="customer", **{"from": iso(at(5))})

    # Days 3 and 4: the two dispatches of day 3; the return of day 5 is not in [day 3, day 5).
    assert [(group["key"], group["quantity"], group["cogs"])
            for group in dispatches["groups"]] == [(FIFO_SKU, "12.000", "52.00"),
                                                   (AVERAGE_SKU, "4.000", "8.00")]
    assert dispatches["total"] == "60.00"
    # Day 5: only the return, a credit of 13.00.
    assert (costs(returns), returns["total"]) == ([(FIFO_SKU, "-13.00")], "-13.00")
    # From day 5: the return (shop) and the second paper order (mart, 4.00).
    assert (costs(later), later["total"]) == ([(OTHER_CUSTOMER, "4.00"),
                                               (CUSTOMER, "-13.00")], "-9.00")
    assert_problem(books.get(COGS, key=AUDITOR, group_by="day"), 422, "validation_error")
    assert_problem(books.get(COGS, key=AUDITOR, **{"from": iso(at(5)), "to": iso(at(4))}),
                   422, "validation_error")


def test_the_cogs_quantity_is_what_was_sold_net_of_returns(books: Books) -> None:
    sales_history(books)

    by_sku = books.read(COGS, group_by="sku")
    by_customer = books.read(COGS, group_by="customer")

    # Ink: 12 went out at 52.00 and 3 came back at 13.00: 9 sold at a cost of 39.00.
    # Paper: 4 + 2 = 6 sold at 12.00.
    assert [(group["key"], group["quantity"], group["cogs"]) for group in by_sku["groups"]] == [
        (FIFO_SKU, "9.000", "39.00"), (AVERAGE_SKU, "6.000", "12.00")]
    assert [(group["key"], group["quantity"])
            for group in by_customer["groups"]] == [(OTHER_CUSTOMER, "6.000"),
                                                    (CUSTOMER, "9.000")]


def report_rows(body: Body) -> list[tuple[Any, ...]]:
    return [(group["key"], group["quantity"], group["returned_quantity"], group["revenue"],
             group["returns"], group["net_revenue"], group["cogs"], group["gross_margin"],
             group["gross_margin_rate"], group["orders"]) for group in body["groups"]]


def test_the_sales_report_per_sku_and_customer(books: Books) -> None:
    sales_history(books)

    by_sku = books.read(SALES, group_by="sku")
    by_customer = books.read(SALES, group_by="customer")

    # Ink: revenue 114.00, returns 28.50, net 85.50, COGS 39.00, margin 46.50 (46.50 / 85.50 =
    # 0.54386 → 0.5439), one order. Paper: 12.00 + 6.00 = 18.00, COGS 12.00, margin 6.00
    # (0.3333), two orders.
    ink = ("12.000", "3.000", "114.00", "28.50", "85.50", "39.00", "46.50", "0.5439", 1)
    paper = ("6.000", "0.000", "18.00", "0.00", "18.00", "12.00", "6.00", "0.3333", 2)
    assert by_sku["group_by"] == "sku"
    assert report_rows(by_sku) == [(FIFO_SKU, *ink), (AVERAGE_SKU, *paper)]
    assert by_customer["group_by"] == "customer"
    assert report_rows(by_customer) == [(OTHER_CUSTOMER, *paper), (CUSTOMER, *ink)]
    assert books.read(SALES)["group_by"] == "sku"


def test_the_sales_report_per_day_puts_each_figure_on_its_own_day(books: Books) -> None:
    sales_history(books)

    by_day = books.read(SALES, group_by="day")
    period = books.read(SALES, group_by="customer", **{"from": iso(at(4)), "to": iso(at(5))})

    assert report_rows(by_day) == [
        # Day 3: the two dispatches, 52.00 + 8.00, and no revenue: no rate.
        ("2025-01-03", "0.000", "0.000", "0.00", "0.00", "0.00", "60.00", "-60.00", None, 0),
        # Day 4: the two invoices, 114.00 + 12.00 for 12 + 4.
        ("2025-01-04", "16.000", "0.000", "126.00", "0.00", "126.00", "0.00", "126.00",
         "1.0000", 2),
        # Day 5: the return: 28.50 credited, 13.00 of cost back; margin −28.50 + 13.00.
        ("2025-01-05", "0.000", "3.000", "0.00", "28.50", "-28.50", "-13.00", "-15.50",
         "0.5439", 0),
        ("2025-01-06", "0.000", "0.000", "0.00", "0.00", "0.00", "4.00", "-4.00", None, 0),
        ("2025-01-07", "2.000", "0.000", "6.00", "0.00", "6.00", "0.00", "6.00", "1.0000", 1)]
    # Day 4 alone: the invoices, and no cost (it was dispatched on day 3).
    assert report_rows(period) == [
        (OTHER_CUSTOMER, "4.000", "0.000", "12.00", "0.00", "12.00", "0.00", "12.00",
         "1.0000", 1),
        (CUSTOMER, "12.000", "0.000", "114.00", "0.00", "114.00", "0.00", "114.00", "1.0000",
         1)]
    assert_problem(books.get(SALES, key=AUDITOR, group_by="location"), 422, "validation_error")


# Turnover.


def test_turnover_is_cogs_over_the_average_of_opening_and_closing_value(
        books: Books) -> None:
    sales_history(books)
    start, end = at(2, hour=12), at(7, hour=12)

    report = books.read(TURNOVER, **{"from": iso(start), "to": iso(end)})

    # Five days. Ink: opened at 67.00, closed at 67.00 − 52.00 + 13.00 = 28.00, average 47.50;
    # COGS 39.00: 39.00 / 47.50 = 0.82105 → 0.8211, on hand 5 / 0.8211 = 6.09 → 6.1 days.
    # Paper: 20.00 to 20.00 − 8.00 − 4.00 = 8.00, average 14.00; 12.00 / 14.00 = 0.85714 →
    # 0.8571, 5 / 0.8571 = 5.83 → 5.8 days.
    assert report["days"] == "5.00"
    assert report["items"] == [
        {"sku": FIFO_SKU, "cogs": "39.00", "opening_value": "67.00", "closing_value": "28.00",
         "average_value": "47.50", "turnover": "0.8211", "days_on_hand": "6.1"},
        {"sku": AVERAGE_SKU, "cogs": "12.00", "opening_value": "20.00",
         "closing_value": "8.00", "average_value": "14.00", "turnover": "0.8571",
         "days_on_hand": "5.8"}]


def test_turnover_without_sales_is_zero_with_no_days_on_hand(books: Books) -> None:
    sales_history(books)

    report = books.read(TURNOVER, **{"from": iso(at(7, hour=12)), "to": iso(at(9))})

    # 1.875 days. Ink stays at 28.00; paper loses the scrapped 2.00 (8.00 → 6.00): no COGS.
    assert report["days"] == "1.88"
    assert report["items"] == [
        {"sku": FIFO_SKU, "cogs": "0.00", "opening_value": "28.00", "closing_value": "28.00",
         "average_value": "28.00", "turnover": "0.0000", "days_on_hand": None},
        {"sku": AVERAGE_SKU, "cogs": "0.00", "opening_value": "8.00", "closing_value": "6.00",
         "average_value": "7.00", "turnover": "0.0000", "days_on_hand": None}]


def test_turnover_opens_before_the_period_and_closes_before_its_end(books: Books) -> None:
    sales_history(books)

    # [day 3, day 5): the dispatches of day 3 are in the period (from is inclusive), the
    # return of day 5 is not (to is exclusive), so the period's ink COGS is 52.00.
    report = books.read(TURNOVER, **{"from": iso(at(3)), "to": iso(at(5))})

    # Opening is what the period starts with, before its own dispatches: 67.00. Closing is what
    # it ends with, before the return of day 5 that belongs to the next period: 67.00 − 52.00
    # = 15.00. Average 41.00; 52.00 / 41.00 = 1.26829 → 1.2683; 2 / 1.2683 = 1.58 → 1.6 days.
    # The period adds up: opening 67.00 − COGS 52.00 = closing 15.00. Valued as of `from` and
    # `to` inclusive instead, opening would already lack the day-3 dispatches (15.00) and
    # closing would hold the day-5 return (28.00): 15.00 − 52.00 ≠ 28.00.
    assert report["days"] == "2.00"
    assert report["items"][0] == {
        "sku": FIFO_SKU, "cogs": "52.00", "opening_value": "67.00", "closing_value": "15.00",
        "average_value": "41.00", "turnover": "1.2683", "days_on_hand": "1.6"}


@pytest.mark.parametrize(("start", "end"), [(at(5), at(5)), (at(5), at(4))],
                         ids=["to equals from", "to before from"])
def test_a_turnover_period_must_end_after_it_starts(books: Books, start: datetime,
                                                    end: datetime) -> None:
    problem = assert_problem(books.get(TURNOVER, key=AUDITOR,
                                       **{"from": iso(start), "to": iso(end)}),
                             422, "validation_error")

    assert problem["field"] == "to"


# Receivables and payables ageing.

AS_OF = datetime(2025, 6, 1, 12, tzinfo=UTC)
DAY = timedelta(days=1)


def buckets(d0_30: str, d31_60: str, d61_90: str, over_90: str) -> Body:
    return {"d0_30": d0_30, "d31_60": d31_60, "d61_90": d61_90, "over_90": over_90}


def test_receivables_are_aged_by_invoice_date_and_payments_settle_the_oldest_first(
        books: Books) -> None:
    books.receive(WAREHOUSE, (FIFO_SKU, "10", "40.00"), effective_at=iso(at(10)))
    # Four invoices to the shop, 120, 75, 45 and 10 days before AS_OF, for 100, 200, 300 and
    # 400 (one unit each, no tax); one to the mart 40 days before, for 50; one to the mart a
    # day after AS_OF, for 70.
    # Dispatched a day before each invoice, in date order (a bin's movements never go back).
    orders = {}
    for customer, days, price in ((CUSTOMER, 120, "100"), (CUSTOMER, 75, "200"),
                                  (CUSTOMER, 45, "300"), (OTHER_CUSTOMER, 40, "50"),
                                  (CUSTOMER, 10, "400"), (OTHER_CUSTOMER, -1, "70")):
        order_id = sold(books, customer, FIFO_SKU, WAREHOUSE, "1", price,
                        AS_OF - (days + 1) * DAY)
        bill(books, order_id, "1", AS_OF - days * DAY)
        orders[days] = order_id
    # 150.00 paid against the newest invoice, 5 days before AS_OF: it settles the 100.00 of
    # 120 days, then 50.00 of the 200.00 of 75 days.
    collect(books, orders[10], "150.00", AS_OF - 5 * DAY)

    aged = books.read(RECEIVABLES, as_of=iso(AS_OF))
    before_payment = books.read(RECEIVABLES, as_of=iso(AS_OF - 6 * DAY))

    assert aged["as_of"] == "2025-06-01T12:00:00Z"
    assert aged["parties"] == [
        {"party": OTHER_CUSTOMER, "open": "50.00", "unapplied_credit": "0.00",
         "buckets": buckets("0.00", "50.00", "0.00", "0.00")},
        {"party": CUSTOMER, "open": "850.00", "unapplied_credit": "0.00",
         "buckets": buckets("400.00", "300.00", "150.00", "0.00")}]
    assert (aged["buckets"], aged["total"]) == (buckets("400.00", "350.00", "150.00", "0.00"),
                                                "900.00")
    # Six days earlier nothing is paid: the invoices are 114, 69, 39 and 4 days old, the
    # mart's 34.
    assert before_payment["parties"] == [
        {"party": OTHER_CUSTOMER, "open": "50.00", "unapplied_credit": "0.00",
         "buckets": buckets("0.00", "50.00", "0.00", "0.00")},
        {"party": CUSTOMER, "open": "1000.00", "unapplied_credit": "0.00",
         "buckets": buckets("400.00", "300.00", "200.00", "100.00")}]
    assert before_payment["total"] == "1050.00"


def test_an_ageing_depends_on_the_instant_not_the_offset_it_is_written_in(
        books: Books) -> None:
    books.receive(WAREHOUSE, (FIFO_SKU, "1", "40.00"), effective_at=iso(at(10)))
    order_id = sold(books, CUSTOMER, FIFO_SKU, WAREHOUSE, "1", "100", at(1, month=5, hour=19))
    # Invoiced 2025-05-01 20:00 UTC (05-02 04:00 at +08:00).
    bill(books, order_id, "1", at(1, month=5, hour=20))

    # 2025-05-31 22:00 UTC is 2025-06-01 06:00 at +08:00: the invoice is 30 days old either
    # way (05-01 to 05-31 in UTC, 05-02 to 06-01 at +08:00).
    utc = books.read(RECEIVABLES, as_of="2025-05-31T22:00:00Z")
    china = books.read(RECEIVABLES, as_of="2025-06-01T06:00:00+08:00")

    assert utc["buckets"] == buckets("100.00", "0.00", "0.00", "0.00")
    assert china["buckets"] == utc["buckets"]


def test_payables_are_aged_by_invoice_date_and_payments_settle_the_oldest_first(
        books: Books, monkeypatch: pytest.MonkeyPatch) -> None:
    # Supplier invoices and payments are dated when recorded: the ledger's clock is set to each
    # date. Four invoices from the tea supplier, 120, 75, 45 and 10 days before AS_OF, for 100,
    # 200, 300 and 400 (one unit each, no tax); one from the ink supplier 40 days before, 50.
    orders = []
    for supplier, days, price in ((SUPPLIER, 120, "100"), (SUPPLIER, 75, "200"),
                                  (SUPPLIER, 45, "300"), (SUPPLIER, 10, "400"),
                                  (OTHER_SUPPLIER, 40, "50")):
        order_id = purchased(books, supplier, AVERAGE_SKU, STORE, "1", price, at(10))
        with ledger_clock(monkeypatch, AS_OF - days * DAY):
            supplier_invoice(books, order_id, "1")
        orders.append(order_id)
    # 150.00 paid on the newest tea invoice 5 days before AS_OF: the 100.00 of 120 days is
    # settled, and 50.00 of the 200.00 of 75 days.
    with ledger_clock(monkeypatch, AS_OF - 5 * DAY):
        supplier_payment(books, orders[3], "150.00")

    aged = books.read(PAYABLES, as_of=iso(AS_OF))
    before_payment = books.read(PAYABLES, as_of=iso(AS_OF - 6 * DAY))
    before_all = books.read(PAYABLES, as_of=iso(AS_OF - 121 * DAY))

    assert aged["parties"] == [
        {"party": OTHER_SUPPLIER, "open": "50.00", "unapplied_credit": "0.00",
         "buckets": buckets("0.00", "50.00", "0.00", "0.00")},
        {"party": SUPPLIER, "open": "850.00", "unapplied_credit": "0.00",
         "buckets": buckets("400.00", "300.00", "150.00", "0.00")}]
    assert (aged["buckets"], aged["total"]) == (buckets("400.00", "350.00", "150.00", "0.00"),
                                                "900.00")
    assert [(party["party"], party["buckets"]) for party in before_payment["parties"]] == [
        (OTHER_SUPPLIER, buckets("0.00", "50.00", "0.00", "0.00")),
        (SUPPLIER, buckets("400.00", "300.00", "200.00", "100.00"))]
    assert (before_all["parties"], before_all["total"]) == ([], "0.00")
    assert before_all["buckets"] == buckets("0.00", "0.00", "0.00", "0.00")


# The reconciliation.


def mixed_history(api: Books) -> dict[str, str]:
    """Receipts, a sale through payment with a return, a purchase invoiced at another price and
    partly paid, a transfer and a count.

    * Plain receipt: 10 ink @ 4.20 into the warehouse (42.00), day 1.
    * Purchase order: 10 paper @ 2.00 received into the store (20.00), day 1; invoiced 6 at
      2.10 with 13 % tax: 12.60 + 1.638 → 1.64 = 14.24, clearing 6/10 of 20.00 = 12.00 of GRNI
      with 0.60 of price variance; 10.00 paid (4.24 owed).
    * Sales order: 5 ink at 9.50 dispatched day 2 (5 × 4.20 = 21.00), invoiced day 3 with 13 %
      tax: 47.50 + 6.175 → 6.18 = 53.68; 20.00 paid day 4; 1 returned day 5 at 4.20, credit
      9.50 + 6.18 / 5 = 1.236 → 1.24 = 10.74 (22.94 owed).
    * Transfer: 2 ink, warehouse to store, day 6 (8.40).
    * Count: the store's paper counted at 9 of 10, day 7: a loss of 2.00.
    """
    api.receive(WAREHOUSE, (FIFO_SKU, "10", "4.20"), effective_at=iso(at(1)))
    purchase = purchased(api, SUPPLIER, AVERAGE_SKU, STORE, "10", "2.00", at(1))
    supplier_invoice(api, purchase, "6", price="2.10", tax_rate="0.13")
    supplier_payment(api, purchase, "10.00")
    sale = sold(api, CUSTOMER, FIFO_SKU, WAREHOUSE, "5", "9.50", at(2))
    bill(api, sale, "5", at(3), tax_rate="0.13")
    collect(api, sale, "20.00", at(4))
    take_back(api, sale, "1", at(5))
    api.transfer(WAREHOUSE, STORE, (FIFO_SKU, "2"), effective_at=iso(at(6)))
    api.count(STORE, {"sku": AVERAGE_SKU, "counted_quantity": "9"}, effective_at=iso(at(7)))
    return {"purchase": purchase, "sale": sale}


def check(name: str, expected: str, actual: str, difference: str = "0.00",
          items: list[Body] | None = None) -> Body:
    return {"name": name, "expected": expected, "actual": actual, "difference": difference,
            "ok": expected == actual, "items": items}


def test_the_reconciliation_of_a_mixed_history_passes_every_check(books: Books) -> None:
    mixed_history(books)

    report = books.read(RECONCILIATION)

    details = {found["name"]: found.pop("detail") for found in report["checks"]}
    assert report["checks"] == [
        # Debits: 42.00 + 20.00 (receipts) + 14.24 + 10.00 (purchase invoice and payment)
        # + 21.00 + 53.68 + 20.00 (dispatch, invoice, payment) + 4.20 + 10.74 (return and
        # credit note) + 8.40 + 8.40 (transfer) + 2.00 (count) = 214.66.
        check("trial_balance_balances", "214.66", "214.66"),
        # Warehouse ink 42.00 − 21.00 + 4.20 − 8.40 = 16.80, store ink 8.40, store paper
        # 20.00 − 2.00 = 18.00.
        check("inventory_equals_valuation", "43.20", "43.20", items=[]),
        # The order line: received 20.00 − invoiced 12.00.
        check("grni_equals_received_not_invoiced", "8.00", "8.00", items=[]),
        check("receivables_equal_open_invoices", "22.94", "22.94", items=[]),
        check("payables_equal_open_invoices", "4.24", "4.24", items=[]),
        # Receipt, order receipt, supplier invoice and payment, dispatch, sales invoice,
        # payment, return (the bin's and the credit note), transfer out and in, count: 12.
        check("every_event_posted_once", "12", "12", difference="0"),
        check("every_entry_balances", "0", "0", difference="0")]
    assert report["ok"] is True
    assert report["as_of"] is None
    assert report["position"] >= books.head()
    # The plain receipt's GRNI is outside any order, and said so.
    assert "42.00" in details["grni_equals_received_not_invoiced"]
    assert all(details.values())


def test_the_trial_balance_of_a_mixed_history(books: Books) -> None:
    mixed_history(books)

    balance = books.read(TRIAL_BALANCE)

    assert account_rows(balance) == [
        # Bank: 20.00 in from the customer, 10.00 out to the supplier.
        ("1002", "bank", None, "20.00", "10.00", "10.00"),
        # AR: 53.68 invoiced, 20.00 paid, 10.74 credited.
        ("1122", "accounts_receivable", None, "53.68", "30.74", "22.94"),
        # Store: 20.00 paper + 8.40 ink in, the count's 2.00 out.
        ("1405", "inventory", STORE, "28.40", "2.00", "26.40"),
        # Warehouse: 42.00 + 4.20 back in, 21.00 + 8.40 out.
        ("1405", "inventory", WAREHOUSE, "46.20", "29.40", "16.80"),
        ("1406", "stock_in_transit", None, "8.40", "8.40", "0.00"),
        ("2202", "accounts_payable", None, "10.00", "14.24", "-4.24"),
        # GRNI: 42.00 + 20.00 received, 12.00 cleared by the invoice.
        ("2202.99", "grni", None, "12.00", "62.00", "-50.00"),
        ("2221.01", "tax_receivable", None, "1.64", "0.00", "1.64"),
        # Output tax 6.18, 1.24 of it credited.
        ("2221.02", "tax_payable", None, "1.24", "6.18", "-4.94"),
        ("6001", "sales_revenue", None, "0.00", "47.50", "-47.50"),
        ("6001.99", "sales_returns", None, "9.50", "0.00", "9.50"),
        ("6401", "cogs", None, "21.00", "4.20", "16.80"),
        ("6402", "purchase_price_variance", None, "0.60", "0.00", "0.60"),
        ("6711", "inventory_adjustments", None, "2.00", "0.00", "2.00")]
    assert (balance["total_debit"], balance["total_credit"], balance["balanced"]) == (
        "214.66", "214.66", True)


def test_order_entries_name_the_party_and_order_and_lead_back_to_their_events(
        books: Books) -> None:
    ids = mixed_history(books)

    entries = books.journal()

    assert [entry["kind"] for entry in entries] == [
        "receipt", "receipt", "supplier_invoice", "supplier_payment", "sales_dispatch",
        "sales_invoice", "customer_payment", "credit_note", "customer_return", "transfer_out",
        "transfer_in", "count"]
    by_kind = {entry["kind"]: entry for entry in entries}

    def party_lines(kind: str) -> list[tuple[Any, ...]]:
        return [(line["account"], line["party"], line["order_id"], line["order_line"],
                 line["quantity"], line["debit"], line["credit"])
                for line in by_kind[kind]["lines"]]

    sale, purchase = ids["sale"], ids["purchase"]
    assert party_lines("supplier_invoice") == [
        ("grni", SUPPLIER, purchase, 1, "6.000", "12.00", "0.00"),
        ("purchase_price_variance", SUPPLIER, purchase, 1, "6.000", "0.60", "0.00"),
        ("tax_receivable", SUPPLIER, purchase, None, None, "1.64", "0.00"),
        ("accounts_payable", SUPPLIER, purchase, None, None, "0.00", "14.24")]
    assert party_lines("supplier_payment") == [
        ("accounts_payable", SUPPLIER, purchase, None, None, "10.00", "0.00"),
        ("bank", SUPPLIER, purchase, None, None, "0.00", "10.00")]
    assert lines(by_kind["sales_dispatch"]) == [
        ("cogs", WAREHOUSE, FIFO_SKU, "5.000", "21.00", "0.00"),
        ("inventory", WAREHOUSE, FIFO_SKU, "5.000", "0.00", "21.00")]
    assert [line["order_id"] for line in by_kind["sales_dispatch"]["lines"]] == [sale, sale]
    assert party_lines("sales_invoice") == [
        ("accounts_receivable", CUSTOMER, sale, None, None, "53.68", "0.00"),
        ("sales_revenue", CUSTOMER, sale, 1, "5.000", "0.00", "47.50"),
        ("tax_payable", CUSTOMER, sale, None, None, "0.00", "6.18")]
    assert party_lines("customer_payment") == [
        ("bank", CUSTOMER, sale, None, None, "20.00", "0.00"),
        ("accounts_receivable", CUSTOMER, sale, None, None, "0.00", "20.00")]
    assert lines(by_kind["customer_return"]) == [
        ("inventory", WAREHOUSE, FIFO_SKU, "1.000", "4.20", "0.00"),
        ("cogs", WAREHOUSE, FIFO_SKU, "-1.000", "0.00", "4.20")]  # back: against the quantity sold
    assert party_lines("credit_note") == [
        ("sales_returns", CUSTOMER, sale, 1, "1.000", "9.50", "0.00"),
        ("tax_payable", CUSTOMER, sale, None, None, "1.24", "0.00"),
        ("accounts_receivable", CUSTOMER, sale, None, None, "0.00", "10.74")]
    assert [(entry["kind"], entry["effective_at"]) for entry in entries
            if entry["kind"] in ("sales_invoice", "customer_payment", "credit_note")] == [
        ("sales_invoice", card_instant(at(3))), ("customer_payment", card_instant(at(4))),
        ("credit_note", card_instant(at(5)))]
    for entry in entries:
        debits = sum(int(line["debit"].replace(".", "")) for line in entry["lines"])
        credits = sum(int(line["credit"].replace(".", "")) for line in entry["lines"])
        assert debits == credits, entry
        assert all(line["code"] == CODES[line["account"]] for line in entry["lines"]), entry
        event = books.query(f"/events/{entry['position']}", key=AUDITOR)
        assert (event["event_id"], event["type"], event["effective_at"]) == (
            entry["event_id"], TOPICS[entry["kind"]], entry["effective_at"]), entry["kind"]


def test_the_reconciliation_as_of_a_moment_checks_the_balances_then(books: Books) -> None:
    mixed_history(books)

    report = books.read(RECONCILIATION, as_of=iso(at(5)))

    # Day 5: warehouse ink 42.00 − 21.00 + 4.20 = 25.20, store paper 20.00 = 45.20; the
    # purchase invoice and payment are dated when recorded (now), after day 5.
    found = {item["name"]: (item["expected"], item["actual"], item["ok"])
             for item in report["checks"]}
    assert found["inventory_equals_valuation"] == ("45.20", "45.20", True)
    # Debits by day 5: 42.00 + 20.00 + 21.00 + 53.68 + 20.00 + 4.20 + 10.74 = 171.62.
    assert found["trial_balance_balances"] == ("171.62", "171.62", True)
    assert (report["ok"], report["as_of"]) == (True, "2025-01-05T09:00:00Z")


# Who may read.


@pytest.mark.parametrize("key", [AUDITOR, FINANCE, OPERATIONS, ADMIN],
                         ids=["auditor", "finance", "operations", "admin"])
def test_every_role_reads_every_finance_route(books: Books, key: str) -> None:
    mixed_history(books)

    statuses = {path: books.get(path, key=key, **params).status_code
                for path, params in FINANCE_READS}

    assert statuses == dict.fromkeys(statuses, 200)


def test_without_a_key_every_finance_route_is_401(books: Books) -> None:
    for path, params in FINANCE_READS:
        assert_problem(books.client.get(path, params=params), 401, "unauthorized")
        assert_problem(books.get(path, key="not-a-key", **params), 401, "unauthorized")


@pytest.mark.parametrize("key", [AUDITOR, OPERATIONS], ids=["auditor", "operations"])
def test_only_finance_and_admin_close_periods(books: Books, key: str) -> None:
    head = books.head()

    denied = books.post("/finance/periods/close", {"until": "2025-01-31"}, key=key)

    assert assert_problem(denied, 403, "forbidden")["role"] == {
        AUDITOR: "auditor", OPERATIONS: "operations"}[key]
    assert books.head() == head
    closed = books.post("/finance/periods/close", {"until": "2025-01-31"}, key=FINANCE)
    assert closed.status_code == 201, closed.text
    assert books.read("/finance/periods", key=key)["closed_until"] == "2025-01-31"
