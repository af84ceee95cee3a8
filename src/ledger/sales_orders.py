"""Sales-order commands of the `Ledger` application (a mixin): check, then execute."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from typing import TYPE_CHECKING, TypeVar
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError, Repository

from ledger import purchasing as p
from ledger import selling as s
from ledger.commands import checked_text
from ledger.domain.context import CommandMeta
from ledger.domain.sales_order import SalesOrder
from ledger.errors import UnknownOrder

if TYPE_CHECKING:
    from ledger.application import CommandResult, Decide

CommandT = TypeVar("CommandT")
StepT = TypeVar("StepT", bound=p.OrderHeader)


class SalesOrders:
    """Place, review, reserve, dispatch, ship, deliver, invoice, take payment, return, cancel."""

    if TYPE_CHECKING:
        duplicate_order_window: timedelta
        repository: Repository[UUID]

        def _execute(self, kind: str, command: CommandT, meta: CommandMeta,
                     decide: Decide[CommandT]) -> CommandResult: ...

    def place_sales_order(self, command: s.PlaceOrder, meta: CommandMeta) -> CommandResult:
        return self._execute("sales_order", s.checked_placement(command), meta,
                             s.placing(self.duplicate_order_window))

    def review_sales_order(self, command: s.SalesReview, meta: CommandMeta) -> CommandResult:
        checked = _with_reason(command, required=not command.approved)
        return self._execute("sales_order_review", checked, meta, s.decide_review)

    def reserve_sales_order(self, command: p.OrderStep, meta: CommandMeta) -> CommandResult:
        return self._execute("sales_order_reserve", command, meta, s.decide_reserve)

    def dispatch_sales_order(self, command: p.Quantities, meta: CommandMeta) -> CommandResult:
        return self._execute("sales_order_dispatch", s.checked_dispatch_quantities(command),
                             meta, s.decide_dispatch)

    def ship_sales_order(self, command: s.Ship, meta: CommandMeta) -> CommandResult:
        return self._execute("sales_order_shipment", s.checked_shipment(command), meta,
                             s.decide_ship)

    def deliver_sales_order(self, command: s.Deliver, meta: CommandMeta) -> CommandResult:
        return self._execute("sales_order_delivery", s.checked_delivery(command), meta,
                             s.decide_deliver)

    def invoice_sales_order(self, command: p.Invoice, meta: CommandMeta) -> CommandResult:
        return self._execute("sales_order_invoice", p.checked_invoice(command), meta,
                             s.decide_invoice)

    def pay_sales_order(self, command: p.Payment, meta: CommandMeta) -> CommandResult:
        return self._execute("sales_order_payment", p.checked_payment(command), meta,
                             s.decide_payment)

    def return_sales_order(self, command: p.Quantities, meta: CommandMeta) -> CommandResult:
        checked = _with_reason(p.checked_quantities(command), required=True)
        return self._execute("sales_order_return", checked, meta, s.decide_return)

    def cancel_sales_order(self, command: p.OrderStep, meta: CommandMeta) -> CommandResult:
        return self._execute("sales_order_cancelled", _with_reason(command), meta,
                             s.decide_cancel)

    def sales_order(self, order_id: UUID) -> SalesOrder:
        try:
            order: object = self.repository.get(order_id)
        except AggregateNotFoundError:
            raise UnknownOrder(str(order_id)) from None
        if not isinstance(order, SalesOrder):
            raise UnknownOrder(str(order_id))
        return order


def _with_reason(command: StepT, *, required: bool = False) -> StepT:
    return replace(command, reason=checked_text(command.reason, "reason", required=required))
