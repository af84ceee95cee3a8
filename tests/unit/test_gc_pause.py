"""Bulk work pauses the cyclic collector and always leaves it as it found it."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from ledger.gc_pause import gc_paused


@pytest.fixture(autouse=True)
def collector_restored() -> Iterator[None]:
    enabled = gc.isenabled()
    yield
    if enabled:
        gc.enable()
    else:
        gc.disable()


def test_the_collector_is_off_inside_and_on_again_after() -> None:
    gc.enable()
    with gc_paused():
        assert not gc.isenabled()
    assert gc.isenabled()


def test_an_error_inside_still_turns_it_back_on() -> None:
    gc.enable()
    with pytest.raises(RuntimeError), gc_paused():
        raise RuntimeError("the import failed")
    assert gc.isenabled()


def test_a_collector_that_was_off_stays_off() -> None:
    gc.disable()
    with gc_paused():
        assert not gc.isenabled()
    assert not gc.isenabled()


@pytest.fixture
def unfrozen_after() -> Iterator[None]:
    yield
    gc.unfreeze()  # give the test process its objects back


def test_freezing_takes_everything_alive_out_of_the_collectors_scans(unfrozen_after: None
                                                                      ) -> None:
    from ledger.gc_pause import freeze_long_lived

    gc.unfreeze()
    kept = [{"a long-lived": "object"}]
    freeze_long_lived()
    assert gc.get_freeze_count() > 0
    assert not any(obj is kept for obj in gc.get_objects())  # no longer tracked for scans


def test_a_server_app_freezes_at_start_up_and_a_library_app_does_not(
        sqlite_url: str, unfrozen_after: None) -> None:
    from fastapi.testclient import TestClient

    from api.app import create_app
    from ledger.config import Settings

    gc.unfreeze()
    with TestClient(create_app(Settings(database_url=sqlite_url))):
        assert gc.get_freeze_count() == 0
    with TestClient(create_app(Settings(database_url=sqlite_url), server=True)):
        assert gc.get_freeze_count() > 0
