"""Alert texts are for people: rates with one decimal, never shown higher than they are."""

from __future__ import annotations

from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from services.alerts import rate_for_people, threshold_for_people


@given(st.floats(min_value=0, max_value=100, allow_nan=False))
def test_a_rate_reads_with_at_most_one_decimal_and_never_above_itself(rate):
    text = rate_for_people(rate)
    shown = Decimal(text)
    assert len(text.partition(".")[2]) <= 1
    assert shown <= Decimal(str(rate)) < shown + Decimal("0.1")
    assert not text.endswith(".0")


def test_the_figures_that_used_to_read_badly():
    assert rate_for_people(88.50000000000001) == "88.5"
    assert rate_for_people(66.66666666666667) == "66.6"
    assert rate_for_people(79.96) == "79.9"  # below 80 %: never "80"
    assert rate_for_people(100.0) == "100"
    assert threshold_for_people(Decimal("85.50")) == "85.5"
    assert threshold_for_people(Decimal("75.00")) == "75"
    assert threshold_for_people(Decimal("85.55")) == "85.55"
