"""What the auditor-facing and abuse tests share: an app with every role, a known history, and
the hash chain recomputed from the raw event store.

`serving_audit(url)` starts `create_app` with the four keys of `api_support` (operations,
finance, auditor, admin) and a short read wait, lifespan and projections running, and yields a
`ReadApi`. `record_history` writes one of each kind of event. `recomputed_chain` reads the
stored records straight from the event store (not through the API or the audit-log projection)
and recomputes every link.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from api_support import (
    ADMIN,
    API_KEYS,
    AVERAGE_SKU,
    FIFO_SKU,
    STORE,
    WAREHOUSE,
    Body,
    bearer,
    seed,
)
from fastapi.testclient import TestClient
from read_support import READ_WAIT_SECONDS, ReadApi, at, iso

from api.app import create_app
from ledger.application import Ledger
from ledger.chain import GENESIS, canonical, next_link
from ledger.config import Settings
from ledger.export import records

# Every request that changes the ledger, with a body a key allowed to send it would get accepted.
WRITES: list[tuple[str, str, Body]] = [
    ("PUT", "/items/NEW-1", {"name": "New", "uom": "ea", "valuation_method": "fifo"}),
    ("PUT", "/locations/NEW-LOC", {"name": "New location"}),
    ("POST", "/receipts", {"location": WAREHOUSE,
                           "lines": [{"sku": FIFO_SKU, "quantity": "1", "unit_cost": "1"}]}),
    ("POST", "/dispatches", {"location": WAREHOUSE,
                             "lines": [{"sku": AVERAGE_SKU, "quantity": "1"}]}),
    ("POST", "/transfers", {"from_location": WAREHOUSE, "to_location": STORE,
                            "lines": [{"sku": AVERAGE_SKU, "quantity": "1"}]}),
    ("POST", "/adjustments", {"location": WAREHOUSE, "reason": "cycle count",
                              "lines": [{"sku": FIFO_SKU, "counted_quantity": "3"}]}),
]
WRITE_IDS = [f"{method} {path}" for method, path, _ in WRITES]
STOCK_MOVEMENTS = [(path, body) for method, path, body in WRITES if method == "POST"]
STOCK_MOVEMENT_IDS = [path for path, _ in STOCK_MOVEMENTS]


@contextmanager
def serving_audit(database_url: str, **settings: Any) -> Iterator[ReadApi]:
    """A `ReadApi` with every role's key, on a fresh app for `database_url`."""
    settings.setdefault("read_wait_seconds", READ_WAIT_SECONDS)
    app = create_app(Settings(database_url=database_url, api_keys=API_KEYS, **settings))
    with TestClient(app) as client:
        yield ReadApi(client)


def ledger_of(api: ReadApi) -> Ledger:
    """The running app's ledger (its event store), for reading what is really stored."""
    ledger: Ledger = api.client.app.state.ledger  # type: ignore[attr-defined]
    return ledger


def send(api: ReadApi, method: str, path: str, body: Any, key: str) -> Any:
    return api.client.request(method, path, json=body, headers=bearer(key))


def record_history(api: ReadApi) -> dict[str, Body]:
    """Reference data, then one of each stock movement, each effective at a known moment.

    The admin renames a location at the end, so that two actors appear in the log. Returns
    each command's answer; `"head"` is the position of the last event.
    """
    seed(api)
    history = {
        "receipt": api.receive(WAREHOUSE, (FIFO_SKU, "10", "4.20"), (AVERAGE_SKU, "20", "1.5"),
                               effective_at=iso(at(2)), reference="PO-1"),
        "dispatch": api.dispatch(WAREHOUSE, (FIFO_SKU, "3"), effective_at=iso(at(3)),
                                 reason="sale"),
        "transfer": api.transfer(WAREHOUSE, STORE, (AVERAGE_SKU, "5"),
                                 effective_at=iso(at(4))),
        "count": api.count(WAREHOUSE, {"sku": FIFO_SKU, "counted_quantity": "6"},
                           effective_at=iso(at(5))),
    }
    renamed = api.client.put(f"/locations/{STORE}", json={"name": "Shanghai warehouse 1b"},
                             headers=bearer(ADMIN))
    assert renamed.status_code == 200, renamed.text
    history["rename"] = renamed.json()
    history["head"] = {"position": api.head()}
    return history


def recomputed_chain(ledger: Ledger) -> list[tuple[int, str]]:
    """(position, link) of every stored event, recomputed from the raw store:
    link_n = SHA-256(bytes of link_n-1 + canonical(record_n)), from 64 zeros."""
    chain = []
    link = GENESIS
    for record in records(ledger.recorder):
        previous, link = link, hashlib.sha256(bytes.fromhex(link) + canonical(record)).hexdigest()
        assert link == next_link(previous, record), "the chain module computes the same link"
        chain.append((record.position, link))
    return chain
