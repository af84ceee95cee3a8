"""An event's id as text, written straight from its hash (`identity.event_id_text`)."""

from __future__ import annotations

from uuid import UUID

from hypothesis import given
from hypothesis import strategies as st

from ledger.domain.identity import event_id, event_id_text


@given(st.uuids(), st.integers(min_value=1, max_value=2**31 - 1))
def test_the_text_is_the_event_ids_text(aggregate_id: UUID, version: int) -> None:
    assert event_id_text(aggregate_id, version) == str(event_id(aggregate_id, version))

