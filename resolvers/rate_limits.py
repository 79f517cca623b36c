"""What the rate limits made of one request: the quota closest to its end, and how many of
its operations (a batch has several) were refused whole."""

from __future__ import annotations

from dataclasses import dataclass

from services.rate_limits import Quota


@dataclass
class RateLimitReport:
    tightest: Quota | None = None
    operations: int = 0
    refused_operations: int = 0

    def note(self, quota: Quota) -> None:
        if self.tightest is None or (quota.remaining, -quota.reset_after) < (
            self.tightest.remaining,
            -self.tightest.reset_after,
        ):
            self.tightest = quota
