"""Request and response models. Decimals travel as strings out, strings or numbers in."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Literal
from uuid import UUID

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

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
    reorder_point: Decimal | None = None


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


class DocumentIn(Request):
    reference: Text | None = None
    note: Text | None = None
    effective_at: AwareDatetime | None = None


class ReceiptLineIn(Request):
    sku: Code
    quantity: Decimal
    unit_cost: Decimal


class ReceiptIn(DocumentIn):
    location: Code
    lines: list[ReceiptLineIn] = Lines


class DispatchLineIn(Request):
    sku: Code
    quantity: Decimal


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
    counted_quantity: Decimal
    unit_cost: Decimal | None = None


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
