"""The same commands through the HTTP API: `ledger serve` under uvicorn, in a subprocess.

The server runs as docs/operations.md deploys it in production: LEDGER_PROJECTIONS=external
and one `ledger project` worker process beside it, projecting while the commands arrive
(BENCH_HTTP_PROJECTIONS=embedded runs them inside the API process instead;
BENCH_HTTP_WORKERS sets `ledger serve --workers`). Clients are threads of this process,
each with its own keep-alive connection (a socket and a few lines, `Connection`: a load
generator that costs the shared cores as little as possible; httpx took 0.4 of the 2 cores
for the same load, http.client about 0.25). While they write, one more client asks
`GET /stock?sku=` back to back of a query process (a second `ledger serve` that takes no
writes, as operations deploys queries), and another asks the writing process ten times a
second, for context; their latencies are kept apart.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from benchmark.stats import LoadResult, run_clients
from benchmark.workload import (
    BINS,
    DISPATCH_QUANTITY,
    RECEIPT_COST,
    RECEIPT_QUANTITY,
    SKUS,
)

API_KEY = "bench-operations-key"
# The writing process is asked this often (context: operations route queries elsewhere).
CONTEXT_QUERY_INTERVAL = 0.1
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


def on_core(core: int | None) -> Callable[[], None] | None:
    """A child process's pre-exec hook putting it on one core (None: no hook)."""
    if core is None or not hasattr(os, "sched_setaffinity"):
        return None
    return lambda: os.sched_setaffinity(0, {core})


def start_server(database_url: str, log: Path, workers: int = 1,
                 projections: str = "embedded", core: int | None = None) -> Server:
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
            env=environment, stdout=out, stderr=subprocess.STDOUT, preexec_fn=on_core(core))
    server = Server(process, f"http://127.0.0.1:{port}", log)
    deadline = time.monotonic() + STARTUP_SECONDS_MAX
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"ledger serve exited ({process.returncode}):\n"
                               f"{server.log_tail()}")
        probe = Connection(server.base_url, timeout=2)
        try:
            if probe.request("GET", "/health")[0] == 200:
                return server
        except (OSError, http.client.HTTPException):
            pass  # not listening yet
        finally:
            probe.close()
        time.sleep(0.2)
    server.stop()
    raise RuntimeError(f"ledger serve did not answer within {STARTUP_SECONDS_MAX} s:\n"
                       f"{server.log_tail()}")


def projections_mode() -> str:
    return os.environ.get("BENCH_HTTP_PROJECTIONS", "external")


def api_workers() -> int:
    return int(os.environ.get("BENCH_HTTP_WORKERS", "1"))


def start_projector(database_url: str, log: Path,
                    core: int | None = None) -> subprocess.Popen[bytes]:
    """`ledger project`: every projection, in a worker process of its own."""
    ledger_command = Path(sys.executable).with_name("ledger")
    with log.open("wb") as out:
        return subprocess.Popen([str(ledger_command), "project"],
                                env={**os.environ, "LEDGER_DATABASE_URL": database_url},
                                stdout=out, stderr=subprocess.STDOUT,
                                preexec_fn=on_core(core))


