"""The hash chain on its own: given stored records and the links recorded for them, what verifies.

What an auditor would notice: a changed, missing, inserted or reordered event that verifies, a
problem that names the wrong event, or a digest kept outside the system that no longer proves
the history before it.
"""

from __future__ import annotations

import dataclasses
import re
from uuid import UUID, uuid5

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ledger.chain import GENESIS, Digest, Record, Verdict, link_after, next_link, verify

NAMESPACE = UUID("6f1c9d0e-3a57-4a5b-9b0e-2f4a9f8e1c21")
EVENT_COUNT = 8


def stored(count: int = EVENT_COUNT, first_position: int = 1) -> list[Record]:
    """An honest log: a few aggregates, each event at the next position."""
    return [
        Record(position, uuid5(NAMESPACE, f"bin-{index % 3}"), index // 3 + 1,
               f"ledger:StockBin.Event{index % 2}",
               f'{{"quantity":"{index}.000","actor":"alice"}}'.encode())
        for index, position in enumerate(range(first_position, first_position + count))
    ]


def links(records: list[Record]) -> list[tuple[int, str]]:
    """The (position, link) pairs an honest audit log recorded for `records`."""
    pairs, link = [], GENESIS
    for record in records:
        link = next_link(link, record)
        pairs.append((record.position, link))
    return pairs


def kept_at(records: list[Record], position: int) -> Digest:
    """The digest an auditor kept at `position` of the honest log."""
    return Digest(position, dict(links(records))[position])


def at(records: list[Record], position: int) -> int:
    return next(index for index, record in enumerate(records) if record.position == position)


def changed(records: list[Record], position: int, **fields: object) -> list[Record]:
    copy = list(records)
    index = at(copy, position)
    copy[index] = dataclasses.replace(copy[index], **fields)  # type: ignore[arg-type]
    return copy


def without(records: list[Record], position: int) -> list[Record]:
    return [record for record in records if record.position != position]


def swapped(records: list[Record], first: int, second: int) -> list[Record]:
    """Two events' contents exchanged, each taking the other's position (a reorder)."""
    copy = list(records)
    i, j = at(copy, first), at(copy, second)
    copy[i] = dataclasses.replace(records[j], position=first)
    copy[j] = dataclasses.replace(records[i], position=second)
    return copy


def assert_names(verdict: Verdict, position: int) -> None:
    assert not verdict.ok
    assert verdict.problem is not None
    assert re.search(rf"\bposition {position}\b", verdict.problem), verdict.problem


# An honest log.


def test_an_untouched_log_verifies_against_its_links_and_a_kept_digest() -> None:
    records = stored()
    head = links(records)[-1]

    verdict = verify(records, links(records), kept_at(records, 5))

    assert verdict.ok, verdict.problem
    assert verdict.head == Digest(*head)
    assert verdict.events_checked == EVENT_COUNT


def test_an_empty_store_with_nothing_recorded_verifies_at_genesis() -> None:
    verdict = verify([], [])

    assert verdict.ok
    assert verdict.head == Digest(0, GENESIS)
    assert verdict.events_checked == 0


def test_events_beyond_the_recorded_links_are_not_a_problem() -> None:
    # The audit log may lag the store: events it has not folded yet are new, not tampered.
    records = stored()

    verdict = verify(records, links(records)[:3])

    assert verdict.ok, verdict.problem
    assert verdict.head.position == records[-1].position


def test_the_chain_covers_order_not_position_numbers() -> None:
    # An import renumbers events into a new store; the same history gives the same head link.
    original = stored(first_position=1)
    renumbered = stored(first_position=101)

    assert verify(original, []).head.link == verify(renumbered, []).head.link


def test_each_link_depends_on_every_event_before_it() -> None:
    records = stored()
    edited = changed(records, 2, state=b"{}")

    assert [link for _, link in links(records)[:1]] == [link for _, link in links(edited)[:1]]
    for (_, honest), (_, other) in zip(links(records)[1:], links(edited)[1:], strict=True):
        assert honest != other


# Changed events.


@pytest.mark.parametrize("field, value", [
    ("state", b'{"quantity":"999.000","actor":"alice"}'),
    ("topic", "ledger:StockBin.Forged"),
    ("version", 42),
    ("aggregate_id", uuid5(NAMESPACE, "forged")),
])
def test_a_changed_event_is_named_by_its_position(field: str, value: object) -> None:
    records = stored()

    verdict = verify(changed(records, 5, **{field: value}), links(records))

    assert_names(verdict, 5)
    assert "does not match its recorded link" in str(verdict.problem)
    assert verdict.events_checked == 5


def test_a_change_to_the_first_event_is_named() -> None:
    records = stored()

    assert_names(verify(changed(records, 1, state=b""), links(records)), 1)


def test_a_change_to_the_last_event_is_named() -> None:
    records = stored()

    assert_names(verify(changed(records, EVENT_COUNT, state=b"x"), links(records)), EVENT_COUNT)


# Missing events.


@pytest.mark.parametrize("position", [1, 4, EVENT_COUNT])
def test_a_missing_event_is_named_by_its_position(position: int) -> None:
    records = stored()

    verdict = verify(without(records, position), links(records))

    assert_names(verdict, position)
    assert "missing" in str(verdict.problem)


