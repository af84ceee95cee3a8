"""The straightforward way to build this: a plain `eventsourcing` application at its defaults.

A minimal bin aggregate holding a quantity; each command loads it, decides, and saves it,
deciding again when another writer saved first (IntegrityError), at most 32 times. The
persistence settings are the library's defaults (pool size and all); only the database,
schema and user are given.
"""

from __future__ import annotations

import random
from decimal import Decimal
from urllib.parse import parse_qs, unquote, urlsplit
from uuid import UUID, uuid5

from eventsourcing.application import AggregateNotFoundError, Application
from eventsourcing.domain import Aggregate, event
from eventsourcing.persistence import IntegrityError

from benchmark.stats import run_parallel
from benchmark.workload import (
    BINS,
    DISPATCH_QUANTITY,
    PRIME_QUANTITY,
    PRIME_THREADS,
    RECEIPT_QUANTITY,
)

NAMESPACE = UUID("0b6c3c2e-6d5e-4c8f-9a51-3f1f4c7e2d10")
ATTEMPTS_MAX = 32


class InsufficientStock(Exception):
    pass


class Bin(Aggregate):
    """One SKU at one location: a quantity that never goes below zero."""

    @staticmethod
    def create_id(sku: str, location: str) -> UUID:
        return uuid5(NAMESPACE, f"{sku}\x00{location}")

    @event("Opened")
    def __init__(self, sku: str, location: str) -> None:
        self.sku = sku
        self.location = location
        self.quantity = Decimal(0)

    @event("Received")
    def receive(self, quantity: Decimal) -> None:
        self.quantity += quantity

    def dispatch(self, quantity: Decimal) -> None:
        if quantity > self.quantity:
            raise InsufficientStock(f"{self.sku}@{self.location}")
        self._dispatched(quantity)

    @event("Dispatched")
    def _dispatched(self, quantity: Decimal) -> None:
        self.quantity -= quantity


class Inventory(Application[UUID]):
    name = "baseline"

    def receive(self, sku: str, location: str, quantity: Decimal) -> None:
        def decide() -> Bin:
            try:
                stock_bin: Bin = self.repository.get(Bin.create_id(sku, location))
            except AggregateNotFoundError:
                stock_bin = Bin(sku, location)
            stock_bin.receive(quantity)
            return stock_bin

        self._retrying(decide)

    def dispatch(self, sku: str, location: str, quantity: Decimal) -> None:
        def decide() -> Bin:
            stock_bin: Bin = self.repository.get(Bin.create_id(sku, location))
            stock_bin.dispatch(quantity)
            return stock_bin

        self._retrying(decide)

    def _retrying(self, decide) -> None:
        for _ in range(ATTEMPTS_MAX):
            stock_bin = decide()
            try:
                self.save(stock_bin)
                return
            except IntegrityError:
                continue
        raise RuntimeError("concurrent modification: gave up")


def default_environment(database_url: str) -> dict[str, str]:
    """Only what says where the database is; everything else at the library's defaults."""
    parts = urlsplit(database_url)
    schema = parse_qs(parts.query).get("schema", [None])[0]
    environment = {
        "PERSISTENCE_MODULE": "eventsourcing.postgres",
        "POSTGRES_DBNAME": unquote(parts.path.lstrip("/")),
        "POSTGRES_HOST": parts.hostname or "127.0.0.1",
        "POSTGRES_PORT": str(parts.port or 5432),
        "POSTGRES_USER": unquote(parts.username or "postgres"),
        "POSTGRES_PASSWORD": unquote(parts.password or ""),
    }
    if schema:
        environment["POSTGRES_SCHEMA"] = schema
    return environment


def make_inventory(database_url: str) -> Inventory:
    return Inventory(default_environment(database_url))


def prime_bins(inventory: Inventory) -> None:
    def work(n: int) -> None:
        for sku, location in BINS[n::PRIME_THREADS]:
            inventory.receive(sku, location, PRIME_QUANTITY)

    run_parallel(PRIME_THREADS, work)


def operation(inventory: Inventory):
    def run(rng: random.Random) -> None:
        sku, location = rng.choice(BINS)
        if rng.random() < 0.5:
            inventory.receive(sku, location, RECEIPT_QUANTITY)
        else:
            inventory.dispatch(sku, location, DISPATCH_QUANTITY)

    return run
