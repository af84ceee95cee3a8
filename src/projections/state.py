"""Each projection's position and live generation, stored beside its rows.

The position is written in the same transaction as the rows it covers, so an event
is applied exactly once even across crashes: a transaction that dies takes both
its rows and its position with it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    Integer,
    MetaData,
    Table,
    Text,
    bindparam,
    select,
)

from projections.base import Projection

ENSURE_KEY = 0x6C65646765720001  # "ledger" + 1: the lock around creating read-model tables
METADATA = MetaData()
PROJECTION_STATE = Table(
    "projection_state",
    METADATA,
    Column("name", Text, primary_key=True),
    Column("generation", Integer, nullable=False),
    Column("position", BigInteger, nullable=False),
)


@dataclass(frozen=True)
class State:
    """Where a projection is: its live generation and the last position applied."""

    generation: int
    position: int


def ensure(connection: Connection, projections: Sequence[Projection]) -> None:
    """Create the state table, and generation 1 of any projection never seen before."""
    if connection.dialect.name == "postgresql":
        # API processes and workers may start together: one of them creates, the others wait
        # and then find everything there. (SQLite writers already take the file's lock.)
        connection.exec_driver_sql("SELECT pg_advisory_xact_lock(%(key)s)", {"key": ENSURE_KEY})
    METADATA.create_all(connection, checkfirst=True)
    known = read(connection, [projection.name for projection in projections])
    for projection in projections:
        if projection.name in known:
            continue
        create_tables(connection, projection, 1)
        connection.execute(PROJECTION_STATE.insert().values(
            name=projection.name, generation=1, position=0))


def create_tables(connection: Connection, projection: Projection, generation: int) -> None:
    tables = list(projection.tables(generation).values())
    tables[0].metadata.create_all(connection, tables=tables, checkfirst=True)


def drop_tables(connection: Connection, projection: Projection, generation: int) -> None:
    tables = list(projection.tables(generation).values())
    tables[0].metadata.drop_all(connection, tables=tables, checkfirst=True)


def read(connection: Connection, names: Sequence[str], *,
         for_update: bool = False) -> dict[str, State]:
    """The states of some projections (locked until commit on PostgreSQL when asked)."""
    locked = for_update and connection.dialect.name == "postgresql"
    return {
        row.name: State(row.generation, row.position)
        for row in connection.execute(_READ_LOCKED if locked else _READ,
                                      {"state_names": list(names)})
    }


# Built once: a runner reads (and locks) its states every page.
_READ = select(PROJECTION_STATE).where(
    PROJECTION_STATE.c.name.in_(bindparam("state_names", expanding=True)))
_READ_LOCKED = _READ.order_by(PROJECTION_STATE.c.name).with_for_update()


def reached(states: dict[str, State], names: Sequence[str], position: int) -> bool:
    """Every one of `names` has a state, at `position` or beyond."""
    return len(states) == len(names) and all(s.position >= position for s in states.values())


def read_all(connection: Connection) -> dict[str, State]:
    if not connection.dialect.has_table(connection, PROJECTION_STATE.name):
        return {}
    return {row.name: State(row.generation, row.position)
            for row in connection.execute(select(PROJECTION_STATE))}


def write(connection: Connection, name: str, state: State) -> None:
    write_all(connection, {name: state})


_WRITE = (PROJECTION_STATE.update()
          .where(PROJECTION_STATE.c.name == bindparam("state_name"))
          .values(generation=bindparam("state_generation"),
                  position=bindparam("state_position")))


def write_all(connection: Connection, states: dict[str, State]) -> None:
    """Several projections' states in one statement (one round trip on PostgreSQL, where
    psycopg pipelines an executemany): the runner moves every position once per page."""
    if states:
        connection.execute(_WRITE, [
            {"state_name": name, "state_generation": current.generation,
             "state_position": current.position}
            for name, current in sorted(states.items())])
