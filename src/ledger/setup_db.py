"""`ledger setup-db`: a PostgreSQL event store that the service cannot rewrite.

Run once as an administrator. It creates an owner role (no login) that owns the
schema and the event tables, and a service role the API and workers log in as.
The service may SELECT and INSERT events; it may not DELETE or TRUNCATE them, and
a trigger owned by the owner refuses every UPDATE, DELETE and TRUNCATE, whoever
asks. The service also holds UPDATE on the event table for one reason only: the
event store serialises writers with `LOCK TABLE … IN EXCLUSIVE MODE` (which keeps
commit order equal to log order), and PostgreSQL grants that lock mode only to
roles with UPDATE, DELETE or TRUNCATE. The trigger makes that UPDATE unusable.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import parse_qs, urlsplit

import psycopg
from psycopg import sql

from ledger.application import Ledger
from ledger.config import ConfigurationError, store_environment

EVENT_TABLES = ("ledger_events", "ledger_snapshots")


@dataclass(frozen=True)
class Roles:
    owner: str
    service: str
    service_password: str | None = None


def setup_database(admin_url: str, roles: Roles) -> str:
    """Create roles, schema and the locked-down event store; returns the schema name."""
    parts = urlsplit(admin_url)
    if parts.scheme not in ("postgresql", "postgres"):
        raise ConfigurationError("setup-db is for PostgreSQL: postgresql://admin@host/db")
    schema = parse_qs(parts.query).get("schema", ["ledger"])[0]
    store_url = f"{admin_url.split('?', 1)[0]}?schema={schema}"
    with psycopg.connect(admin_url.split("?", 1)[0], autocommit=True) as connection:
        _create_roles(connection, roles)
        connection.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {} AUTHORIZATION {}").format(
            sql.Identifier(schema), sql.Identifier(roles.owner)))
        with Ledger(store_environment(store_url)):
            pass  # the library creates its tables (as the administrator)
        for table in _existing(connection, schema):
            _lock_down(connection, schema, table, roles)
        connection.execute(sql.SQL("GRANT USAGE, CREATE ON SCHEMA {} TO {}").format(
            sql.Identifier(schema), sql.Identifier(roles.service)))
    return schema


def _create_roles(connection: psycopg.Connection[tuple[object, ...]], roles: Roles) -> None:
    for role, login in ((roles.owner, False), (roles.service, True)):
        exists = connection.execute("SELECT 1 FROM pg_roles WHERE rolname = %s",
                                    (role,)).fetchone()
        if exists:
            continue
        statement = sql.SQL("CREATE ROLE {} " + ("LOGIN" if login else "NOLOGIN")).format(
            sql.Identifier(role))
        if login and roles.service_password:
            statement = statement + sql.SQL(" PASSWORD {}").format(
                sql.Literal(roles.service_password))
        connection.execute(statement)


def _existing(connection: psycopg.Connection[tuple[object, ...]], schema: str) -> list[str]:
    rows = connection.execute(
        "SELECT tablename FROM pg_tables WHERE schemaname = %s AND tablename = ANY(%s)",
        (schema, list(EVENT_TABLES))).fetchall()
    return [str(row[0]) for row in rows]


def _lock_down(connection: psycopg.Connection[tuple[object, ...]], schema: str, table: str,
               roles: Roles) -> None:
    names = {"schema": sql.Identifier(schema), "table": sql.Identifier(table),
             "owner": sql.Identifier(roles.owner), "service": sql.Identifier(roles.service),
             "refuse": sql.Identifier(f"{table}_refuse_change"),
             "row_trigger": sql.Identifier(f"{table}_immutable_rows"),
             "truncate_trigger": sql.Identifier(f"{table}_immutable_truncate")}
    for statement in (
        "ALTER TABLE {schema}.{table} OWNER TO {owner}",
        "REVOKE ALL ON {schema}.{table} FROM PUBLIC",
        "GRANT SELECT, INSERT, UPDATE ON {schema}.{table} TO {service}",
        "CREATE OR REPLACE FUNCTION {schema}.{refuse}() RETURNS trigger LANGUAGE plpgsql AS "
        "$$BEGIN RAISE EXCEPTION 'ledger events are immutable: % refused on %', TG_OP, "
        "TG_TABLE_NAME USING ERRCODE = 'insufficient_privilege'; END$$",
        "ALTER FUNCTION {schema}.{refuse}() OWNER TO {owner}",
        "DROP TRIGGER IF EXISTS {row_trigger} ON {schema}.{table}",
        "CREATE TRIGGER {row_trigger} BEFORE UPDATE OR DELETE ON {schema}.{table} "
        "FOR EACH ROW EXECUTE FUNCTION {schema}.{refuse}()",
        "DROP TRIGGER IF EXISTS {truncate_trigger} ON {schema}.{table}",
        "CREATE TRIGGER {truncate_trigger} BEFORE TRUNCATE ON {schema}.{table} "
        "FOR EACH STATEMENT EXECUTE FUNCTION {schema}.{refuse}()",
    ):
        connection.execute(sql.SQL(statement).format(**names))
    numbered = connection.execute(
        "SELECT 1 FROM information_schema.columns WHERE table_schema = %s AND table_name = %s "
        "AND column_name = 'notification_id'", (schema, table)).fetchall()
    for sequence in connection.execute(
            "SELECT pg_get_serial_sequence(%s, 'notification_id')",
            (f"{schema}.{table}",)).fetchall() if numbered else ():
        if sequence[0]:
            connection.execute(sql.SQL("GRANT USAGE, SELECT ON SEQUENCE {} TO {}").format(
                sql.SQL(str(sequence[0])), names["service"]))
