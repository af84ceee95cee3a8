"""Reference data: items, locations and parties (registered, updated, listed).

A mixin of the `Ledger` application: re-registering the same details appends
nothing; different details append an update; concurrent writers are retried.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError
from eventsourcing.persistence import ApplicationRecorder, IntegrityError

from ledger.commands import checked_item_details, checked_party_details, checked_text
from ledger.domain.context import CommandMeta
from ledger.domain.identity import check_code, item_id, location_id, party_id
from ledger.domain.item import Item, ItemDetails
from ledger.domain.location import Location
from ledger.domain.party import Party, PartyDetails
from ledger.errors import ConcurrentModification, UnknownItem, UnknownParty

AggregateT = TypeVar("AggregateT", Item, Location, Party)


@dataclass(frozen=True)
class Registration:
    """The outcome of registering reference data: whether anything was appended."""

    changed: bool
    position: int | None


class ReferenceData:
    """Commands and lookups for reference data (mixed into `Ledger`)."""

    if TYPE_CHECKING:
        attempts_max: int
        recorder: ApplicationRecorder

        def _load(self, aggregate_id: UUID, kind: type[AggregateT]) -> AggregateT: ...

        def _save_position(self, *aggregates: Any) -> int: ...

    def register_item(self, sku: str, details: ItemDetails, meta: CommandMeta) -> Registration:
        """Register an item, or update its details; the same details append nothing."""
        check_code(sku, "sku")
        checked = checked_item_details(details)

        def decide() -> Item:
            try:
                item = self._load(item_id(sku), Item)
            except AggregateNotFoundError:
                return Item.register(sku, checked, meta.actor)
            item.update(checked, meta.actor)
            return item

        return self._register(decide)

    def register_location(self, code: str, name: str, meta: CommandMeta) -> Registration:
        """Register a location, or rename it; the same name appends nothing."""
        check_code(code, "code")
        checked_name = checked_text(name, "name", required=True)
        assert checked_name is not None

        def decide() -> Location:
            try:
                location = self._load(location_id(code), Location)
            except AggregateNotFoundError:
                return Location.register(code, checked_name, meta.actor)
            location.rename(checked_name, meta.actor)
            return location

        return self._register(decide)

    def register_party(self, code: str, details: PartyDetails, meta: CommandMeta) -> Registration:
        """Register a supplier or customer, or update it; the same details append nothing."""
        check_code(code, "code")
        checked = checked_party_details(details)

        def decide() -> Party:
            try:
                party = self._load(party_id(code), Party)
            except AggregateNotFoundError:
                return Party.register(code, checked, meta.actor)
            party.update(checked, meta.actor)
            return party

        return self._register(decide)

    def party(self, code: str) -> Party:
        try:
            return self._load(party_id(code), Party)
        except AggregateNotFoundError:
            raise UnknownParty(code) from None

    def _register(self, decide: Callable[[], Item | Location | Party]) -> Registration:
        """Save what `decide` changed, deciding again if another writer got there first."""
        for _ in range(self.attempts_max):
            aggregate = decide()
            if not aggregate.pending_events:
                return Registration(changed=False, position=None)
            try:
                return Registration(changed=True, position=self._save_position(aggregate))
            except IntegrityError:
                continue
        raise ConcurrentModification(self.attempts_max)

    def item(self, sku: str) -> Item:
        try:
            return self._load(item_id(sku), Item)
        except AggregateNotFoundError:
            raise UnknownItem(sku) from None

    def location(self, code: str) -> Location | None:
        try:
            return self._load(location_id(code), Location)
        except AggregateNotFoundError:
            return None

    def items(self, after: int, limit: int) -> tuple[list[Item], int | None]:
        """Registered items in registration order, after a log position; and the next cursor."""
        return self._registered(Item.Registered.TOPIC, Item, after, limit)

    def locations(self, after: int, limit: int) -> tuple[list[Location], int | None]:
        """Registered locations in registration order, after a log position."""
        return self._registered(Location.Registered.TOPIC, Location, after, limit)

    def parties(self, after: int, limit: int) -> tuple[list[Party], int | None]:
        """Registered parties in registration order, after a log position."""
        return self._registered(Party.Registered.TOPIC, Party, after, limit)

    def _registered(self, topic: str, kind: type[AggregateT], after: int,
                    limit: int) -> tuple[list[AggregateT], int | None]:
        # Reference data is small: scanning its creation events by topic is bounded by
        # `limit` per page. The read-model issue replaces this with indexed tables.
        notifications = self.recorder.select_notifications(
            start=after, limit=limit, topics=[topic], inclusive_of_start=False)
        found = [self._load(UUID(str(n.originator_id)), kind) for n in notifications]
        cursor = notifications[-1].id if len(notifications) == limit else None
        return found, cursor