def stop_projector(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


class HttpProtocolError(http.client.HTTPException):
    """An answer this client does not read (no Content-Length, a malformed head)."""


class Connection:
    """One keep-alive HTTP/1.1 connection, reopened if the server closes it.

    A socket and a few lines rather than http.client: the clients run on the cores they
    measure, and http.client (its email-parser headers, its buffered reader) cost this
    process about 0.5 ms of CPU per request against 0.2 for this one (0.25 cores at 490
    requests/s against 0.11 at 560, the stock readers included). It writes one request and reads
    one answer at a time, and reads only what the ledger's answers need: the status line
    and Content-Length (every answer of the routes measured here has one).
    """

    def __init__(self, base_url: str, timeout: float = 60) -> None:
        host, _, port = base_url.removeprefix("http://").partition(":")
        self.host, self.port, self.timeout = host, int(port), timeout
        self.head = (f"Host: {host}:{port}\r\nAuthorization: Bearer {API_KEY}\r\n"
                     "Content-Type: application/json\r\n").encode()
        self.sock: socket.socket | None = None
        self.buffer = b""

    def request(self, method: str, path: str, body: object = None) -> tuple[int, bytes]:
        payload = b"" if body is None else json.dumps(body).encode()
        message = (f"{method} {path} HTTP/1.1\r\n".encode() + self.head
                   + b"Content-Length: %d\r\n\r\n" % len(payload) + payload)
        for attempt in (1, 2):
            if self.sock is None:
                self.sock = socket.create_connection((self.host, self.port), self.timeout)
                self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                self.buffer = b""
            try:
                self.sock.sendall(message)
                return self._answer()
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                self.close()  # the server closed a kept-alive connection: once more, afresh
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def _answer(self) -> tuple[int, bytes]:
        end = self._fill_until(b"\r\n\r\n")
        head, self.buffer = self.buffer[:end].decode("latin-1"), self.buffer[end + 4:]
        status_line, *fields = head.split("\r\n")
        parts = status_line.split(" ", 2)
        length, close = None, False
        for field in fields:
            name, _, value = field.partition(":")
            name = name.strip().lower()
            if name == "content-length":
                length = int(value)
            elif name == "connection" and "close" in value.lower():
                close = True
        if len(parts) < 2 or not parts[1].isdigit() or length is None:
            raise HttpProtocolError(f"unreadable answer: {status_line!r}")
        while len(self.buffer) < length:
            self._receive()
        answer, self.buffer = self.buffer[:length], self.buffer[length:]
        if close:
            self.close()
        return int(parts[1]), answer

    def _fill_until(self, marker: bytes) -> int:
        while (end := self.buffer.find(marker)) < 0:
            self._receive()
        return end

    def _receive(self) -> None:
        assert self.sock is not None
        data = self.sock.recv(65536)
        if not data:
            raise http.client.RemoteDisconnected("the server closed the connection")
        self.buffer += data

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None
            self.buffer = b""


def wait_for_projections(base_url: str, seconds: float = 120) -> None:
    """Until the read models reached the head (the embedded runner catches up at start)."""
    connection = Connection(base_url)
    try:
        head = json.loads(connection.request("GET", "/health")[1])["position"]
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            status, _ = connection.request("GET", f"/stock?sku={SKUS[0]}&min_position={head}")
            if status == 200:
                return
        raise RuntimeError("the read models did not catch up with the event store")
    finally:
        connection.close()


def command_operation(base_url: str, clients: list[Connection]):
    connection = Connection(base_url)
    clients.append(connection)

    def operation(rng: random.Random) -> None:
        sku, location = rng.choice(BINS)
        if rng.random() < 0.5:
            status, body = connection.request("POST", "/receipts", {
                "location": location,
                "lines": [{"sku": sku, "quantity": str(RECEIPT_QUANTITY),
                           "unit_cost": str(RECEIPT_COST)}]})
        else:
            status, body = connection.request("POST", "/dispatches", {
                "location": location,
                "lines": [{"sku": sku, "quantity": str(DISPATCH_QUANTITY)}]})
        if status != 201:
            raise HttpRefused(status, body[:300].decode(errors="replace"))

    return operation


class HttpRefused(Exception):
    def __init__(self, status: int, body: str) -> None:
        super().__init__(f"{status}: {body}")
        self.status = status


@dataclass
class HttpResult:
    commands: LoadResult
    queries: LoadResult  # GET /stock to the process that takes the writes
    read_queries: LoadResult | None = None  # … to a query process of its own, when given


def run_load(base_url: str, clients: int, seconds: float,
             read_url: str | None = None) -> HttpResult:
    """`clients` writing clients and one stock reader, for the same window; with
    `read_url`, a second stock reader there (a query process beside the writing one)."""
    opened: list[Connection] = []
    stop = threading.Event()
    begin = time.perf_counter() + 0.5  # once the writers are under way
    end = begin - 0.5 + seconds
    readers = [_Reader(base_url, begin, end, stop, 99, CONTEXT_QUERY_INTERVAL)]
    if read_url is not None:
        readers.append(_Reader(read_url, begin, end, stop, 98))
    threads = [threading.Thread(target=reader.run, daemon=True) for reader in readers]
    for thread in threads:
        thread.start()
    try:
        commands = run_clients(clients, seconds,
                               lambda n: command_operation(base_url, opened), seed=6)
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=60)
        for connection in opened:
            connection.close()
    results = [reader.result(seconds - 0.5) for reader in readers]
    return HttpResult(commands, results[0], results[1] if read_url is not None else None)


class _Reader:
    """One client asking `GET /stock?sku=`, back to back or every `interval` seconds;
    latencies from `begin` to `end`.

    With an interval each query is due at a fixed moment and its latency runs from that
    moment, so a query sent late because the one before took long counts the wait too.
    """

    def __init__(self, base_url: str, begin: float, end: float, stop: threading.Event,
                 seed: int, interval: float = 0.0) -> None:
        self.base_url, self.begin, self.end, self.stop = base_url, begin, end, stop
        self.seed, self.interval = seed, interval
        self.latencies: list[float] = []
        self.errors: list[str] = []

    def result(self, seconds: float) -> LoadResult:
        return LoadResult(1, seconds, len(self.latencies), self.latencies, Counter(self.errors))

    def run(self) -> None:
        rng = random.Random(self.seed)
        connection = Connection(self.base_url)
        due = time.perf_counter()
        try:
            while not self.stop.is_set() and due <= self.end:
                delay = due - time.perf_counter()
                if delay > 0:
                    time.sleep(delay)
                self._ask(connection, rng.choice(SKUS), due)
                due = due + self.interval if self.interval else time.perf_counter()
        finally:
            connection.close()

    def _ask(self, connection: Connection, sku: str, due: float) -> None:
        try:
            status, _ = connection.request("GET", f"/stock?sku={sku}")
        except (OSError, http.client.HTTPException) as error:
            self.errors.append(type(error).__name__)
            connection.close()
            return
        if status != 200:
            self.errors.append(f"HTTP {status}")
        elif due >= self.begin:
            self.latencies.append(time.perf_counter() - due)
