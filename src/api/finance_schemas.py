"""Response and request models of the finance and report routes."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Literal

from pydantic import BaseModel

from api.schemas import Request, Text


class JournalLineOut(BaseModel):
    line_number: int
    account: str
    code: str
    location: str | None
    sku: str | None
    party: str | None
    order_id: str | None
    order_line: int | None
    quantity: Decimal | None
    debit: Decimal
    credit: Decimal


class JournalEntryOut(BaseModel):
    position: int
    event_id: str
    kind: str
    effective_at: str
    recorded_at: str
    document_id: str | None
    lines: list[JournalLineOut]


class JournalPage(BaseModel):
    items: list[JournalEntryOut]
    position: int
    next_cursor: str | None


class AccountBalanceOut(BaseModel):
    account: str
    code: str
    name: str
    location: str | None
    debit: Decimal
    credit: Decimal
    balance: Decimal


class TrialBalanceOut(BaseModel):
    as_of: datetime | None
    position: int
    accounts: list[AccountBalanceOut]
    total_debit: Decimal
    total_credit: Decimal
    balanced: bool


class LayerOut(BaseModel):
    quantity: Decimal
    unit_cost: Decimal
    value: Decimal


class ValuationItemOut(BaseModel):
    sku: str
    location: str
    valuation_method: str | None
    quantity: Decimal
    unit_cost: Decimal
    value: Decimal
    layers: list[LayerOut] | None


class ValuationOut(BaseModel):
    as_of: datetime | None
    position: int
    items: list[ValuationItemOut]
    total_value: Decimal


class CogsGroupOut(BaseModel):
    key: str | None
    quantity: Decimal
    cogs: Decimal


class CogsOut(BaseModel):
    group_by: Literal["sku", "location", "customer"]
    position: int
    groups: list[CogsGroupOut]
    total: Decimal


class SalesGroupOut(BaseModel):
    key: str | None
    quantity: Decimal
    returned_quantity: Decimal
    revenue: Decimal
    returns: Decimal
    net_revenue: Decimal
    cogs: Decimal
    gross_margin: Decimal
    gross_margin_rate: Decimal | None
    orders: int


class SalesReportOut(BaseModel):
    group_by: Literal["sku", "customer", "day"]
    position: int
    groups: list[SalesGroupOut]


class TurnoverItemOut(BaseModel):
    sku: str
    cogs: Decimal
    opening_value: Decimal
    closing_value: Decimal
    average_value: Decimal
    turnover: Decimal | None
    days_on_hand: Decimal | None


class TurnoverOut(BaseModel):
    position: int
    days: Decimal
    items: list[TurnoverItemOut]


class AgeingBucketsOut(BaseModel):
    model_config = {"populate_by_name": True}

    d0_30: Decimal
    d31_60: Decimal
    d61_90: Decimal
    over_90: Decimal


class PartyAgeingOut(BaseModel):
    party: str
    open: Decimal
    unapplied_credit: Decimal
    buckets: AgeingBucketsOut


class AgeingOut(BaseModel):
    as_of: datetime
    position: int
    parties: list[PartyAgeingOut]
    buckets: AgeingBucketsOut
    total: Decimal


class CheckOut(BaseModel):
    name: str
    expected: Decimal
    actual: Decimal
    difference: Decimal
    ok: bool
    detail: str
    items: list[dict[str, str | int | Decimal | None]] | None


class ReconciliationOut(BaseModel):
    as_of: datetime | None
    position: int
    ok: bool
    checks: list[CheckOut]


class ClosePeriodIn(Request):
    until: date
    reason: Text | None = None


class PeriodCloseOut(BaseModel):
    document_id: str
    position: int
    closed_until: date
    open_from: datetime


class PeriodsOut(BaseModel):
    closed_until: date | None
    open_from: datetime | None
    closes: list[dict[str, str | None]]
