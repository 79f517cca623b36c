"""Access logs and /metrics, through the HTTP endpoint (and a real server for multiprocess
mode and websockets)."""

from __future__ import annotations

import dataclasses
import json
import logging
import re
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml
from graphql import GraphQLError
from prometheus_client.parser import text_string_to_metric_families

from graph.errors import log_unexpected
from rollcall.live_client import Completed, LiveClient
from rollcall.processes import running_server
from services.platform.logs import (
    JsonFormatter,
    RequestContextFilter,
    RequestRecord,
    TextFormatter,
    current_request,
)
from services.platform.settings import RateLimit
from tests.factories import PASSWORD, api_process, error_codes, process_env

ROOT = Path(__file__).resolve().parents[2]
ALERTS = ROOT / "deploy" / "prometheus" / "alerts.yml"
DASHBOARD = "query MyDashboard { studentDashboard { attendanceRate } }"
ANONYMOUS = "{ studentDashboard { attendanceRate } }"
LOGIN = """mutation LogIn($t: String!, $e: String!, $p: String!) {
  login(tenant: $t, email: $e, password: $p) { token } }"""
# Names PromQL knows that are not metrics.
PROMQL_WORDS = {
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "and",
    "or",
    "unless",
    "bool",
    "offset",
}
# Metrics Prometheus makes itself for every target.
PROMETHEUS_OWN = {"up"}


class Collected(logging.Handler):
    """Every record, formatted as production formats it."""

    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []
        self.setFormatter(JsonFormatter())
        self.addFilter(RequestContextFilter())

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))

    def records(self) -> list[dict]:
        return [json.loads(line) for line in self.lines]

    def access(self, **matching) -> list[dict]:
        return [
            record
            for record in self.records()
            if record["logger"] == "rollcall.access"
            and all(record.get(key) == value for key, value in matching.items())
        ]


@pytest.fixture
def logs() -> Iterator[Collected]:
    handler = Collected()
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    try:
        yield handler
    finally:
        root.removeHandler(handler)
        root.setLevel(level)


