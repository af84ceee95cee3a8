"""Sources for rebuild helper processes that fail or hang, and an orphaned helper's parent.

A helper unpickles its `open` by reference, so these live in a module the helper can import
(this directory is on the path that `rebuild_helpers` hands down).

Run as ``python rebuild_support.py orphan``: starts a helper whose sources never open,
prints the helper's pid, and dies at once without stopping it.
"""

from __future__ import annotations

import os
import sys
import time
from contextlib import AbstractContextManager
from typing import Any

HANG_SECONDS = 60.0


def failing_sources() -> AbstractContextManager[Any]:
    raise RuntimeError("these sources never open")


def hanging_sources() -> AbstractContextManager[Any]:
    time.sleep(HANG_SECONDS)
    raise RuntimeError("still here after a minute")


def _orphan() -> None:
    from rebuild_support import hanging_sources  # by its module's name, not __main__'s

    from projections.rebuild import fill
    from projections.rebuild_helpers import Helpers, Started
    from projections.stock_levels import StockLevelsProjection

    started = Started()
    started.start(Helpers(2, hanging_sources), [StockLevelsProjection()], fill, ({}, 0, 10))
    print(started.running[0].pid, flush=True)
    os._exit(0)  # no stop(), no wait: the helper is left behind


if __name__ == "__main__" and sys.argv[1:] == ["orphan"]:
    _orphan()
