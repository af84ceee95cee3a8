"""Folding many events in memory and writing the result set-based (the rebuild's path).

A rebuild reads the log once and hands each page of decoded events to one fold per
projection. A keyed projection folds into a dictionary of rows that is written once,
at the end; an append-only projection writes its new rows after every page. Writes go
through `copy_rows`: PostgreSQL's COPY, or one multi-row INSERT on SQLite. The folds
are the projections' own pure functions, so the rows (and the digests) are the same
as the page-at-a-time path's.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Hashable, Sequence

from eventsourcing.persistence import Notification
from sqlalchemy import Connection, Table

from projections.base import Envelope, KeyedProjection, Projection, Row, copy_rows

RowsOf = Callable[[Sequence[Envelope]], list[Row]]


class BulkFold(ABC):
    """One projection's share of a rebuild: fold pages in memory, write when asked."""

    @abstractmethod
    def add(self, envelopes: Sequence[Envelope]) -> None:
        """Fold a page of this projection's events (in log order)."""

    def add_page(self, log: Sequence[Notification], envelopes: Sequence[Envelope]) -> None:
        """Fold a page: `envelopes` are this projection's events among those of the
        rebuild's part of the aggregates, `log` every event of the page."""
        if envelopes:
            self.add(envelopes)

    @abstractmethod
    def flush(self, connection: Connection, tables: dict[str, Table], *, final: bool) -> None:
        """Write what is ready; `final` after the last page."""


class PageFold(BulkFold):
    """Any projection: each page applied with its own `apply_page` (no in-memory fold)."""

    def __init__(self, projection: Projection) -> None:
        self.projection = projection
        self.pending: list[Envelope] = []

    def add(self, envelopes: Sequence[Envelope]) -> None:
        self.pending.extend(envelopes)

    def flush(self, connection: Connection, tables: dict[str, Table], *, final: bool) -> None:
        if self.pending:
            self.projection.apply_page(connection, tables, self.pending)
        self.pending = []


class KeyedFold(BulkFold):
    """A keyed projection: every row folded in memory, written once at the end."""

    def __init__(self, projection: KeyedProjection) -> None:
        self.projection = projection
        self.rows: dict[tuple[Hashable, ...], Row] = {}

    def add(self, envelopes: Sequence[Envelope]) -> None:
        rows, key, fold = self.rows, self.projection.key, self.projection.fold
        for envelope in envelopes:
            at = key(envelope)
            rows[at] = fold(rows.get(at), envelope)

    def flush(self, connection: Connection, tables: dict[str, Table], *, final: bool) -> None:
        if final:
            # In the order the rows first appeared: deterministic, and the digest orders by key.
            copy_rows(connection, tables[self.projection.table_name], list(self.rows.values()))
            self.rows = {}


class AppendFold(BulkFold):
    """An append-only projection: the rows of each page written after it."""

    def __init__(self, table_name: str, rows_of: RowsOf) -> None:
        self.table_name = table_name
        self.rows_of = rows_of
        self.pending: list[Row] = []

    def add(self, envelopes: Sequence[Envelope]) -> None:
        self.pending.extend(self.rows_of(envelopes))

    def flush(self, connection: Connection, tables: dict[str, Table], *, final: bool) -> None:
        copy_rows(connection, tables[self.table_name], self.pending)
        self.pending = []


def fold_for(projection: Projection) -> BulkFold:
    """The in-memory fold a rebuild uses for `projection`."""
    own = getattr(projection, "bulk_fold", None)
    if own is not None:
        return own()  # type: ignore[no-any-return]
    if isinstance(projection, KeyedProjection):
        return KeyedFold(projection)
    return PageFold(projection)
