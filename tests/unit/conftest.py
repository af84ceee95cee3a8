"""Fixtures for the application-level unit tests: a Ledger on our embedded SQLite store."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from ledger.application import Ledger
from ledger.config import store_environment
from ledger.domain.context import CommandMeta
from ledger.domain.item import ItemDetails

ADMIN = CommandMeta(actor="admin")


@pytest.fixture
def ledger(sqlite_url: str) -> Iterator[Ledger]:
    """A Ledger on a fresh SQLite file, with a FIFO item, an average item and two locations."""
    with Ledger(store_environment(sqlite_url)) as app:
        app.register_item("FIFO-1", ItemDetails("Bolt", "each", "fifo"), ADMIN)
        app.register_item("AVG-1", ItemDetails("Oil", "litre", "moving_average"), ADMIN)
        app.register_location("WH-1", "Main warehouse", ADMIN)
        app.register_location("WH-2", "Shop", ADMIN)
        yield app
