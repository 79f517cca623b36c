"""What access logs and metrics add to one request, and what each of their primitives costs
(see benchmarks/README.md)."""

from __future__ import annotations

import asyncio
import logging
import os
import timeit
from unittest import mock

from starlette.types import ASGIApp, Receive, Scope, Send

import graph.app
from benchmarks import harness
from benchmarks.harness import Samples
from services.platform.logs import ACCESS_LOGGER, JsonFormatter, RequestContextFilter
from services.platform.settings import Settings
from services.platform.telemetry import GRAPHQL_ERRORS, HTTP_REQUEST_DURATION

DASHBOARD = "query Dashboard($id: ID!) { studentDashboard(studentId: $id) { attendanceRate } }"
BLOCK = 200


class Passthrough:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.app(scope, receive, send)


def app(settings: Settings, *, observed: bool) -> ASGIApp:
    """The app as served, or ``bare``: no access log middleware, engine events or sampler."""
    if observed:
        return graph.app.create_app(settings)
    # A telemetry that starts nothing: its one method used, aclose, does nothing.
    nothing = mock.Mock(return_value=mock.AsyncMock())
    with mock.patch.multiple(graph.app, AccessLogMiddleware=Passthrough, Telemetry=nothing):
        return graph.app.create_app(settings)


def production_logging() -> None:
    """Access lines formatted as JSON, written where they cost a write and nothing else."""
    handler = logging.StreamHandler(open(os.devnull, "w"))  # noqa: SIM115
    handler.setFormatter(JsonFormatter())
    handler.addFilter(RequestContextFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO)


async def requests(settings: Settings, iterations: int, warmup: int) -> dict[str, Samples]:
    """The two apps in alternating blocks of ``BLOCK`` requests, so drift hits both alike."""
    async with harness.database_sessions(settings) as sessions:
        admin, student = await harness.bulk_class(
            sessions, prefix="bench-observability", students=30, days=10
        )
    token, variables = harness.token_for(settings, admin), {"id": str(student.id)}
    production_logging()
    samples = {"bare": Samples(), "observed": Samples()}
    async with (
        harness.in_process(app(settings, observed=False)) as bare,
        harness.in_process(app(settings, observed=True)) as observed,
    ):
        calls = {
            name: harness.query_call(graphql, DASHBOARD, variables, token)
            for name, graphql in (("bare", bare), ("observed", observed))
        }
        for name, call in calls.items():
            await harness.run_sequential(samples[name], call, warmup=warmup, iterations=0)
        for block in range(0, iterations, BLOCK):
            for name, call in calls.items():
                n = min(BLOCK, iterations - block)
                await harness.run_sequential(samples[name], call, warmup=0, iterations=n)
    return samples


def primitives(number: int) -> dict[str, float]:
    """Microseconds per call of each primitive a served request uses."""
    histogram = HTTP_REQUEST_DURATION.labels("benchmark", "2xx")
    record = logging.LogRecord(ACCESS_LOGGER, logging.INFO, __file__, 1, "POST /graphql", (), None)
    record.request = {}
    record.fields = {
        "requestId": "req_0123456789abcdef",
        "tenantId": "00000000-0000-0000-0000-000000000001",
        "userId": "00000000-0000-0000-0000-000000000002",
        "operations": ["Dashboard"],
        "method": "POST",
        "path": "/graphql",
        "status": 200,
        "latencyMs": 1.23,
    }
    formatter = JsonFormatter()
    calls = {
        "histogram observe (labels resolved)": lambda: histogram.observe(0.001),
        "labelled counter inc": lambda: GRAPHQL_ERRORS.labels("BENCHMARK").inc(),
        "access record as JSON": lambda: formatter.format(record),
    }
    return {name: timeit.timeit(call, number=number) / number * 1e6 for name, call in calls.items()}


def main() -> int:
    arguments = harness.parser("observability", __doc__.splitlines()[0], strict=False)
    arguments.add_argument("--iterations", type=int, default=2000)
    arguments.add_argument("--warmup", type=int, default=100)
    args = arguments.parse_args()
    report = harness.Report("observability", as_json=args.json)
    with harness.scratch_database("observability", redis_db=12, keep=args.keep) as db:
        # asyncio's own loop, not uvloop: the app runs on it too, as the recorded figures did
        samples = asyncio.run(requests(db.settings, args.iterations, args.warmup))
    report.say(
        f"studentDashboard (L1 hit), {args.iterations} sequential requests each, in-process:"
    )
    rows = [[name, s.mean, s.p(50), s.p(95), s.errors] for name, s in samples.items()]
    header = ["app", "mean ms", "p50 ms", "p95 ms", "errors"]
    report.table("requests", header, rows, formats=dict.fromkeys(header[1:4], "{:.3f}"))
    p50 = (samples["observed"].p(50) - samples["bare"].p(50)) * 1000
    mean = (samples["observed"].mean - samples["bare"].mean) * 1000
    report.figure("overhead p50 µs", p50)
    report.figure("overhead mean µs", mean, f"overhead  p50={p50:.0f} µs mean={mean:.0f} µs")
    number = 100_000
    report.say("", f"primitives, {number} calls each:")
    rows = [[name, cost] for name, cost in primitives(number).items()]
    report.table("primitives", ["primitive", "µs per call"], rows)
    return report.finish(failed=any(s.errors for s in samples.values()))


if __name__ == "__main__":
    raise SystemExit(main())
