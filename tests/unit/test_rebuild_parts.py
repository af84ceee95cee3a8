"""How a rebuild shares the log out between processes (`projections.rebuild.Part`): by
aggregate, every event in exactly one part, all of an aggregate's events in the same one."""

from __future__ import annotations

from uuid import UUID

from eventsourcing.persistence import Notification
from hypothesis import given
from hypothesis import strategies as st

from projections.rebuild import Part

TOPIC = "ledger:StockBin.Received"


def notification(position: int, originator: UUID | str, version: int) -> Notification:
    return Notification(originator_id=originator, originator_version=version, topic=TOPIC,
                        state=b"{}", id=position)


logs = st.lists(st.tuples(st.uuids(), st.booleans()), max_size=60).map(
    lambda drawn: [notification(position, str(uuid) if as_text else uuid, position)
                   for position, (uuid, as_text) in enumerate(drawn, start=1)])


@given(logs, st.integers(min_value=1, max_value=9))
def test_every_event_is_in_exactly_one_part_and_keeps_its_order(
        log: list[Notification], count: int) -> None:
    parts = [Part(index, count).of(log) for index in range(count)]
    positions = sorted(n.id for part in parts for n in part)
    assert positions == [n.id for n in log]
    for part in parts:
        assert [n.id for n in part] == sorted(n.id for n in part)


@given(st.lists(st.uuids(), min_size=1, max_size=8), st.integers(min_value=2, max_value=5))
def test_all_events_of_an_aggregate_fall_in_the_same_part(
        aggregates: list[UUID], count: int) -> None:
    # Each aggregate's id written both ways a recorder may give it: a UUID or its text.
    log = [notification(position, aggregate if position % 2 else str(aggregate), position)
           for position, aggregate in enumerate(aggregates * 3, start=1)]
    for index in range(count):
        held = {UUID(str(n.originator_id)) for n in Part(index, count).of(log)}
        others = {UUID(str(n.originator_id)) for other in range(count) if other != index
                  for n in Part(other, count).of(log)}
        assert not held & others


def test_one_part_is_the_whole_log() -> None:
    log = [notification(1, UUID(int=1), 1), notification(2, UUID(int=2), 1)]
    assert Part().of(log) == log
    assert [n.id for n in Part(1, 2).of(log)] == [1]
    assert [n.id for n in Part(0, 2).of(log)] == [2]
