"""What the rate limits made of one request: the quota closest to its end, and refusals."""

from __future__ import annotations

from dataclasses import dataclass

from services.rate_limits import Quota


@dataclass
class RateLimitReport:
    tightest: Quota | None = None
    refusals: int = 0
    # Operations of the request (a batch has several) that met a limit, and those refused whole.
    operations: int = 0
    refused_operations: int = 0

    def note(self, quota: Quota, *, refused: bool = False) -> None:
        if refused:
            self.refusals += 1
        if self.tightest is None or (quota.remaining, -quota.reset_after) < (
            self.tightest.remaining,
            -self.tightest.reset_after,
        ):
            self.tightest = quota
