"""Stock commands in random order keep the ledger's invariants, on a real SQLite file store.

Every rule is a command through `Ledger`; the machine keeps a plain model of the quantity
each bin should hold and of each SKU's total quantity and value. After every step it checks
what a user would notice: no bin below zero, FIFO layers that add up to the bin, an empty bin
worth exactly nothing, transfers that move quantity and value without creating or losing any,
and a second application on the same file that sees exactly what the writer saw.
"""

from __future__ import annotations

import tempfile
from decimal import ROUND_DOWN, Decimal
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from ledger.application import CommandResult, Ledger
from ledger.commands import (
    Count,
    CountLine,
    Dispatch,
    DispatchLine,
    Receipt,
    ReceiptLine,
    Transfer,
)
from ledger.config import store_environment
from ledger.domain.context import CommandMeta
from ledger.domain.identity import bin_id
from ledger.domain.item import ItemDetails
from ledger.domain.stock_bin import StockBin
from ledger.errors import InsufficientStock
from ledger.numbers import ZERO, money

ITEMS = {"FIFO-A": "fifo", "FIFO-B": "fifo", "AVG-A": "moving_average", "AVG-B": "moving_average"}
SKUS = tuple(ITEMS)
LOCATIONS = ("WH-1", "WH-2", "SHOP")
ACTOR = "state-machine"
QUANTITY_STEP = Decimal("0.001")

quantities = st.decimals(min_value=QUANTITY_STEP, max_value=Decimal("1000"), places=3)
counted_quantities = st.decimals(min_value=ZERO, max_value=Decimal("1000"), places=3)
unit_costs = st.decimals(min_value=ZERO, max_value=Decimal("10000"), places=6)
# Fractions of what a bin holds, so that dispatches and transfers mostly succeed.
fractions = st.decimals(min_value=Decimal("0.01"), max_value=Decimal("1"), places=2)
skus = st.sampled_from(SKUS)
locations = st.sampled_from(LOCATIONS)
location_pairs = st.permutations(LOCATIONS).map(lambda codes: (codes[0], codes[1]))


class RecordingLedger(Ledger):
    """The ledger, remembering every aggregate it saved: the live objects to compare with."""

    def __init__(self, env: dict[str, str]) -> None:
        super().__init__(env)
        self.live: dict[UUID, Any] = {}

    def save(self, *objs: Any, **kwargs: Any) -> Any:
        recordings = super().save(*objs, **kwargs)
        for obj in objs:
            self.live[obj.id] = obj
        return recordings


