"""Fixtures for the HTTP tests: an app on a fresh SQLite file, served with its lifespan.

* ``client``: a ``TestClient`` (context manager, so the ledger opens and closes) for
  ``create_app(Settings(database_url=sqlite_url, api_keys=API_KEYS))``.
* ``api``: an ``api_support.Api`` over that client, on an empty ledger.
* ``seeded``: the same, with ``FIFO_SKU`` (fifo), ``AVERAGE_SKU`` (moving average) and the
  locations ``WAREHOUSE`` and ``STORE`` registered.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from ledger.config import Settings

# The test modules here import their helpers from `api_support`, beside this file. Under
# `--import-mode=importlib` pytest puts no test directory on sys.path, so this conftest (loaded
# before any test module of the directory) does it once.
sys.path.insert(0, str(Path(__file__).parent))

from api_support import API_KEYS, Api, seed


@pytest.fixture
def client(sqlite_url: str) -> Iterator[TestClient]:
    app = create_app(Settings(database_url=sqlite_url, api_keys=API_KEYS))
    with TestClient(app) as test_client:
        yield test_client


@pytest.fixture
def api(client: TestClient) -> Api:
    return Api(client)


@pytest.fixture
def seeded(api: Api) -> Api:
    return seed(api)
