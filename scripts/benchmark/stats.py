"""Figures, percentiles and the closed-loop client runner every throughput phase uses."""

from __future__ import annotations

import math
import random
import statistics
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Figure:
    name: str
    value: float
    unit: str
    what: str = ""
    number: str = ""  # issue 7's numbering (1–9), "" for context figures


@dataclass
class Figures:
    """Every figure of a run, in the order measured, and what went wrong on the way."""

    items: dict[str, Figure] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    # Figures measured in interleaved rounds (benchmark.rounds): each round's value, in order.
    rounds: dict[str, list[float]] = field(default_factory=dict)
    _reserved: set[str] = field(default_factory=set, repr=False)

    def add(self, name: str, value: float, unit: str, what: str = "", number: str = "") -> None:
        self.items[name] = Figure(name, float(value), unit, what, number)

    def reserve(self, *names: str) -> None:
        """Keep places in the order for figures added later (those measured in rounds,
        `benchmark.rounds`); a place never filled is dropped by `drop_unfilled`."""
        for name in names:
            self.items.setdefault(name, Figure(name, math.nan, ""))
            self._reserved.add(name)

    def drop_unfilled(self) -> None:
        for name in self._reserved:
            if name in self.items and not self.items[name].unit:
                del self.items[name]
        self._reserved.clear()

    def value(self, name: str) -> float | None:
        figure = self.items.get(name)
        return None if figure is None else figure.value

    def note(self, text: str) -> None:
        print(f"  note: {text}", flush=True)
        self.notes.append(text)


def percentile(values: list[float], fraction: float) -> float:
    """The nearest-rank percentile (0 < fraction ≤ 1) of `values`."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(1, min(len(ordered), math.ceil(fraction * len(ordered))))
    return ordered[rank - 1]


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


@dataclass
class LoadResult:
    """What a closed-loop run of clients achieved in its window."""

    clients: int
    seconds: float
    completed: int
    latencies: list[float]  # seconds, one per completed operation
    errors: Counter[str]

    @property
    def rate(self) -> float:
        return self.completed / self.seconds if self.seconds else 0.0

    def p(self, fraction: float) -> float:
        """A latency percentile in milliseconds."""
        return percentile(self.latencies, fraction) * 1000.0


Operation = Callable[[random.Random], Any]


def run_clients(clients: int, seconds: float, make_operation: Callable[[int], Operation],
                seed: int = 0) -> LoadResult:
    """`clients` threads each call their operation back to back for `seconds`.

    Every thread starts at the same instant (a barrier); an operation counts when it
    finishes inside the window, and its latency is kept. An exception counts as an error
    (by type) and does not count as completed; the thread carries on.
    """
    operations = [make_operation(n) for n in range(clients)]
    barrier = threading.Barrier(clients + 1)
    latencies: list[list[float]] = [[] for _ in range(clients)]
    errors: list[Counter[str]] = [Counter() for _ in range(clients)]
    window: dict[str, float] = {}

    def client(n: int) -> None:
        rng = random.Random(seed * 1000 + n)
        operation, mine, failed = operations[n], latencies[n], errors[n]
        barrier.wait()
        end = window["end"]
        while True:
            started = time.perf_counter()
            if started >= end:
                return
            try:
                operation(rng)
            except Exception as error:  # counted, reported, never fatal to the run
                failed[type(error).__name__] += 1
                continue
            finished = time.perf_counter()
            if finished <= end:
                mine.append(finished - started)

    threads = [threading.Thread(target=client, args=(n,), daemon=True)
               for n in range(clients)]
    for thread in threads:
        thread.start()
    window["end"] = time.perf_counter() + seconds
    barrier.wait()
    for thread in threads:
        thread.join(timeout=seconds + 120)
    merged = [latency for mine in latencies for latency in mine]
    total: Counter[str] = Counter()
    for failed in errors:
        total.update(failed)
    return LoadResult(clients, seconds, len(merged), merged, total)


def run_parallel(threads: int, work: Callable[[int], None]) -> None:
    """Run `work(n)` for n in range(threads) in threads; re-raise the first failure."""
    failures: list[BaseException] = []

    def run(n: int) -> None:
        try:
            work(n)
        except BaseException as error:
            failures.append(error)

    pool = [threading.Thread(target=run, args=(n,), daemon=True) for n in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    if failures:
        raise failures[0]
