"""Real threads against real databases: the harness the concurrency tests share.

Each test runs with one shared `Ledger` (many API threads in one process) or one `Ledger`
per thread (separate connection pools, like separate API processes); `at_once` releases
the threads together at a barrier.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from eventsourcing.persistence import IntegrityError

from ledger.application import CommandResult, Ledger
from ledger.config import store_environment
from ledger.errors import ConcurrentModification

THREADS = 8
WAIT_SECONDS_MAX = 120
ResultT = TypeVar("ResultT")


class ObservedLedger(Ledger):
    """The ledger, counting the saves that lost to another writer (and were then retried)."""

    def __init__(self, env: dict[str, str]) -> None:
        super().__init__(env)
        self.conflicts = 0
        self.conflicts_lock = threading.Lock()

    def save(self, *objs: Any, **kwargs: Any) -> Any:
        try:
            return super().save(*objs, **kwargs)
        except IntegrityError:
            with self.conflicts_lock:
                self.conflicts += 1
            raise


class Apps:
    """The application each thread uses: one shared instance, or one per thread."""

    def __init__(self, url: str, per_thread: bool) -> None:
        self.url = url
        self.per_thread = per_thread
        self.opened: list[ObservedLedger] = []
        self.lock = threading.Lock()
        self.shared = self.open()
        self.thread_apps: dict[int, ObservedLedger] = {}

    def conflicts(self) -> int:
        return sum(app.conflicts for app in self.opened)

    def open(self) -> ObservedLedger:
        url = self.url
        if self.per_thread and url.startswith("postgresql"):
            # Eight pools of the default size would need 160 connections; each needs a few.
            url += "&pool_size=2&max_overflow=2"
        app = ObservedLedger(store_environment(url))
        with self.lock:
            self.opened.append(app)
        return app

    def for_thread(self, number: int) -> ObservedLedger:
        if not self.per_thread:
            return self.shared
        if number not in self.thread_apps:
            self.thread_apps[number] = self.open()
        return self.thread_apps[number]

    def close(self) -> None:
        for app in self.opened:
            app.close()


def at_once(work: Callable[[int, Ledger], ResultT], apps: Apps,
            threads: int = THREADS) -> list[ResultT]:
    """Run `work(thread_number, app)` on `threads` real threads released together."""
    # Each thread opens its application before the barrier, so that all start writing at once.
    thread_apps = [apps.for_thread(number) for number in range(threads)]
    barrier = threading.Barrier(threads, timeout=WAIT_SECONDS_MAX)

    def run(number: int) -> ResultT:
        barrier.wait()
        return work(number, thread_apps[number])

    with ThreadPoolExecutor(max_workers=threads) as pool:
        futures = [pool.submit(run, number) for number in range(threads)]
        return [future.result(timeout=WAIT_SECONDS_MAX) for future in futures]


def retried(command: Callable[[], CommandResult]) -> CommandResult:
    """Run a command as a client does: again (bounded) when the ledger says to retry it."""
    for _ in range(10):
        try:
            return command()
        except ConcurrentModification:
            continue
    raise AssertionError("the command conflicted 10 times in a row")
