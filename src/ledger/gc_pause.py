"""Pausing Python's cyclic garbage collector around bulk work; freezing what a server keeps.

An import or a rebuild makes millions of short-lived objects (rows, events, decoded
values) that reference counting frees at once, and keeps many long-lived ones (the folds'
rows, the id caches). The cyclic collector, triggered by allocation counts, keeps scanning
the long-lived ones for cycles that are not there: measured, 8 % of a 1,000,000-event
import and 15 % of a rebuild. Collection resumes afterwards.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def gc_paused() -> Iterator[None]:
    """Run the block with the cyclic collector off (as it was, afterwards)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def freeze_long_lived() -> None:
    """Move everything a long-running process built at start-up (modules, the app, the
    ledger and its pools) out of the cyclic collector's reach, for good.

    The collector's full collections scan every tracked object: in `ledger serve` under a
    write load that was ~130,000 objects and a 50–80 ms stop of every request in flight,
    every second or two (the tail of both the commands' and the stock queries' latency).
    Frozen objects are never scanned again (nor freed, which start-up objects never are).
    Only for a server's or a worker's process, once it has started: not in a library call.
    """
    gc.collect()
    gc.freeze()
