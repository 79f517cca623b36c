"""The moving window itself, against a real Redis: what counts, what is refused, and when room
comes back."""

from __future__ import annotations

import asyncio
import contextlib
import uuid

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.platform.settings import RateLimit
from services.rate_limits import RateLimited, RateLimiter


def limiter(redis, count: int, seconds: int) -> RateLimiter:
    return RateLimiter(redis=redis, limits=lambda name: RateLimit(count, seconds))


async def test_the_window_counts_hits_refuses_the_one_over_and_frees_as_it_moves(redis):
    window = limiter(redis, 3, 1)
    # three operations fit, each leaving one less
    remaining = [(await window.hit("dashboard", "t", "u")).remaining for _ in range(3)]
    assert remaining == [2, 1, 0]
    # the fourth is refused, with the time until the oldest leaves the window
    with pytest.raises(RateLimited) as refused:
        await window.hit("dashboard", "t", "u")
    assert refused.value.quota.remaining == 0 and refused.value.retry_after == 1
    # and a refused operation is not counted: once the window has moved, all three fit again
    await asyncio.sleep(1.05)
    assert (await window.hit("dashboard", "t", "u")).remaining == 2


async def test_check_counts_nothing_and_identities_are_apart(redis):
    window = limiter(redis, 2, 60)
    for _ in range(5):
        await window.check("login", "t", "someone")
    await window.hit("login", "t", "someone")
    await window.hit("login", "t", "someone")
    with pytest.raises(RateLimited) as refused:
        await window.check("login", "t", "someone")
    assert 59 <= refused.value.retry_after <= 60
    assert (await window.hit("login", "t", "someone else")).remaining == 1


async def test_a_limit_that_is_off_counts_nothing(redis):
    off = RateLimiter(redis=redis, limits=lambda name: None)
    assert await off.hit("dashboard", "t", "u") is None
    assert await redis.keys("rate:*") == []


@given(limit=st.integers(1, 6), attempts=st.integers(0, 15), checks=st.integers(0, 3))
async def test_a_window_never_admits_more_than_its_limit(redis, limit, attempts, checks):
    window = limiter(redis, limit, 60)
    identity = ("t", uuid.uuid4().hex)
    admitted = 0
    for _ in range(attempts):
        for _ in range(checks):  # tests in between count nothing
            with contextlib.suppress(RateLimited):
                await window.check("dashboard", *identity)
        try:
            quota = await window.hit("dashboard", *identity)
        except RateLimited as refused:
            assert refused.quota.remaining == 0 and 1 <= refused.retry_after <= 60
        else:
            admitted += 1
            assert quota is not None and quota.remaining == limit - admitted
    assert admitted == min(attempts, limit)
