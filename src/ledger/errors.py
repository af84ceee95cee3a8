"""The ledger's errors: one hierarchy, each carrying the facts a user needs."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal


class LedgerError(Exception):
    """Base of every refusal the ledger makes. `code` is stable: clients match on it."""

    code = "ledger_error"

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail

    def facts(self) -> dict[str, object]:
        """Structured fields that explain the refusal (strings for decimals)."""
        return {}


class InvalidInput(LedgerError):
    """A command whose input breaks a rule of the ledger (bad quantity, cost, line count…)."""

    code = "validation_error"

    def __init__(self, detail: str, field: str | None = None) -> None:
        super().__init__(detail)
        self.field = field

    def facts(self) -> dict[str, object]:
        return {"field": self.field} if self.field else {}


class InvalidQuantity(InvalidInput):
    """A quantity that is not a positive decimal of at most 3 places."""


class InvalidCost(InvalidInput):
    """A unit cost that is negative or has more than 6 places."""


class FutureEffectiveTime(InvalidInput):
    """An `effective_at` later than the moment the command is recorded."""


class UnknownItem(LedgerError):
    code = "unknown_item"

    def __init__(self, sku: str) -> None:
        super().__init__(f"No item is registered with SKU {sku!r}.")
        self.sku = sku

    def facts(self) -> dict[str, object]:
        return {"sku": self.sku}


class UnknownLocation(LedgerError):
    code = "unknown_location"

    def __init__(self, location: str) -> None:
        super().__init__(f"No location is registered with code {location!r}.")
        self.location = location

    def facts(self) -> dict[str, object]:
        return {"location": self.location}


class UnknownParty(LedgerError):
    code = "unknown_party"

    def __init__(self, party: str) -> None:
        super().__init__(f"No party is registered with code {party!r}.")
        self.party = party

    def facts(self) -> dict[str, object]:
        return {"party": self.party}


class InsufficientStock(LedgerError):
    """Taking out more than is available (on hand less reserved) in a bin."""

    code = "insufficient_stock"

    def __init__(self, sku: str, location: str, requested: Decimal, available: Decimal) -> None:
        super().__init__(
            f"Cannot take {requested} of {sku!r} from {location!r}: only {available} available."
        )
        self.sku = sku
        self.location = location
        self.requested = requested
        self.available = available

    def facts(self) -> dict[str, object]:
        return {
            "sku": self.sku,
            "location": self.location,
            "requested": str(self.requested),
            "available": str(self.available),
        }


class ImmutableField(LedgerError):
    """An update that would change a field fixed at registration."""

    code = "immutable_field"

    def __init__(self, field: str, detail: str) -> None:
        super().__init__(detail)
        self.field = field

    def facts(self) -> dict[str, object]:
        return {"field": self.field}


class IdempotencyConflict(LedgerError):
    """The same idempotency key was used before with a different command."""

    code = "idempotency_conflict"

    def __init__(self, key: str) -> None:
        super().__init__(
            f"Idempotency key {key!r} was already used for a different request."
        )
        self.key = key

    def facts(self) -> dict[str, object]:
        return {"idempotency_key": self.key}


class ConcurrentModification(LedgerError):
    """Other writers kept changing the same aggregates; the bounded retries ran out."""

    code = "concurrent_modification"

    def __init__(self, attempts: int) -> None:
        super().__init__(
            f"The command conflicted with concurrent writers {attempts} times; retry it."
        )
        self.attempts = attempts

    def facts(self) -> dict[str, object]:
        return {"attempts": self.attempts}


class BackdatedMovement(LedgerError):
    """A movement effective before the bin's latest movement: the bin's past is closed."""

    code = "backdated_movement"

    def __init__(self, sku: str, location: str, effective_at: datetime,
                 latest_effective_at: datetime) -> None:
        super().__init__(
            f"{sku!r} at {location!r} has a movement effective at "
            f"{latest_effective_at.isoformat()}; a new movement cannot be effective earlier "
            f"({effective_at.isoformat()}). Record it now, or correct with a count."
        )
        self.sku = sku
        self.location = location
        self.effective_at = effective_at
        self.latest_effective_at = latest_effective_at

    def facts(self) -> dict[str, object]:
        return {
            "sku": self.sku,
            "location": self.location,
            "effective_at": self.effective_at.isoformat(),
            "latest_effective_at": self.latest_effective_at.isoformat(),
        }


class InvalidTransition(LedgerError):
    """A step an order cannot take in the state it is in."""

    code = "invalid_transition"

    def __init__(self, order_id: str, status: str, action: str) -> None:
        super().__init__(f"Order {order_id} is {status}: it cannot {action}.")
        self.order_id = order_id
        self.status = status
        self.action = action

    def facts(self) -> dict[str, object]:
        return {"order_id": self.order_id, "order_status": self.status, "action": self.action}


class OrderLimitExceeded(LedgerError):
    """More than an order allows: over_receipt, over_return, over_invoice, over_payment."""

    def __init__(self, code: str, order_id: str, line_number: int | None, detail: str) -> None:
        super().__init__(detail)
        self.code = code
        self.order_id = order_id
        self.line_number = line_number

    def facts(self) -> dict[str, object]:
        facts: dict[str, object] = {"order_id": self.order_id}
        if self.line_number is not None:
            facts["line_number"] = self.line_number
        return facts


class UnknownOrder(LedgerError):
    code = "unknown_order"

    def __init__(self, order_id: str) -> None:
        super().__init__(f"No order {order_id}.")
        self.order_id = order_id

    def facts(self) -> dict[str, object]:
        return {"order_id": self.order_id}


class CreditLimitExceeded(LedgerError):
    """Approving the order would take the customer beyond their credit limit."""

    code = "credit_limit_exceeded"

    def __init__(self, customer: str, credit_limit: Decimal, exposure: Decimal,
                 order_exposure: Decimal) -> None:
        super().__init__(
            f"Customer {customer!r} has a credit limit of {credit_limit} and {exposure} "
            f"already committed; this order would add {order_exposure}.")
        self.customer = customer
        self.credit_limit = credit_limit
        self.exposure = exposure
        self.order_exposure = order_exposure

    def facts(self) -> dict[str, object]:
        return {"customer": self.customer, "credit_limit": str(self.credit_limit),
                "exposure": str(self.exposure), "order_exposure": str(self.order_exposure)}


class PossibleDuplicate(LedgerError):
    """The order looks like one placed shortly before; approving it needs confirmation."""

    code = "possible_duplicate"

    def __init__(self, order_id: str, duplicate_of: list[str]) -> None:
        super().__init__(
            f"Order {order_id} has the same customer and lines as {', '.join(duplicate_of)}, "
            "placed shortly before; approve with confirm_duplicate=true if it is meant.")
        self.order_id = order_id
        self.duplicate_of = duplicate_of

    def facts(self) -> dict[str, object]:
        return {"order_id": self.order_id, "possible_duplicate_of": self.duplicate_of}


class MissingPrice(LedgerError):
    """An order line without a price cannot be approved."""

    code = "missing_price"

    def __init__(self, order_id: str, line_numbers: list[int]) -> None:
        super().__init__(f"Order {order_id} has no price on line(s) "
                         f"{', '.join(map(str, line_numbers))}; reject it or place it again.")
        self.order_id = order_id
        self.line_numbers = line_numbers

    def facts(self) -> dict[str, object]:
        return {"order_id": self.order_id, "line_numbers": self.line_numbers}


class PeriodClosed(LedgerError):
    """A command dated in a closed period: post the correction in the open period."""

    code = "period_closed"

    def __init__(self, effective_at: datetime, closed_until: object) -> None:
        super().__init__(f"The books are closed through {closed_until}; a command effective "
                         f"{effective_at.isoformat()} must be dated in the open period.")
        self.effective_at = effective_at
        self.closed_until = closed_until

    def facts(self) -> dict[str, object]:
        return {"effective_at": self.effective_at.isoformat(),
                "closed_until": str(self.closed_until)}


class StaleRead(Exception):
    """Two aggregates loaded for one command disagree: one was read before another writer
    changed it. Not a refusal: the application service decides the command again."""


class LedgerClosed(LedgerError):
    """The ledger is shutting down and takes no more commands; retry elsewhere or later."""

    code = "shutting_down"

    def __init__(self) -> None:
        super().__init__("The ledger is shutting down; retry the command.")
