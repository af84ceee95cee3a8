"""`Party`: a supplier or customer (or both), with an optional credit limit."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from eventsourcing.domain import Aggregate

from ledger.domain.identity import party_id

PARTY_ROLES = ("supplier", "customer")


@dataclass(frozen=True)
class PartyDetails:
    """What a client registers about a party."""

    name: str
    roles: tuple[str, ...]
    credit_limit: Decimal | None = None


class Party(Aggregate):
    """A party; re-registering the same details is a no-op, other details an update."""

    TOPIC = "ledger:Party"

    class Event(Aggregate.Event):
        TOPIC = "ledger:Party.Event"

    class Registered(Aggregate.Created):
        TOPIC = "ledger:Party.Registered"
        code: str
        name: str
        roles: list[str]
        credit_limit: Decimal | None
        actor: str

    class Updated(Event):
        TOPIC = "ledger:Party.Updated"
        code: str
        name: str
        roles: list[str]
        credit_limit: Decimal | None
        actor: str

        def apply(self, aggregate: Party) -> None:
            aggregate.name = self.name
            aggregate.roles = tuple(self.roles)
            aggregate.credit_limit = self.credit_limit

    def __init__(self, code: str, name: str, roles: list[str],
                 credit_limit: Decimal | None) -> None:
        self.code = code
        self.name = name
        self.roles = tuple(roles)
        self.credit_limit = credit_limit

    @classmethod
    def register(cls, code: str, details: PartyDetails, actor: str) -> Party:
        return cls._create(cls.Registered, id=party_id(code), code=code, name=details.name,
                           roles=list(details.roles), credit_limit=details.credit_limit,
                           actor=actor)

    @property
    def details(self) -> PartyDetails:
        return PartyDetails(self.name, self.roles, self.credit_limit)

    def update(self, details: PartyDetails, actor: str) -> None:
        """Record new details; nothing when they are the same."""
        if details != self.details:
            self.trigger_event(self.Updated, code=self.code, name=details.name,
                               roles=list(details.roles), credit_limit=details.credit_limit,
                               actor=actor)

    def plays(self, role: str) -> bool:
        return role in self.roles
