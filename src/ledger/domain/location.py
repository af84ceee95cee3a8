"""`Location`: a warehouse, store or bin area stock can be held at."""

from __future__ import annotations

from eventsourcing.domain import Aggregate

from ledger.domain.identity import location_id


class Location(Aggregate):
    """A location; re-registering the same name is a no-op, another name a rename."""

    TOPIC = "ledger:Location"

    class Event(Aggregate.Event):
        TOPIC = "ledger:Location.Event"

    class Registered(Aggregate.Created):
        TOPIC = "ledger:Location.Registered"
        code: str
        name: str
        actor: str

    class Renamed(Event):
        TOPIC = "ledger:Location.Renamed"
        code: str
        name: str
        actor: str

        def apply(self, aggregate: Location) -> None:
            aggregate.name = self.name

    def __init__(self, code: str, name: str) -> None:
        self.code = code
        self.name = name

    @classmethod
    def register(cls, code: str, name: str, actor: str) -> Location:
        return cls._create(cls.Registered, id=location_id(code), code=code, name=name,
                           actor=actor)

    def rename(self, name: str, actor: str) -> None:
        if name != self.name:
            self.trigger_event(self.Renamed, code=self.code, name=name, actor=actor)
