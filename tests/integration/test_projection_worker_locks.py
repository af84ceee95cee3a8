"""One active `ledger project` worker per set of read models, and a standby that takes over.

DESIGN decision 9: each projection runs in one active worker (a PostgreSQL advisory lock); a
second worker waits as a standby and takes over when the first one dies. The lock must keep two
workers of the *same* read models apart, and nothing else: two ledgers that live in two schemas
of one PostgreSQL database each need their own worker running.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import psycopg
import pytest
from psycopg import sql

from ledger.application import Ledger
from ledger.commands import Receipt, ReceiptLine
from ledger.config import store_environment
from ledger.domain.context import CommandMeta
from ledger.domain.item import ItemDetails
from projections import registry
from projections.rebuild import rebuild
from projections.service import ProjectionLag, ReadModels
from projections.worker import run_worker

pytestmark = pytest.mark.postgres

D = Decimal
# Every projection the service runs.
NAMES = list(registry.NAMES)
OPERATOR = CommandMeta(actor="operator")
POLL_SECONDS = 0.05
LOG_SECONDS_MAX = 30.0
WAIT_SECONDS = 10.0
EXIT_SECONDS_MAX = 20.0
# Polling a log file in a bounded loop needs a pause that is not a sleep: an event never set.
PAUSE = threading.Event()


def _schema_url(url: str, suffix: str) -> tuple[str, str, str]:
    """(URL of schema `<schema><suffix>`, the schema, the URL without schema)."""
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query))
    schema = f"{query['schema']}{suffix}"
    plain = urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))
    return urlunsplit(parts._replace(query=urlencode({**query, "schema": schema}))), schema, plain


@pytest.fixture
def other_schema(fresh_postgres_url: str) -> Iterator[str]:
    """The URL of another new schema in the same database (dropped after)."""
    url, schema, plain = _schema_url(fresh_postgres_url, "_other")
    with psycopg.connect(plain, autocommit=True) as connection:
        connection.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
    yield url
    with psycopg.connect(plain, autocommit=True) as connection:
        connection.execute("SET lock_timeout = '10s'")
        connection.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(
            sql.Identifier(schema)))


def open_ledger(url: str) -> Ledger:
    ledger = Ledger(store_environment(url))
    ledger.register_item("SKU-1", ItemDetails("Bolt", "each", "fifo"), OPERATOR)
    ledger.register_location("WH-1", "Warehouse", OPERATOR)
    return ledger


def receive(ledger: Ledger, quantity: int) -> int:
    return ledger.receive(Receipt(location="WH-1", lines=(
        ReceiptLine("SKU-1", D(quantity), D("1.5")),)), OPERATOR).position


def statuses(read_models: ReadModels) -> dict[str, tuple[int, str]]:
    return {status.name: (status.position, status.digest) for status in read_models.status()}


class Worker:
    """`python -m ledger.cli project` as a process, its output kept in files."""

    def __init__(self, database_url: str, directory: Path, name: str) -> None:
        environment = {**os.environ, "LEDGER_DATABASE_URL": database_url}
        environment.pop("LEDGER_READ_DATABASE_URL", None)
        self.stdout = directory / f"{name}.out"
        self.stderr = directory / f"{name}.err"
        with self.stdout.open("wb") as out, self.stderr.open("wb") as err:
            self.process = subprocess.Popen([sys.executable, "-m", "ledger.cli", "project"],
                                            env=environment, stdout=out, stderr=err)

    def log(self) -> str:
        return self.stderr.read_text()

    def wait_for_log(self, text: str) -> None:
        for _ in range(int(LOG_SECONDS_MAX / POLL_SECONDS)):
            if text in self.log():
                return
            assert self.process.poll() is None, f"the worker exited:\n{self.log()[-4000:]}"
            PAUSE.wait(POLL_SECONDS)
        raise AssertionError(f"the worker never logged {text!r}:\n{self.log()[-4000:]}")

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
        self.process.wait(EXIT_SECONDS_MAX)

    def stop(self) -> int:
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(EXIT_SECONDS_MAX)


def test_a_standby_worker_takes_over_when_the_active_one_dies(
        fresh_postgres_url: str, other_schema: str, tmp_path: Path) -> None:
    ledger = open_ledger(fresh_postgres_url)
    read_models = ReadModels.open(fresh_postgres_url)
    active = Worker(fresh_postgres_url, tmp_path, "active")
    standby: Worker | None = None
    try:
        active.wait_for_log("projecting")
        standby = Worker(fresh_postgres_url, tmp_path, "standby")
        standby.wait_for_log("standby")
        read_models.wait(NAMES, receive(ledger, 5), WAIT_SECONDS)
        active.kill()
        # Written while nobody projects: the standby must notice the lock is free and go on.
        position = max(receive(ledger, quantity) for quantity in range(1, 6))
        read_models.wait(NAMES, position, WAIT_SECONDS)
        assert "projecting" in standby.log()
        assert standby.stop() == 0, standby.log()
        clean = ReadModels.open(other_schema)
        try:
            rebuild(clean.database, ledger.recorder, ledger.mapper, clean.projections)
            assert statuses(read_models) == statuses(clean)
        finally:
            clean.close()
    finally:
        active.kill()
        if standby is not None:
            standby.kill()
        read_models.close()
        ledger.close()


def test_workers_of_two_ledgers_in_one_database_both_run(
        fresh_postgres_url: str, other_schema: str) -> None:
    # Two ledgers (two tenants, or staging beside production) in two schemas of one database,
    # each with its read models beside its events and a worker of its own.
    ledgers = [open_ledger(url) for url in (fresh_postgres_url, other_schema)]
    all_read_models = [ReadModels.open(url) for url in (fresh_postgres_url, other_schema)]
    stops = [threading.Event() for _ in ledgers]
    threads = [
        threading.Thread(target=run_worker, name=f"worker-{number}", daemon=True, args=(
            read_models, ledger.recorder, ledger.mapper, [], stop))
        for number, (ledger, read_models, stop) in enumerate(
            zip(ledgers, all_read_models, stops, strict=True))
    ]
    try:
        for thread in threads:
            thread.start()
        lagging = []
        for number, (ledger, read_models) in enumerate(
                zip(ledgers, all_read_models, strict=True)):
            try:
                read_models.wait(NAMES, receive(ledger, 7), WAIT_SECONDS)
            except ProjectionLag:
                lagging.append(f"ledger {number} ({read_models.status()[0].position})")
        assert not lagging, f"read models never caught up: {', '.join(lagging)}"
    finally:
        for stop in stops:
            stop.set()
        for thread in threads:
            thread.join(EXIT_SECONDS_MAX)
        for read_models in all_read_models:
            read_models.close()
        for ledger in ledgers:
            ledger.close()
