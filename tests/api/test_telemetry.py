"""FastAPI's OpenTelemetry hooks: off unless LEDGER_TELEMETRY=on (they cost CPU per request)."""

from __future__ import annotations

import pytest

from api.app import create_app
from ledger.config import Settings


@pytest.mark.parametrize("value, on", [(None, False), ("off", False), ("on", True),
                                       ("true", True), ("no", False)])
def test_ledger_telemetry_turns_fastapis_hooks_on(value: str | None, on: bool) -> None:
    environ = {} if value is None else {"LEDGER_TELEMETRY": value}
    settings = Settings.from_environ(environ)
    assert settings.telemetry is on
    config = create_app(settings)._telemetry  # FastAPI keeps the config it was given
    assert (config["tracing"], config["metrics"], config["logs"]) == (on, on, on)
