import dataclasses

import pytest
from asgi_lifespan import LifespanManager

from graph.app import StartupError, create_app


async def test_liveness_does_no_io(client):
    response = await client.get("/health")
    assert response.status_code == 200 and response.json() == {"status": "ok"}


async def test_readiness_reports_each_dependency(client):
    response = await client.get("/health/ready")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert body["checks"] == {
        "database": "up",
        "redis": "up",
        "cache": "up",
        "storage": "up",
        "resources": "ok",
    }
    assert body["reasons"] == []
    assert body["cache"]["breaker"] == "closed" and body["database"]["breaker"] == "closed"
    assert body["queue"]["reachable"] is True
    assert {"deadLetters", "outbox"} <= set(body["queue"])
    assert {"cpuPercent", "memoryPercent"} == set(body["resources"])


async def test_queue_report(client):
    response = await client.get("/health/queues")
    assert response.status_code == 200
    body = response.json()
    assert set(body["queues"]) == {"rollcall:queue:urgent", "rollcall:queue:normal"}
    for queue in body["queues"].values():
        assert set(queue) == {"waiting", "running", "deadLetters"}
    assert {"outbox", "cronLastRun"} <= set(body)


async def test_graphiql_is_served_to_browsers(client):
    response = await client.get("/graphql", headers={"accept": "text/html"})
    assert response.status_code == 200 and "graphiql" in response.text.lower()


async def test_an_unreachable_database_stops_start_up(settings):
    broken = dataclasses.replace(
        settings, database_url="postgresql+asyncpg://postgres:secret@127.0.0.1:1/none"
    )
    with pytest.raises(
        StartupError, match=r"PostgreSQL is unreachable \(postgresql\+asyncpg://postgres:\*\*\*@"
    ):
        async with LifespanManager(create_app(broken)):
            pass
