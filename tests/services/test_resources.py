"""The CPU and memory sampler and the monitor that says when the process is constrained."""

from __future__ import annotations

from services.platform.resources import ResourceMonitor, SystemUsage, Usage, memory_limit_bytes


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_the_monitor_samples_at_most_once_per_interval():
    # given a sampler that counts its calls
    clock, calls = Clock(), []

    def sample() -> Usage:
        calls.append(clock.now)
        return Usage(cpu_percent=10.0, memory_percent=20.0)

    monitor = ResourceMonitor(
        cpu_percent=80, memory_percent=85, sample=sample, interval_seconds=5, clock=clock
    )
    # when asked many times within the interval, then once after it
    for _ in range(100):
        assert not monitor.constrained
    clock.now += 5
    monitor.pressure()
    # then the machine was sampled twice
    assert calls == [100.0, 105.0]


def test_each_threshold_crossed_is_a_reason():
    usage = Usage(cpu_percent=93.4, memory_percent=91.0)
    monitor = ResourceMonitor(cpu_percent=80, memory_percent=85, sample=lambda: usage)
    pressure = monitor.pressure()
    assert pressure.constrained
    assert pressure.reasons == ("cpu 93% > 80%", "memory 91% > 85%")
    relaxed = ResourceMonitor(cpu_percent=95, memory_percent=95, sample=lambda: usage)
    assert not relaxed.constrained and relaxed.pressure().reasons == ()


def test_a_container_is_measured_against_its_cgroup_limits(tmp_path):
    # given a cgroup (v2) of 2 CPUs and 1 GiB
    (tmp_path / "cpu.max").write_text("200000 100000\n")
    (tmp_path / "cpu.stat").write_text("usage_usec 1000000\nuser_usec 800000\n")
    (tmp_path / "memory.max").write_text(f"{1 << 30}\n")
    (tmp_path / "memory.current").write_text(f"{(1 << 30) // 4}\n")
    clock = Clock()
    usage = SystemUsage(cgroup=tmp_path, clock=clock)
    assert usage().memory_percent == 25.0
    # when 3 CPU-seconds are used in the next 2 seconds
    clock.now += 2
    (tmp_path / "cpu.stat").write_text("usage_usec 4000000\nuser_usec 3000000\n")
    # then that is 75% of the 2 CPUs
    assert usage().cpu_percent == 75.0


def test_without_cgroup_limits_the_machine_is_measured(tmp_path):
    (tmp_path / "cpu.max").write_text("max 100000\n")
    (tmp_path / "memory.max").write_text("max\n")
    usage = SystemUsage(cgroup=tmp_path)()
    assert 0.0 <= usage.cpu_percent <= 100.0 and 0.0 < usage.memory_percent <= 100.0


def test_the_memory_limit_is_the_cgroups_when_below_the_machines(tmp_path):
    assert memory_limit_bytes(tmp_path) is None  # no cgroup files
    (tmp_path / "memory").mkdir()
    (tmp_path / "memory" / "memory.limit_in_bytes").write_text(f"{1 << 30}\n")
    assert memory_limit_bytes(tmp_path) == 1 << 30  # cgroup v1
    (tmp_path / "memory.max").write_text(f"{2 << 30}\n")
    assert memory_limit_bytes(tmp_path) == 2 << 30  # v2 first
    (tmp_path / "memory.max").write_text(f"{1 << 60}\n")
    (tmp_path / "memory" / "memory.limit_in_bytes").write_text("max\n")
    assert memory_limit_bytes(tmp_path) is None  # above the machine's: no limit
