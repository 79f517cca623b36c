"""A circuit breaker: after repeated failures, stop calling a dependency for a while."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from enum import StrEnum


class BreakerState(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class CircuitBreaker:
    """Opens after ``failures`` failures within ``window_seconds``; half-opens ``reset_seconds``
    later, when exactly one caller may probe: its success closes the breaker, its failure opens
    it again.
    """

    def __init__(
        self,
        *,
        failures: int = 5,
        window_seconds: float = 60.0,
        reset_seconds: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._threshold = failures
        self._window = window_seconds
        self._reset = reset_seconds
        self._clock = clock
        self._failures: deque[float] = deque()
        self._opened_at: float | None = None
        self._probing = False
        self.times_opened = 0

    @property
    def state(self) -> BreakerState:
        if self._opened_at is None:
            return BreakerState.CLOSED
        if self._probing or self._clock() - self._opened_at >= self._reset:
            return BreakerState.HALF_OPEN
        return BreakerState.OPEN

    def allow(self) -> bool:
        """Whether to call the dependency now; in HALF_OPEN only the first caller is let through."""
        state = self.state
        if state is BreakerState.CLOSED:
            return True
        if state is BreakerState.HALF_OPEN and not self._probing:
            self._probing = True
            return True
        return False

    @property
    def probing(self) -> bool:
        """True between the half-open probe's ``allow()`` and its outcome."""
        return self._probing

    def record_success(self) -> None:
        if self._opened_at is not None and not self._probing:
            return  # a call that began before the breaker opened proves nothing
        self._opened_at = None
        self._probing = False
        self._failures.clear()

    def record_failure(self) -> None:
        now = self._clock()
        if self._probing:
            self._open(now)
            return
        if self._opened_at is not None:
            return
        self._failures.append(now)
        while self._failures and now - self._failures[0] > self._window:
            self._failures.popleft()
        if len(self._failures) >= self._threshold:
            self._open(now)

    def record_abandoned(self) -> None:
        """A call its own caller gave up on (cancelled): it says nothing of the dependency, so
        it counts as no failure; a half-open probe's turn goes to the next caller."""
        self._probing = False

    def _open(self, now: float) -> None:
        self._opened_at = now
        self._probing = False
        self._failures.clear()
        self.times_opened += 1
