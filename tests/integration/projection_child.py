"""A projection worker process for the crash tests: every projection, pages of a given size.

Usage: ``python projection_child.py PAGE_SIZE`` with ``LEDGER_DATABASE_URL`` set (and
optionally ``LEDGER_READ_DATABASE_URL``). It builds what ``ledger project`` builds, but with a
small page size so that a catch-up takes many transactions, and runs until SIGTERM.
"""

from __future__ import annotations

import signal
import sys
import threading

from ledger.application import Ledger
from ledger.config import Settings, read_models_url, store_environment
from projections.runner import ProjectionRunner
from projections.service import ReadModels
from projections.waiting import Wakeup, idle_waiter

IDLE_SECONDS_MAX = 0.5


def main(argv: list[str]) -> int:
    page_size = int(argv[1])
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    settings = Settings.from_environ()
    with Ledger(store_environment(settings.database_url)) as ledger:
        read_models = ReadModels.open(read_models_url(settings))
        try:
            runner = ProjectionRunner(read_models.database, ledger.recorder, ledger.mapper,
                                      read_models.projections, page_size=page_size)
            runner.prepare()
            waiter, idle_seconds = idle_waiter(ledger.recorder, Wakeup())
            # A short idle wait, so that SIGTERM ends the process promptly.
            runner.run(stop, waiter.wait, min(idle_seconds, IDLE_SECONDS_MAX))
        finally:
            read_models.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
