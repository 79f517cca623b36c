"""Is this process's machine (or container) short of CPU or memory? Design property 47: above
the configured thresholds, non-critical work is deferred so that the essential reads and marks
keep their speed.

Usage is read from the cgroup (v2) when the container has limits, else from the machine
(psutil), and sampled at most every few seconds however often it is asked.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import psutil

from services.platform.errors import ErrorCode, ServiceError

SAMPLE_INTERVAL_SECONDS = 5.0
CGROUP = Path("/sys/fs/cgroup")


def memory_limit_bytes(cgroup: Path = CGROUP) -> int | None:
    """The cgroup's memory limit (v2, else v1) when it sets one below the machine's memory."""
    machine = psutil.virtual_memory().total
    for name in ("memory.max", "memory/memory.limit_in_bytes"):
        try:
            text = (cgroup / name).read_text().strip()
        except OSError:
            continue
        if text.isdigit() and 0 < int(text) < machine:
            return int(text)
    return None


class Busy(ServiceError):
    """Non-critical work refused while the process is short of CPU or memory."""

    code = ErrorCode.SERVICE_UNAVAILABLE


@dataclass(frozen=True, slots=True)
class Usage:
    """CPU (since the previous sample) and memory in use, in percent of what is available."""

    cpu_percent: float
    memory_percent: float


class SystemUsage:
    """Reads usage: of the cgroup's limits where set (a container), else of the machine."""

    def __init__(
        self, *, cgroup: Path = CGROUP, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._cgroup = cgroup
        self._clock = clock
        self._cpu_seen: tuple[float, float] | None = None  # (clock, usage seconds)
        psutil.cpu_percent()  # the next call measures from here

    def __call__(self) -> Usage:
        return Usage(cpu_percent=self._cpu(), memory_percent=self._memory())

    def _read(self, name: str) -> str | None:
        try:
            return (self._cgroup / name).read_text().strip()
        except OSError:
            return None

    def _cpu(self) -> float:
        quota = (self._read("cpu.max") or "max").split()
        stat = self._read("cpu.stat")
        if quota[0] == "max" or stat is None:
            return float(psutil.cpu_percent())
        cpus = int(quota[0]) / int(quota[1])
        used = int(dict(line.split() for line in stat.splitlines())["usage_usec"]) / 1e6
        now = self._clock()
        previous, self._cpu_seen = self._cpu_seen, (now, used)
        if previous is None or now <= previous[0]:
            return 0.0
        return 100.0 * (used - previous[1]) / ((now - previous[0]) * cpus)

    def _memory(self) -> float:
        limit = memory_limit_bytes(self._cgroup)
        current = self._read("memory.current")
        if limit is None or current is None:
            return float(psutil.virtual_memory().percent)
        return 100.0 * int(current) / limit


@dataclass(frozen=True, slots=True)
class Pressure:
    """The last sample and, when constrained, why (``cpu 93% > 80%``)."""

    usage: Usage
    reasons: tuple[str, ...]

    @property
    def constrained(self) -> bool:
        return bool(self.reasons)


class ResourceMonitor:
    """Says whether the process is constrained; samples ``sample`` at most every
    ``interval_seconds`` (asked per request, it costs a clock read)."""

    def __init__(
        self,
        *,
        cpu_percent: float,
        memory_percent: float,
        sample: Callable[[], Usage],
        interval_seconds: float = SAMPLE_INTERVAL_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._cpu_limit = cpu_percent
        self._memory_limit = memory_percent
        self._sample = sample
        self._interval = interval_seconds
        self._clock = clock
        self._last: tuple[float, Pressure] | None = None

    def pressure(self) -> Pressure:
        now = self._clock()
        if self._last is None or now - self._last[0] >= self._interval:
            usage = self._sample()
            reasons = []
            if usage.cpu_percent > self._cpu_limit:
                reasons.append(f"cpu {usage.cpu_percent:.0f}% > {self._cpu_limit:.0f}%")
            if usage.memory_percent > self._memory_limit:
                reasons.append(f"memory {usage.memory_percent:.0f}% > {self._memory_limit:.0f}%")
            self._last = (now, Pressure(usage=usage, reasons=tuple(reasons)))
        return self._last[1]

    @property
    def constrained(self) -> bool:
        return self.pressure().constrained
