"""What the rate limits made of one request: the quota closest to its end; and how many of
its operations (a batch has several) there were, and were refused whole, by error code."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from services.rate_limits import Quota


@dataclass
class RateLimitReport:
    tightest: Quota | None = None
    operations: int = 0
    refused: Counter[str] = field(default_factory=Counter)

    def note(self, quota: Quota) -> None:
        if self.tightest is None or (quota.remaining, -quota.reset_after) < (
            self.tightest.remaining,
            -self.tightest.reset_after,
        ):
            self.tightest = quota
