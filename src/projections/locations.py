"""Read model of locations: code and name."""

from __future__ import annotations

from collections.abc import Hashable
from typing import ClassVar

from sqlalchemy import BigInteger, Column, Integer, MetaData, Table, Text

from ledger.domain.location import Location
from projections.base import Envelope, KeyedProjection, Row


class LocationsProjection(KeyedProjection):
    name = "locations"
    table_name = "locations"
    topics: ClassVar[frozenset[str]] = frozenset(
        {Location.Registered.TOPIC, Location.Renamed.TOPIC})

    def define_tables(self, metadata: MetaData, suffix: str) -> dict[str, Table]:
        return {"locations": Table(
            f"locations{suffix}", metadata,
            Column("code", Text, primary_key=True),
            Column("name", Text, nullable=False),
            Column("version", Integer, nullable=False),
            Column("registered_position", BigInteger, nullable=False),
        )}

    def key(self, envelope: Envelope) -> tuple[Hashable, ...]:
        return (envelope.event.code,)

    def fold(self, row: Row | None, envelope: Envelope) -> Row:
        event = envelope.event
        if isinstance(event, Location.Registered):
            return {"code": event.code, "name": event.name, "version": event.originator_version,
                    "registered_position": envelope.position}
        assert row is not None, "a location is renamed after it is registered"
        return {**row, "name": event.name, "version": event.originator_version}