async def scrape(http: httpx.AsyncClient) -> dict[tuple[str, frozenset], float]:
    response = await http.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def value(samples: dict, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


async def post(http, body, *, token=None, request_id=None) -> httpx.Response:
    headers = {}
    if token:
        headers["authorization"] = f"Bearer {token}"
    if request_id:
        headers["x-request-id"] = request_id
    return await http.post("/graphql", json=body, headers=headers)


# --- logs ------------------------------------------------------------------------------------


async def test_a_request_is_one_json_access_record_naming_who_asked_what(client, factory, logs):
    # given a student
    school = await factory.school(students=1)
    student = school.students[0]
    request_id = f"obs-{uuid.uuid4().hex[:8]}"
    # when they read their dashboard with a request id of their own
    response = await post(
        client, {"query": DASHBOARD}, token=school.student_token(student), request_id=request_id
    )
    # then one access record tells it all
    assert response.status_code == 200
    assert response.headers["x-request-id"] == request_id
    (record,) = logs.access(requestId=request_id)
    assert record["level"] == "INFO"
    assert record["tenantId"] == str(school.tenant.id)
    assert record["userId"] == str(school.accounts[student.id].id)
    assert record["operations"] == ["MyDashboard"]
    assert record["status"] == 200
    assert record["method"] == "POST" and record["path"] == "/graphql"
    assert 0 < record["latencyMs"] < 60_000
    assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+00:00$", record["timestamp"])


async def test_an_anonymous_operation_is_named_by_its_first_field_and_a_batch_by_all(
    client, factory, logs
):
    school = await factory.school(students=1)
    token = school.student_token(school.students[0])
    # when one anonymous operation, then a batch of two, are sent
    await post(client, {"query": ANONYMOUS}, token=token, request_id="obs-anonymous")
    await client.post(
        "/graphql",
        json=[{"query": DASHBOARD}, {"query": "{ weeklyAttendance { days { date } } }"}],
        headers={"authorization": f"Bearer {token}", "x-request-id": "obs-batch"},
    )
    # then
    (anonymous,) = logs.access(requestId="obs-anonymous")
    assert anonymous["operations"] == ["studentDashboard"]
    (batch,) = logs.access(requestId="obs-batch")
    assert batch["operations"] == ["MyDashboard", "weeklyAttendance"]


async def test_a_request_without_a_token_has_no_tenant_or_user(client, logs):
    await post(client, {"query": ANONYMOUS}, request_id="obs-nobody")
    (record,) = logs.access(requestId="obs-nobody")
    assert "tenantId" not in record and "userId" not in record
    assert record["status"] == 200


async def test_no_password_token_or_authorization_header_is_ever_logged(
    settings, client, factory, logs
):
    # given an account, its token, and every log line at DEBUG
    school = await factory.school(students=1)
    token = school.student_token(school.students[0])
    email = school.accounts[school.students[0].id].email
    logging.getLogger().setLevel(logging.DEBUG)
    # when it logs in (variables, then an inline literal), fails to, and reads with its token
    await post(
        client,
        {"query": LOGIN, "variables": {"t": school.tenant.slug, "e": email, "p": PASSWORD}},
    )
    inline = f'mutation {{ login(tenant: "{school.tenant.slug}", email: "{email}", password: "{PASSWORD}") {{ token }} }}'
    await post(client, {"query": inline})
    await post(
        client,
        {"query": LOGIN, "variables": {"t": school.tenant.slug, "e": email, "p": "wrong-secret-9"}},
    )
    await post(client, {"query": ANONYMOUS}, token=token, request_id="obs-secret")
    # then the lines exist, and none holds a secret
    assert logs.access(requestId="obs-secret")
    assert len(logs.access(operations=["LogIn"])) >= 2
    text = "\n".join(logs.lines)
    for secret in (PASSWORD, "wrong-secret-9", token, token.split(".")[2], "Bearer"):
        assert secret not in text


def test_an_unexpected_error_is_logged_with_its_stack_and_the_request(logs):
    # given a request being served
    record = RequestRecord(
        request_id="obs-boom", tenant_id="tenant-1", user_id="user-1", operations=["Boom"]
    )
    token = current_request.set(record)
    try:
        try:
            raise RuntimeError("the disk is on fire")
        except RuntimeError as error:
            failure = GraphQLError("boom", path=["studentDashboard"], original_error=error)
        # when an unexpected error is logged
        log_unexpected([failure], context=None)
    finally:
        current_request.reset(token)
    # then
    (logged,) = [line for line in logs.records() if line["logger"] == "rollcall.graphql"]
    assert logged["level"] == "ERROR"
    assert logged["requestId"] == "obs-boom"
    assert logged["tenantId"] == "tenant-1" and logged["userId"] == "user-1"
    assert logged["operations"] == ["Boom"] and logged["field"] == "studentDashboard"
    assert logged["error"]["type"] == "RuntimeError"
    assert "the disk is on fire" in logged["error"]["stack"]
    assert "Traceback" in logged["error"]["stack"]


def test_development_lines_are_readable_with_their_fields():
    record = logging.LogRecord(
        "rollcall.access", logging.INFO, __file__, 1, "POST /graphql", (), None
    )
    record.fields = {"requestId": "r1", "operations": ["A", "B"], "status": 200}
    line = TextFormatter().format(record)
    assert line.endswith(
        "INFO rollcall.access: POST /graphql [requestId=r1 operations=A,B status=200]"
    )


# --- metrics ---------------------------------------------------------------------------------


async def test_metrics_count_requests_by_operation_errors_by_code_and_cache_lookups(
    client, factory
):
    school = await factory.school(students=1)
    token = school.student_token(school.students[0])
    before = await scrape(client)
    # when a student reads twice (a miss, then a hit) and someone without a token once
    for _ in range(2):
        assert (await post(client, {"query": DASHBOARD}, token=token)).status_code == 200
    body = (await post(client, {"query": ANONYMOUS})).json()
    assert error_codes(body) == ["UNAUTHENTICATED"]
    after = await scrape(client)
    # then
    requests = "rollcall_http_request_duration_seconds_count"
    labels = {"operation": "studentDashboard", "status": "2xx"}
    assert value(after, requests, **labels) - value(before, requests, **labels) == 3
    latency = "rollcall_http_request_duration_seconds_sum"
    assert value(after, latency, **labels) > value(before, latency, **labels)
    errors = "rollcall_graphql_errors_total"
    assert (
        value(after, errors, code="UNAUTHENTICATED") - value(before, errors, code="UNAUTHENTICATED")
        == 1
    )
    lookups = "rollcall_cache_lookups_total"
    misses = value(after, lookups, kind="dashboard", result="miss") - value(
        before, lookups, kind="dashboard", result="miss"
    )
    # the second read is answered whole by the response cache: no dashboard lookup runs
    hits = value(after, lookups, kind="response", result="l1_hit") - value(
        before, lookups, kind="response", result="l1_hit"
    )
    assert (misses, hits) == (1, 1)
    # and the database and Redis were timed, and are up
    assert value(after, "rollcall_db_query_duration_seconds_count", statement="SELECT") > value(
        before, "rollcall_db_query_duration_seconds_count", statement="SELECT"
    )
    assert value(after, "rollcall_redis_command_duration_seconds_count", command="EVALSHA") > 0
    for dependency in ("database", "redis", "cache_redis"):
        assert value(after, "rollcall_dependency_up", dependency=dependency) == 1
    assert value(after, "rollcall_queue_jobs", queue="urgent", state="waiting") >= 0
    assert ("rollcall_queue_dead_letters", frozenset({("queue", "normal")})) in after
    assert value(after, "rollcall_db_pool_max_connections") >= 1
    assert value(after, "rollcall_process_resident_memory_bytes") > 0
    assert value(after, "rollcall_memory_limit_bytes") > 0


async def test_a_rate_limited_operation_and_a_failed_login_are_counted(settings, factory, redis):
    limited = dataclasses.replace(
        settings, rate_limits_enabled=True, rate_limits={"dashboard": RateLimit(1, 60)}
    )
    school = await factory.school(students=1)
    token = school.student_token(school.students[0])
    email = school.accounts[school.students[0].id].email
    async with api_process(limited) as http:
        before = await scrape(http)
        # when the student reads twice within a limit of one, and logs in wrongly
        assert (await post(http, {"query": DASHBOARD}, token=token)).status_code == 200
        assert (await post(http, {"query": DASHBOARD}, token=token)).status_code == 429
        login = {"t": school.tenant.slug, "e": email, "p": "not the password"}
        body = (await post(http, {"query": LOGIN, "variables": login})).json()
        assert error_codes(body) == ["UNAUTHENTICATED"]
        after = await scrape(http)
    # then
    denials = "rollcall_rate_limit_denials_total"
    assert value(after, denials, limit="dashboard") - value(before, denials, limit="dashboard") == 1
    failures = "rollcall_login_failures_total"
    assert (
        value(after, failures, reason="wrong_password")
        - value(before, failures, reason="wrong_password")
        == 1
    )
    refused = {"operation": "studentDashboard", "status": "4xx"}
    requests = "rollcall_http_request_duration_seconds_count"
    assert value(after, requests, **refused) - value(before, requests, **refused) == 1


async def test_slow_queries_are_counted_and_logged_without_their_parameters(
    settings, factory, logs
):
    # given an API whose every query counts as slow
    school = await factory.school(students=1)
    email = school.accounts[school.students[0].id].email
    async with api_process(dataclasses.replace(settings, slow_query_ms=0)) as http:
        before = await scrape(http)
        # when someone logs in (the email and tenant are the query's parameters)
        login = {"t": school.tenant.slug, "e": email, "p": PASSWORD}
        assert "token" in json.dumps(
            (await post(http, {"query": LOGIN, "variables": login})).json()
        )
        after = await scrape(http)
    # then
    slow = "rollcall_db_slow_queries_total"
    assert value(after, slow, statement="SELECT") > value(before, slow, statement="SELECT")
    logged = [record for record in logs.records() if record["logger"] == "rollcall.db"]
    # (the login's query of the account, cut to STATEMENT_LOG_CHARS before its FROM clause)
    users = [record for record in logged if record["statement"].startswith("SELECT users.id")]
    assert users, [record["statement"] for record in logged]
    assert users[0]["level"] == "WARNING" and users[0]["durationMs"] >= 0
    assert users[0]["operations"] == ["LogIn"]
    text = "\n".join(json.dumps(record) for record in logged)
    assert email not in text and school.tenant.slug not in text


def exported_names(samples: dict) -> set[str]:
    return {name for name, _ in samples}


def metric_names(expression: str) -> set[str]:
    """The metric names a PromQL expression reads."""
    stripped = re.sub(r'"(?:[^"\\]|\\.)*"', "", expression)
    stripped = re.sub(r"\{[^}]*\}", "", stripped)
    stripped = re.sub(r"\[[^\]]*\]", "", stripped)
    stripped = re.sub(
        r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", stripped
    )
    return {
        token
        for token in re.findall(r"(?<![\w.])([a-zA-Z_:][\w:]*)\b(?!\s*\()", stripped)
        if token not in PROMQL_WORDS and not re.fullmatch(r"\d+\w*", token)
    }


async def test_every_alert_reads_only_metrics_the_api_exports(client, factory):
    # given an API that has served a little of everything
    school = await factory.school(students=1)
    token = school.student_token(school.students[0])
    await post(client, {"query": DASHBOARD}, token=token)
    await post(client, {"query": ANONYMOUS})
    exported = exported_names(await scrape(client))
    # exported families without samples yet (labelled, never incremented) count too
    response = await client.get("/metrics")
    for family in text_string_to_metric_families(response.text):
        suffixes = {
            "counter": ("_total",),
            "histogram": ("_bucket", "_count", "_sum"),
            "gauge": ("",),
        }.get(family.type, ("",))
        exported |= {family.name + suffix for suffix in suffixes}
    # when the rules are read
    rules = [
        rule for group in yaml.safe_load(ALERTS.read_text())["groups"] for rule in group["rules"]
    ]
    # then there are rules, and each names only what is exported
    assert len(rules) >= 10
    for rule in rules:
        names = metric_names(rule["expr"])
        assert names, rule["alert"]
        assert names <= exported | PROMETHEUS_OWN, (rule["alert"], names - exported)
        assert {"summary", "description"} <= set(rule["annotations"]), rule["alert"]
        assert rule["labels"]["severity"] in {"warning", "critical"}
    scrape_config = yaml.safe_load((ALERTS.parent / "prometheus.yml").read_text())
    assert "alerts.yml" in scrape_config["rule_files"]
    assert scrape_config["scrape_configs"][0]["metrics_path"] == "/metrics"


def test_the_rule_reader_finds_names_and_skips_the_rest():
    expression = (
        'sum by (job) (rate(rollcall_a_total{code=~"5.."}[5m])) / '
        "sum without (x) (rollcall_b_count offset 5m) > 0.5 and on (instance) up == 0"
    )
    assert metric_names(expression) == {"rollcall_a_total", "rollcall_b_count", "up"}


# --- a real server: multiprocess mode, JSON lines, websockets ----------------------------------


async def test_a_server_in_multiprocess_mode_logs_json_lines_and_counts_in_its_directory(
    settings, factory, tmp_path
):
    school = await factory.school(students=1)
    token = school.student_token(school.students[0])
    env = process_env(settings, PROMETHEUS_MULTIPROC_DIR=str(tmp_path), ROLLCALL_LOG_FORMAT="json")
    async with running_server(env) as server, httpx.AsyncClient(base_url=server.base_url) as http:
        # when a student reads over HTTP, then asks over a websocket
        await post(http, {"query": DASHBOARD}, token=token, request_id="obs-server")
        async with LiveClient.connect(server.ws_url) as live:
            await live.init(token)
            operation = await live.subscribe(
                "query OverTheSocket { studentDashboard { standing } }"
            )
            assert "data" in await live.next(operation)
            with pytest.raises(Completed):
                await live.next(operation)
            during = await scrape(http)
        after = await scrape(http)
        log = server.log_path.read_text()
    # then the counts come from the shared directory
    assert list(tmp_path.glob("*.db"))
    requests = "rollcall_http_request_duration_seconds_count"
    assert value(after, requests, operation="studentDashboard", status="2xx") == 1
    assert value(during, "rollcall_websocket_connections") == 1
    assert (
        value(
            after,
            "rollcall_websocket_operations_total",
            operation="studentDashboard",
            outcome="complete",
        )
        == 1
    )
    # and every line of the server's log is one JSON object: one access record for the
    # request (none from uvicorn), one for the websocket operation
    lines = [json.loads(line) for line in log.splitlines() if line.strip()]
    access = [line for line in lines if line["logger"] == "rollcall.access"]
    assert [line["status"] for line in access if line.get("requestId") == "obs-server"] == [200]
    (over_socket,) = [line for line in access if line["method"] == "WS"]
    assert over_socket["operations"] == ["OverTheSocket"]
    assert over_socket["status"] == "complete"
    assert over_socket["userId"] == str(school.accounts[school.students[0].id].id)
    assert not [line for line in lines if line["logger"].startswith("uvicorn.access")]


# --- OpenTelemetry ---------------------------------------------------------------------------

NOTHING_IMPORTED = """
import dataclasses, sys
from graph.app import create_app
from services.platform.settings import Settings
create_app(dataclasses.replace(Settings(), database_url="postgresql+asyncpg://x/y", redis_url="redis://x"))
print(sorted(name for name in sys.modules if name.startswith("opentelemetry")))
"""

EXTRA_MISSING = """
import dataclasses, sys
sys.modules["opentelemetry"] = None
from graph.app import create_app
from graph.tracing import TracingUnavailable
from services.platform.settings import Settings
settings = dataclasses.replace(
    Settings(), database_url="postgresql+asyncpg://x/y", redis_url="redis://x",
    otlp_endpoint="http://127.0.0.1:4318",
)
try:
    create_app(settings)
except TracingUnavailable as error:
    print(error)
"""

SPANS = """
import asyncio, dataclasses, os
import httpx
from asgi_lifespan import LifespanManager
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from graph.app import create_app
from services.platform.settings import Settings

exporter = InMemorySpanExporter()
provider = TracerProvider()
provider.add_span_processor(SimpleSpanProcessor(exporter))
trace.set_tracer_provider(provider)

async def main():
    settings = dataclasses.replace(
        Settings.from_env(os.environ), otlp_endpoint="http://127.0.0.1:9/unused"
    )
    async with LifespanManager(create_app(settings)) as manager, httpx.AsyncClient(
        transport=httpx.ASGITransport(app=manager.app), base_url="http://t"
    ) as http:
        query = 'mutation Secret { login(tenant: "nowhere", email: "a@b.c", password: "hunter2-secret") { token } }'
        await http.post("/graphql", json={"query": query})
    for span in exporter.get_finished_spans():
        print(span.name, "|", dict(span.attributes or {}))

asyncio.run(main())
"""


def run_python(script: str, env: dict[str, str] | None = None) -> str:
    done = subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_without_an_endpoint_nothing_of_opentelemetry_is_imported():
    assert run_python(NOTHING_IMPORTED).strip() == "[]"


def test_an_endpoint_without_the_extra_stops_start_up_saying_what_to_install():
    message = run_python(EXTRA_MISSING)
    assert "ROLLCALL_OTLP_ENDPOINT is set but OpenTelemetry is not installed" in message
    assert "pip install 'rollcall[otel]'" in message


def test_with_an_endpoint_a_request_makes_graphql_and_sql_spans_without_secrets(settings):
    output = run_python(SPANS, process_env(settings))
    names = [line.split(" | ")[0] for line in output.splitlines()]
    assert "GraphQL Query: Secret" in names, output
    assert any(name in {"SELECT", "connect"} or name.startswith("SELECT") for name in names), output
    assert "hunter2-secret" not in output
