"""The FastAPI application factory: settings in, a wired app out; nothing at import time."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from api import problems
from api.auth import KeyRing
from api.routers import documents, health, reference
from ledger.application import Ledger
from ledger.config import Settings, store_environment


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the API for `settings` (from the environment when omitted)."""
    settings = settings or Settings.from_environ()
    keys = KeyRing.parse(settings.api_keys)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        ledger = Ledger(store_environment(settings.database_url),
                        attempts_max=settings.command_attempts_max)
        app.state.ledger = ledger
        try:
            yield
        finally:
            ledger.close()

    app = FastAPI(
        title="Inventory ledger",
        version="0.1.0",
        description="An event-sourced inventory ledger (进销存): every movement an immutable "
        "event. Send `Authorization: Bearer <key>`.",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.keys = keys
    problems.install(app)
    app.include_router(health.router)
    app.include_router(reference.router)
    app.include_router(documents.router)
    return app
