"""The integration tests' shared harness (`concurrency_support`) and its `apps` fixture.

With `--import-mode=importlib` pytest puts no test directory on sys.path.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from concurrency_support import Apps


@pytest.fixture(params=["shared", "per-thread"])
def apps(request: pytest.FixtureRequest, database_url: str) -> Iterator[Apps]:
    opened = Apps(database_url, per_thread=request.param == "per-thread")
    yield opened
    opened.close()
