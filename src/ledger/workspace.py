"""The aggregates one attempt at a command loads and changes.

A workspace loads each aggregate at most once per attempt, so that two lines of
one document touching the same bin see each other, and lists what changed in
the order it was first touched: that list is the one `save()`.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError
from eventsourcing.domain import Aggregate

from ledger.domain.customer_account import CustomerAccount
from ledger.domain.identity import (
    bin_id,
    customer_account_id,
    item_id,
    location_id,
    party_id,
    periods_id,
)
from ledger.domain.item import Item
from ledger.domain.location import Location
from ledger.domain.party import Party
from ledger.domain.periods import Periods
from ledger.domain.purchase_order import PurchaseOrder
from ledger.domain.sales_order import SalesOrder
from ledger.domain.stock_bin import StockBin
from ledger.errors import UnknownItem, UnknownLocation, UnknownOrder, UnknownParty

Loader = Callable[[UUID], Aggregate]
_UNSEEN: Any = object()  # not looked up yet (None: looked up, absent)


class Workspace:
    """Loaded aggregates, keyed by id, for one attempt at one command."""

    def __init__(self, load: Loader, now: datetime, shared: Workspace | None = None) -> None:
        self._load = load
        self._now = now
        self._loaded: dict[UUID, Aggregate | None] = {}
        self._shared = shared  # a fork's workspace, whose aggregates it copies before changing

    def _get(self, aggregate_id: UUID) -> Aggregate | None:
        found: Aggregate | None = self._loaded.get(aggregate_id, _UNSEEN)
        if found is _UNSEEN:
            try:
                found = self._load(aggregate_id)
            except AggregateNotFoundError:
                found = None
            self._loaded[aggregate_id] = found
        return found

    def _read(self, aggregate_id: UUID) -> Aggregate | None:
        """An aggregate to read, never to change: this workspace's own when it holds one,
        else, in a fork, the shared workspace's itself (no copy is needed to read)."""
        found: Aggregate | None = self._loaded.get(aggregate_id, _UNSEEN)
        if found is not _UNSEEN:
            return found
        if self._shared is not None:
            return self._shared._get(aggregate_id)
        return self._get(aggregate_id)

    # Items and locations are only read here: commands check that they exist and read their
    # details; registering and updating them is `ledger.reference`'s, through the repository.

    def item(self, sku: str) -> Item:
        item = self._read(item_id(sku))
        if item is None:
            raise UnknownItem(sku)
        assert isinstance(item, Item)
        return item

    def location(self, code: str) -> Location:
        location = self._read(location_id(code))
        if location is None:
            raise UnknownLocation(code)
        assert isinstance(location, Location)
        return location

    def existing_bin(self, sku: str, location: str) -> StockBin | None:
        """The bin if anything was ever moved into it, else None."""
        self.item(sku)
        self.location(location)
        stock_bin = self._get(bin_id(sku, location))
        assert stock_bin is None or isinstance(stock_bin, StockBin)
        return stock_bin

    def bin(self, sku: str, location: str) -> StockBin:
        """The bin, opened (unsaved) when nothing was ever moved into it."""
        stock_bin = self.existing_bin(sku, location)
        if stock_bin is None:
            stock_bin = StockBin.open(sku, location, self.item(sku).valuation_method, self._now)
            self._loaded[stock_bin.id] = stock_bin
        return stock_bin

    def party(self, code: str) -> Party:
        party = self._get(party_id(code))
        if party is None:
            raise UnknownParty(code)
        assert isinstance(party, Party)
        return party

    def purchase_order(self, order_id: UUID) -> PurchaseOrder:
        order = self._get(order_id)
        if not isinstance(order, PurchaseOrder):
            raise UnknownOrder(str(order_id))
        return order

    def sales_order(self, order_id: UUID) -> SalesOrder:
        order = self._get(order_id)
        if not isinstance(order, SalesOrder):
            raise UnknownOrder(str(order_id))
        return order

    def customer_account(self, customer: str) -> CustomerAccount:
        """The customer's account, opened (unsaved) with their first order."""
        account = self._get(customer_account_id(customer))
        if account is None:
            account = CustomerAccount.open(customer, self._now)
            self._loaded[account.id] = account
        assert isinstance(account, CustomerAccount)
        return account

    def existing_periods(self) -> Periods | None:
        periods = self._get(periods_id())
        assert periods is None or isinstance(periods, Periods)
        return periods

    def periods(self) -> Periods:
        periods = self._get(periods_id())
        if periods is None:
            periods = Periods.open(self._now)
            self._loaded[periods.id] = periods
        assert isinstance(periods, Periods)
        return periods

    def add(self, aggregate: Aggregate) -> None:
        """A new aggregate the command created (saved with the rest)."""
        self._loaded[aggregate.id] = aggregate

    # Group commit: commands of a batch decided on copies, merged when they succeed.

    def fork(self) -> Workspace:
        """A workspace that sees this one's aggregates as copies (changes stay in the fork);
        what it only reads (items, locations) it reads here, uncopied."""
        return Workspace(self._copy_of, self._now, shared=self)

    def _copy_of(self, aggregate_id: UUID) -> Aggregate:
        found = self._get(aggregate_id)
        if found is None:
            raise AggregateNotFoundError(aggregate_id)
        return clone(found)

    def absorb(self, fork: Workspace) -> list[tuple[UUID, int]]:
        """Take a fork's aggregates (and their new events) as this workspace's own; the
        (aggregate id, version) of each event the fork added, in the order it touched them.

        A fork's aggregate is a copy of this workspace's (`_copy_of` loads it here first),
        its pending events a longer copy of the same list: what it added is the tail."""
        added: list[tuple[UUID, int]] = []
        for aggregate_id, aggregate in fork._loaded.items():
            if aggregate is None:
                continue
            mine = self._loaded.get(aggregate_id)
            already = 0 if mine is None else len(mine.pending_events)
            added.extend((event.originator_id, event.originator_version)
                         for event in aggregate.pending_events[already:])
            self._loaded[aggregate_id] = aggregate
        return added

    def looked_up(self) -> list[UUID]:
        """Every aggregate id this workspace looked up (found or not) or created: what its
        decisions rest on (a group-commit batch is written only if none of them changed)."""
        return list(self._loaded)

    def aggregates(self) -> list[Aggregate]:
        return [aggregate for aggregate in self._loaded.values() if aggregate is not None]

    def changed(self) -> list[Aggregate]:
        """Aggregates with events to save, in the order they were first loaded."""
        return [
            aggregate for aggregate in self._loaded.values()
            if aggregate is not None and aggregate.pending_events
        ]


def clone(aggregate: Aggregate) -> Aggregate:
    """A copy a command may change without touching the original.

    Aggregates hold immutable values (decimals, frozen cost states and layers, events) in
    dictionaries and lists at most two levels deep (order lines): those containers are
    copied, the values shared. Much cheaper than a deep copy, which matters in a batch.
    """
    state = dict(vars(aggregate))
    for name, value in state.items():
        if isinstance(value, dict):
            state[name] = {key: dict(item) if isinstance(item, dict) else item
                           for key, item in value.items()}
        elif isinstance(value, list):
            state[name] = list(value)
    copied = object.__new__(type(aggregate))  # what copy.copy does, without its dispatch
    copied.__dict__ = state
    return copied
