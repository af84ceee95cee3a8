"""Request and response models. Decimals travel as strings out, strings or numbers in."""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Annotated, Any, Literal
from uuid import UUID

from pydantic import AwareDatetime, BaseModel, BeforeValidator, ConfigDict, Field

DECIMAL_TEXT = re.compile(r"[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+)?")


def _decimal_input(value: Any) -> Any:
    """Decimals come as JSON numbers (parsed as Decimal) or as plain decimal strings.

    Python's Decimal would also take "1_000", " 1 " or Arabic-Indic digits; a ledger
    should not guess what a client meant.
    """
    if isinstance(value, bool):
        raise ValueError("expected a decimal, not a boolean")
    if isinstance(value, str):
        if len(value) > 100 or not DECIMAL_TEXT.fullmatch(value):
            raise ValueError("expected a decimal written with digits, an optional point and "
                             "an optional exponent")
        return Decimal(value)
    if isinstance(value, int | Decimal):
        return Decimal(value)
    raise ValueError("expected a decimal (a JSON number or a string)")


Dec = Annotated[Decimal, BeforeValidator(_decimal_input)]
Text = Annotated[str, Field(min_length=1, max_length=500)]
Code = Annotated[str, Field(min_length=1, max_length=64, examples=["SKU-001"])]
Lines = Field(min_length=1, max_length=1000)
PAGE_LIMIT_MAX = 200


