"""What the read-side HTTP tests share: an app that waits briefly, and the query calls.

`serving_reads(url)` starts `create_app` with the operations and auditor keys and a 0.5 s read
wait (so a `projection_lag` refusal costs half a second, not five), with its lifespan running:
the embedded projection runner is live. `ReadApi` adds the read routes to `api_support.Api`;
each query asserts a 200 and returns the body. `walk` follows `next_cursor` to the end.

Movements are recorded with explicit past `effective_at` values (see `at`), so that tests can
ask `as_of` a moment exactly on, just before or between movements. A bin's effective time may
not go backwards, so each test records a bin's movements in time order.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

from api_support import Api, Body, bearer
from fastapi.testclient import TestClient

from api.app import create_app
from ledger.config import Settings

OPERATIONS = "ops-key"
AUDITOR = "aud-key"
READ_KEYS = f"{OPERATIONS}:operations,{AUDITOR}:auditor"
READ_WAIT_SECONDS = 0.5
# The actor recorded for the operations key, which has no name: its role and a digest prefix.
OPERATIONS_ACTOR = f"operations-{hashlib.sha256(OPERATIONS.encode()).hexdigest()[:8]}"
PAGES_MAX = 100
ONE_MICROSECOND = timedelta(microseconds=1)


@contextmanager
def serving_reads(database_url: str, **settings: Any) -> Iterator[ReadApi]:
    """A `ReadApi` on a fresh app for `database_url`, lifespan and projections running."""
    app = create_app(Settings(database_url=database_url, api_keys=READ_KEYS,
                              read_wait_seconds=READ_WAIT_SECONDS, **settings))
    with TestClient(app) as client:
        yield ReadApi(client)


def at(day: int, month: int = 1, hour: int = 9) -> datetime:
    """A moment in 2025 (UTC), well in the past, for `effective_at` and `as_of`."""
    return datetime(2025, month, day, hour, tzinfo=UTC)


def iso(moment: datetime) -> str:
    return moment.isoformat()


def card_instant(moment: datetime) -> str:
    """How the stock card writes an instant: fixed-width UTC with microseconds."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class ReadApi(Api):
    """The write calls of `Api`, effective times on every document, and the read routes."""

    def transfer(self, from_location: str, to_location: str, *lines: tuple[str, Any],
                 **header: Any) -> Body:
        return self.command("/transfers", {
            "from_location": from_location, "to_location": to_location,
            "lines": [{"sku": sku, "quantity": quantity} for sku, quantity in lines],
            **header,
        })

    def count(self, location: str, *lines: Body, reason: str = "cycle count",
              **header: Any) -> Body:
        return self.command("/adjustments", {"location": location, "reason": reason,
                                             "lines": list(lines), **header})

    def query(self, path: str, key: str = OPERATIONS, **params: Any) -> Body:
        """GET a read route that must answer 200; return its body."""
        response = self.client.get(path, headers=bearer(key), params=params)
        assert response.status_code == 200, response.text
        body: Body = response.json()
        return body

    def stock(self, **params: Any) -> Body:
        return self.query("/stock", **params)

    def movements(self, sku: str, *, start: Any = None, end: Any = None, **params: Any) -> Body:
        """The stock card of `sku`; `start` and `end` are sent as `from` and `to`."""
        if start is not None:
            params["from"] = start
        if end is not None:
            params["to"] = end
        return self.query(f"/stock/{sku}/movements", **params)

    def low_stock(self, **params: Any) -> Body:
        return self.query("/alerts/low-stock", **params)

    def projections(self, **params: Any) -> Body:
        return self.query("/projections", **params)

    def walk(self, path: str, limit: int, **params: Any) -> list[Body]:
        """Every item of a paged route, following `next_cursor` page by page."""
        items: list[Body] = []
        cursor = None
        for _ in range(PAGES_MAX):
            page = self.query(path, limit=limit, **params,
                              **({} if cursor is None else {"cursor": cursor}))
            assert len(page["items"]) <= limit, page
            items += page["items"]
            cursor = page["next_cursor"]
            if cursor is None:
                return items
        raise AssertionError(f"{path} gave more than {PAGES_MAX} pages")
