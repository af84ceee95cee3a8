"""Export and import of the event log as JSON Lines, with the chain link of every event.

An export is self-verifying: `ledger verify --export FILE` recomputes its links
offline. Importing into an empty store re-inserts the same records in the same
order through the library's recorder, so the chain, and every read model rebuilt
from it, come out the same.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path
from typing import IO
from uuid import UUID

from eventsourcing.persistence import ApplicationRecorder, StoredEvent

from ledger.chain import GENESIS, Digest, Record, next_link

PAGE_SIZE = 5000
# An import inserts at most this many events, or this many bytes of state, per statement:
# psycopg's pipeline mode (which the library's PostgreSQL recorder uses) stalls on a
# statement of many megabytes, the server waiting for the rest while the client waits for
# the result.
IMPORT_BATCH_EVENTS = 1000
IMPORT_BATCH_BYTES = 1 << 20
FORMAT = "ledger-export-v1"


class ImportRefused(ValueError):
    """The store is not empty, or the file is not a valid export."""


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


def import_into(recorder: ApplicationRecorder, path: Path) -> tuple[int, dict[UUID, int]]:
    """Insert an export's records into an empty store, in order; returns how many, and the
    last version of each aggregate whose topic starts with `ledger:StockBin.` (the bins,
    to snapshot)."""
    if recorder.max_notification_id():
        raise ImportRefused("the store is not empty: import only into a new store")
    batch: list[StoredEvent] = []
    count = size = 0
    bins: dict[UUID, int] = {}
    with path.open(encoding="utf-8") as source:
        for record, _ in read_export(source):
            batch.append(StoredEvent(record.aggregate_id, record.version, record.topic,
                                     record.state))
            size += len(record.state)
            if record.topic.startswith("ledger:StockBin."):
                bins[record.aggregate_id] = record.version
            if len(batch) == IMPORT_BATCH_EVENTS or size >= IMPORT_BATCH_BYTES:
                count += _insert(recorder, batch)
                size = 0
    return count + _insert(recorder, batch), bins


def _insert(recorder: ApplicationRecorder, batch: list[StoredEvent]) -> int:
    if batch:
        recorder.insert_events(batch)
    inserted = len(batch)
    batch.clear()
    return inserted
