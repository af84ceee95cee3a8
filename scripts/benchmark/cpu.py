"""Where the CPU went during a window: this process, PostgreSQL's processes, a server's.

Read from /proc (Linux); elsewhere every figure is simply left out. On a 2-core machine a
phase that uses ~2 cores in total is CPU-bound, whatever the database could commit.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _ticks(stat: str) -> tuple[str, int]:
    # /proc/PID/stat: "pid (comm) state ppid … utime(14) stime(15) …"; comm may hold spaces.
    comm = stat[stat.index("(") + 1:stat.rindex(")")]
    fields = stat[stat.rindex(")") + 2:].split()
    return comm, int(fields[11]) + int(fields[12])


def _process(pid: int) -> int:
    try:
        return _ticks(Path(f"/proc/{pid}/stat").read_text())[1]
    except (OSError, ValueError, IndexError):
        return 0


def _tree(pid: int) -> int:
    """Ticks of a process and its children (a server's worker processes)."""
    total = _process(pid)
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            parent = int(stat[stat.rindex(")") + 2:].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        if parent == pid:
            total += _ticks(stat)[1]
    return total


def _postgres() -> int:
    total = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            comm, ticks = _ticks((entry / "stat").read_text())
        except (OSError, ValueError, IndexError):
            continue
        if comm.startswith("postgres"):
            total += ticks
    return total


@dataclass
class Sample:
    at: float
    own: int
    postgres: int
    server: int


@dataclass
class Usage:
    """Cores used on average over the window (1.0 = one core busy all the time)."""

    own: float
    postgres: float
    server: float


def available() -> bool:
    return Path("/proc/self/stat").exists()


def sample(server_pid: int | None = None) -> Sample | None:
    if not available():
        return None
    return Sample(time.perf_counter(), _process(os.getpid()), _postgres(),
                  _tree(server_pid) if server_pid else 0)


def usage(before: Sample | None, server_pid: int | None = None) -> Usage | None:
    after = sample(server_pid)
    if before is None or after is None:
        return None
    seconds = (after.at - before.at) * TICKS
    return Usage((after.own - before.own) / seconds, (after.postgres - before.postgres) / seconds,
                 (after.server - before.server) / seconds)


@contextlib.contextmanager
def one_core(enabled: bool = True) -> Iterator[int | None]:
    """Run the block, and every thread it starts, on one core (the last one this process may
    use); the core, or None when not pinned (disabled, one core only, or not Linux).

    A Python process is bound by its interpreter lock: only one of its threads runs Python
    at a time, so a second core adds little but the cost of handing the lock between cores
    (measured with 16 client threads and the group-commit writer: a quarter less CPU per
    command pinned than free; docs/operations.md). Threads inherit the affinity of the
    thread that starts them; this thread's affinity is restored afterwards.
    """
    if not enabled or not hasattr(os, "sched_setaffinity"):
        yield None
        return
    before = os.sched_getaffinity(0)
    if len(before) < 2:
        yield None
        return
    core = max(before)
    os.sched_setaffinity(0, {core})
    try:
        yield core
    finally:
        os.sched_setaffinity(0, before)


def two_cores(enabled: bool = True) -> tuple[int | None, int | None]:
    """Cores for two processes that should not share one: the API server (the last core)
    and the projection worker (the first); (None, None) when not pinning."""
    if not enabled or not hasattr(os, "sched_getaffinity"):
        return None, None
    cores = sorted(os.sched_getaffinity(0))
    if len(cores) < 2:
        return None, None
    return cores[-1], cores[0]
