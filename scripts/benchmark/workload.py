"""The command workload: one-line receipts and dispatches over 1,000 bins.

100 SKUs (half FIFO, half moving average) at 10 locations. Every bin is primed with a
large receipt first, so a dispatch never runs short: each command in the timed window
is a command that appends an event, on the ledger and on the baseline alike.
"""

from __future__ import annotations

import os
import random
from decimal import Decimal

from benchmark.stats import run_parallel
from ledger.application import Ledger, open_ledger
from ledger.commands import Dispatch, DispatchLine, Receipt, ReceiptLine
from ledger.config import Settings
from ledger.domain.context import CommandMeta
from ledger.domain.item import ItemDetails

SKUS = [f"S{n:03d}" for n in range(100)]
LOCATIONS = [f"L{n:02d}" for n in range(10)]
BINS = [(sku, location) for sku in SKUS for location in LOCATIONS]
PRIME_QUANTITY = Decimal("1000000")
RECEIPT_QUANTITY = Decimal("5")
RECEIPT_COST = Decimal("2.50")
DISPATCH_QUANTITY = Decimal("3")
ACTOR = "bench"
PRIME_THREADS = 16


def make_ledger(database_url: str) -> Ledger:
    """The Ledger exactly as the service builds it (`ledger.application.open_ledger`).

    Settings come from the environment (so LEDGER_* options such as group commit apply
    here as they do in `ledger serve`), with the database URL of this phase.
    """
    settings = Settings.from_environ({**os.environ, "LEDGER_DATABASE_URL": database_url})
    return open_ledger(settings)


def ledger_settings() -> str:
    """The service's write-path settings from the environment, for the report."""
    settings = Settings.from_environ(os.environ)
    if not getattr(settings, "group_commit", False):
        return "group commit off"
    return (f"group commit on (LEDGER_GROUP_COMMIT_BATCH_MAX={settings.group_commit_batch_max}, "
            f"LEDGER_GROUP_COMMIT_WINDOW_MS={settings.group_commit_window_ms:g})")


def details(sku: str) -> ItemDetails:
    method = "fifo" if int(sku[1:]) % 2 == 0 else "moving_average"
    return ItemDetails(f"Bench item {sku}", "ea", method)


def register_reference(ledger: Ledger) -> None:
    meta = CommandMeta(ACTOR)
    for sku in SKUS:
        ledger.register_item(sku, details(sku), meta)
    for location in LOCATIONS:
        ledger.register_location(location, f"Bench location {location}", meta)


def prime_bins(ledger: Ledger) -> None:
    """A large receipt into every bin, from 16 threads."""
    meta = CommandMeta(ACTOR)

    def work(n: int) -> None:
        for sku, location in BINS[n::PRIME_THREADS]:
            ledger.receive(receipt(sku, location, PRIME_QUANTITY), meta)

    run_parallel(PRIME_THREADS, work)


def receipt(sku: str, location: str, quantity: Decimal = RECEIPT_QUANTITY) -> Receipt:
    return Receipt(location=location, lines=(ReceiptLine(sku, quantity, RECEIPT_COST),))


def dispatch(sku: str, location: str) -> Dispatch:
    return Dispatch(location=location, lines=(DispatchLine(sku, DISPATCH_QUANTITY),))


def ledger_operation(ledger: Ledger):
    """One client's operation: a receipt or a dispatch (even odds) on a random bin."""
    meta = CommandMeta(ACTOR)

    def operation(rng: random.Random) -> None:
        sku, location = rng.choice(BINS)
        if rng.random() < 0.5:
            ledger.receive(receipt(sku, location), meta)
        else:
            ledger.dispatch(dispatch(sku, location), meta)

    return operation