class Request(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ItemIn(Request):
    name: Text
    uom: Annotated[str, Field(min_length=1, max_length=32, examples=["ea"])]
    valuation_method: Literal["fifo", "moving_average"]
    reorder_point: Dec | None = None


class ItemOut(BaseModel):
    sku: str
    name: str
    uom: str
    valuation_method: str
    reorder_point: Decimal | None
    version: int
    position: int | None = None


class ItemPage(BaseModel):
    items: list[ItemOut]
    next_cursor: str | None


class LocationIn(Request):
    name: Text


class LocationOut(BaseModel):
    code: str
    name: str
    version: int
    position: int | None = None


class LocationPage(BaseModel):
    items: list[LocationOut]
    next_cursor: str | None


class PartyIn(Request):
    name: Text
    roles: Annotated[list[Literal["supplier", "customer"]], Field(min_length=1, max_length=2)]
    credit_limit: Dec | None = None


class PartyOut(BaseModel):
    code: str
    name: str
    roles: list[str]
    credit_limit: Decimal | None
    version: int
    position: int | None = None


class PartyPage(BaseModel):
    items: list[PartyOut]
    next_cursor: str | None


class DocumentIn(Request):
    reference: Text | None = None
    note: Text | None = None
    effective_at: AwareDatetime | None = None


class ReceiptLineIn(Request):
    sku: Code
    quantity: Dec
    unit_cost: Dec


class ReceiptIn(DocumentIn):
    location: Code
    lines: list[ReceiptLineIn] = Lines


class DispatchLineIn(Request):
    sku: Code
    quantity: Dec


class DispatchIn(DocumentIn):
    location: Code
    reason: Text | None = None
    lines: list[DispatchLineIn] = Lines


class TransferIn(DocumentIn):
    from_location: Code
    to_location: Code
    lines: list[DispatchLineIn] = Lines


class CountLineIn(Request):
    sku: Code
    counted_quantity: Dec
    unit_cost: Dec | None = None


class AdjustmentIn(DocumentIn):
    location: Code
    reason: Text
    lines: list[CountLineIn] = Lines


class LineOut(BaseModel):
    """One document line as recorded. Counts report signed differences in quantity/value."""

    sku: str
    location: str
    quantity: Decimal
    unit_cost: Decimal
    value: Decimal
    quantity_on_hand_after: Decimal
    value_after: Decimal
    to_location: str | None = None
    to_quantity_on_hand_after: Decimal | None = None
    to_value_after: Decimal | None = None
    counted_quantity: Decimal | None = None
    revalued: bool | None = None


class CommandOut(BaseModel):
    document_id: UUID
    position: int
    lines: list[LineOut]


class Health(BaseModel):
    status: Literal["ok"]
    position: int


class StockOut(BaseModel):
    sku: str
    location: str
    quantity_on_hand: Decimal
    quantity_reserved: Decimal | None
    quantity_available: Decimal | None
    quantity_in_transit: Decimal | None
    unit_cost: Decimal
    value: Decimal
    as_of_position: int | None = None


class StockPage(BaseModel):
    items: list[StockOut]
    position: int
    next_cursor: str | None


class MovementOut(BaseModel):
    position: int
    sku: str
    location: str
    kind: str
    document_id: str
    line_number: int
    reference: str | None
    note: str | None
    reason: str | None
    actor: str
    counterpart_location: str | None
    effective_at: str
    recorded_at: str
    quantity_in: Decimal
    quantity_out: Decimal
    unit_cost: Decimal
    value_in: Decimal
    value_out: Decimal
    quantity_on_hand_after: Decimal
    value_after: Decimal
    unit_cost_after: Decimal


class MovementPage(BaseModel):
    items: list[MovementOut]
    position: int
    next_cursor: str | None


class LowStockOut(BaseModel):
    sku: str
    location: str
    name: str
    uom: str
    reorder_point: Decimal
    quantity_on_hand: Decimal
    quantity_reserved: Decimal
    quantity_available: Decimal
    shortfall: Decimal


class LowStockPage(BaseModel):
    items: list[LowStockOut]
    position: int
    next_cursor: str | None


class ProjectionOut(BaseModel):
    name: str
    generation: int
    position: int
    head: int
    lag: int
    digest: str


class ProjectionList(BaseModel):
    items: list[ProjectionOut]
    head: int


class EventOut(BaseModel):
    position: int
    event_id: str
    aggregate_id: str
    aggregate_version: int
    type: str
    recorded_at: str
    effective_at: str | None
    actor: str | None
    link: str
    data: dict[str, Any]


class EventPage(BaseModel):
    items: list[EventOut]
    position: int
    next_cursor: str | None


class DigestOut(BaseModel):
    position: int
    hash: str
    algorithm: Literal["sha256-chain-v1"] = "sha256-chain-v1"


class PurchaseLineIn(Request):
    sku: Code
    location: Code
    quantity: Dec
    unit_price: Dec


class PurchaseOrderIn(Request):
    supplier: Code
    lines: list[PurchaseLineIn] = Lines
    reference: Text | None = None
    note: Text | None = None


class ReviewIn(Request):
    reason: Text | None = None


class OrderLineQuantityIn(Request):
    line_number: Annotated[int, Field(ge=1, le=1000)]
    quantity: Dec


class OrderQuantitiesIn(Request):
    lines: list[OrderLineQuantityIn] = Lines
    reference: Text | None = None
    note: Text | None = None
    reason: Text | None = None
    effective_at: AwareDatetime | None = None


class InvoiceLineIn(Request):
    line_number: Annotated[int, Field(ge=1, le=1000)]
    quantity: Dec
    unit_price: Dec | None = None
    tax_rate: Dec = Decimal(0)


class InvoiceIn(Request):
    invoice_number: Text
    lines: list[InvoiceLineIn] = Lines
    effective_at: AwareDatetime | None = None


class PaymentIn(Request):
    amount: Dec
    reference: Text | None = None
    effective_at: AwareDatetime | None = None


class OrderCommandOut(BaseModel):
    document_id: UUID
    position: int
    order_id: UUID
    status: str
    outstanding: Decimal | None = None
    lines: list[LineOut] | None = None


class PurchaseOrderLineOut(BaseModel):
    line_number: int
    sku: str
    location: str
    quantity: Decimal
    unit_price: Decimal
    received: Decimal
    returned: Decimal
    invoiced: Decimal


class PurchaseOrderOut(BaseModel):
    order_id: str
    supplier: str
    status: str
    reference: str | None
    lines: list[PurchaseOrderLineOut]
    invoiced_total: Decimal
    paid: Decimal
    outstanding: Decimal
    version: int


class PurchaseOrderPage(BaseModel):
    items: list[PurchaseOrderOut]
    position: int
    next_cursor: str | None


class SalesLineIn(Request):
    sku: Code
    location: Code
    quantity: Dec
    unit_price: Dec | None = Field(
        default=None, description="Without a price the order cannot be approved (missing_price).")


class SalesOrderIn(Request):
    customer: Code
    lines: list[SalesLineIn] = Lines
    reference: Text | None = None
    note: Text | None = None


class SalesReviewIn(Request):
    reason: Text | None = None
    confirm_duplicate: bool = Field(
        default=False, description="Approve an order flagged as a likely duplicate.")


class SalesDispatchIn(Request):
    lines: list[OrderLineQuantityIn] | None = Field(
        default=None, min_length=1, max_length=1000,
        description="Quantities per order line; omitted: everything reserved.")
    reference: Text | None = None
    note: Text | None = None
    effective_at: AwareDatetime | None = None


class ShipmentIn(Request):
    carrier: Text
    tracking_number: Text
    reference: Text | None = None
    note: Text | None = None
    effective_at: AwareDatetime | None = None


class DeliveryIn(Request):
    signed_by: Text
    signed_at: AwareDatetime | None = Field(default=None, description="Default: now.")
    note: Text | None = None


class SalesInvoiceIn(InvoiceIn):
    pass


class SalesPaymentIn(PaymentIn):
    pass


class ReservationOut(BaseModel):
    line_number: int
    sku: str
    location: str
    reserved_now: Decimal
    reserved: Decimal
    short: Decimal


class CreditNoteOut(BaseModel):
    number: str
    amount: Decimal
    tax: Decimal
    total: Decimal


class SalesCommandOut(BaseModel):
    document_id: UUID
    position: int
    order_id: UUID
    status: str
    outstanding: Decimal
    possible_duplicate_of: list[UUID] | None = None
    reservations: list[ReservationOut] | None = None
    lines: list[LineOut] | None = None
    credit_note: CreditNoteOut | None = None


class SalesOrderLineOut(BaseModel):
    line_number: int
    sku: str
    location: str
    quantity: Decimal
    unit_price: Decimal | None
    approved: Decimal
    reserved: Decimal
    backordered: Decimal
    dispatched: Decimal
    shipped: Decimal
    delivered: Decimal
    invoiced: Decimal
    returned: Decimal
    credited: Decimal
    dispatched_value: Decimal
    returned_value: Decimal


class TimelineEntryOut(BaseModel):
    model_config = ConfigDict(extra="allow")

    position: int
    event: str
    recorded_at: str
    actor: str


class SalesOrderSummaryOut(BaseModel):
    """A sales order as lists show it: everything but the timeline."""

    order_id: str
    customer: str
    status: str
    reference: str | None
    note: str | None
    placed_at: str
    possible_duplicate_of: list[str]
    lines: list[SalesOrderLineOut]
    invoiced_total: Decimal
    credited_total: Decimal
    paid: Decimal
    outstanding: Decimal
    version: int


class SalesOrderOut(SalesOrderSummaryOut):
    timeline: list[TimelineEntryOut]


class SalesOrderPage(BaseModel):
    items: list[SalesOrderSummaryOut]
    position: int
    next_cursor: str | None
