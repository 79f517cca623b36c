"""What a request costs while the database is away, how soon the API answers once it is back,
and what sampling CPU and memory costs (see benchmarks/README.md)."""

from __future__ import annotations

import asyncio
import dataclasses
import time
import timeit

from benchmarks import harness
from benchmarks.harness import Report, Samples
from graph.app import create_app
from services.platform.resources import ResourceMonitor, SystemUsage
from services.platform.settings import Settings
from tests.proxy import Proxy, target_of, through

ME = "{ me { id role } }"


def say(report: Report, name: str, value: float, unit: str, spec: str = "8.2f") -> None:
    report.figure(f"{name} {unit}".strip(), value, f"{name:<44} {value:{spec}} {unit}".strip())


async def outage(settings: Settings, reset: int, n: int, report: Report) -> dict[str, Samples]:
    """The database up, gone (the breaker open) and back, through a proxy taken down and up."""
    assert settings.database_url is not None
    async with harness.database_sessions(settings, pool_max=2) as sessions:
        admin, _ = await harness.bulk_class(sessions, prefix="bench-resilience", students=5, days=2)
    proxy = Proxy(*target_of(settings.database_url))
    async with proxy.running() as port:
        url = through(settings.database_url, port)
        proxied = dataclasses.replace(settings, database_url=url, db_breaker_reset_seconds=reset)
        async with harness.in_process(create_app(proxied)) as graphql:
            me = harness.query_call(graphql, ME, token=harness.token_for(settings, admin))

            async def refused(index: int) -> tuple[float, str | None]:
                elapsed, error = await me(index)
                return elapsed, None if str(error).startswith("HTTP 503") else f"not 503: {error}"

            up = await harness.run_sequential(Samples(), me, warmup=0, iterations=n)
            proxy.down()
            first, error = await me(0)
            status = str(error).partition(":")[0]  # HTTP 503 and its code
            text = f"{'first request, database gone':<44} {first:8.2f} ms ({status})"
            report.figure("first request, database gone ms", first, text)
            ready = "/health/ready"  # it tells the breaker's state
            while (await graphql.client.get(ready)).json()["database"]["breaker"] != "open":
                await me(0)
            seen = proxy.connections
            broken = await harness.run_sequential(Samples(), refused, warmup=0, iterations=n)
            say(report, "connections tried while open", proxy.connections - seen, "", "")
            proxy.up()
            back, answered = time.perf_counter(), False
            while not answered:
                answered = (await me(0))[1] is None
                await asyncio.sleep(0 if answered else 0.05)
            recovered = (time.perf_counter() - back) * 1000
            say(report, f"database back -> first answer (reset {reset} s)", recovered, "ms")
    return {"me, database up": up, "me, breaker open (HTTP 503)": broken}


def sampling(report: Report) -> None:
    """One CPU and memory sample, and the check that reads the last one between samples."""
    usage = SystemUsage()
    say(report, "one CPU and memory sample", timeit.timeit(usage, number=100) / 100 * 1e6, "µs")
    monitor = ResourceMonitor(cpu_percent=80, memory_percent=85, sample=usage)
    monitor.pressure()
    check_us = timeit.timeit(monitor.pressure, number=100_000) / 100_000 * 1e6
    say(report, "one constrained check between samples", check_us, "µs", "8.3f")


def main() -> int:
    arguments = harness.parser("resilience", __doc__.splitlines()[0], strict=False)
    arguments.add_argument("--requests", type=int, default=200)
    arguments.add_argument("--reset", type=int, default=2, help="DB_BREAKER_RESET_SECONDS")
    args = arguments.parse_args()
    report = Report("resilience", as_json=args.json)
    with harness.scratch_database("resilience", redis_db=9, keep=args.keep) as db:
        # asyncio's own loop, not uvloop: the app runs on it too, as the recorded figures did
        runs = asyncio.run(outage(db.settings, args.reset, args.requests, report))
    header = ["request", "n", "p50 ms", "p95 ms", "max ms", "unexpected"]
    rows = [[name, len(s.latencies), s.p(50), s.p(95), s.max, s.errors] for name, s in runs.items()]
    report.table("requests", header, rows)
    report.say("")
    sampling(report)
    return report.finish(failed=any(s.errors for s in runs.values()))


if __name__ == "__main__":
    raise SystemExit(main())
