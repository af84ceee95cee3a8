"""The faster stored-event dumper (ledger.pg_rows): PostgreSQL stores exactly what was given.

The library's recorder builds its composite rows with whatever type the datastore holds;
the ledger swaps in `StoredEventRow`. Whatever the topic and the state bytes hold (quotes,
backslashes, commas, parentheses, spaces, any byte), the row read back is the row written.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from eventsourcing.persistence import StoredEvent
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ledger.application import Ledger
from ledger.config import store_environment
from ledger.pg_rows import StoredEventRow, StoredEventRowDumper, use_fast_rows

pytestmark = pytest.mark.postgres

TRICKY_TOPICS = ["ledger:StockBin.Received", 'a"b', "a\\b", "a,b", "(a)", "a b", "\t", "",
                 '\\"', "é 中文", 'x""y\\\\z']
TRICKY_STATES = [b"", b"{}", b'{"a":"\\"q\\""}', bytes(range(256)), b"\x00\x01\\x00", b'"' * 9]


@pytest.fixture
def ledger(fresh_postgres_url: str) -> Iterator[Ledger]:
    app = Ledger(store_environment(fresh_postgres_url))
    yield app
    app.close()


def read_back(app: Ledger, event: StoredEvent) -> StoredEvent:
    (stored,) = app.recorder.select_events(event.originator_id)
    return stored


def test_the_ledger_recorder_builds_its_rows_with_the_fast_type(ledger: Ledger) -> None:
    recorder = ledger.recorder
    types = recorder.datastore.psycopg_python_types  # type: ignore[attr-defined]
    assert types[recorder.stored_event_type_name] is StoredEventRow  # type: ignore[attr-defined]


def test_a_sqlite_recorder_is_left_alone(sqlite_url: str) -> None:
    app = Ledger(store_environment(sqlite_url))
    try:
        assert use_fast_rows(app.recorder) is False
    finally:
        app.close()


@pytest.mark.parametrize("topic", TRICKY_TOPICS)
def test_any_topic_reads_back_as_written(ledger: Ledger, topic: str) -> None:
    event = StoredEvent(uuid.uuid4(), 1, topic, b'{"k":1}')
    ledger.recorder.insert_events([event])
    assert read_back(ledger, event) == event


@pytest.mark.parametrize("state", TRICKY_STATES)
def test_any_state_reads_back_as_written(ledger: Ledger, state: bytes) -> None:
    event = StoredEvent(uuid.uuid4(), 7, "t", state)
    ledger.recorder.insert_events([event])
    assert read_back(ledger, event) == event


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=st.lists(st.tuples(
    st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"),
            max_size=40),
    st.binary(max_size=300),
    st.integers(min_value=1, max_value=2**62)), min_size=1, max_size=20))
def test_a_batch_of_arbitrary_rows_reads_back_in_order(
        ledger: Ledger, rows: list[tuple[str, bytes, int]]) -> None:
    events = [StoredEvent(uuid.uuid4(), version, topic, state) for topic, state, version in rows]
    ids = ledger.recorder.insert_events(events)
    assert ids is not None and ids == sorted(ids) and len(ids) == len(events)
    for event in events:
        assert read_back(ledger, event) == event


def test_the_dumper_quotes_and_escapes_as_the_composite_syntax_needs() -> None:
    """Quotes doubled inside a quoted field, the bytea's backslash doubled, plain fields bare."""
    dumped = StoredEventRowDumper(StoredEventRow).dump(StoredEventRow(
        uuid.UUID(int=1), 3, 'a "b"', b'{"x":"\\\\"}'))
    assert dumped == (b'(00000000-0000-0000-0000-000000000001,3,"a ""b""",'
                      b'"\\\\x7b2278223a225c5c227d")')


def test_a_version_conflict_is_still_refused(ledger: Ledger) -> None:
    from eventsourcing.persistence import IntegrityError

    event = StoredEvent(uuid.uuid4(), 1, "t", b"{}")
    ledger.recorder.insert_events([event])
    with pytest.raises(IntegrityError):
        ledger.recorder.insert_events([StoredEvent(event.originator_id, 1, "t", b"{}")])


@pytest.mark.parametrize("value", [[1, 2, 3], ['a"b', "c\\d", "e,f", None], [], [[1, 2], [3, 4]]])
def test_every_other_list_is_dumped_as_psycopg_dumps_it(postgres_url: str, value: list) -> None:
    """The list dumper is registered for every list: anything but stored-event rows takes
    psycopg's own path, and reads back as it went in."""
    import psycopg

    from ledger.pg_rows import StoredEventRowsDumper

    with psycopg.connect(postgres_url.split("?", 1)[0]) as conn:
        assert conn.adapters.get_dumper(list, psycopg.adapt.PyFormat.TEXT) \
            is StoredEventRowsDumper
        cast = "int[]" if not value or isinstance(value[0], int | list) else "text[]"
        (back,) = conn.execute(f"SELECT %t::{cast}", (value,)).fetchone()
    assert back == value
