"""The tamper-evident hash chain over the event log (DESIGN decision 11).

Each link is SHA-256 of the previous link's bytes followed by a canonical encoding
of one stored record: aggregate id, version, topic and the stored state bytes,
exactly as the event store holds them. Changing, removing, inserting or reordering
any stored event changes every link from that event on, so a digest (position,
link) kept outside the system proves the whole history before it.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from json.encoder import encode_basestring_ascii
from uuid import UUID

GENESIS = "0" * 64
# The last base64 character before "==" carries 2 bits of data and 4 bits of padding, the one
# before "=" 4 bits of data and 2 of padding; b64encode writes those padding bits as zeros.
_ZERO_PADDED_BEFORE_TWO = frozenset("AQgw")
_ZERO_PADDED_BEFORE_ONE = frozenset("AEIMQUYcgkosw048")


@dataclass(frozen=True)
class Record:
    """One stored event as the chain sees it."""

    position: int
    aggregate_id: UUID
    version: int
    topic: str
    state: bytes


def canonical(record: Record) -> bytes:
    """The bytes of a record that its link covers (its position is covered by the order):
    compact JSON of [aggregate id, version, topic, base64 of the state], exactly as
    `json.dumps(..., separators=(",", ":"))` writes it (written directly: the audit log's
    rebuild links every event)."""
    return canonical_exported(str(record.aggregate_id), record.version, record.topic,
                              base64.b64encode(record.state).decode())


def canonical_exported(aggregate_id: str, version: int, topic: str, state_base64: str) -> bytes:
    """`canonical` from the fields of an export line, the state still in base64, without
    decoding and re-encoding it: byte for byte `canonical(Record(_, UUID(aggregate_id),
    version, topic, b64decode(state_base64, validate=True)))`.

    `aggregate_id` must be a UUID's canonical text (`str(UUID(...))`) and `state_base64` valid
    base64; the caller checks both, as it decodes them anyway to store the event.
    """
    if state_base64[-1:] == "=" and not _zero_padded(state_base64):
        # Valid base64 whose padding bits are not zero decodes to the same bytes as the
        # canonical text, which is what the link covers.
        state_base64 = base64.b64encode(base64.b64decode(state_base64, validate=True)).decode()
    # The layout of json.dumps(list, separators=(",", ":")): the id and the base64 need no
    # escaping, an int is written as str(int), and the topic is escaped as json.dumps escapes
    # a str by default (ensure_ascii).
    return (f'["{aggregate_id}",{version:d},{encode_basestring_ascii(topic)},'
            f'"{state_base64}"]').encode()


def _zero_padded(text: str) -> bool:
    """Whether the padding bits of base64 `text` that ends in "=" are zero."""
    if text[-2:] == "==":
        return text[-3:-2] in _ZERO_PADDED_BEFORE_TWO
    return text[-2:-1] in _ZERO_PADDED_BEFORE_ONE


def next_link(previous: str, record: Record) -> str:
    """The link after `previous` for `record`."""
    return hashlib.sha256(bytes.fromhex(previous) + canonical(record)).hexdigest()


def link_after(previous: str, aggregate_id: str, version: int, topic: str, state: bytes) -> str:
    """`next_link(previous, Record(_, UUID(aggregate_id), version, topic, state))` from the
    fields themselves (`aggregate_id` a UUID's canonical text): the audit log's rebuild
    links every event and writes the id's text anyway."""
    return hashlib.sha256(bytes.fromhex(previous) + canonical_exported(
        aggregate_id, version, topic, base64.b64encode(state).decode())).hexdigest()


@dataclass(frozen=True)
class Digest:
    """A point of the chain an auditor can keep: the link after the event at `position`."""

    position: int
    link: str

    def __str__(self) -> str:
        return f"{self.position}:{self.link}"

    @classmethod
    def parse(cls, text: str) -> Digest:
        position, _, link = text.partition(":")
        if not position.isdigit() or len(link) != 64 or not _is_hex(link):
            raise ValueError(f"a digest is POSITION:SHA256HEX; got {text!r}")
        return cls(int(position), link.lower())


def _is_hex(text: str) -> bool:
    try:
        bytes.fromhex(text)
    except ValueError:
        return False
    return True


@dataclass(frozen=True)
class Verdict:
    """What verifying a chain found: the head it computed and the first problem, if any."""

    head: Digest
    events_checked: int
    problem: str | None = None

    @property
    def ok(self) -> bool:
        return self.problem is None


def verify(records: Iterable[Record], recorded: Iterable[tuple[int, str]],
           kept: Digest | None = None) -> Verdict:
    """Recompute the chain over `records` and compare it with the recorded links and a kept digest.

    `recorded` holds (position, link) pairs in position order (the audit log, or the links in an
    export). The first record whose link differs, that is missing, or that appears where the
    recorded chain has none is named; a kept digest is checked at its position.
    """
    link, checked, last = GENESIS, 0, 0
    expected = iter(recorded)
    pending = next(expected, None)
    for record in records:
        link = next_link(link, record)
        previous, checked, last = last, checked + 1, record.position
        if pending is not None and pending[0] < record.position:
            return Verdict(Digest(last, link), checked, f"the event at position {pending[0]} "
                           "is missing from the store (deleted or renumbered)")
        if pending is not None and pending[0] == record.position:
            if pending[1] != link:
                return Verdict(Digest(last, link), checked, changed(record))
            pending = next(expected, None)
        elif pending is not None:
            return Verdict(Digest(last, link), checked, f"the event at position "
                           f"{record.position} is not in the recorded chain (inserted?)")
        if kept is not None and _contradicts(kept, previous, record.position, link):
            return Verdict(Digest(last, link), checked, "the chain at position "
                           f"{kept.position} differs from the kept digest: an event at or "
                           "before it was changed, removed or reordered")
    return _finish(Digest(last, link), checked, pending, kept)


def _contradicts(kept: Digest, previous_position: int, position: int, link: str) -> bool:
    """Whether this record contradicts a kept digest: a different link at its position, or
    stepping over its position (positions only grow, so the event there was removed)."""
    if position == kept.position:
        return link != kept.link
    return previous_position < kept.position < position


def changed(record: Record) -> str:
    """The problem to report when `record` does not match the link recorded for it."""
    return (f"the event at position {record.position} (aggregate {record.aggregate_id}, "
            f"version {record.version}, {record.topic}) does not match its recorded link: "
            "it, or an event before it, was changed or reordered")


def _finish(head: Digest, checked: int, pending: tuple[int, str] | None,
            kept: Digest | None) -> Verdict:
    if pending is not None:
        return Verdict(head, checked, f"the event at position {pending[0]} is missing from "
                       "the store (deleted)")
    if kept is not None and kept.position > head.position:
        return Verdict(head, checked, f"the kept digest is at position {kept.position}, but the "
                       f"store ends at {head.position}: events were removed")
    return Verdict(head, checked)
