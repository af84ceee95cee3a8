"""The same commands through the HTTP API: `ledger serve` under uvicorn, in a subprocess.

The server runs as docs/operations.md deploys it in production: LEDGER_PROJECTIONS=external
and one `ledger project` worker process beside it, projecting while the commands arrive
(BENCH_HTTP_PROJECTIONS=embedded runs them inside the API process instead;
BENCH_HTTP_WORKERS sets `ledger serve --workers`). Clients are threads of this process,
each with its own keep-alive httpx client. While they write, one more client asks
`GET /stock?sku=` back to back, and its latencies are kept apart.
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import httpx

from benchmark.stats import LoadResult, run_clients
from benchmark.workload import (
    BINS,
    DISPATCH_QUANTITY,
    RECEIPT_COST,
    RECEIPT_QUANTITY,
    SKUS,
)

API_KEY = "bench-operations-key"
STARTUP_SECONDS_MAX = 60


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Server:
    process: subprocess.Popen[bytes]
    base_url: str
    log: Path

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)  # uvicorn shuts down gracefully
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)

    def log_tail(self, size: int = 3000) -> str:
        with contextlib.suppress(OSError):
            return self.log.read_text(errors="replace")[-size:]
        return ""


def start_server(database_url: str, log: Path, workers: int = 1,
                 projections: str = "embedded") -> Server:
    """`ledger serve --workers N` on a free port; returns once /health answers."""
    port = free_port()
    environment = {**os.environ, "LEDGER_DATABASE_URL": database_url,
                   "LEDGER_PROJECTIONS": projections,
                   "LEDGER_API_KEYS": f"{API_KEY}:operations:bench"}
    ledger_command = Path(sys.executable).with_name("ledger")
    with log.open("wb") as out:
        process = subprocess.Popen(
            [str(ledger_command), "serve", "--host", "127.0.0.1", "--port", str(port),
             "--log-level", "warning", "--workers", str(workers)],
            env=environment, stdout=out, stderr=subprocess.STDOUT)
    server = Server(process, f"http://127.0.0.1:{port}", log)
    deadline = time.monotonic() + STARTUP_SECONDS_MAX
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"ledger serve exited ({process.returncode}):\n"
                               f"{server.log_tail()}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{server.base_url}/health", timeout=2).status_code == 200:
                return server
        time.sleep(0.2)
    server.stop()
    raise RuntimeError(f"ledger serve did not answer within {STARTUP_SECONDS_MAX} s:\n"
                       f"{server.log_tail()}")


def projections_mode() -> str:
    return os.environ.get("BENCH_HTTP_PROJECTIONS", "external")


def api_workers() -> int:
    return int(os.environ.get("BENCH_HTTP_WORKERS", "1"))


def start_projector(database_url: str, log: Path) -> subprocess.Popen[bytes]:
    """`ledger project`: every projection, in a worker process of its own."""
    ledger_command = Path(sys.executable).with_name("ledger")
    with log.open("wb") as out:
        return subprocess.Popen([str(ledger_command), "project"],
                                env={**os.environ, "LEDGER_DATABASE_URL": database_url},
                                stdout=out, stderr=subprocess.STDOUT)


def stop_projector(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


def client(base_url: str) -> httpx.Client:
    return httpx.Client(base_url=base_url, timeout=60,
                        headers={"Authorization": f"Bearer {API_KEY}"})


def wait_for_projections(base_url: str, seconds: float = 120) -> None:
    """Until the read models reached the head (the embedded runner catches up at start)."""
    with client(base_url) as http:
        head = http.get("/health").json()["position"]
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            answer = http.get("/stock", params={"sku": SKUS[0], "min_position": head})
            if answer.status_code == 200:
                return
        raise RuntimeError("the read models did not catch up with the event store")


def command_operation(base_url: str, clients: list[httpx.Client]):
    http = client(base_url)
    clients.append(http)

    def operation(rng: random.Random) -> None:
        sku, location = rng.choice(BINS)
        if rng.random() < 0.5:
            answer = http.post("/receipts", json={
                "location": location,
                "lines": [{"sku": sku, "quantity": str(RECEIPT_QUANTITY),
                           "unit_cost": str(RECEIPT_COST)}]})
        else:
            answer = http.post("/dispatches", json={
                "location": location,
                "lines": [{"sku": sku, "quantity": str(DISPATCH_QUANTITY)}]})
        if answer.status_code != 201:
            raise HttpRefused(answer.status_code, answer.text[:300])

    return operation


class HttpRefused(Exception):
    def __init__(self, status: int, body: str) -> None:
        super().__init__(f"{status}: {body}")
        self.status = status


@dataclass
class HttpResult:
    commands: LoadResult
    queries: LoadResult


def run_load(base_url: str, clients: int, seconds: float) -> HttpResult:
    """`clients` writing clients and one stock reader, for the same window."""
    opened: list[httpx.Client] = []
    query_latencies: list[float] = []
    query_errors: list[str] = []
    stop = threading.Event()

    begin = time.perf_counter() + 0.5  # once the writers are under way
    end = begin - 0.5 + seconds

    def reader() -> None:
        rng = random.Random(99)
        with client(base_url) as http:
            while not stop.is_set():
                started = time.perf_counter()
                if started > end:
                    return
                try:
                    answer = http.get("/stock", params={"sku": rng.choice(SKUS)})
                except httpx.HTTPError as error:
                    query_errors.append(type(error).__name__)
                    continue
                if answer.status_code == 200:
                    if started >= begin:
                        query_latencies.append(time.perf_counter() - started)
                else:
                    query_errors.append(f"HTTP {answer.status_code}")

    thread = threading.Thread(target=reader, daemon=True)
    thread.start()
    try:
        commands = run_clients(clients, seconds,
                               lambda n: command_operation(base_url, opened), seed=6)
    finally:
        stop.set()
        thread.join(timeout=60)
        for http in opened:
            http.close()
    queries = LoadResult(1, seconds - 0.5, len(query_latencies), query_latencies,
                         Counter(query_errors))
    return HttpResult(commands, queries)
