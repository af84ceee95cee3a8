"""Finance (财务): the journal, trial balance, valuation, COGS, AR/AP ageing, reconciliation,
period close; and the sales and turnover reports."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from pydantic import AwareDatetime

from api import cursors
from api.auth import FINANCE
from api.deps import LedgerDep, Reader, ReadModelsDep, command_meta
from api.finance_schemas import (
    AgeingOut,
    ClosePeriodIn,
    CogsOut,
    JournalPage,
    PeriodCloseOut,
    PeriodsOut,
    ReconciliationOut,
    SalesReportOut,
    TrialBalanceOut,
    TurnoverOut,
    ValuationOut,
)
from api.problems import ApiProblem, responses
from api.requests import LedgerRoute
from api.routers.stock import Code, Cursor, Limit, MinPosition, check_instant, wait_seconds
from ledger import posting
from ledger.accounts import Chart
from ledger.domain.context import CommandMeta
from ledger.period_close import ClosePeriod
from projections import finance as q
from projections import finance_reports as views
from projections.reconciliation import reconcile
from projections.service import ReadModels

router = APIRouter(route_class=LedgerRoute, tags=["finance"])
READS = responses(401, 403, 422, 503)
NAMES = ("journal", "stock_levels", "stock_card", "cost_layers", "purchase_orders",
         "sales_orders", "audit_log")
Moment = Annotated[AwareDatetime | None, Query()]
From = Annotated[AwareDatetime | None, Query(alias="from")]
To = Annotated[AwareDatetime | None, Query(alias="to")]
ACCOUNTS = Literal["inventory", "stock_in_transit", "grni", "accounts_payable",
                   "accounts_receivable", "sales_revenue", "sales_returns", "cogs",
                   "inventory_adjustments", "purchase_price_variance", "tax_payable",
                   "tax_receivable", "bank", "samples", "internal_use"]
FinanceMeta = Annotated[CommandMeta, Depends(command_meta(FINANCE, "close periods"))]


class Snapshot:
    """The finance read models, waited for, read in one consistent snapshot."""

    def __init__(self, request: Request, read_models: ReadModels, min_position: int) -> None:
        self.states = read_models.wait(list(NAMES), min_position, wait_seconds(request))
        self.read_models = read_models
        self.position = min(state.position for state in self.states.values())
        self.tables = q.Tables(**{name: read_models.by_name[name].tables(
            self.states[name].generation)[name] for name in NAMES})

    def connect(self) -> Any:
        connection = self.read_models.database.reader.connect()
        if connection.dialect.name == "postgresql":
            connection = connection.execution_options(isolation_level="REPEATABLE READ")
        return connection


def _period(start: datetime | None, end: datetime | None) -> None:
    check_instant(start, "from")
    check_instant(end, "to")
    if start is not None and end is not None and end < start:
        raise ApiProblem(422, "validation_error", "`to` is earlier than `from`.", field="to")


def _chart(request: Request) -> Chart:
    chart: Chart = request.app.state.chart
    return chart


@router.get("/finance/journal", response_model=JournalPage, responses=READS)
def journal(request: Request, read_models: ReadModelsDep, _: Reader, start: From = None,
            end: To = None, account: ACCOUNTS | None = None, min_position: MinPosition = 0,
            limit: Limit = 50, cursor: Cursor = None) -> dict[str, Any]:
    """Journal entries in log order, each line with its account and source event."""
    _period(start, end)
    after = cursors.decode(cursor, (int,))
    snapshot = Snapshot(request, read_models, min_position)
    with snapshot.connect() as connection:
        entries, more = q.journal_entries(connection, snapshot.tables.journal, start=start,
                                          end=end, account=account,
                                          after=after[0] if after else 0, limit=limit)
    items = [views.journal_entry(lines, _chart(request)) for lines in entries]
    return {"items": items, "position": snapshot.position,
            "next_cursor": cursors.encode([items[-1]["position"]]) if more else None}


@router.get("/finance/trial-balance", response_model=TrialBalanceOut, responses=READS)
def trial_balance(request: Request, read_models: ReadModelsDep, _: Reader,
                  as_of: Moment = None, min_position: MinPosition = 0) -> dict[str, Any]:
    """Every account's debits, credits and balance, effective up to `as_of`; totals equal."""
    check_instant(as_of, "as_of")
    snapshot = Snapshot(request, read_models, min_position)
    with snapshot.connect() as connection:
        balance = views.trial_balance(connection, snapshot.tables, _chart(request), as_of)
    return {**balance, "as_of": as_of, "position": snapshot.position}


@router.get("/finance/valuation", response_model=ValuationOut, responses=READS)
def valuation(request: Request, read_models: ReadModelsDep, _: Reader, as_of: Moment = None,
              location: Code = None, sku: Code = None,
              min_position: MinPosition = 0) -> dict[str, Any]:
    """存货计价: quantity, unit cost and value per SKU and location (FIFO layers now)."""
    check_instant(as_of, "as_of")
    snapshot = Snapshot(request, read_models, min_position)
    with snapshot.connect() as connection:
        valued = views.valuation(connection, snapshot.tables, as_of=as_of, sku=sku,
                                 location=location)
    return {**valued, "as_of": as_of, "position": snapshot.position}


