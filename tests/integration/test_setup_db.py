"""`ledger setup-db`: a PostgreSQL event store the service can append to and never rewrite.

What an operator or auditor would notice: a service that cannot record events after the
lock-down, or one that can change, delete or truncate them, or switch the protection off.
Each test makes roles and a schema with unique names and drops them afterwards.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from urllib.parse import quote, urlsplit, urlunsplit
from uuid import uuid4

import psycopg
import pytest
from psycopg import errors, sql

from ledger.application import Ledger
from ledger.cli import main
from ledger.commands import Receipt, ReceiptLine
from ledger.config import Settings, read_models_url, store_environment
from ledger.domain.context import CommandMeta
from ledger.domain.item import ItemDetails
from ledger.setup_db import Roles, setup_database
from projections.service import ReadModels

D = Decimal
OPERATOR = CommandMeta(actor="operator")
CLI_SECONDS = 120
PASSWORD = "service-secret"


@dataclass(frozen=True)
class Deployment:
    """A locked-down store: who owns it, who runs the service, and how each connects."""

    schema: str
    owner: str
    service: str
    admin_url: str  # postgresql://admin@host/db?schema=NAME
    service_url: str  # postgresql://service:password@host/db?schema=NAME

    @property
    def table(self) -> sql.Composed:
        return sql.SQL("{}.ledger_events").format(sql.Identifier(self.schema))


def _plain(url: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))


def _as_user(url: str, user: str, password: str) -> str:
    parts = urlsplit(url)
    host = parts.hostname or "127.0.0.1"
    port = f":{parts.port}" if parts.port else ""
    return urlunsplit((parts.scheme, f"{quote(user)}:{quote(password)}@{host}{port}",
                       parts.path, parts.query, ""))


@pytest.fixture
def names(postgres_url: str) -> Iterator[Deployment]:
    """Unique role and schema names (nothing created yet); everything dropped after the test."""
    suffix = uuid4().hex[:12]
    schema, owner, service = f"locked_{suffix}", f"owner_{suffix}", f"service_{suffix}"
    admin_url = f"{_plain(postgres_url)}?schema={schema}"
    yield Deployment(schema, owner, service, admin_url,
                     _as_user(admin_url, service, PASSWORD))
    with psycopg.connect(_plain(postgres_url), autocommit=True) as connection:
        connection.execute("SET lock_timeout = '10s'")
        connection.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(
            sql.Identifier(schema)))
        for role in (service, owner):
            exists = connection.execute("SELECT 1 FROM pg_roles WHERE rolname = %s",
                                        (role,)).fetchone()
            if exists:
                connection.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(role)))
                connection.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))


@pytest.fixture
def deployment(names: Deployment) -> Deployment:
    """The store set up by an administrator, as `ledger setup-db` does."""
    assert setup_database(names.admin_url,
                          Roles(names.owner, names.service, PASSWORD)) == names.schema
    return names


def record_as_service(deployment: Deployment) -> int:
    """What the service does all day: record reference data and movements; returns the head."""
    environment = store_environment(deployment.service_url, create_tables=False)
    with Ledger(environment) as ledger:
        ledger.register_item("FIFO-1", ItemDetails("Bolt", "each", "fifo"), OPERATOR)
        ledger.register_location("WH-1", "Main warehouse", OPERATOR)
        return ledger.receive(Receipt(location="WH-1", lines=(
            ReceiptLine("FIFO-1", D("10"), D("2.50")),)), OPERATOR).position


def events(deployment: Deployment) -> list[tuple[object, ...]]:
    with psycopg.connect(_plain(deployment.admin_url)) as connection:
        return connection.execute(sql.SQL(
            "SELECT notification_id, originator_id, originator_version, topic, state FROM {} "
            "ORDER BY notification_id").format(deployment.table)).fetchall()


def refused(url: str, statement: sql.Composed) -> psycopg.Error:
    """Run `statement` on its own connection; the error it must raise."""
    with (psycopg.connect(_plain(url), autocommit=True) as connection,
          pytest.raises(psycopg.Error) as caught):
        connection.execute(statement)
    return caught.value


def rewrites(deployment: Deployment) -> dict[str, sql.Composed]:
    table = deployment.table
    return {
        "update": sql.SQL("UPDATE {} SET state = state || '\\x20'::bytea "
                          "WHERE notification_id = 1").format(table),
        "delete": sql.SQL("DELETE FROM {} WHERE notification_id = 1").format(table),
        "truncate": sql.SQL("TRUNCATE {}").format(table),
    }


def test_setup_db_through_the_cli_then_the_service_records_events(names: Deployment) -> None:
    environment = {key: value for key, value in os.environ.items()
                   if not key.startswith("LEDGER_")}
    environment["LEDGER_DATABASE_URL"] = names.admin_url

    done = subprocess.run(
        [sys.executable, "-m", "ledger.cli", "setup-db", "--owner", names.owner,
         "--service", names.service, "--service-password", PASSWORD],
        env=environment, capture_output=True, text=True, timeout=CLI_SECONDS, check=False)

    assert done.returncode == 0, done.stdout + done.stderr
    assert f"schema {names.schema}" in done.stdout
    head = record_as_service(names)
    assert [row[0] for row in events(names)] == list(range(1, head + 1))
    with psycopg.connect(_plain(names.admin_url)) as connection:
        owner = connection.execute(
            "SELECT tableowner FROM pg_tables WHERE schemaname = %s AND tablename = "
            "'ledger_events'", (names.schema,)).fetchone()
    assert owner == (names.owner,)


@pytest.mark.parametrize("rewrite", ["update", "delete", "truncate"])
def test_the_service_cannot_rewrite_events(deployment: Deployment, rewrite: str) -> None:
    record_as_service(deployment)
    before = events(deployment)

    error = refused(deployment.service_url, rewrites(deployment)[rewrite])

    assert isinstance(error, errors.InsufficientPrivilege), error
    assert events(deployment) == before


@pytest.mark.parametrize("rewrite", ["update", "delete", "truncate"])
def test_even_the_administrator_is_refused_by_the_trigger(deployment: Deployment,
                                                          rewrite: str) -> None:
    record_as_service(deployment)
    before = events(deployment)

    error = refused(deployment.admin_url, rewrites(deployment)[rewrite])

    assert "ledger events are immutable" in str(error)
    assert events(deployment) == before


def test_the_service_cannot_switch_the_protection_off(deployment: Deployment) -> None:
    record_as_service(deployment)
    before = events(deployment)
    table, schema = deployment.table, sql.Identifier(deployment.schema)
    attempts = [
        sql.SQL("ALTER TABLE {} DISABLE TRIGGER ALL").format(table),
        sql.SQL("DROP TRIGGER ledger_events_immutable_rows ON {}").format(table),
        sql.SQL("CREATE OR REPLACE FUNCTION {}.ledger_events_refuse_change() RETURNS trigger "
                "LANGUAGE plpgsql AS $$BEGIN RETURN NEW; END$$").format(schema),
        sql.SQL("ALTER TABLE {} OWNER TO {}").format(table,
                                                     sql.Identifier(deployment.service)),
        sql.SQL("DROP TABLE {}").format(table),
    ]

    for attempt in attempts:
        error = refused(deployment.service_url, attempt)
        assert isinstance(error, errors.InsufficientPrivilege), (attempt, error)

    assert events(deployment) == before
    error = refused(deployment.service_url, rewrites(deployment)["delete"])
    assert isinstance(error, errors.InsufficientPrivilege), error


def test_the_service_runs_its_read_models_and_verifies_the_chain(
        deployment: Deployment, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    head = record_as_service(deployment)
    settings = Settings(database_url=deployment.service_url, create_tables=False)
    with Ledger(store_environment(deployment.service_url, create_tables=False)) as ledger:
        read_models = ReadModels.open(read_models_url(settings))
        try:
            read_models.runner(ledger.recorder, ledger.mapper).catch_up()
            positions = {status.position for status in read_models.status()}
        finally:
            read_models.close()
    assert positions == {head}
    monkeypatch.setenv("LEDGER_DATABASE_URL", deployment.service_url)
    monkeypatch.setenv("LEDGER_CREATE_TABLES", "false")
    monkeypatch.delenv("LEDGER_READ_DATABASE_URL", raising=False)

    status = main(["verify"])

    output = capsys.readouterr().out
    assert status == 0, output
    assert f"events checked: {head}" in output


def test_setting_up_again_keeps_the_events_and_the_lock_down(deployment: Deployment) -> None:
    record_as_service(deployment)
    before = events(deployment)

    setup_database(deployment.admin_url,
                   Roles(deployment.owner, deployment.service, PASSWORD))

    assert events(deployment) == before
    for rewrite in ("update", "delete", "truncate"):
        error = refused(deployment.service_url, rewrites(deployment)[rewrite])
        assert isinstance(error, errors.InsufficientPrivilege), (rewrite, error)
    assert record_as_service(deployment) > before[-1][0]  # type: ignore[operator]


def test_setup_db_is_for_postgresql_only(sqlite_url: str, monkeypatch: pytest.MonkeyPatch,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("LEDGER_DATABASE_URL", sqlite_url)

    status = main(["setup-db", "--owner", "nobody_owner", "--service", "nobody_service"])

    assert status == 2
    assert "PostgreSQL" in capsys.readouterr().err
