"""The stock state machine again, with group commit on (`GroupCommitSettings(window_seconds=0)`).

Every rule of `StockLedgerMachine` runs unchanged, one command at a time through the writer
thread. One more rule sends 2–4 receipts, dispatches and transfers from threads at once while
the writer is held, so that they are decided in one batch; the model then follows the batch
in the order the writer decided it, and predicts each command's answer from that order.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from uuid import UUID

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import rule

from ledger.application import CommandResult, Ledger
from ledger.commands import Dispatch, DispatchLine, Receipt, ReceiptLine, Transfer
from ledger.config import store_environment
from ledger.domain.command_record import CommandRecord
from ledger.domain.context import CommandMeta
from ledger.errors import InsufficientStock
from ledger.group_commit import GroupCommitSettings, Pending
from ledger.numbers import ZERO, money

# Under `--import-mode=importlib` no test directory is on sys.path: import the machine from
# the module beside this one.
sys.path.insert(0, str(Path(__file__).parent))

from test_stock_state_machine import (
    LOCATIONS,
    RecordingLedger,
    StockLedgerMachine,
    fractions,
    locations,
    quantities,
    skus,
    unit_costs,
)

WAIT_SECONDS_MAX = 30


class GroupCommitRecordingLedger(RecordingLedger):
    """The recording ledger with group commit on; it remembers each batch its writer took."""

    name = "ledger"

    def __init__(self, env: dict[str, str]) -> None:
        Ledger.__init__(self, env, group_commit=GroupCommitSettings(window_seconds=0))
        self.live: dict[UUID, Any] = {}
        self.batches: list[list[Pending]] = []

    def execute_batch(self, batch: list[Pending], checked: int | None = None) -> None:
        self.batches.append(list(batch))
        super().execute_batch(batch, checked)


commands = st.one_of(
    st.tuples(st.just("receive"), skus, locations, quantities, unit_costs),
    st.tuples(st.just("dispatch"), skus, locations, fractions),
    st.tuples(st.just("transfer"), skus, st.permutations(LOCATIONS), fractions),
)


class GroupCommitStockMachine(StockLedgerMachine):
    def __init__(self) -> None:
        super().__init__()
        self.app.close()
        url = f"sqlite:///{Path(self.directory.name, 'ledger.db').as_posix()}"
        self.app = GroupCommitRecordingLedger(store_environment(url))

    def command_of(self, spec: tuple[Any, ...]) -> tuple[str, Any]:
        if spec[0] == "receive":
            _, sku, location, quantity, cost = spec
            return "receive", Receipt(location=location,
                                      lines=(ReceiptLine(sku, quantity, cost),))
        if spec[0] == "dispatch":
            _, sku, location, fraction = spec
            quantity = self.part_of(sku, location, fraction)
            return "dispatch", Dispatch(location=location,
                                        lines=(DispatchLine(sku, quantity),))
        _, sku, (source, destination, _), fraction = spec
        quantity = self.part_of(sku, source, fraction)
        return "transfer", Transfer(from_location=source, to_location=destination,
                                    lines=(DispatchLine(sku, quantity),))

    def in_one_batch(self, calls: list[Callable[[], CommandResult]]) -> list[Pending]:
        """Queue each call from its own thread while the writer is held; the batch after."""
        committer = self.app.group_committer
        assert committer is not None
        entered, release = threading.Event(), threading.Event()

        def hold(_command: Any, _workspace: Any, _context: Any) -> dict[str, Any]:
            entered.set()
            assert release.wait(WAIT_SECONDS_MAX)
            return {"lines": []}

        committer.queue.put(Pending("gate", Receipt(location=LOCATIONS[0], lines=()),
                                    CommandMeta("gate"), hold, "gate"))
        assert entered.wait(WAIT_SECONDS_MAX)
        batches = len(self.app.batches)
        outcomes: dict[int, Any] = {}

        def call(number: int) -> None:
            try:
                outcomes[number] = calls[number]()
            except Exception as error:
                outcomes[number] = error

        # One thread at a time, the next once the previous one's command is queued: the
        # batch is then in the order of `calls`, so the model (and with it what Hypothesis
        # draws next) does not depend on how the threads were scheduled.
        threads = [threading.Thread(target=call, args=(number,))
                   for number in range(len(calls))]
        deadline = time.monotonic() + WAIT_SECONDS_MAX
        for queued, thread in enumerate(threads, start=1):
            thread.start()
            while committer.queue.qsize() < queued:
                assert time.monotonic() < deadline
                time.sleep(0.0005)
        self.appended_while_held = self.while_held()
        release.set()
        for thread in threads:
            thread.join(WAIT_SECONDS_MAX)
            assert not thread.is_alive()
        batch = self.decided_since(batches)
        assert len(batch) == len(calls)
        # Each caller got what the writer decided for its command.
        for pending in batch:
            mine = [outcome for outcome in outcomes.values()
                    if outcome is pending.result or outcome is pending.error]
            assert len(mine) == 1
        return batch

    def while_held(self) -> int:
        """What else happens once the commands are queued, before the writer takes them;
        how many events it appended (none here)."""
        return 0

    def decided_since(self, since: int) -> list[Pending]:
        """The commands of the one batch the writer took since batch number `since`."""
        [batch] = self.app.batches[since:]
        return batch

    @rule(specs=st.lists(commands, min_size=2, max_size=4), keyed=st.booleans())
    def at_once(self, specs: list[tuple[Any, ...]], keyed: bool) -> None:
        decided = [self.command_of(spec) for spec in specs]
        metas = [self.meta(keyed) for _ in decided]
        head = self.app.head_position()
        batch = self.in_one_batch([
            lambda method=method, command=command, meta=meta: getattr(self.app, method)(
                command, meta)
            for (method, command), meta in zip(decided, metas, strict=True)])
        assert [pending.command for pending in batch] == [command for _, command in decided]

        kinds = {"receipt": "receive", "dispatch": "dispatch", "transfer": "transfer"}
        appended = 0
        for pending in batch:
            method, command = kinds[pending.kind], pending.command
            line = command.lines[0]
            source = getattr(command, "location", None) or command.from_location
            if method == "receive":
                assert pending.error is None and pending.result is not None
                result_line = pending.result.lines[0]
                value_in = money(line.quantity * line.unit_cost)
                assert result_line["value"] == value_in
                self.total_quantity[line.sku] += line.quantity
                self.total_value[line.sku] += value_in
                opened = (line.sku, source) not in self.on_hand
                self.on_hand[line.sku, source] = self.held(line.sku, source) + line.quantity
                assert result_line["quantity_on_hand_after"] == self.held(line.sku, source)
                appended += 1 + opened
            elif self.held(line.sku, source) < line.quantity:
                # Refused for what the earlier commands of the batch left, alone.
                assert isinstance(pending.error, InsufficientStock), pending.error
                assert pending.error.available == self.held(line.sku, source)
                assert pending.error.requested == line.quantity
                continue
            else:
                assert pending.error is None and pending.result is not None
                result_line = pending.result.lines[0]
                self.on_hand[line.sku, source] -= line.quantity
                assert result_line["quantity_on_hand_after"] == self.held(line.sku, source)
                if method == "dispatch":
                    self.total_quantity[line.sku] -= line.quantity
                    self.total_value[line.sku] -= result_line["value"]
                    appended += 1
                else:
                    destination = command.to_location
                    opened = (line.sku, destination) not in self.on_hand
                    self.on_hand[line.sku, destination] = (
                        self.held(line.sku, destination) + line.quantity)
                    assert result_line["to_quantity_on_hand_after"] == self.held(
                        line.sku, destination)
                    appended += 2 + opened
            result = pending.result
            assert not result.replayed
            appended += pending.meta.idempotency_key is not None
            if pending.meta.idempotency_key is not None:
                self.keyed.append((method, command, pending.meta, result))
            # The caller's position is one of its own events.
            stored = self.app.stored_event(result.position)
            assert stored is not None
            event = self.app.mapper.to_domain_event(stored)
            owner = (event.result["document_id"] if isinstance(event, CommandRecord.Recorded)
                     else event.document_id)
            assert owner == result.document_id
        assert self.app.head_position() - head == appended + self.appended_while_held
        assert all(held >= ZERO for held in self.on_hand.values())


GroupCommitStockMachine.TestCase.settings = settings(
    max_examples=20,
    stateful_step_count=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
test_stock_ledger_state_machine_with_group_commit = GroupCommitStockMachine.TestCase
