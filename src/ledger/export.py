"""Export and import of the event log as JSON Lines, with the chain link of every event.

An export is self-verifying: `ledger verify --export FILE` recomputes its links
offline. Importing into an empty store inserts the same records in the same order,
so the chain, and every read model rebuilt from it, come out the same. The import
reads the file as a stream, checking each line's link as it passes (the state's
base64 text is linked as it stands, see ledger.chain.canonical_exported), and
writes nothing unless every line verifies:

* PostgreSQL: one transaction on the event store's own connection takes the
  recorder's table lock, refuses a store that holds events, and COPYs the rows in
  file order (positions come from the table's sequence, in row order, as the
  recorder's inserts would give them); a line that fails rolls everything back.
  The table is then ANALYZEd, so that reading the log back uses its index.
* SQLite: a first pass verifies the whole file, a second inserts it through the
  library's recorder in batches.
"""

from __future__ import annotations

import base64
import json
import struct
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from hashlib import sha256
from pathlib import Path
from typing import IO, Any
from uuid import UUID

import orjson
from eventsourcing.persistence import (
    ApplicationRecorder,
    DataError,
    IntegrityError,
    Mapper,
    StoredEvent,
)
from eventsourcing.postgres import PostgresApplicationRecorder
from psycopg import Copy, Cursor
from psycopg.rows import DictRow
from psycopg.sql import SQL, Identifier
from pybase64 import b64decode

from ledger.chain import GENESIS, Digest, Record, canonical_exported, changed, next_link
from ledger.import_replay import BinReplays

PAGE_SIZE = 5000
# An import through the library's recorder (SQLite) inserts at most this many events, or this
# many bytes of state, per statement: psycopg's pipeline mode (which the library's PostgreSQL
# recorder uses) stalls on a statement of many megabytes, the server waiting for the rest while
# the client waits for the result.
IMPORT_BATCH_EVENTS = 1000
IMPORT_BATCH_BYTES = 1 << 20
# The PostgreSQL import hands COPY about this many bytes at a time.
IMPORT_COPY_BYTES = 1 << 18
# An import reads the file through a buffer this large (the default 8 KiB costs a system call
# every few lines).
IMPORT_READ_BUFFER_BYTES = 1 << 20
# An import snapshots only the bins with at least this many events in it. A bin with fewer
# loads its whole history in tens of milliseconds, and from then on the live path snapshots
# every SNAPSHOT_INTERVAL versions as it writes; replaying every bin to snapshot it would
# cost more than the import itself.
IMPORT_SNAPSHOT_MIN_EVENTS = 1_000
# Parsed aggregate ids kept while importing: the log's aggregates repeat, parsing them does not.
IMPORT_ID_CACHE_MAX = 100_000
BIN_TOPIC_PREFIX = "ledger:StockBin."
FORMAT = "ledger-export-v1"


class ImportRefused(ValueError):
    """The store is not empty, or the file is not a valid export."""


class ExportTampered(ImportRefused):
    """A line's link does not follow from the lines before it: the export does not verify."""


class StoreNotEmpty(ImportRefused):
    """The store already holds events; an import goes only into a new store."""

    def __init__(self) -> None:
        super().__init__("the store is not empty: import only into a new store")


def records(recorder: ApplicationRecorder, stop: int | None = None,
            page_size: int = PAGE_SIZE) -> Iterator[Record]:
    """Every stored event in log order (up to `stop`), read a page at a time."""
    position = 0
    while True:
        page = recorder.select_notifications(start=position, limit=page_size, stop=stop,
                                             inclusive_of_start=False)
        for notification in page:
            yield Record(notification.id, UUID(str(notification.originator_id)),
                         notification.originator_version, notification.topic,
                         _as_bytes(notification.state))
        if len(page) < page_size:
            return
        position = page[-1].id


def _as_bytes(state: object) -> bytes:
    # A row edited by hand may come back as text (SQLite has no column types): hash what is
    # there rather than fail, so the change shows up as a mismatch.
    if isinstance(state, bytes | bytearray | memoryview):
        return bytes(state)
    return str(state).encode()


def export(recorder: ApplicationRecorder, path: Path) -> Digest:
    """Write the whole log to `path` as JSON Lines; returns the head digest."""
    link, position = GENESIS, 0
    with path.open("w", encoding="utf-8") as out:
        out.write(json.dumps({"format": FORMAT}) + "\n")
        for record in records(recorder):
            link = next_link(link, record)
            position = record.position
            out.write(json.dumps({
                "position": record.position, "aggregate_id": str(record.aggregate_id),
                "version": record.version, "topic": record.topic,
                "state": base64.b64encode(record.state).decode(), "link": link,
            }, separators=(",", ":")) + "\n")
    return Digest(position, link)


