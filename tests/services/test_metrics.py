"""Seed properties on the pure arithmetic: rate, standing, trend, ranks and percentiles."""

from decimal import Decimal
from fractions import Fraction

from hypothesis import given
from hypothesis import strategies as st

from services.metrics import (
    AttendanceCounts,
    Standing,
    Thresholds,
    Trend,
    attendance_rate,
    competition_ranks,
    percentile,
    standing,
    trend,
)

counts = st.builds(
    lambda present, absent, sick, leave: AttendanceCounts(
        counted=present + absent + sick + leave,
        present=present,
        absent=absent,
        sick=sick,
        leave=leave,
    ),
    st.integers(0, 300),
    st.integers(0, 100),
    st.integers(0, 50),
    st.integers(0, 50),
)
thresholds = st.tuples(st.integers(0, 100), st.integers(0, 100), st.integers(0, 100)).map(
    lambda t: Thresholds(*(Decimal(v) for v in sorted(t)))
)


def test_rate_is_present_over_counted():
    assert attendance_rate(3, 4) == 75.0
    assert attendance_rate(0, 0) == 100.0


@given(counts, thresholds)
def test_standing_is_the_most_severe_rule_that_holds(c, limits):
    rate = Fraction(100) if c.counted == 0 else Fraction(c.present * 100, c.counted)
    result = standing(c, limits)
    if rate <= limits.mahroom:
        assert result is Standing.MAHROOM
    elif rate < limits.warning:
        assert result is Standing.WARNING
    elif rate < limits.tasdiq and c.sick + c.leave > 0:
        assert result is Standing.TASDIQ
    else:
        assert result is Standing.OK


def test_standing_boundaries_of_the_default_thresholds():
    # exactly 75 % is MAHROOM, exactly 80 % is not WARNING
    assert (
        standing(AttendanceCounts(counted=4, present=3, absent=1), Thresholds()) is Standing.MAHROOM
    )
    assert standing(AttendanceCounts(counted=5, present=4, absent=1), Thresholds()) is Standing.OK
    assert standing(AttendanceCounts(counted=5, present=4, sick=1), Thresholds()) is Standing.TASDIQ
    assert (
        standing(AttendanceCounts(counted=100, present=79, absent=21), Thresholds())
        is Standing.WARNING
    )


@given(st.integers(0, 100), st.integers(1, 100), st.integers(0, 100), st.integers(1, 100))
def test_trend_follows_the_two_point_band(rp, rc, pp, pc):
    rp, pp = min(rp, rc), min(pp, pc)
    change = Fraction(rp * 100, rc) - Fraction(pp * 100, pc)
    expected = Trend.IMPROVING if change > 2 else Trend.DECLINING if change < -2 else Trend.STABLE
    assert trend(rp, rc, pp, pc) is expected


def test_trend_without_data_is_stable():
    assert trend(0, 0, 5, 10) is Trend.STABLE
    assert trend(5, 10, 0, 0) is Trend.STABLE


@given(
    st.lists(st.sampled_from([100.0, 95.0, 90.0, 87.5, 75.0, 50.0, 0.0]), min_size=1, max_size=60)
)
def test_competition_ranks(rates):
    ranks = competition_ranks(rates)
    for rate, rank in zip(rates, ranks, strict=True):
        # rank = 1 + number of strictly better rates
        assert rank == 1 + sum(other > rate for other in rates)


@given(st.integers(1, 500).flatmap(lambda n: st.tuples(st.integers(1, n), st.just(n))))
def test_percentile_bounds(rank_total):
    rank, total = rank_total
    value = percentile(rank, total)
    assert 0.0 <= value <= 100.0
    assert (rank == 1) <= (value == 100.0)
