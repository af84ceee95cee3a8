"""Purchase-order commands of the `Ledger` application (a mixin): check, then execute."""

from __future__ import annotations

from decimal import Decimal
from typing import TYPE_CHECKING, TypeVar
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError, Repository

from ledger import purchasing as p
from ledger.commands import checked_text
from ledger.domain.context import CommandMeta
from ledger.domain.purchase_order import PurchaseOrder
from ledger.errors import InvalidInput, UnknownOrder

if TYPE_CHECKING:
    from ledger.application import CommandResult, Decide

CommandT = TypeVar("CommandT")


class PurchaseOrders:
    """Create, review, receive, return, invoice, pay, cancel and close purchase orders."""

    if TYPE_CHECKING:
        over_receipt_tolerance: Decimal

        def _execute(self, kind: str, command: CommandT, meta: CommandMeta,
                     decide: Decide[CommandT]) -> CommandResult: ...

        repository: Repository[UUID]

    def create_purchase_order(self, command: p.CreateOrder, meta: CommandMeta) -> CommandResult:
        return self._execute("purchase_order", p.checked_order(command), meta, p.decide_create)

    def review_purchase_order(self, command: p.Review, meta: CommandMeta) -> CommandResult:
        checked = _with_reason(command, required=not command.approved)
        return self._execute("purchase_order_review", checked, meta, p.decide_review)

    def receive_purchase_order(self, command: p.Quantities, meta: CommandMeta) -> CommandResult:
        return self._execute("purchase_order_receipt", p.checked_quantities(command), meta,
                             p.receiving(self.over_receipt_tolerance))

    def return_purchase_order(self, command: p.Quantities, meta: CommandMeta) -> CommandResult:
        checked = _with_reason(p.checked_quantities(command), required=True)
        return self._execute("purchase_order_return", checked, meta, p.decide_return)

    def invoice_purchase_order(self, command: p.Invoice, meta: CommandMeta) -> CommandResult:
        return self._execute("purchase_order_invoice", p.checked_invoice(command), meta,
                             p.decide_invoice)

    def pay_purchase_order(self, command: p.Payment, meta: CommandMeta) -> CommandResult:
        return self._execute("purchase_order_payment", p.checked_payment(command), meta,
                             p.decide_payment)

    def end_purchase_order(self, command: p.End, meta: CommandMeta) -> CommandResult:
        if command.outcome not in ("cancelled", "closed"):
            raise InvalidInput("An order ends cancelled or closed.", "outcome")
        return self._execute(f"purchase_order_{command.outcome}", _with_reason(command), meta,
                             p.decide_end)

    def purchase_order(self, order_id: UUID) -> PurchaseOrder:
        try:
            order: object = self.repository.get(order_id)
        except AggregateNotFoundError:
            raise UnknownOrder(str(order_id)) from None
        if not isinstance(order, PurchaseOrder):
            raise UnknownOrder(str(order_id))
        return order


StepT = TypeVar("StepT", bound=p.OrderHeader)


def _with_reason(command: StepT, *, required: bool = False) -> StepT:
    from dataclasses import replace

    return replace(command, reason=checked_text(command.reason, "reason", required=required))


