"""The wait before stopped workers start again (jobs/worker.py RestartBackoff)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from jobs.worker import RestartBackoff

DELAYS = (1.0, 2.0, 4.0)


def test_each_stop_in_a_row_waits_longer_up_to_the_longest_wait():
    backoff = RestartBackoff(DELAYS)

    assert [backoff.after(0.5) for _ in range(5)] == [1.0, 2.0, 4.0, 4.0, 4.0]


def test_workers_that_ran_longer_than_the_longest_wait_start_from_the_first_wait_again():
    backoff = RestartBackoff(DELAYS)
    for _ in range(5):
        backoff.after(0.5)

    assert backoff.after(3600.0) == 1.0
    assert backoff.after(0.5) == 2.0


@given(st.lists(st.floats(min_value=0, max_value=10_000), min_size=1, max_size=30))
def test_a_wait_is_always_one_of_the_delays_and_a_long_run_always_gets_the_first(runs):
    backoff = RestartBackoff(DELAYS)
    for ran in runs:
        delay = backoff.after(ran)
        assert delay in DELAYS
        if ran > max(DELAYS):
            assert delay == DELAYS[0]
