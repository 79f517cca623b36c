"""What one response's cached reads were: hits, misses, stale serves, statistics' age."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from services.cache import Lookup, Source
from services.cached_reads import StatisticsFreshness, statistics_freshness


@dataclass
class FreshnessReport:
    """Filled by resolvers during one operation; the GraphQL edge turns it into response
    extensions and HTTP headers."""

    sources: Counter[Source] = field(default_factory=Counter)
    stale_serves: int = 0
    statistics: StatisticsFreshness | None = None

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

    @property
    def used(self) -> bool:
        return bool(self.sources)
