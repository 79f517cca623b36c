"""The circuit breaker's states, driven by a fake clock."""

from __future__ import annotations

import pytest

from services.platform.circuit import BreakerState, CircuitBreaker


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def circuit(clock: Clock) -> CircuitBreaker:
    return CircuitBreaker(failures=5, window_seconds=60, reset_seconds=30, clock=clock)


def fail(circuit: CircuitBreaker, times: int) -> None:
    for _ in range(times):
        circuit.record_failure()


def test_opens_after_five_failures_within_a_minute(clock, circuit):
    for _ in range(4):
        circuit.record_failure()
        clock.now += 10
    assert circuit.state is BreakerState.CLOSED and circuit.allow()
    circuit.record_failure()
    assert circuit.state is BreakerState.OPEN
    assert not circuit.allow()


def test_failures_older_than_the_window_do_not_count(clock, circuit):
    for _ in range(10):
        circuit.record_failure()
        clock.now += 16  # at most four failures in any 60 s
    assert circuit.state is BreakerState.CLOSED


def test_success_clears_earlier_failures(circuit):
    fail(circuit, 4)
    circuit.record_success()
    circuit.record_failure()
    assert circuit.state is BreakerState.CLOSED


def test_half_open_lets_one_probe_through_and_its_success_closes(clock, circuit):
    fail(circuit, 5)
    clock.now += 29
    assert not circuit.allow()
    clock.now += 1
    assert circuit.state is BreakerState.HALF_OPEN
    assert circuit.allow() and circuit.probing
    assert not circuit.allow()  # a second caller waits for the probe
    circuit.record_success()
    assert circuit.state is BreakerState.CLOSED and circuit.allow()


def test_a_failed_probe_opens_again_for_another_reset_period(clock, circuit):
    fail(circuit, 5)
    clock.now += 30
    assert circuit.allow()
    circuit.record_failure()
    assert circuit.state is BreakerState.OPEN and circuit.times_opened == 2
    clock.now += 29
    assert not circuit.allow()
    clock.now += 1
    assert circuit.allow()


def test_a_late_success_from_before_the_opening_does_not_close_it(circuit):
    fail(circuit, 5)
    circuit.record_success()
    assert circuit.state is BreakerState.OPEN
