"""A FIFO bin's layers column, written from the texts of the layers it still holds
(`projections.cost_layers.layer_texts`), is byte for byte what `dump_layers` writes, after
any run of receipts, FIFO takes, takes at a cost (returns to a supplier, from the middle)
and emptyings, with quantities equal in value written in more than one way ("5" and
"5.000": a text is reused only for the very same layer, never an equal one)."""

from __future__ import annotations

from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from ledger.costing import (
    CostState,
    Layer,
    apply_movement,
    everything,
    layer_at,
    take,
    take_at_cost,
)
from projections.cost_layers import dump_layers, layer_texts

COSTS = [Decimal("2.50"), Decimal("3"), Decimal("0.125")]

movements = st.lists(st.tuples(
    st.sampled_from(["receive", "receive_written_long", "take", "take_at_cost", "empty"]),
    st.integers(min_value=1, max_value=40), st.sampled_from(COSTS)), max_size=40)


def moved(state: CostState, kind: str, quantity: int,
          cost: Decimal) -> tuple[tuple[Layer, ...], tuple[Layer, ...]]:
    """What one movement removes and adds (nothing, where the bin holds too little)."""
    amount = Decimal(quantity)
    if kind == "receive":
        return (), (layer_at(amount, cost),)
    if kind == "receive_written_long":  # equal to the short form, written otherwise
        return (), (layer_at(amount.quantize(Decimal("0.001")), cost),)
    if kind == "empty":
        return (everything(state) if state.quantity > 0 else ()), ()
    if amount > state.quantity:
        return (), ()
    if kind == "take":
        return take(state, amount), ()
    return take_at_cost(state, amount, cost), ()


@settings(max_examples=300, deadline=None)
@given(st.integers(min_value=0, max_value=30), movements)
def test_the_column_from_kept_texts_equals_the_column_written_whole(
        opening: int, steps: list[tuple[str, int, Decimal]]) -> None:
    state = CostState(method="fifo")
    for n in range(opening):
        state = apply_movement(state, (), (layer_at(Decimal(n % 7 + 1), COSTS[n % 3]),))
    texts = layer_texts(state.layers)
    assert "[" + ",".join(texts) + "]" == dump_layers(state.layers)
    for kind, quantity, cost in steps:
        removed, added = moved(state, kind, quantity, cost)
        after = apply_movement(state, removed, added)
        texts = layer_texts(after.layers, (state.layers, texts))
        assert "[" + ",".join(texts) + "]" == dump_layers(after.layers)
        state = after


def test_a_bin_of_many_layers_reuses_the_texts_of_those_a_take_leaves() -> None:
    state = CostState(method="fifo")
    for _ in range(50):
        state = apply_movement(state, (), (layer_at(Decimal("5"), Decimal("2.50")),))
    texts = layer_texts(state.layers)
    after = apply_movement(state, take(state, Decimal("7")),
                           (layer_at(Decimal("1"), Decimal("3")),))

    again = layer_texts(after.layers, (state.layers, texts))

    kept = zip(again[1:49], texts[2:], strict=True)
    assert again[1:49] == texts[2:] and all(a is b for a, b in kept)
    assert again[0] == '["3","2.50","7.50"]' and again[-1] == '["1","3","3.00"]'


def test_a_layer_equal_to_one_held_before_but_written_otherwise_gets_its_own_text() -> None:
    short = Layer(Decimal("5"), Decimal("2.50"), Decimal("12.50"))
    last = Layer(Decimal("1"), Decimal("3"), Decimal("3.00"))
    long = Layer(Decimal("5.000"), Decimal("2.50"), Decimal("12.50"))
    assert long == short  # equal in value: only identity may pick a text to reuse
    before = (short, last)

    texts = layer_texts((long, last), (before, layer_texts(before)))

    assert texts == ('["5.000","2.50","12.50"]', '["1","3","3.00"]')
