"""What one operation read, noted while it runs, so that its answer can be cached.

An answer may be cached only when everything it was made of came through the tagged cache:
then the tag versions those reads saw decide, as they do for each read, whether it is still
true. The cache notes each read it serves (tags, the versions seen, how long the entry stays
fresh); the database notes any session opened outside a cached computation, which makes the
answer uncacheable, since no tag says when what it read changes. The recording lives in a
context variable: the operation's resolvers, and the tasks they start, see the same one.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass, field


@dataclass
class Recording:
    """The reads of one operation. ``versions`` maps each tag to the version every read of it
    saw; ``epoch`` is the cache epoch they saw; ``soft_expiry`` is when the first of them goes
    stale (seconds since the epoch, the cache's clock)."""

    versions: dict[str, str] = field(default_factory=dict)
    watch: set[str] = field(default_factory=set)
    epoch: str | None = None
    soft_expiry: float = math.inf
    lookups: int = 0
    limits: list[str] = field(default_factory=list)
    unrecorded: str | None = None  # why the answer may not be cached, when it may not

    def lookup(
        self,
        *,
        tags: tuple[str, ...],
        versions: str,
        watch: tuple[str, ...],
        soft_expiry: float,
        stale: bool,
    ) -> None:
        """A cached read: ``versions`` is the cache's "epoch,version,…" in ``tags``' order."""
        self.lookups += 1
        if stale:
            self.refuse("a stale entry was served")
            return
        epoch, *seen = versions.split(",")
        if self.epoch is None:
            self.epoch = epoch
        if epoch != self.epoch or len(seen) != len(tags):
            self.refuse("the cache epoch changed during the operation")
            return
        for tag, version in zip(tags, seen, strict=True):
            if self.versions.setdefault(tag, version) != version:
                self.refuse(f"{tag} changed during the operation")
        self.watch.update(watch)
        self.soft_expiry = min(self.soft_expiry, soft_expiry)

    def limit(self, name: str) -> None:
        """The operation counted once against the rate limit ``name``."""
        self.limits.append(name)

    def refuse(self, reason: str) -> None:
        if self.unrecorded is None:
            self.unrecorded = reason

    @property
    def storable(self) -> bool:
        """Every read came through the cache, agreeing on every tag, and there was one."""
        return self.unrecorded is None and self.lookups > 0 and self.epoch is not None

    def tag_versions(self, tags: tuple[str, ...]) -> str:
        """The versions string the cache would answer for ``tags`` now, if nothing changed."""
        return ",".join((self.epoch or "", *(self.versions[tag] for tag in tags)))


RECORDING: ContextVar[Recording | None] = ContextVar("rollcall_recording", default=None)


@contextlib.contextmanager
def recorded() -> Iterator[Recording]:
    """Record the reads of what runs in the block (and of the tasks it starts)."""
    running = Recording()
    token = RECORDING.set(running)
    try:
        yield running
    finally:
        RECORDING.reset(token)


def current() -> Recording | None:
    return RECORDING.get()


def unrecorded_read(what: str) -> None:
    """A read no tag covers (a database session outside a cached computation)."""
    recording = RECORDING.get()
    if recording is not None:
        recording.refuse(what)


def stop_recording() -> None:
    """This task computes for the cache: its reads are covered by the entry's own tags. Each
    task runs in a copy of its creator's context, so the creator keeps its recording."""
    RECORDING.set(None)