class StockLedgerMachine(RuleBasedStateMachine):
    """Receipts, dispatches, transfers and counts, valid and refused, against a simple model."""

    def __init__(self) -> None:
        super().__init__()
        self.directory = tempfile.TemporaryDirectory(prefix="ledger-property-")
        url = f"sqlite:///{Path(self.directory.name, 'ledger.db').as_posix()}"
        self.app = RecordingLedger(store_environment(url))
        self.reader = Ledger(store_environment(url))
        self.on_hand: dict[tuple[str, str], Decimal] = {}
        self.total_quantity = dict.fromkeys(SKUS, ZERO)
        self.total_value = dict.fromkeys(SKUS, ZERO)
        self.keyed: list[tuple[str, Any, CommandMeta, CommandResult]] = []
        self.key_number = 0

    def teardown(self) -> None:
        self.app.close()
        self.reader.close()
        self.directory.cleanup()

    # Helpers.

    def meta(self, keyed: bool) -> CommandMeta:
        if not keyed:
            return CommandMeta(actor=ACTOR)
        self.key_number += 1
        return CommandMeta(actor=ACTOR, idempotency_key=f"key-{self.key_number}")

    def held(self, sku: str, location: str) -> Decimal:
        return self.on_hand.get((sku, location), ZERO)

    def bin_value(self, sku: str, location: str) -> Decimal:
        stock_bin = self.app.stock_bin(sku, location)
        return ZERO if stock_bin is None else stock_bin.value

    def part_of(self, sku: str, location: str, fraction: Decimal) -> Decimal:
        part = (self.held(sku, location) * fraction).quantize(QUANTITY_STEP, rounding=ROUND_DOWN)
        return max(part, QUANTITY_STEP)

    def run(self, method: str, command: Any, meta: CommandMeta) -> CommandResult:
        result: CommandResult = getattr(self.app, method)(command, meta)
        assert not result.replayed
        if meta.idempotency_key is not None:
            self.keyed.append((method, command, meta, result))
        return result

    def refused(self, method: str, command: Any, requested: Decimal, sku: str,
                location: str) -> None:
        """The command is refused for want of stock, and nothing at all is appended."""
        head = self.app.head_position()
        values = {key: self.bin_value(*key) for key in self.on_hand}
        with pytest.raises(InsufficientStock) as refusal:
            getattr(self.app, method)(command, self.meta(keyed=True))
        assert (refusal.value.sku, refusal.value.location) == (sku, location)
        assert refusal.value.requested == requested
        assert refusal.value.available == self.held(sku, location)
        assert self.app.head_position() == head
        assert {key: self.bin_value(*key) for key in self.on_hand} == values

    # Set-up.

    @initialize()
    def register_reference_data(self) -> None:
        for sku, method in ITEMS.items():
            details = ItemDetails(name=f"Item {sku}", uom="ea", valuation_method=method)
            assert self.app.register_item(sku, details, CommandMeta(actor=ACTOR)).changed
        for code in LOCATIONS:
            assert self.app.register_location(code, f"Location {code}",
                                              CommandMeta(actor=ACTOR)).changed

    # Rules that succeed.

    @rule(sku=skus, location=locations, quantity=quantities, cost=unit_costs,
          keyed=st.booleans())
    def receive(self, sku: str, location: str, quantity: Decimal, cost: Decimal,
                keyed: bool) -> None:
        value_before = self.bin_value(sku, location)
        receipt = Receipt(location=location, lines=(ReceiptLine(sku, quantity, cost),))
        line = self.run("receive", receipt, self.meta(keyed)).lines[0]
        value_in = money(quantity * cost)
        assert line["value"] == value_in
        assert line["value_after"] == value_before + value_in
        self.on_hand[sku, location] = self.held(sku, location) + quantity
        self.total_quantity[sku] += quantity
        self.total_value[sku] += value_in
        assert line["quantity_on_hand_after"] == self.held(sku, location)

    @precondition(lambda self: any(held > ZERO for held in self.on_hand.values()))
    @rule(data=st.data(), fraction=fractions, keyed=st.booleans())
    def dispatch(self, data: st.DataObject, fraction: Decimal, keyed: bool) -> None:
        stocked = sorted(key for key, held in self.on_hand.items() if held > ZERO)
        sku, location = data.draw(st.sampled_from(stocked))
        quantity = self.part_of(sku, location, fraction)
        value_before = self.bin_value(sku, location)
        dispatch = Dispatch(location=location, lines=(DispatchLine(sku, quantity),))
        line = self.run("dispatch", dispatch, self.meta(keyed)).lines[0]
        assert ZERO <= line["value"] <= value_before
        assert line["value_after"] == value_before - line["value"]
        self.on_hand[sku, location] -= quantity
        self.total_quantity[sku] -= quantity
        self.total_value[sku] -= line["value"]
        assert line["quantity_on_hand_after"] == self.held(sku, location)
        if self.held(sku, location) == ZERO:
            assert line["value"] == value_before

    @precondition(lambda self: any(held > ZERO for held in self.on_hand.values()))
    @rule(data=st.data(), fraction=fractions, keyed=st.booleans())
    def transfer(self, data: st.DataObject, fraction: Decimal, keyed: bool) -> None:
        stocked = sorted(key for key, held in self.on_hand.items() if held > ZERO)
        sku, source = data.draw(st.sampled_from(stocked))
        destination = data.draw(st.sampled_from([code for code in LOCATIONS if code != source]))
        quantity = self.part_of(sku, source, fraction)
        source_value = self.bin_value(sku, source)
        destination_value = self.bin_value(sku, destination)
        transfer = Transfer(from_location=source, to_location=destination,
                            lines=(DispatchLine(sku, quantity),))
        line = self.run("transfer", transfer, self.meta(keyed)).lines[0]
        # A transfer carries exactly the value it took out to the other location.
        assert self.bin_value(sku, source) == source_value - line["value"]
        assert self.bin_value(sku, destination) == destination_value + line["value"]
        self.on_hand[sku, source] -= quantity
        self.on_hand[sku, destination] = self.held(sku, destination) + quantity
        assert line["quantity_on_hand_after"] == self.held(sku, source)
        assert line["to_quantity_on_hand_after"] == self.held(sku, destination)

    @rule(sku=skus, location=locations, counted=counted_quantities,
          cost=st.none() | unit_costs, keyed=st.booleans())
    def count(self, sku: str, location: str, counted: Decimal, cost: Decimal | None,
              keyed: bool) -> None:
        value_before = self.bin_value(sku, location)
        count = Count(location=location, reason="cycle count",
                      lines=(CountLine(sku, counted, cost),))
        line = self.run("count", count, self.meta(keyed)).lines[0]
        assert line["quantity"] == counted - self.held(sku, location)
        assert line["value_after"] == value_before + line["value"]
        if cost is not None:
            # A count with a unit cost revalues the whole bin at that cost.
            assert line["value_after"] == money(counted * cost)
        self.total_quantity[sku] += counted - self.held(sku, location)
        self.total_value[sku] += line["value"]
        self.on_hand[sku, location] = counted
        assert line["quantity_on_hand_after"] == counted

    @precondition(lambda self: bool(self.keyed))
    @rule(data=st.data())
    def repeat_with_same_key(self, data: st.DataObject) -> None:
        method, command, meta, original = data.draw(st.sampled_from(self.keyed))
        head = self.app.head_position()
        again: CommandResult = getattr(self.app, method)(command, meta)
        assert again.replayed
        assert (again.document_id, again.position, again.lines) == (
            original.document_id, original.position, original.lines)
        assert self.app.head_position() == head

    # Rules that must be refused.

    @rule(sku=skus, location=locations, extra=quantities)
    def dispatch_more_than_held(self, sku: str, location: str, extra: Decimal) -> None:
        requested = self.held(sku, location) + extra
        dispatch = Dispatch(location=location, lines=(DispatchLine(sku, requested),))
        self.refused("dispatch", dispatch, requested, sku, location)

    @rule(sku=skus, pair=location_pairs, extra=quantities)
    def transfer_more_than_held(self, sku: str, pair: tuple[str, str], extra: Decimal) -> None:
        source, destination = pair
        requested = self.held(sku, source) + extra
        transfer = Transfer(from_location=source, to_location=destination,
                            lines=(DispatchLine(sku, requested),))
        self.refused("transfer", transfer, requested, sku, source)

    @precondition(lambda self: any(held > ZERO for held in self.on_hand.values()))
    @rule(data=st.data(), extra=quantities)
    def dispatch_with_one_bad_line(self, data: st.DataObject, extra: Decimal) -> None:
        """Good lines first, then one too many: the whole document is refused."""
        stocked = sorted(key for key, held in self.on_hand.items() if held > ZERO)
        sku, location = data.draw(st.sampled_from(stocked))
        others = [other for other in SKUS if self.held(other, location) > ZERO and other != sku]
        lines = [DispatchLine(other, self.held(other, location)) for other in others]
        # The same SKU twice: the second line must see what the first one took.
        lines.append(DispatchLine(sku, self.held(sku, location)))
        lines.append(DispatchLine(sku, extra))
        dispatch = Dispatch(location=location, lines=tuple(lines))
        head = self.app.head_position()
        with pytest.raises(InsufficientStock) as refusal:
            self.app.dispatch(dispatch, self.meta(keyed=True))
        assert refusal.value.requested == extra
        assert refusal.value.available == ZERO
        assert self.app.head_position() == head

    # Invariants.

    @invariant()
    def bins_match_the_model_and_their_layers(self) -> None:
        for sku in SKUS:
            for location in LOCATIONS:
                if (sku, location) not in self.on_hand:
                    # Nothing, not even a refused command, opens a bin it did not fill.
                    assert self.app.stock_bin(sku, location) is None
        for (sku, location), expected in self.on_hand.items():
            stock_bin = self.app.stock_bin(sku, location)
            assert stock_bin is not None
            assert stock_bin.quantity_on_hand >= ZERO
            assert stock_bin.quantity_on_hand == expected
            assert stock_bin.value >= ZERO
            assert stock_bin.quantity_reserved == ZERO
            if stock_bin.quantity_on_hand == ZERO:
                assert stock_bin.value == ZERO
                assert not stock_bin.value.is_signed()
            layers = stock_bin.cost.layers
            if ITEMS[sku] == "fifo":
                assert stock_bin.value == sum((layer.value for layer in layers), ZERO)
                assert stock_bin.quantity_on_hand == sum((layer.quantity for layer in layers),
                                                         ZERO)
                assert all(layer.quantity > ZERO and layer.value >= ZERO for layer in layers)
            else:
                assert layers == ()

    @invariant()
    def totals_change_only_by_receipts_dispatches_and_counts(self) -> None:
        for sku in SKUS:
            bins = [self.app.stock_bin(sku, location) for location in LOCATIONS]
            held = [stock_bin for stock_bin in bins if stock_bin is not None]
            assert sum((b.quantity_on_hand for b in held), ZERO) == self.total_quantity[sku]
            assert sum((b.value for b in held), ZERO) == self.total_value[sku]

    @invariant()
    def a_second_application_sees_the_live_state(self) -> None:
        for aggregate_id, live in self.app.live.items():
            stored = self.reader.repository.get(aggregate_id)
            assert type(stored) is type(live)
            assert stored.version == live.version
            if isinstance(live, StockBin):
                assert stored.id == bin_id(live.sku, live.location)
                assert stored.cost == live.cost
                assert stored.quantity_reserved == live.quantity_reserved
                assert (stored.quantity_on_hand, stored.value) == (
                    live.quantity_on_hand, live.value)
                assert tuple(stored.cost.layers) == tuple(live.cost.layers)
        assert self.reader.head_position() == self.app.head_position()


StockLedgerMachine.TestCase.settings = settings(
    max_examples=40,
    stateful_step_count=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
test_stock_ledger_state_machine = StockLedgerMachine.TestCase
