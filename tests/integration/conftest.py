"""The integration tests' shared harness (`concurrency_support`, `export_support`), its `apps`
fixture, and `cli` (the ledger command in this process).

With `--import-mode=importlib` pytest puts no test directory on sys.path.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from concurrency_support import Apps

from ledger.cli import main


@pytest.fixture(params=["shared", "per-thread"])
def apps(request: pytest.FixtureRequest, database_url: str) -> Iterator[Apps]:
    opened = Apps(database_url, per_thread=request.param == "per-thread")
    yield opened
    opened.close()


@pytest.fixture
def cli(monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> Callable[..., tuple[int, str]]:
    """The CLI's entry point in this process (where a subprocess adds nothing, and where a
    test can lower the import's constants): `cli(database_url, *arguments)` gives the exit
    status and the output; `read_url` sets LEDGER_READ_DATABASE_URL."""
    def run(database_url: str, *arguments: str, read_url: str | None = None) -> tuple[int, str]:
        capsys.readouterr()
        with monkeypatch.context() as patched:
            patched.setenv("LEDGER_DATABASE_URL", database_url)
            if read_url is None:
                patched.delenv("LEDGER_READ_DATABASE_URL", raising=False)
            else:
                patched.setenv("LEDGER_READ_DATABASE_URL", read_url)
            status = main(list(arguments))
        captured = capsys.readouterr()
        return status, captured.out + captured.err

    return run
