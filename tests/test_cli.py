"""The ``rollcall dlq`` and ``rollcall audit`` commands against the test database and Redis."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import uuid

import orjson
import pytest
from sqlalchemy import delete

from rollcall.cli import main
from rollcall.processes import running_server
from services.models import DeadLetter
from services.platform.db import create_engine, create_session_factory
from services.queue import Queue, record_dead_letter
from tests.factories import process_env


@pytest.fixture
def environment(settings, monkeypatch):
    monkeypatch.setenv("ROLLCALL_DATABASE_URL", settings.database_url)
    monkeypatch.setenv("ROLLCALL_REDIS_URL", settings.redis_url)
    # main() sets up logging as a process would: undone, so later tests log as before
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


async def one_dead_letter(database_url: str) -> None:
    engine = create_engine(database_url, pool_max=1)
    session_factory = create_session_factory(engine)
    async with session_factory() as session, session.begin():
        await session.execute(delete(DeadLetter))
    async with session_factory() as session:
        await record_dead_letter(
            session,
            queue=Queue.URGENT.value,
            job_id="job-1",
            function="check_thresholds",
            args=["tenant", ["student"]],
            kwargs={},
            tries=3,
            error="RuntimeError: boom",
        )
    await engine.dispose()


def test_dlq_list_and_retry(environment, settings, capsys):
    asyncio.run(one_dead_letter(settings.database_url))
    main(["dlq", "list"])
    listed = capsys.readouterr().out
    assert (
        "check_thresholds" in listed
        and "RuntimeError: boom" in listed
        and "1 dead letter(s)" in listed
    )
    main(["dlq", "retry"])
    assert "requeued 1 dead letter(s)" in capsys.readouterr().out
    main(["dlq", "list"])
    assert "0 dead letter(s)" in capsys.readouterr().out
    main(["dlq", "list", "--all"])
    assert "retried" in capsys.readouterr().out


def test_documents_register_list_and_remove(environment, tmp_path, capsys):
    name = f"Partner{uuid.uuid4().hex}"
    good = tmp_path / "partner.graphql"
    good.write_text(f"query {name} {{ me {{ id role }} }}\n")
    body = f"query {name}Rate {{ studentDashboard {{ attendanceRate }} }}"
    manifest = tmp_path / "manifest.json"
    manifest.write_text(
        orjson.dumps(
            {
                "format": "apollo-persisted-query-manifest",
                "version": 1,
                "operations": [{"id": sha256(body), "name": f"{name}Rate", "body": body}],
            }
        ).decode()
    )
    bad = tmp_path / "bad.graphql"
    bad.write_text(f"query {name}Bad {{ me {{ nope }} }}")
    # a file that would never run makes the whole command register nothing
    with pytest.raises(SystemExit) as refused:
        main(["documents", "register", str(good), str(bad)])
    assert "nothing registered" in str(refused.value) and "nope" in str(refused.value)
    main(["documents", "list"])
    assert name not in capsys.readouterr().out
    main(["documents", "register", str(good), str(manifest), "--name", "sis-sync"])
    assert "2 document(s) read, 2 newly registered" in capsys.readouterr().out
    main(["documents", "list"])
    listed = [line for line in capsys.readouterr().out.splitlines() if name in line]
    digest = sha256(good.read_text())
    assert sorted(line.split("\t")[:3] for line in listed) == sorted(
        [[digest, name, "sis-sync"], [sha256(body), f"{name}Rate", "sis-sync"]]
    )
    main(["documents", "remove", digest])
    assert "removed 1 document(s)" in capsys.readouterr().out


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def test_audit_partitions_then_archive_below_the_threshold(
    environment, monkeypatch, tmp_path, capsys
):
    monkeypatch.setenv("ROLLCALL_STORAGE_URL", f"file://{tmp_path}")
    main(["audit", "partitions"])
    main(["audit", "partitions"])
    assert capsys.readouterr().out.splitlines()[-1] == "made 0 partition(s)"
    main(["audit", "archive", "--min-rows", str(10**12)])
    assert "holds at most 1000000000000 rows" in capsys.readouterr().out
    assert not any(tmp_path.iterdir())


async def test_serve_keeps_idle_connections_for_the_configured_time(settings):
    # given the API serving with idle connections kept for 1 s
    env = process_env(settings, ROLLCALL_HTTP_KEEP_ALIVE_SECONDS="1")
    async with running_server(env) as server:
        reader, writer = await asyncio.open_connection(server.host, server.port)
        request = f"GET /health HTTP/1.1\r\nHost: {server.host}\r\n\r\n".encode()
        # when a request is answered, then the connection stays open for another
        writer.write(request)
        assert (await reader.readuntil(b"\r\n\r\n")).startswith(b"HTTP/1.1 200")
        await reader.readuntil(b"}")
        writer.write(request)
        assert (await reader.readuntil(b"\r\n\r\n")).startswith(b"HTTP/1.1 200")
        await reader.readuntil(b"}")
        # and once it has sat idle longer than configured, the server closes it
        assert await asyncio.wait_for(reader.read(), timeout=5) == b""
        writer.close()


def test_a_bulk_seed_twice_exits_0_and_says_the_second_changed_nothing(environment, capsys):
    prefix = f"c{uuid.uuid4().hex[:8]}"
    arguments = ["seed", "--schools", "2", "--classes", "1", "--students", "2", "--days", "1"]
    main([*arguments, "--prefix", prefix])
    first = capsys.readouterr().out
    assert f"created {prefix}-1: 1 classes x 2 students, 12 marks" in first
    assert f"sign in as admin@{prefix}-1.school / demo-password" in first
    assert "rows/s" in first and "2 school(s) created, 0 already present" in first
    main([*arguments, "--prefix", prefix])
    second = capsys.readouterr().out
    assert f"{prefix}-2 already present (1 classes x 2 students, 12 marks): unchanged" in second
    assert "0 school(s) created, 2 already present: nothing changed" in second
    # other arguments for the same schools: one line saying what to do, no traceback
    with pytest.raises(SystemExit) as refused:
        main([*arguments[:-1], "2", "--prefix", prefix])
    assert "--reset" in str(refused.value.code) and "\n" not in str(refused.value.code)
    main([*arguments[:-1], "2", "--prefix", prefix, "--reset"])
    reset = capsys.readouterr().out
    assert f"dropped {prefix}-1: 1 classes x 2 students, 12 marks" in reset
    assert "2 school(s) created" in reset


@pytest.mark.parametrize(
    "arguments",
    [["--schools", "0"], ["--students", "many"], ["--days", "100000"], ["--prefix", "No Slug"]],
)
def test_wrong_seed_arguments_get_a_usage_error(environment, capsys, arguments):
    with pytest.raises(SystemExit) as refused:
        main(["seed", *arguments])
    assert refused.value.code == 2
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert error.startswith("rollcall seed: error: argument") and "Traceback" not in error
