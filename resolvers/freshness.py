"""What one response's cached reads were: hits, misses, stale serves, statistics' age."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from services.cached_reads import StatisticsFreshness, statistics_freshness
from services.platform.cache import Lookup, Source


class ResponseStatus(StrEnum):
    """What the response cache did with the operation's whole answer."""

    HIT = "hit"  # served from it: nothing ran
    STORED = "stored"  # ran, and kept for the next identical operation


@dataclass
class FreshnessReport:
    """Filled by resolvers during one operation; the GraphQL edge turns it into response
    extensions and HTTP headers."""

    sources: Counter[Source] = field(default_factory=Counter)
    stale_serves: int = 0
    statistics: StatisticsFreshness | None = None
    response: ResponseStatus | None = None
    # A response-cache hit: the cached reads its answer was made of, and its seconds to live.
    replayed_lookups: int = 0
    response_ttl: float | None = None

    def note(self, lookup: Lookup[Any]) -> None:
        self.sources[lookup.source] += 1
        self.stale_serves += lookup.stale

    def note_statistics(self, lookup: Lookup[Any], calculated_at: datetime, now: datetime) -> None:
        """Keep the least fresh statistics the response used (the pending marker is the first
        watched key of every statistics read; unknown when Redis was bypassed)."""
        self.note(lookup)
        pending = lookup.watched[0] if lookup.watched else None
        seen = statistics_freshness(calculated_at, pending, now)
        current = self.statistics
        if current is None or (seen.stale, seen.age_seconds) > (current.stale, current.age_seconds):
            self.statistics = seen

    def replay(
        self,
        *,
        lookups: int,
        statistics_calculated_at: datetime | None,
        pending: str | None,
        now: datetime,
        expires_in: float,
    ) -> None:
        """The operation was answered by the response cache: its reads count as hits, and its
        statistics are as fresh as they are now (their age, and marks pending since)."""
        self.response = ResponseStatus.HIT
        self.replayed_lookups = lookups
        self.response_ttl = expires_in
        if statistics_calculated_at is not None:
            self.statistics = statistics_freshness(statistics_calculated_at, pending, now)

    @property
    def lookups(self) -> int:
        """The cached reads the resolvers noted."""
        return sum(self.sources.values())

    @property
    def used(self) -> bool:
        return bool(self.sources) or self.response is ResponseStatus.HIT
