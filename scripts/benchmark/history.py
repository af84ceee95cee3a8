"""Long histories: an export written programmatically, `ledger import`, `ledger rebuild`.

A history of N events is made without a database: the ledger's own aggregates decide
receipts and dispatches in memory (StockBin.receive / dispatch, as `Ledger.receive` does
through its workspace), the ledger's own mapper turns each event into the stored record
the event store would hold, and the records are written as `ledger export` writes them,
each with its chain link (ledger.chain.next_link). `ledger import` verifies that chain
before it inserts anything, and the store it makes is exported again with `ledger
export`: the head digest must come out equal, which proves the file is what an export of
that store is.

The history: 100 SKUs × 10 locations (the command workload's bins), documents of 1–5
lines a second apart in effective time, receipts and dispatches that never oversell;
one hot bin (HOT-1 at L00) with 100,000 movements (10,000 in --quick) interleaved through
the whole history; one cold bin (COLD-1 at L00) with 10. The first 10,000 events are also
written to a file of their own: the short history for the as-of comparison.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import random
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import IO, Any

from benchmark import pg
from benchmark.workload import ACTOR, LOCATIONS, SKUS, details
from ledger.chain import GENESIS, Digest, Record, next_link
from ledger.domain.context import MovementContext
from ledger.domain.item import Item, ItemDetails
from ledger.domain.location import Location
from ledger.domain.stock_bin import StockBin
from ledger.export import FORMAT
from ledger.numbers import quantity, unit_cost

HOT = ("HOT-1", "L00")
COLD = ("COLD-1", "L00")
COLD_MOVEMENTS = 10
SHORT_HISTORY_EVENTS = 10_000
AS_OF_ROUNDS = 10
SCRIPTS_DIR = Path(__file__).resolve().parent.parent


@dataclass
class History:
    path: Path
    events: int
    head: Digest
    first: datetime  # effective time of the first movement
    last: datetime  # … of the last
    short_path: Path
    short_events: int
    short_head: Digest
    short_last: datetime
    hot_movements: int
    state_bytes_mean: float
    seconds: float


class _Writer:
    """Records in export format, with their chain links; the first `short` also elsewhere."""

    def __init__(self, path: Path, short_path: Path, short: int, mapper: Any) -> None:
        header = json.dumps({"format": FORMAT}) + "\n"
        self.out: IO[str] = path.open("w", encoding="utf-8")
        self.short_out: IO[str] | None = short_path.open("w", encoding="utf-8")
        self.out.write(header)
        self.short_out.write(header)
        self.short = short
        self.short_head = Digest(0, GENESIS)
        self.mapper = mapper
        self.link = GENESIS
        self.count = 0
        self.state_bytes = 0

    def write(self, aggregate: Any) -> None:
        for event in aggregate.collect_events():
            stored = self.mapper.to_stored_event(event)
            self.count += 1
            record = Record(self.count, stored.originator_id, stored.originator_version,
                            stored.topic, stored.state)
            self.link = next_link(self.link, record)
            self.state_bytes += len(record.state)
            line = json.dumps({
                "position": record.position, "aggregate_id": str(record.aggregate_id),
                "version": record.version, "topic": record.topic,
                "state": base64.b64encode(record.state).decode(), "link": self.link,
            }, separators=(",", ":")) + "\n"
            self.out.write(line)
            if self.short_out is not None:
                self.short_out.write(line)
                if self.count == self.short:
                    self.short_head = Digest(self.count, self.link)
                    self.short_out.close()
                    self.short_out = None

    def close(self) -> None:
        self.out.close()
        if self.short_out is not None:
            self.short_out.close()
            self.short_out = None


def generate(directory: Path, events: int, hot_movements: int, seed: int = 7) -> History:
    """Write a history of at least `events` events (and its short prefix) to `directory`."""
    from ledger.application import Ledger

    started = time.perf_counter()
    mapper_source = Ledger({"PERSISTENCE_MODULE": "eventsourcing.popo"})  # its mapper only
    writer = _Writer(directory / "history.jsonl", directory / "history-short.jsonl",
                     SHORT_HISTORY_EVENTS, mapper_source.mapper)
    rng = random.Random(seed)
    span = timedelta(seconds=events)  # at most one document a second, ending about now
    first = clock = (datetime.now(UTC) - span - timedelta(days=1)).replace(microsecond=0)
    short_last = clock
    bins: dict[tuple[str, str], StockBin] = {}
    methods = {sku: details(sku).valuation_method for sku in SKUS}
    methods[HOT[0]] = methods[COLD[0]] = "moving_average"
    try:
        for sku in SKUS:
            writer.write(Item.register(sku, details(sku), ACTOR))
        for sku in (HOT[0], COLD[0]):
            writer.write(Item.register(sku, ItemDetails(f"Bench item {sku}", "ea",
                                                        "moving_average"), ACTOR))
        for location in LOCATIONS:
            writer.write(Location.register(location, f"Bench location {location}", ACTOR))

        def context(number: int) -> MovementContext:
            return MovementContext(document_id=uuid.UUID(int=rng.getrandbits(128), version=4),
                                   actor=ACTOR, effective_at=clock, recorded_at=clock,
                                   reference=f"BENCH-{number}")

        def stock_bin(sku: str, location: str) -> StockBin:
            key = (sku, location)
            if key not in bins:
                bins[key] = StockBin.open(sku, location, methods[sku], clock)
            return bins[key]

        def alternate(key: tuple[str, str], done: int, number: int) -> None:
            # Receive 10, then dispatch those 10: the bin's state stays small for ever.
            target = stock_bin(*key)
            if done % 2 == 0:
                target.receive(quantity(Decimal(10)), unit_cost(Decimal(200 + done % 50) / 100),
                               context(number), 1)
            else:
                target.dispatch(quantity(Decimal(10)), context(number), 1)
            writer.write(target)

        def document(number: int) -> None:
            location = rng.choice(LOCATIONS)
            skus = rng.sample(SKUS, rng.choice((1, 1, 1, 2, 3, 5)))
            meta = context(number)
            touched: list[StockBin] = []
            if rng.random() < 0.5:  # a dispatch of whatever lines the stock allows
                for line, sku in enumerate(skus, start=1):
                    wanted = quantity(Decimal(rng.randint(5, 40)))
                    held = bins.get((sku, location))
                    if held is not None and held.quantity_available >= wanted:
                        held.dispatch(wanted, meta, line)
                        touched.append(held)
            if not touched:  # a receipt
                for line, sku in enumerate(skus, start=1):
                    target = stock_bin(sku, location)
                    target.receive(quantity(Decimal(rng.randint(5, 40))),
                                   unit_cost(Decimal(rng.randint(150, 450)) / 100), meta, line)
                    touched.append(target)
            for target in touched:
                writer.write(target)

        hot_every = max(1, events // max(1, hot_movements))
        next_hot, hot_done, cold_done, number = writer.count, 0, 0, 0
        while writer.count < events or hot_done < hot_movements:
            clock += timedelta(seconds=1)
            number += 1
            before = writer.count
            if cold_done < COLD_MOVEMENTS:
                alternate(COLD, cold_done, number)
                cold_done += 1
            elif hot_done < hot_movements and (writer.count >= next_hot
                                               or writer.count >= events):
                alternate(HOT, hot_done, number)
                hot_done += 1
                next_hot += hot_every
            else:
                document(number)
            if before < SHORT_HISTORY_EVENTS <= writer.count:
                short_last = clock
    finally:
        writer.close()
        mapper_source.close()
    return History(
        path=directory / "history.jsonl", events=writer.count,
        head=Digest(writer.count, writer.link), first=first, last=clock,
        short_path=directory / "history-short.jsonl",
        short_events=min(SHORT_HISTORY_EVENTS, writer.count), short_head=writer.short_head,
        short_last=short_last, hot_movements=hot_done,
        state_bytes_mean=writer.state_bytes / max(1, writer.count),
        seconds=time.perf_counter() - started)


# Running `ledger` commands ------------------------------------------------------------------


class CommandHung(RuntimeError):
    """The command stopped making progress: a backend waits on it and it waits on the backend."""


@dataclass
class CommandRun:
    result: dict[str, Any]
    stdout: str


def ledger_command(arguments: list[str], database_url: str, log: Path, *,
                   timeout: float, watch_schema: str | None = None,
                   stall_seconds: float = 10.0,
                   extra_environment: dict[str, str] | None = None) -> CommandRun:
    """`ledger ARGS` through benchmark.driver in a subprocess; its BENCH-RESULT.

    With `watch_schema`, an INSERT into that schema whose backend waits on the client for
    `stall_seconds` means the command hung: it is killed and CommandHung raised.
    """
    shown = "ledger " + " ".join(Path(a).name if os.sep in a else a for a in arguments)
    python_path = os.pathsep.join(p for p in (str(SCRIPTS_DIR),
                                              os.environ.get("PYTHONPATH", "")) if p)
    environment = {**os.environ, "LEDGER_DATABASE_URL": database_url,
                   "PYTHONPATH": python_path, **(extra_environment or {})}
    stdout_path = log.with_suffix(".out")
    with stdout_path.open("wb") as out, log.open("wb") as err:
        process = subprocess.Popen([sys.executable, "-m", "benchmark.driver", *arguments],
                                   env=environment, stdout=out, stderr=err)
        deadline = time.monotonic() + timeout
        try:
            while process.poll() is None:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{shown} took over {timeout:.0f} s")
                if watch_schema and pg.hung_inserts(watch_schema, stall_seconds):
                    raise CommandHung(
                        f"`{shown}` hung: its INSERT has waited for the "
                        f"client for {stall_seconds:.0f} s (state active, wait_event "
                        "ClientRead) while the client waits for the result")
                time.sleep(0.5)
        except BaseException:
            with contextlib.suppress(OSError):
                process.kill()
            process.wait(timeout=30)
            raise
    stdout = stdout_path.read_text(errors="replace")
    lines = [line for line in stdout.splitlines() if line.startswith("BENCH-RESULT ")]
    if process.returncode != 0 or not lines:
        tail = log.read_text(errors="replace")[-2000:]
        raise RuntimeError(f"{shown} failed ({process.returncode}):\n"
                           f"{stdout[-2000:]}\n{tail}")
    result = json.loads(lines[-1].removeprefix("BENCH-RESULT "))
    if result.get("rc") != 0:
        raise RuntimeError(f"{shown} returned {result.get('rc')}:\n"
                           f"{stdout[-2000:]}")
    return CommandRun(result, stdout)


def head_digest_of(stdout: str) -> str | None:
    """The `P:H` digest a `ledger import` or `ledger export` printed."""
    for line in stdout.splitlines():
        if "head digest " in line:
            return line.rsplit("head digest ", 1)[1].strip()
    return None


# Reading the store back ----------------------------------------------------------------------


def as_of_latencies(stores: list[tuple[str, datetime]], count: int,
                    rounds: int = AS_OF_ROUNDS) -> list[list[float]]:
    """Seconds per stock-as-of query (what GET /stock?sku=&as_of= runs), over the SKUs, for
    each (database URL, moment): `count` each, in `rounds` alternating rounds."""
    from ledger.config import Settings, read_models_url
    from projections.service import ReadModels

    opened = [ReadModels.open(read_models_url(Settings.from_environ(
        {**os.environ, "LEDGER_DATABASE_URL": url}))) for url, _ in stores]
    latencies: list[list[float]] = [[] for _ in stores]
    try:
        for read_models, (_, moment) in zip(opened, stores, strict=True):
            _as_of_queries(read_models, moment, range(10))  # warm the pool and the caches
        for round_number in range(rounds):
            numbers = range(round_number, count, rounds)
            for read_models, (_, moment), mine in zip(opened, stores, latencies, strict=True):
                mine.extend(_as_of_queries(read_models, moment, numbers))
    finally:
        for read_models in opened:
            read_models.close()
    return latencies


def _as_of_queries(read_models: Any, moment: datetime, numbers: range) -> list[float]:
    from projections import queries

    levels = read_models.by_name["stock_levels"]
    card = read_models.by_name["stock_card"]
    latencies = []
    for n in numbers:
        sku = SKUS[(n * 37) % len(SKUS)]
        started = time.perf_counter()
        states = read_models.wait(["stock_levels", "stock_card"], 0, 5.0)
        with read_models.database.reader.connect() as connection:
            page = queries.stock_as_of(
                connection, levels, states["stock_levels"].generation, card,
                states["stock_card"].generation, moment=moment, sku=sku, location=None,
                after=None, limit=50)
        latencies.append(time.perf_counter() - started)
        if not page.rows:
            raise RuntimeError(f"stock of {sku} as of {moment} came back empty")
    return latencies


def load_turns(repeats: list[int]) -> list[tuple[int, int]]:
    """(turn, index) in the order to load: over max(repeats) turns, item `index` is loaded
    `repeats[index]` times, spread evenly (at the turns where its share comes due)."""
    turns = max(repeats, default=0)
    order = []
    for turn in range(turns):
        for index, count in enumerate(repeats):
            if (turn + 1) * count // turns > turn * count // turns:
                order.append((turn, index))
    return order


def aggregate_loads(database_url: str, bins: list[tuple[str, str, int]]
                    ) -> list[tuple[list[float], int]]:
    """Seconds per `Ledger.stock_bin(sku, location)` for each (sku, location, repeats), the
    bins loaded in turn, each bin's loads spread evenly over all the turns (so that a
    change in the machine's speed weighs on all alike: a bin loaded fewer times does not
    take all its loads at the start), and the version each loaded."""
    from benchmark.workload import make_ledger

    ledger = make_ledger(database_url)
    try:
        ledger.stock_bin(*COLD)  # connect and warm up first
        times: list[list[float]] = [[] for _ in bins]
        versions = [0] * len(bins)
        for _, index in load_turns([repeats for _, _, repeats in bins]):
            sku, location, _ = bins[index]
            started = time.perf_counter()
            loaded = ledger.stock_bin(sku, location)
            times[index].append(time.perf_counter() - started)
            if loaded is None:
                raise RuntimeError(f"no bin {sku} at {location}")
            versions[index] = loaded.version
        return list(zip(times, versions, strict=True))
    finally:
        ledger.close()
