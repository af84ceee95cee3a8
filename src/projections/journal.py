"""The journal (总账凭证): one balanced entry per business event, each line naming its event.

Append-only: an event's lines are inserted once, keyed by (position, line number), so an
event can never post twice, and its position and event id lead back to the stored event.
Amounts are scaled integers, so the trial balance is an exact SQL sum.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from sqlalchemy import BigInteger, Column, Connection, Index, Integer, MetaData, Table, Text

from ledger.domain.identity import event_id_text
from ledger.posting import POSTING_TOPICS, entry
from projections.base import Carried, Envelope, Projection, Row, copy_rows
from projections.bulk import AppendFold
from projections.encoding import e2, e3, instant


class JournalProjection(Projection):
    name = "journal"
    topics: ClassVar[frozenset[str] | None] = POSTING_TOPICS

    def define_tables(self, metadata: MetaData, suffix: str) -> dict[str, Table]:
        table = Table(
            f"journal{suffix}", metadata,
            Column("position", BigInteger, primary_key=True, autoincrement=False),
            Column("line_number", Integer, primary_key=True, autoincrement=False),
            Column("event_id", Text, nullable=False),
            Column("kind", Text, nullable=False),
            Column("effective_at", Text, nullable=False),
            Column("recorded_at", Text, nullable=False),
            Column("document_id", Text),
            Column("account", Text, nullable=False),
            Column("location", Text),
            Column("sku", Text),
            Column("party", Text),
            Column("order_id", Text),
            Column("order_line", Integer),
            Column("quantity_e3", BigInteger),
            Column("debit_e2", BigInteger, nullable=False),
            Column("credit_e2", BigInteger, nullable=False),
        )
        Index(f"ix_journal{suffix}_account_time", table.c.account, table.c.effective_at)
        Index(f"ix_journal{suffix}_time", table.c.effective_at, table.c.position)
        return {"journal": table}

    def apply_page(self, connection: Connection, tables: dict[str, Table],
                   envelopes: Sequence[Envelope], carried: Carried | None = None) -> None:
        rows = page_rows(envelopes)
        if rows:
            copy_rows(connection, tables["journal"], rows)

    def bulk_fold(self) -> AppendFold:
        return AppendFold("journal", page_rows)


def page_rows(envelopes: Sequence[Envelope]) -> list[Row]:
    return [row for envelope in envelopes for row in journal_rows(envelope)]


def journal_rows(envelope: Envelope) -> list[Row]:
    """The journal lines of one event (pure)."""
    event = envelope.event
    posted = entry(event)
    assert posted.balanced, f"the entry of position {envelope.position} does not balance"
    header = {
        "position": envelope.position,
        "event_id": event_id_text(event.originator_id, event.originator_version),
        "kind": posted.kind,
        "effective_at": instant(posted.effective_at),
        "recorded_at": instant(event.timestamp),
        "document_id": None if posted.document_id is None else str(posted.document_id),
    }
    return [{
        **header,
        "line_number": number,
        "account": posting.account,
        "location": posting.location,
        "sku": posting.sku,
        "party": posting.party,
        "order_id": None if posting.order_id is None else str(posting.order_id),
        "order_line": posting.order_line,
        "quantity_e3": None if posting.quantity is None else e3(posting.quantity),
        "debit_e2": e2(posting.debit),
        "credit_e2": e2(posting.credit),
    } for number, posting in enumerate(posted.postings, start=1)]
