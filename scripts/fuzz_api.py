"""The long fuzz run: documents drawn from the schema (tests/fuzzing.py) sent to a real
``rollcall serve`` by every kind of caller, counted by what came back; then hostile bodies
(20 MiB of JSON, a padded document), timed, with the server's memory before and after."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Sequence
from typing import Any

import httpx
import hypothesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from benchmarks import harness
from services.seed import DEMO_SLUG
from tests.fuzzing import failure, operations

ACCOUNTS = {
    "admin": "admin@demo.school",
    "teacher": "teacher@demo.school",
    "student": "student1@demo.school",
}
MIB = 1024 * 1024


def fuzz(
    base_url: str, tokens: dict[str, str | None], examples: int, seed: int
) -> tuple[Counter[str], list[str]]:
    """``examples`` documents, each from a random caller: outcomes counted by error code, and
    each failure (the problem, then the document)."""
    outcomes: Counter[str] = Counter()
    failures: list[str] = []

    @hypothesis.seed(seed)
    @settings(
        max_examples=examples,
        deadline=None,
        database=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(document=operations(), caller=st.sampled_from(sorted(tokens)))
    def send(document: str, caller: str) -> None:
        token = tokens[caller]
        headers = {"authorization": f"Bearer {token}"} if token else {}
        response = http.post("/graphql", json={"query": document}, headers=headers)
        body = response.json()
        answers = body if isinstance(body, list) else [body]
        codes = {
            (error.get("extensions") or {}).get("code", "?")
            for answer in answers
            for error in answer.get("errors") or ()
        }
        outcomes[f"HTTP {response.status_code}"] += 1
        outcomes.update(codes or {"no error"})
        if (problem := failure(response.status_code, body)) is not None:
            failures.append(f"{problem}\n{document}")

    with httpx.Client(base_url=base_url, timeout=30) as http:
        send()
    return outcomes, failures


async def hostile_bodies(http: httpx.AsyncClient, pid: int, report: harness.Report) -> None:
    """A 20 MiB JSON body and a 1 MiB padded document: their answers, times and what the
    server's memory did."""
    body = b'{"query":"{ __typename }","variables":{"pad":"' + b"x" * (20 * MIB) + b'"}}'
    requests: dict[str, dict[str, Any]] = {
        "20 MiB JSON body": {"content": body, "headers": {"content-type": "application/json"}},
        "1 MiB padded document": {"json": {"query": "{ __typename }" + " " * (MIB - 100)}},
    }
    rows = []
    for name, request in requests.items():
        before = harness.status_kb(pid)["VmRSS"]
        started = time.perf_counter()
        response = await http.post("/graphql", **request)
        elapsed = (time.perf_counter() - started) * 1000
        await asyncio.sleep(0.2)
        grown = (harness.status_kb(pid)["VmRSS"] - before) / 1024
        code = response.json()["errors"][0]["extensions"]["code"]
        rows.append((name, response.status_code, code, elapsed, grown))
    report.table("hostile bodies", ("request", "HTTP", "code", "ms", "RSS grew MiB"), rows)
    report.check(
        "20 MiB body",
        rows[0][1] == 413 and rows[0][3] < 50 and rows[0][4] < 2,
        f"413 in {rows[0][3]:.0f} ms (target < 50), RSS +{rows[0][4]:.1f} MiB",
    )


async def benchmark(
    db: harness.ScratchDatabase, examples: int, seed: int, report: harness.Report
) -> tuple[Counter[str], int]:
    """The hostile bodies, then the fuzzing: its outcomes and how many requests failed."""
    seconds = await harness.seed_demo_school(db.settings)
    report.say(f"seeded the demo tenant in {seconds:.1f} s")
    async with harness.served(db.env) as (server, graphql):
        tokens: dict[str, str | None] = {"anonymous": None}
        for role, email in ACCOUNTS.items():
            tokens[role] = await graphql.login(DEMO_SLUG, email)
        await hostile_bodies(graphql.client, server.pid, report)
        started = time.perf_counter()
        outcomes, failures = await asyncio.to_thread(fuzz, server.base_url, tokens, examples, seed)
        report.say(f"\n{examples:,} fuzzed requests in {time.perf_counter() - started:.0f} s")
        if failures:
            report.say("first failure: " + failures[0][:2000])
            report.say("the server's log said:", *harness.log_problems(server)[:20])
    return outcomes, len(failures)


def main(argv: Sequence[str] | None = None) -> int:
    arguments = harness.parser("fuzz_api", "Fuzz every operation; count INTERNAL_ERROR and 5xx.")
    arguments.prog = "python -m scripts.fuzz_api"
    arguments.add_argument("--examples", type=int, default=10_000, help="documents to send")
    arguments.add_argument("--seed", type=int, default=1, help="hypothesis's seed")
    args = arguments.parse_args(argv)
    report = harness.Report("fuzz_api", as_json=args.json)
    with harness.scratch_database("fuzz", redis_db=15, keep=args.keep) as db:
        outcomes, failures = asyncio.run(benchmark(db, args.examples, args.seed, report))
    report.table("outcomes", ("outcome", "requests"), sorted(outcomes.items()))
    server_errors = sum(n for outcome, n in outcomes.items() if outcome.startswith("HTTP 5"))
    detail = f"{outcomes['INTERNAL_ERROR']} INTERNAL_ERROR, {server_errors} 5xx (target 0 and 0)"
    report.check("fuzzing", failures == 0, detail)
    return report.finish(failed=failures > 0, strict=args.strict)


if __name__ == "__main__":
    raise SystemExit(main())
