"""The audit log: every event in log order, indexed for auditors, with its chain link.

It folds every event (no topic filter): who, when (recorded and effective), which
aggregate and version, and the hash-chain link after it. `GET /events` pages and
filters through it; `GET /audit/digest` reads links from it; `ledger verify`
recomputes the links from the store and compares them with it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

from eventsourcing.persistence import Notification
from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    Index,
    Integer,
    MetaData,
    Table,
    Text,
    select,
)

from ledger.chain import GENESIS, link_after
from projections.base import Carried, Envelope, Projection, Row, copy_rows
from projections.bulk import AppendFold
from projections.encoding import instant


class AuditLogProjection(Projection):
    name = "audit_log"
    topics: ClassVar[frozenset[str] | None] = None

    def define_tables(self, metadata: MetaData, suffix: str) -> dict[str, Table]:
        table = Table(
            f"audit_log{suffix}", metadata,
            Column("position", BigInteger, primary_key=True, autoincrement=False),
            Column("aggregate_id", Text, nullable=False),
            Column("aggregate_version", Integer, nullable=False),
            Column("topic", Text, nullable=False),
            Column("recorded_at", Text, nullable=False),
            Column("effective_at", Text),
            Column("actor", Text),
            Column("link", Text, nullable=False),
        )
        Index(f"ix_audit_log{suffix}_aggregate", table.c.aggregate_id, table.c.position)
        Index(f"ix_audit_log{suffix}_topic", table.c.topic, table.c.position)
        Index(f"ix_audit_log{suffix}_recorded", table.c.recorded_at, table.c.position)
        return {"audit_log": table}

    def apply_page(self, connection: Connection, tables: dict[str, Table],
                   envelopes: Sequence[Envelope], carried: Carried | None = None) -> None:
        if not envelopes:
            return
        table = tables["audit_log"]
        previous = None if carried is None else carried.link
        if previous is None:
            previous = connection.execute(
                select(table.c.link).order_by(table.c.position.desc()).limit(1)).scalar()
        rows, link = chained_rows(envelopes, previous or GENESIS)
        copy_rows(connection, table, rows)
        if carried is not None:
            carried.link = link

    def bulk_fold(self) -> AuditFold:
        return AuditFold()


class AuditFold(AppendFold):
    """The audit log's rebuild: the link carried from page to page in memory."""

    def __init__(self) -> None:
        super().__init__("audit_log", self._rows)
        self.link = GENESIS

    def _rows(self, envelopes: Sequence[Envelope]) -> list[Row]:
        rows, self.link = chained_rows(envelopes, self.link)
        return rows

    def add_page(self, log: Sequence[Notification], envelopes: Sequence[Envelope]) -> None:
        """The chain through every event of the page; the rows of `envelopes` only (a
        rebuild's part of the aggregates)."""
        rows = self.pending
        wanted = iter(envelopes)
        next_one = next(wanted, None)
        link = self.link
        for notification in log:
            aggregate_id = str(notification.originator_id)
            link = link_after(link, aggregate_id, notification.originator_version,
                              notification.topic, notification.state)
            if next_one is not None and next_one.notification is notification:
                rows.append(audit_row(next_one, link, aggregate_id))
                next_one = next(wanted, None)
        assert next_one is None, "the envelopes are of the page's events, in log order"
        self.link = link


def chained_rows(envelopes: Sequence[Envelope], link: str) -> tuple[list[Row], str]:
    """The rows of consecutive events after the one whose link is `link`; the last link."""
    rows = []
    for envelope in envelopes:
        notification = envelope.notification
        aggregate_id = str(notification.originator_id)
        link = link_after(link, aggregate_id, notification.originator_version,
                          notification.topic, notification.state)
        rows.append(audit_row(envelope, link, aggregate_id))
    return rows, link


def audit_row(envelope: Envelope, link: str, aggregate_id: str) -> Row:
    """The audit-log row of one event (pure, given the link and the aggregate id's text)."""
    event: Any = envelope.event
    effective_at = getattr(event, "effective_at", None)
    return {
        "position": envelope.position,
        "aggregate_id": aggregate_id,
        "aggregate_version": envelope.notification.originator_version,
        "topic": envelope.topic,
        "recorded_at": instant(event.timestamp),
        "effective_at": None if effective_at is None else instant(effective_at),
        "actor": getattr(event, "actor", None),
        "link": link,
    }
