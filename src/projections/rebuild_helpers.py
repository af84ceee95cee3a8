"""Helper processes for a rebuild: the log's aggregates shared out, each part folded apart.

A rebuild is bound by the interpreter: decoding an event and folding it into every read
model costs about 75 µs (docs/architecture.md). On PostgreSQL several processes can fill
the next generation's tables at once: each reads the whole log up to the same head, runs
the audit log's hash chain through all of it, and decodes and folds only the events of its
part of the aggregates (`projections.rebuild.Part`), whose rows no other part writes. The
process that asked for the rebuild folds one part itself and, once every helper has
finished, builds the tables' indexes and switches generations as before, in one
transaction: a helper that fails leaves the live generation serving, untouched.

A helper is a fresh interpreter (`python -m projections.rebuild_helpers`: nothing of the
parent's connections or threads is inherited, and nothing of its `__main__` is run again),
given its work pickled on stdin: a picklable `open` that gives it its own read-model
database, event-store recorder and mapper, the projections' classes and what to fill.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any

from eventsourcing.persistence import ApplicationRecorder, Mapper

from ledger.gc_pause import gc_paused
from projections.base import Projection
from projections.database import ReadDatabase

# Below this many events a helper's start-up (a new interpreter importing the ledger,
# about a second) costs more than it saves.
HELPERS_MIN_EVENTS = 50_000
PARENT_POLL_SECONDS = 0.5

Sources = tuple[ReadDatabase, ApplicationRecorder, Mapper[Any]]


@dataclass(frozen=True)
class Helpers:
    """How many processes may share a rebuild (this one included), and how a helper opens
    its sources: `open` must pickle (a module-level function, or a partial of one)."""

    processes: int
    open: Callable[[], AbstractContextManager[Sources]]
    min_events: int = HELPERS_MIN_EVENTS


class RebuildHelperFailed(RuntimeError):
    """A helper process did not finish its part; nothing was switched."""


class Started:
    """Helper processes folding their parts; `finish` waits for them and reports."""

    def __init__(self) -> None:
        self.running: list[subprocess.Popen[bytes]] = []

    def start(self, helpers: Helpers, projections: Sequence[Projection],
              fill: Callable[..., None], arguments: tuple[Any, ...]) -> None:
        """Start a helper on `fill(database, recorder, mapper, projections, *arguments)`."""
        work = pickle.dumps((helpers.open, [type(projection) for projection in projections],
                             fill, arguments))
        # Whatever this process can import, the helper can (a test's or a script's path).
        path = os.pathsep.join(entry for entry in sys.path if entry)
        process = subprocess.Popen([sys.executable, "-m", __name__, str(os.getpid())],
                                   stdin=subprocess.PIPE,
                                   stdout=subprocess.PIPE, env={**os.environ, "PYTHONPATH": path})
        self.running.append(process)
        assert process.stdin is not None
        # A helper that died at start-up (its report says why) has closed its end.
        with contextlib.suppress(BrokenPipeError), process.stdin:
            process.stdin.write(work)

    def finish(self) -> None:
        """Wait for every helper; raise if any did not report success."""
        failures = [report for report in map(_report, self.running) if report is not None]
        self.running = []
        if failures:
            raise RebuildHelperFailed("a rebuild helper failed; nothing was switched:\n"
                                      + "\n".join(failures))

    def stop(self) -> None:
        """Stop whatever still runs (this process's own part failed)."""
        for process in self.running:
            process.kill()
            process.wait()
            if process.stdout is not None:
                process.stdout.close()
        self.running = []


def _report(process: subprocess.Popen[bytes]) -> str | None:
    """None when the helper finished its part; else what went wrong."""
    assert process.stdout is not None
    with process.stdout:
        output = process.stdout.read()
    process.wait()
    try:
        report: str | None = pickle.loads(output)
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError):
        report = f"the helper exited without a report (exit code {process.returncode})"
    if report is None and process.returncode != 0:
        report = f"the helper exited with code {process.returncode}"
    return report


def _exit_with(parent: int) -> None:
    """End this process as soon as its parent is gone: an orphan would go on writing into
    tables that the next rebuild creates again under the same names."""

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(PARENT_POLL_SECONDS)
        os._exit(1)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def _helper_main(parent: int) -> int:
    """A helper process: read its work from stdin, open its own sources, fold its part,
    and write its report (None, or the traceback) to stdout. Anything else it prints goes
    to stderr."""
    reports = os.fdopen(os.dup(sys.stdout.fileno()), "wb")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    _exit_with(parent)  # given, not asked: the parent may be gone before this line
    try:
        open_sources, classes, fill, arguments = pickle.load(sys.stdin.buffer)
        with gc_paused(), open_sources() as (database, recorder, mapper):
            fill(database, recorder, mapper, [cls() for cls in classes], *arguments)
    except BaseException:
        with reports:
            reports.write(pickle.dumps(traceback.format_exc()))
        return 1
    with reports:
        reports.write(pickle.dumps(None))
    return 0


if __name__ == "__main__":
    sys.exit(_helper_main(int(sys.argv[1])))
