"""Scaled integers for read-model rows (`projections.encoding`): exact, whatever was seen before."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from projections import encoding
from projections.encoding import e2, e3, e6

SCALES = ((e2, 2), (e3, 3), (e6, 6))


@given(st.integers(min_value=-10**15, max_value=10**15), st.integers(min_value=0, max_value=6),
       st.integers(min_value=0, max_value=4))
def test_a_decimal_scales_to_the_exact_integer_every_time(
        units: int, places: int, padding: int) -> None:
    value = Decimal(units).scaleb(-places)
    padded = value.quantize(Decimal(1).scaleb(-(places + padding)))  # "5" and "5.000"
    for scale, digits in SCALES:
        if places > digits:
            continue
        expected = units * 10 ** (digits - places)
        assert scale(value) == expected
        assert scale(value) == expected  # found the second time
        if places + padding <= digits:
            assert scale(padded) == expected


def test_too_many_places_are_refused_every_time() -> None:
    for _ in range(2):
        with pytest.raises(AssertionError, match="more than 2 places"):
            e2(Decimal("1.005"))


def test_the_remembered_integers_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(encoding, "_SCALED_MAX", 8)
    monkeypatch.setattr(encoding, "_E3", {})
    for n in range(100):
        assert e3(Decimal(n) / 4) == n * 250
        assert len(encoding._E3) <= 8
