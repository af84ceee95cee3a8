"""A plain dispatch posts to Inventory adjustments unless its reason maps elsewhere."""

from __future__ import annotations

from decimal import Decimal

import pytest

from ledger import posting
from ledger.numbers import quantity
from unit.support import context, given, receive, when


def dispatched_for(reason: str | None) -> object:
    stock_bin = given("fifo", receive("10", "2.50"))
    [event] = when(stock_bin, lambda b: b.dispatch(quantity(Decimal("4")),
                                                    context(reason=reason), 1))
    return event


@pytest.mark.parametrize(("reason", "account"), [
    ("scrap", posting.INVENTORY_ADJUSTMENTS),
    (None, posting.INVENTORY_ADJUSTMENTS),
    ("Internal use", posting.INTERNAL_USE),
    ("  internal_use ", posting.INTERNAL_USE),
    ("内部领用", posting.INTERNAL_USE),
    ("SAMPLES", posting.SAMPLES),
    ("样品", posting.SAMPLES),
    ("sample for the fair", posting.INVENTORY_ADJUSTMENTS),
])
def test_the_reason_of_a_plain_dispatch_names_the_account_it_is_charged_to(
        reason: str | None, account: str) -> None:
    entry = posting.entry(dispatched_for(reason))

    # 4 × 2.50 = 10.00 out of inventory, charged to the account the reason names.
    assert [(p.account, str(p.debit), str(p.credit)) for p in entry.postings] == [
        (account, "10.00", "0.00"), (posting.INVENTORY, "0.00", "10.00")]
    assert entry.kind == "dispatch"
    assert entry.balanced