def read_export(source: IO[str]) -> Iterator[tuple[Record, str]]:
    """The records of an export and the link written beside each."""
    header = json.loads(source.readline() or "{}")
    if header.get("format") != FORMAT:
        raise ImportRefused(f"not a ledger export (expected format {FORMAT})")
    for number, line in enumerate(source, start=2):
        try:
            entry = json.loads(line)
            record = Record(int(entry["position"]), UUID(entry["aggregate_id"]),
                            int(entry["version"]), str(entry["topic"]),
                            base64.b64decode(entry["state"], validate=True))
            yield record, str(entry["link"])
        except (ValueError, KeyError, TypeError) as error:
            raise ImportRefused(f"line {number} is not an export record: {error}") from None


@dataclass
class Imported:
    """What an import loaded: how many events, the head of their chain (the last line's
    position and link), and the last version of each stock bin."""

    count: int = 0
    head: Digest = field(default_factory=lambda: Digest(0, GENESIS))
    bins: dict[UUID, int] = field(default_factory=dict)


def load_export(recorder: ApplicationRecorder, path: Path,
                replays: BinReplays | None = None) -> Imported:
    """Verify an export and insert its records into an empty store, in order; nothing is
    written unless every line verifies (on PostgreSQL, nothing unless the whole import
    commits; on SQLite, a batch the store refuses can follow batches it took).

    `replays` (when given) sees every stock bin event as it is loaded (`import_replay`).

    Raises ExportTampered (a link does not verify), StoreNotEmpty, or ImportRefused (a line
    is not an export record, or the store refuses one: the same event twice).
    """
    try:
        if (isinstance(recorder, PostgresApplicationRecorder)
                and recorder.datastore.originator_id_type == "uuid"):
            return _copy_into(recorder, path, replays)
        return _insert_batches(recorder, path, replays)
    except (IntegrityError, DataError) as error:
        raise ImportRefused(f"the store refused the export: {error}") from None


def import_into(recorder: ApplicationRecorder, path: Path) -> tuple[int, dict[UUID, int]]:
    """`load_export`, returning how many events and the last version of each stock bin."""
    imported = load_export(recorder, path)
    return imported.count, imported.bins


def bins_to_snapshot(bins: dict[UUID, int]) -> dict[UUID, int]:
    """The bins an import snapshots: those with at least IMPORT_SNAPSHOT_MIN_EVENTS events.

    The store was empty, so a bin's last version is its number of events."""
    return {bin_id: version for bin_id, version in bins.items()
            if version >= IMPORT_SNAPSHOT_MIN_EVENTS}


def bin_replays(mapper: Mapper[Any], take: Callable[[Any], StoredEvent],
                interval: int) -> BinReplays:
    """The replays for an import (`import_replay`): of the bins `bins_to_snapshot` chooses,
    each snapshot taken by `take` at every multiple of `interval`."""
    return BinReplays(mapper, take, IMPORT_SNAPSHOT_MIN_EVENTS, interval)


def read_header(source: IO[bytes]) -> None:
    """Consume an export's first line; refuse a file that is not an export."""
    try:
        header = orjson.loads(source.readline() or b"{}")
    except orjson.JSONDecodeError:
        header = None
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise ImportRefused(f"not a ledger export (expected format {FORMAT})")


# A row on its way to the store: aggregate id (as 16 bytes and as a UUID), version, topic, state.
_Row = tuple[bytes, UUID, int, str, bytes]
_GENESIS_BYTES = bytes.fromhex(GENESIS)
_MALFORMED = (ValueError, KeyError, TypeError, AttributeError)


def _verified(source: IO[bytes], imported: Imported,
              replays: BinReplays | None = None) -> Iterator[_Row]:
    """The records after an export's header, each checked against its link as it passes
    (and each stock bin event, once checked, shown to `replays`); when the file is
    exhausted, `imported` holds their count, head and bins."""
    ids: dict[Any, tuple[str, bytes, UUID]] = {}
    bins: dict[str, int] = {}
    previous, link, position, number = _GENESIS_BYTES, GENESIS, 0, 1
    for number, line in enumerate(source, start=2):
        try:
            entry = orjson.loads(line)
            text, id_bytes, aggregate_id = (ids.get(entry["aggregate_id"])
                                            or _parse_id(entry["aggregate_id"], ids))
            version, topic, encoded = int(entry["version"]), str(entry["topic"]), entry["state"]
            state = b64decode(encoded, validate=True)  # pybase64: SIMD, 6x binascii's
            position, recorded = int(entry["position"]), entry["link"]
            if version.bit_length() > 63:
                raise ValueError(f"version {version} is out of range")
        except _MALFORMED as error:
            raise ImportRefused(f"line {number} is not an export record: {error}") from None
        digest = sha256(previous)
        digest.update(canonical_exported(text, version, topic, encoded))
        link = digest.hexdigest()
        if link != recorded:
            raise ExportTampered(changed(Record(position, aggregate_id, version, topic, state)))
        previous = digest.digest()
        if topic.startswith(BIN_TOPIC_PREFIX):
            bins[text] = version
            if replays is not None:
                replays.see(text, aggregate_id, version, topic, state)
        yield id_bytes, aggregate_id, version, topic, state
    imported.count, imported.head = number - 1, Digest(position, link)
    imported.bins = {UUID(text): version for text, version in bins.items()}