@router.get("/finance/cogs", response_model=CogsOut, responses=READS)
def cogs(request: Request, read_models: ReadModelsDep, _: Reader, start: From = None,
         end: To = None, group_by: Literal["sku", "location", "customer"] = "sku",
         min_position: MinPosition = 0) -> dict[str, Any]:
    """Cost of goods sold in a period, per SKU, location or customer."""
    _period(start, end)
    snapshot = Snapshot(request, read_models, min_position)
    with snapshot.connect() as connection:
        found = views.cogs(connection, snapshot.tables, start=start, end=end,
                           group_by=group_by)
    return {**found, "position": snapshot.position}


@router.get("/reports/sales", response_model=SalesReportOut, responses=READS,
            tags=["reports"])
def sales_report(request: Request, read_models: ReadModelsDep, _: Reader,
                 start: From = None, end: To = None,
                 group_by: Literal["sku", "customer", "day"] = "sku",
                 min_position: MinPosition = 0) -> dict[str, Any]:
    """销售统计报表: quantity, revenue, returns, COGS, gross margin and order count."""
    _period(start, end)
    snapshot = Snapshot(request, read_models, min_position)
    with snapshot.connect() as connection:
        found = views.sales(connection, snapshot.tables, start=start, end=end,
                            group_by=group_by)
    return {**found, "position": snapshot.position}


@router.get("/reports/turnover", response_model=TurnoverOut, responses=READS,
            tags=["reports"])
def turnover(request: Request, read_models: ReadModelsDep, _: Reader,
             start: From = None, end: To = None,
             min_position: MinPosition = 0) -> dict[str, Any]:
    """Inventory turnover (COGS ÷ average inventory value) and days on hand per SKU.

    The period defaults to the 30 days before `to`, and `to` to now."""
    _period(start, end)
    end = end or datetime.now(UTC)
    start = start or end - timedelta(days=30)
    if end <= start:
        raise ApiProblem(422, "validation_error", "`to` must be later than `from`.", field="to")
    snapshot = Snapshot(request, read_models, min_position)
    with snapshot.connect() as connection:
        found = views.turnover(connection, snapshot.tables, start=start, end=end)
    return {**found, "position": snapshot.position}


def _ageing(request: Request, read_models: ReadModels, account: str, as_of: datetime | None,
            min_position: int) -> dict[str, Any]:
    check_instant(as_of, "as_of")
    snapshot = Snapshot(request, read_models, min_position)
    with snapshot.connect() as connection:
        found = views.ageing(connection, snapshot.tables, account,
                             as_of or datetime.now(UTC))
    return {**found, "position": snapshot.position}


@router.get("/finance/receivables", response_model=AgeingOut, responses=READS)
def receivables(request: Request, read_models: ReadModelsDep, _: Reader, as_of: Moment = None,
                min_position: MinPosition = 0) -> dict[str, Any]:
    """What customers owe, per customer, aged by invoice date (default as of now)."""
    return _ageing(request, read_models, posting.ACCOUNTS_RECEIVABLE, as_of, min_position)


@router.get("/finance/payables", response_model=AgeingOut, responses=READS)
def payables(request: Request, read_models: ReadModelsDep, _: Reader, as_of: Moment = None,
             min_position: MinPosition = 0) -> dict[str, Any]:
    """What is owed to suppliers, per supplier, aged by invoice date (default as of now)."""
    return _ageing(request, read_models, posting.ACCOUNTS_PAYABLE, as_of, min_position)


@router.get("/finance/reconciliation", response_model=ReconciliationOut, responses=READS)
def reconciliation(request: Request, read_models: ReadModelsDep, ledger: LedgerDep,
                   _: Reader, as_of: Moment = None,
                   min_position: MinPosition = 0) -> dict[str, Any]:
    """The auditor's checks, each with expected, actual and difference; `ok` when all pass."""
    check_instant(as_of, "as_of")
    # Every read model caught up to the store's head now, then read in one snapshot.
    snapshot = Snapshot(request, read_models, max(min_position, ledger.head_position()))
    with snapshot.connect() as connection:
        return reconcile(connection, snapshot.tables, as_of=as_of, position=snapshot.position)


@router.post("/finance/periods/close", status_code=201, response_model=PeriodCloseOut,
             responses=responses(401, 403, 409, 413, 415, 422))
def close_period(body: ClosePeriodIn, ledger: LedgerDep, meta: FinanceMeta) -> dict[str, Any]:
    """结账: refuse, from now on, commands dated on or before `until` (`period_closed`)."""
    result = ledger.close_period(ClosePeriod(until=body.until, reason=body.reason), meta)
    return {**result.data, "document_id": str(result.document_id),
            "position": result.position}


@router.get("/finance/periods", response_model=PeriodsOut, responses=READS)
def periods(ledger: LedgerDep, _: Reader) -> dict[str, Any]:
    """How far the books are closed, and every close."""
    found = ledger.periods()
    if found is None:
        return {"closed_until": None, "open_from": None, "closes": []}
    return {"closed_until": found.closed_until, "open_from": found.open_from,
            "closes": found.closes}

