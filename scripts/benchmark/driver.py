"""Run one `ledger` command in this (sub)process and report how long its work took.

    python -m benchmark.driver import FILE      (with LEDGER_DATABASE_URL set)

The command runs through `ledger.cli.main`, exactly as the `ledger` script runs it; only
the interpreter's start-up is left out of the time. The last line of stdout is
`BENCH-RESULT {json}`: the return code, the command's seconds and, for `rebuild`, the
seconds spent inside `projections.rebuild.rebuild` (the status table the command prints
afterwards computes a digest of every read model, which is not rebuilding).

BENCH_IMPORT_PAGE_SIZE, when set, overrides the events per insert statement of `ledger
import` (ledger.export.IMPORT_BATCH_EVENTS; PAGE_SIZE in older versions): the benchmark's
fallback when the stock size hangs.
"""

from __future__ import annotations

import json
import os
import sys
import time
from typing import Any


def main(argv: list[str]) -> int:
    timings: dict[str, float] = {}
    page_size = os.environ.get("BENCH_IMPORT_PAGE_SIZE")
    if page_size:
        from ledger import export

        name = "IMPORT_BATCH_EVENTS" if hasattr(export, "IMPORT_BATCH_EVENTS") else "PAGE_SIZE"
        setattr(export, name, int(page_size))

    from projections import rebuild as rebuild_module

    original = rebuild_module.rebuild

    def timed_rebuild(*args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            timings["rebuild_seconds"] = time.perf_counter() - started

    rebuild_module.rebuild = timed_rebuild  # type: ignore[assignment]

    from ledger import cli

    started = time.perf_counter()
    code = cli.main(argv)
    seconds = time.perf_counter() - started
    print("BENCH-RESULT " + json.dumps({"rc": code, "seconds": seconds, **timings}), flush=True)
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
