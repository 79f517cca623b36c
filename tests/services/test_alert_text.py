"""Alert texts are for people: rates with one decimal, never read as the threshold they are under."""

from __future__ import annotations

from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from services.alerts import rate_for_people, threshold_for_people


@given(
    st.floats(min_value=0, max_value=100, allow_nan=False),
    st.decimals(min_value=1, max_value=100, places=2),
)
def test_a_rate_reads_with_one_decimal_and_never_crosses_its_threshold(rate, threshold):
    """Property: at most one decimal, within 0.1 of the truth, and a rate under the threshold
    never reads as the threshold or above."""
    text = rate_for_people(rate, below=threshold)
    shown = Decimal(text)
    exact = Decimal(str(rate))
    assert len(text.partition(".")[2]) <= 1 and not text.endswith(".0")
    assert abs(shown - exact) < Decimal("0.1")
    if exact < threshold:
        assert shown < threshold


def test_the_figures_that_used_to_read_badly():
    assert rate_for_people(88.50000000000001) == "88.5"
    assert rate_for_people(66.66666666666667) == "66.7"
    assert rate_for_people(76.19047619047619) == "76.2"
    assert rate_for_people(79.96, below=Decimal("80")) == "79.9"  # never "80%, below 80%"
    assert rate_for_people(79.96) == "80"
    assert rate_for_people(100.0) == "100"
    assert threshold_for_people(Decimal("85.50")) == "85.5"
    assert threshold_for_people(Decimal("75.00")) == "75"
    assert threshold_for_people(Decimal("85.55")) == "85.55"