def test_a_store_emptied_of_recorded_events_is_named_at_the_first() -> None:
    records = stored()

    verdict = verify([], links(records))

    assert_names(verdict, 1)


def test_events_renumbered_to_close_a_deleted_gap_are_caught() -> None:
    records = stored()
    closed = [dataclasses.replace(record, position=number)
              for number, record in enumerate(without(records, 3), start=1)]

    verdict = verify(closed, links(records))

    assert_names(verdict, 3)


# Inserted events.


def test_an_event_inserted_into_a_gap_of_the_log_is_named() -> None:
    # Positions may have gaps (a rolled-back PostgreSQL insert); an event forged into one is new.
    records = without(stored(), 4)
    forged = Record(4, uuid5(NAMESPACE, "forged"), 1, "ledger:StockBin.Received", b"{}")
    tampered = sorted([*records, forged], key=lambda record: record.position)

    verdict = verify(tampered, links(records))

    assert_names(verdict, 4)
    assert "not in the recorded chain" in str(verdict.problem)


def test_an_event_inserted_before_the_first_recorded_one_is_named() -> None:
    records = stored(first_position=2)
    forged = Record(1, uuid5(NAMESPACE, "forged"), 1, "ledger:Item.Registered", b"{}")

    assert_names(verify([forged, *records], links(records)), 1)


# Reordered events.


@pytest.mark.parametrize("first, second", [(2, 6), (4, 5), (1, EVENT_COUNT)])
def test_two_events_swapped_are_named_at_the_earlier_position(first: int, second: int) -> None:
    records = stored()

    verdict = verify(swapped(records, first, second), links(records))

    assert_names(verdict, first)


def test_a_swap_of_identical_records_changes_nothing() -> None:
    # The chain proves content in order; two equal records exchanged leave the same history.
    record = stored()[0]
    records = [record, dataclasses.replace(record, position=2)]

    assert verify(swapped(records, 1, 2), links(records)).ok


# Kept digests, with no recorded links to consult.


@pytest.mark.parametrize("tamper", ["changed", "missing", "reordered"])
def test_a_kept_digest_at_the_head_catches_tampering_before_it(tamper: str) -> None:
    records = stored()
    tampered = {
        "changed": changed(records, 3, state=b"{}"),
        "missing": without(records, 3),
        "reordered": swapped(records, 3, 6),
    }[tamper]

    verdict = verify(tampered, [], kept_at(records, EVENT_COUNT))

    assert_names(verdict, EVENT_COUNT)
    assert "kept digest" in str(verdict.problem)


def test_a_kept_digest_at_the_changed_event_names_it() -> None:
    records = stored()

    verdict = verify(changed(records, 5, state=b"{}"), [], kept_at(records, 5))

    assert_names(verdict, 5)


def test_a_kept_digest_does_not_see_changes_after_it() -> None:
    # It proves the history up to its position; what came later is proved by a later digest.
    records = stored()

    assert verify(changed(records, 7, state=b"{}"), [], kept_at(records, 5)).ok


def test_a_kept_digest_that_does_not_match_the_log_is_refused() -> None:
    records = stored()

    verdict = verify(records, [], Digest(5, "ab" * 32))

    assert_names(verdict, 5)


def test_a_kept_digest_beyond_the_head_means_events_were_removed() -> None:
    records = stored()
    kept = kept_at(records, EVENT_COUNT)

    verdict = verify(records[:-2], [], kept)

    assert_names(verdict, EVENT_COUNT)
    assert f"ends at {EVENT_COUNT - 2}" in str(verdict.problem)


def test_a_kept_digest_at_a_deleted_event_is_not_silently_skipped() -> None:
    # The auditor kept the link after event 5; event 5 is then deleted (not renumbered). Its
    # digest can no longer be checked, and the store must not be declared intact.
    records = stored()

    verdict = verify(without(records, 5), [], kept_at(records, 5))

    assert not verdict.ok, "deleting the event at the kept digest's position went unnoticed"


# Digest text.


def test_a_digest_reads_back_what_it_prints() -> None:
    digest = Digest(12, "AB" * 32)

    assert Digest.parse(str(digest)) == Digest(12, "ab" * 32)


@pytest.mark.parametrize("text", ["", "12", "12:", "x:" + "ab" * 32, "12:" + "ab" * 31,
                                  "12:" + "zz" * 32, "-1:" + "ab" * 32])
def test_a_malformed_digest_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match="POSITION:SHA256HEX"):
        Digest.parse(text)


# The audit log's rebuild links from the fields themselves.


@given(st.uuids(), st.integers(min_value=1, max_value=2**31 - 1), st.text(max_size=40),
       st.binary(max_size=300), st.sampled_from([GENESIS, "ab" * 32, "0f" * 32]))
def test_a_link_from_the_fields_is_the_records_link(
        aggregate_id: UUID, version: int, topic: str, state: bytes, previous: str) -> None:
    record = Record(7, aggregate_id, version, topic, state)
    assert link_after(previous, str(aggregate_id), version, topic, state) == next_link(
        previous, record)
