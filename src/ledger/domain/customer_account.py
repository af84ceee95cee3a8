"""`CustomerAccount`: what a customer's orders put on their credit, and their recent orders.

One per customer. Every sales-order step that changes what the order is exposed for
records the order's new exposure here in the same `save()`, so that the credit check
at review sees every other approved order, even one approved a moment ago by another
request (optimistic concurrency on this aggregate serialises them). The recent
orders' line digests let placement flag a likely duplicate.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from uuid import UUID

from eventsourcing.domain import Aggregate

from ledger.domain.identity import customer_account_id
from ledger.numbers import ZERO_MONEY


class CustomerAccount(Aggregate):
    TOPIC = "ledger:CustomerAccount"

    class Event(Aggregate.Event):
        TOPIC = "ledger:CustomerAccount.Event"

    class Opened(Aggregate.Created):
        TOPIC = "ledger:CustomerAccount.Opened"
        customer: str

    class OrderPlaced(Event):
        TOPIC = "ledger:CustomerAccount.OrderPlaced"
        order_id: UUID
        lines_digest: str
        placed_at: datetime

        def apply(self, account: CustomerAccount) -> None:
            account.orders[str(self.order_id)] = (self.lines_digest, self.placed_at)

    class ExposureChanged(Event):
        TOPIC = "ledger:CustomerAccount.ExposureChanged"
        order_id: UUID
        exposure: Decimal
        total_exposure: Decimal

        def apply(self, account: CustomerAccount) -> None:
            if self.exposure:
                account.exposures[str(self.order_id)] = self.exposure
            else:
                account.exposures.pop(str(self.order_id), None)

    def __init__(self, customer: str) -> None:
        self.customer = customer
        self.orders: dict[str, tuple[str, datetime]] = {}
        self.exposures: dict[str, Decimal] = {}

    @classmethod
    def open(cls, customer: str, at: datetime) -> CustomerAccount:
        return cls._create(cls.Opened, id=customer_account_id(customer), timestamp=at,
                           customer=customer)

    @property
    def total_exposure(self) -> Decimal:
        return sum(self.exposures.values(), ZERO_MONEY)

    def exposure_of(self, order_id: UUID) -> Decimal:
        return self.exposures.get(str(order_id), ZERO_MONEY)

    def likely_duplicates(self, lines_digest: str, at: datetime,
                          window: timedelta) -> list[UUID]:
        """Orders placed with the same lines within `window` before `at`, oldest first."""
        return [UUID(order_id) for order_id, (digest, placed_at) in self.orders.items()
                if digest == lines_digest and at - window <= placed_at <= at]

    def place(self, order_id: UUID, lines_digest: str, at: datetime) -> None:
        self.trigger_event(self.OrderPlaced, order_id=order_id, lines_digest=lines_digest,
                           placed_at=at, timestamp=at)

    def expose(self, order_id: UUID, exposure: Decimal, at: datetime) -> None:
        """Record an order's exposure when it changed."""
        if exposure != self.exposure_of(order_id):
            total = self.total_exposure - self.exposure_of(order_id) + exposure
            self.trigger_event(self.ExposureChanged, order_id=order_id, exposure=exposure,
                               total_exposure=total, timestamp=at)
