"""Buffered random ids (ledger.random_ids): version 4 UUIDs, never repeated, never shared.

Threads drawing at once never get the same id; a forked child does not hand out the ids its
parent had buffered (it would repeat the parent's next ones otherwise).
"""

from __future__ import annotations

import os
import threading
from uuid import UUID

import pytest

from ledger.random_ids import RandomIds, new_id


def test_ids_are_version_4_uuids_and_all_different() -> None:
    ids = RandomIds()
    drawn = [ids() for _ in range(2_000)]  # several buffers' worth
    assert all(isinstance(found, UUID) and found.version == 4 for found in drawn)
    assert all(found.variant == "specified in RFC 4122" for found in drawn)
    assert len(set(drawn)) == len(drawn)


def test_threads_drawing_at_once_never_share_an_id() -> None:
    ids = RandomIds()
    drawn: list[list[UUID]] = [[] for _ in range(8)]
    start = threading.Barrier(8)

    def draw(n: int) -> None:
        start.wait()
        drawn[n].extend(ids() for _ in range(3_000))

    threads = [threading.Thread(target=draw, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    everything = [found for mine in drawn for found in mine]
    assert len(everything) == 24_000
    assert len(set(everything)) == len(everything)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_forked_child_does_not_repeat_its_parents_next_ids() -> None:
    new_id()  # the parent has a buffer with ids still to hand out
    reading, writing = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover - runs in the child
        try:
            os.write(writing, b"".join(new_id().bytes for _ in range(10)))
        finally:
            os._exit(0)
    os.close(writing)
    with os.fdopen(reading, "rb") as pipe:
        raw = pipe.read()
    os.waitpid(child, 0)
    childs = {UUID(bytes=raw[n:n + 16]) for n in range(0, len(raw), 16)}
    parents = {new_id() for _ in range(10)}
    assert len(childs) == 10
    assert not childs & parents