def _parse_id(text: Any, ids: dict[Any, tuple[str, bytes, UUID]]) -> tuple[str, bytes, UUID]:
    aggregate_id = UUID(text)
    parsed = (str(aggregate_id), aggregate_id.bytes, aggregate_id)
    if len(ids) < IMPORT_ID_CACHE_MAX:
        ids[text] = parsed
    return parsed


def _insert_batches(recorder: ApplicationRecorder, path: Path,
                    replays: BinReplays | None) -> Imported:
    """SQLite: verify the whole file first (so that a bad export inserts nothing), then
    insert it through the recorder in batches."""
    _refuse_unless_empty(recorder)
    with path.open("rb", buffering=IMPORT_READ_BUFFER_BYTES) as source:
        read_header(source)
        for _ in _verified(source, Imported()):
            pass
    _refuse_unless_empty(recorder)
    imported, batch, size = Imported(), list[StoredEvent](), 0
    with path.open("rb", buffering=IMPORT_READ_BUFFER_BYTES) as source:
        read_header(source)
        # Verified again as it is read: the file may have changed since the first pass.
        for _, aggregate_id, version, topic, state in _verified(source, imported, replays):
            batch.append(StoredEvent(aggregate_id, version, topic, state))
            size += len(state)
            if len(batch) == IMPORT_BATCH_EVENTS or size >= IMPORT_BATCH_BYTES:
                recorder.insert_events(batch)
                batch, size = [], 0
    if batch:
        recorder.insert_events(batch)
    return imported


def _refuse_unless_empty(recorder: ApplicationRecorder) -> None:
    if recorder.max_notification_id():
        raise StoreNotEmpty


def _copy_into(recorder: PostgresApplicationRecorder, path: Path,
               replays: BinReplays | None) -> Imported:
    """PostgreSQL: one transaction on the store's connection: lock, check empty, COPY in file
    order as the lines verify, ANALYZE; any failure rolls it all back."""
    imported = Imported()
    table = Identifier(recorder.datastore.schema, recorder.events_table_name)
    with path.open("rb", buffering=IMPORT_READ_BUFFER_BYTES) as source:
        read_header(source)
        with recorder.datastore.transaction(commit=True) as cursor:
            for statement in recorder.lock_table_statements:
                cursor.execute(statement)
            cursor.execute(recorder.max_notification_id_statement)
            found = cursor.fetchone()
            if found is not None and found["max"] is not None:
                raise StoreNotEmpty
            _restart_positions(cursor, table)
            with cursor.copy(SQL("COPY {} (originator_id, originator_version, topic, state) "
                                 "FROM STDIN (FORMAT BINARY)").format(table)) as copy:
                _write_binary(copy, _verified(source, imported, replays))
            # Without statistics on the fresh rows the planner reads the log back with a
            # bitmap scan and a sort on disk instead of the notification id index.
            cursor.execute(SQL("ANALYZE {}").format(table))
            cursor.execute(SQL("NOTIFY {}").format(Identifier(recorder.channel_name)))
    return imported


def _restart_positions(cursor: Cursor[DictRow], table: Identifier) -> None:
    # An import that was refused half-way used up positions (sequences ignore rollbacks): the
    # store is empty and locked, so start again at 1 where we may (the service role of a
    # locked-down store may not; its import then continues where the sequence stands).
    cursor.execute("SELECT setval(sequence::regclass, 1, false) "
                   "FROM pg_get_serial_sequence(%s, 'notification_id') AS sequence "
                   "WHERE has_sequence_privilege(sequence, 'UPDATE')",
                   (table.as_string(cursor),))


_COPY_SIGNATURE = b"PGCOPY\n\xff\r\n\x00" + bytes(8)  # signature, flags, no extension
_COPY_TRAILER = b"\xff\xff"
# Four fields: originator_id (uuid, 16 bytes), originator_version (int8), then the length of
# the topic (text, UTF-8); the state's length follows the topic.
_COPY_ROW = struct.Struct("!hi16siqi").pack
_COPY_LENGTH = struct.Struct("!i").pack


def _write_binary(copy: Copy, rows: Iterable[_Row]) -> None:
    """Write rows in PostgreSQL's binary COPY format, a block at a time."""
    block, size = [_COPY_SIGNATURE], 0
    for id_bytes, _, version, topic, state in rows:
        topic_bytes = topic.encode()
        block += (_COPY_ROW(4, 16, id_bytes, 8, version, len(topic_bytes)), topic_bytes,
                  _COPY_LENGTH(len(state)), state)
        size += len(state)
        if size >= IMPORT_COPY_BYTES:
            copy.write(b"".join(block))
            block, size = [], 0
    block.append(_COPY_TRAILER)
    copy.write(b"".join(block))
