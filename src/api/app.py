"""The FastAPI application factory: settings in, a wired app out; nothing at import time."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.telemetry import TelemetryConfig

from api import fast_commands, fast_stock, problems
from api.auth import KeyRing
from api.fast_path import FastPath
from api.requests import BodyLimit
from api.routers import (
    alerts,
    audit,
    documents,
    finance,
    health,
    parties,
    projections,
    purchase_orders,
    reference,
    sales_orders,
    stock,
)
from ledger.accounts import Chart
from ledger.application import Ledger, open_ledger
from ledger.config import (
    ConfigurationError,
    Settings,
    read_models_url,
)
from ledger.gc_pause import freeze_long_lived
from projections.service import EmbeddedRunner, ReadModels

NO_TELEMETRY: TelemetryConfig = {"tracing": False, "metrics": False, "logs": False}


def _start_embedded(settings: Settings, ledger: Ledger,
                    read_models: ReadModels) -> EmbeddedRunner | None:
    """Run the projections in this process unless LEDGER_PROJECTIONS=external."""
    if settings.projections == "external":
        return None
    if settings.projections != "embedded":
        raise ConfigurationError("LEDGER_PROJECTIONS is 'embedded' (default) or 'external'.")
    embedded = EmbeddedRunner(read_models.runner(ledger.recorder, ledger.mapper),
                              ledger.recorder)
    ledger.on_recorded.append(embedded.wakeup.wake)
    embedded.start()
    return embedded


def create_app(settings: Settings | None = None, *, server: bool = False) -> FastAPI:
    """Build the API for `settings` (from the environment when omitted). `server`: this
    process is `ledger serve`'s, and freezes what it built at start-up (gc_pause)."""
    settings = settings or Settings.from_environ()
    keys = KeyRing.parse(settings.api_keys)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        ledger = open_ledger(settings)
        read_models = ReadModels.open(read_models_url(settings))
        embedded = _start_embedded(settings, ledger, read_models)
        app.state.ledger = ledger
        app.state.read_models = read_models
        if server:
            freeze_long_lived()
        try:
            yield
        finally:
            if embedded is not None:
                embedded.stop()
            read_models.close()
            ledger.close()

    app = FastAPI(
        title="Inventory ledger",
        version="0.1.0",
        description="An event-sourced inventory ledger (进销存): every movement an immutable "
        "event. Send `Authorization: Bearer <key>`.",
        lifespan=lifespan,
        # FastAPI's OpenTelemetry hooks ask the OpenTelemetry API on every request whether a
        # provider is configured (about 50 µs each); off unless LEDGER_TELEMETRY=on.
        telemetry=None if settings.telemetry else NO_TELEMETRY,
    )
    app.state.settings = settings
    app.state.chart = Chart.parse(settings.account_codes)
    app.state.keys = keys
    problems.install(app)
    app.add_middleware(BodyLimit, limit=settings.request_body_bytes_max)
    # Outermost of ours: the ordinary stock document and stock query are answered before
    # BodyLimit and the routing; everything else is handed on to them (api.fast_path).
    app.add_middleware(FastPath, body_limit=settings.request_body_bytes_max,
                       routes={**fast_commands.ROUTES, **fast_stock.ROUTES})
    # Requests are matched against the routes in this order, one by one: the busiest routes
    # (stock documents, stock queries) come first. No two routers' paths overlap, so the
    # order changes nothing else (only the order of the OpenAPI document's paths).
    app.include_router(documents.router)
    app.include_router(stock.router)
    app.include_router(health.router)
    app.include_router(reference.router)
    app.include_router(parties.router)
    app.include_router(purchase_orders.router)
    app.include_router(sales_orders.router)
    app.include_router(alerts.router)
    app.include_router(projections.router)
    app.include_router(audit.router)
    app.include_router(finance.router)
    return app


def create_server_app() -> FastAPI:
    """`ledger serve --workers N`'s factory: each worker process's app, as a server's."""
    return create_app(server=True)
