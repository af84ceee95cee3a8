"""The stock state machine on PostgreSQL, with the pipelined group-commit writer (the
default there: `ledger.pipelined_commit`) and another process writing to the same store.

Every rule of `GroupCommitStockMachine` runs unchanged. The writer takes batches of two, so
that the 2–4 commands of `at_once` go out as a batch in flight and a batch decided beside
it, on the aggregates as the flight leaves them. Two more rules receive and dispatch through
another process (a ledger of its own, without group commit): the writer's next batch must
see what it stored, whether its cache follows the other's events, decides a batch again
once the flight's answer carries them, or finds a flight refused for them. The model
predicts every answer, and the invariants compare every aggregate either process saved with
the store.
"""

from __future__ import annotations

import contextlib
import sys
import uuid
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any
from uuid import UUID

import psycopg
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import precondition, rule, run_state_machine_as_test
from psycopg import sql

from ledger.application import Ledger, Staged
from ledger.config import store_environment
from ledger.group_commit import GroupCommitSettings, Pending
from ledger.numbers import ZERO

# Under `--import-mode=importlib` no test directory is on sys.path: import the machines from
# the modules beside this one.
sys.path.insert(0, str(Path(__file__).parent))

from test_stock_state_machine import (
    RecordingLedger,
    StockLedgerMachine,
    fractions,
    locations,
    quantities,
    skus,
    unit_costs,
)
from test_stock_state_machine_group_commit import GroupCommitStockMachine, commands

pytestmark = pytest.mark.postgres


class PipelinedRecordingLedger(Ledger):
    """A pipelined group-committing ledger that remembers each batch its writer took and
    every aggregate it stored (in step or pipelined), in `live`."""

    name = "ledger"

    def __init__(self, env: dict[str, str], live: dict[UUID, Any]) -> None:
        self.live = live
        self.batches: list[list[Pending]] = []
        super().__init__(env, group_commit=GroupCommitSettings(
            batch_max=2, window_seconds=0, pipelined=True))

    def execute_batch(self, batch: list[Pending], checked: int | None = None) -> None:
        self.batches.append(list(batch))
        super().execute_batch(batch, checked)

    def execute_pipelined(self, batch: list[Pending], pipeline: Any) -> None:
        self.batches.append(list(batch))
        super().execute_pipelined(batch, pipeline)

    def save(self, *objs: Any, **kwargs: Any) -> Any:
        recordings = super().save(*objs, **kwargs)
        self.live.update((obj.id, obj) for obj in objs)
        return recordings

    def recorded(self, staged: Staged, positions: list[int]) -> Any:
        recordings = super().recorded(staged, positions)
        self.live.update(staged.processing.aggregates)
        return recordings


class Elsewhere(RecordingLedger):
    """Another process on the same store, without group commit, sharing `live`."""

    name = "ledger"

    def __init__(self, env: dict[str, str], live: dict[UUID, Any]) -> None:
        super().__init__(env)
        self.live = live


class PipelinedStockMachine(GroupCommitStockMachine):
    def __init__(self, database_url: Callable[[str | None], str]) -> None:
        StockLedgerMachine.__init__(self)
        self.app.close()
        self.reader.close()
        self.admin = database_url(None)
        self.schema = f"t_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(self.admin, autocommit=True) as connection:
            connection.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(self.schema)))
        environment = store_environment(database_url(self.schema))
        live: dict[UUID, Any] = {}
        self.app = PipelinedRecordingLedger(environment, live)  # type: ignore[assignment]
        self.other = Elsewhere(environment, live)
        self.reader = Ledger(environment)
        self.meanwhile: Callable[[], None] | None = None

    def teardown(self) -> None:
        self.other.close()
        super().teardown()
        with contextlib.suppress(psycopg.Error), \
                psycopg.connect(self.admin, autocommit=True) as connection:
            connection.execute("SET lock_timeout = '10s'")
            connection.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(
                sql.Identifier(self.schema)))

    def decided_since(self, since: int) -> list[Pending]:
        """The commands the writer took since batch number `since`, two by two, in the
        order it decided them (a batch decided again in step is recorded again; the gate
        that held the writer is left out)."""
        batches: list[list[Pending]] = []
        for batch in self.app.batches[since:]:
            if any(pending.kind == "gate" for pending in batch):
                continue
            if not batches or batches[-1] != batch:
                batches.append(batch)
        assert all(len(batch) <= 2 for batch in batches)
        return [pending for batch in batches for pending in batch]

    def while_held(self) -> int:
        if self.meanwhile is None:
            return 0
        head = self.other.head_position()
        self.meanwhile()
        return self.other.head_position() - head

    def with_the_other(self, rule_body: Callable[[], None]) -> None:
        """Run one of the parent's rules through the other process."""
        app, self.app = self.app, self.other
        try:
            rule_body()
        finally:
            self.app = app

    @rule(specs=st.lists(commands, min_size=2, max_size=4), keyed=st.booleans(), sku=skus,
          location=locations, quantity=quantities, cost=unit_costs)
    def at_once_beside_another_writer(self, specs: list[tuple[Any, ...]], keyed: bool,
                                      sku: str, location: str, quantity: Decimal,
                                      cost: Decimal) -> None:
        """The other process receives after the commands were queued and before the
        writer decides them: its receipt is in the log before their first batch, which
        was decided on a cache that had not seen it. Where that batch looked up the bin,
        its save is refused and it is decided again, with the batch beside it; else the
        flight's answer carries the receipt and the batch beside it is checked against
        it."""
        self.meanwhile = lambda: self.with_the_other(
            lambda: self.receive(sku, location, quantity, cost, False))
        try:
            self.at_once(specs, keyed)
        finally:
            self.meanwhile = None

    @rule(sku=skus, location=locations, quantity=quantities, cost=unit_costs,
          keyed=st.booleans())
    def receive_elsewhere(self, sku: str, location: str, quantity: Decimal, cost: Decimal,
                          keyed: bool) -> None:
        self.with_the_other(lambda: self.receive(sku, location, quantity, cost, keyed))

    @precondition(lambda self: any(held > ZERO for held in self.on_hand.values()))
    @rule(data=st.data(), fraction=fractions, keyed=st.booleans())
    def dispatch_elsewhere(self, data: st.DataObject, fraction: Decimal, keyed: bool) -> None:
        self.with_the_other(lambda: self.dispatch(data, fraction, keyed))



@pytest.mark.postgres
def test_stock_ledger_state_machine_pipelined_with_another_writer(
        postgres_server: Any) -> None:
    run_state_machine_as_test(
        lambda: PipelinedStockMachine(postgres_server.database_url),
        settings=settings(max_examples=25, stateful_step_count=30, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow,
                                                 HealthCheck.filter_too_much]))
