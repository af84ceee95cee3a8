"""`ledger serve --workers 2`: two API processes, each with its own group committer, on one store.

Each worker's writer caches the aggregates it saved; what the other worker wrote since is
dropped before the next batch (or, if it lands during one, fails that batch's save on
version, and the batch is decided again). Receipts and dispatches on one bin, sent
over fresh connections (so the kernel spreads them over both processes), must come out as
if there were one writer: in log order, each answer's quantity after is the one before it
plus what it moved, never below zero, and the bin ends where the last answer says.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from decimal import Decimal
from pathlib import Path

import httpx
import pytest
from tests.conftest import free_port

from ledger.application import Ledger
from ledger.config import store_environment
from ledger.domain.context import CommandMeta
from ledger.domain.item import ItemDetails

pytestmark = pytest.mark.postgres

KEY = "workers-test-key"
STARTUP_SECONDS_MAX = 60
EXIT_SECONDS_MAX = 30
POLL = threading.Event()  # never set: its wait() is a bounded pause between polls
CLIENTS = 4
ROUNDS = 15


def start(database_url: str, log: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    environment = {**os.environ, "LEDGER_DATABASE_URL": database_url,
                   "LEDGER_PROJECTIONS": "external", "LEDGER_API_KEYS": f"{KEY}:operations:t"}
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "ledger.cli", "serve", "--port", str(port), "--workers", "2",
             "--log-level", "warning"], env=environment, stdout=out, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + STARTUP_SECONDS_MAX
    while time.monotonic() < deadline:
        assert process.poll() is None, log.read_text()[-3000:]
        try:
            if httpx.get(f"{base}/health", timeout=2).status_code == 200:
                return process, base
        except httpx.HTTPError:
            pass
        POLL.wait(0.2)
    process.kill()
    raise AssertionError(f"ledger serve --workers 2 did not answer:\n{log.read_text()[-3000:]}")


def test_two_api_processes_decide_one_bin_as_one_writer(fresh_postgres_url: str,
                                                        tmp_path: Path) -> None:
    with Ledger(store_environment(fresh_postgres_url)) as ledger:
        ledger.register_item("W-1", ItemDetails("Widget", "ea", "fifo"), CommandMeta("t"))
        ledger.register_location("WH", "Warehouse", CommandMeta("t"))
    process, base = start(fresh_postgres_url, tmp_path / "serve.log")
    answers: list[dict[str, str]] = []
    failures: list[str] = []

    def client(number: int) -> None:
        headers = {"Authorization": f"Bearer {KEY}"}
        for round_ in range(ROUNDS):
            # A fresh connection each time, so either process may take it.
            if (number + round_) % 3:
                path, line = "/receipts", {"sku": "W-1", "quantity": "2", "unit_cost": "1.5"}
            else:
                path, line = "/dispatches", {"sku": "W-1", "quantity": "3"}
            answer = httpx.post(f"{base}{path}", headers=headers, timeout=30,
                                json={"location": "WH", "lines": [line]})
            if answer.status_code == 201:
                body = answer.json()
                answers.append({"path": path, "position": body["position"], **body["lines"][0]})
            elif answer.status_code != 409 or path != "/dispatches":
                failures.append(f"{path}: {answer.status_code} {answer.text[:300]}")

    threads = [threading.Thread(target=client, args=(n,)) for n in range(CLIENTS)]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(120)
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(EXIT_SECONDS_MAX)
    assert not failures, failures
    running = Decimal(0)
    for answer in sorted(answers, key=lambda a: a["position"]):
        moved = Decimal(answer["quantity"])
        running += moved if answer["path"] == "/receipts" else -moved
        assert Decimal(answer["quantity_on_hand_after"]) == running, answer
        assert running >= 0
    with Ledger(store_environment(fresh_postgres_url)) as ledger:
        found = ledger.stock_bin("W-1", "WH")
        assert found is not None
        assert found.quantity_on_hand == running
        assert found.version == 1 + len(answers)  # opened, then one event per answer
