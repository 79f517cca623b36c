"""Probes: liveness without I/O, readiness per dependency, queue depths."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse

from services.platform.db import database_answers
from services.queue import dead_letter_counts, outbox_size, queue_report

READY_TIMEOUT_SECONDS = 2.0


async def health(request: Request) -> JSONResponse:
    """Liveness: the process answers. No I/O."""
    return JSONResponse({"status": "ok"})


async def answers(check: Awaitable[object], within: float = READY_TIMEOUT_SECONDS) -> bool:
    """``check`` finished in time without an error."""
    try:
        await asyncio.wait_for(check, within)
    except Exception:
        return False
    return True


async def queue_figures(state: Any) -> dict[str, Any]:
    """Each queue's waiting, running and dead-lettered jobs, the outbox, last cron runs."""
    async with state.session_factory() as session:
        return await queue_report(state.redis, session)


async def _probe(check: Awaitable[object]) -> str:
    return "up" if await answers(check) else "down"


async def ready(request: Request) -> JSONResponse:
    """Readiness: 503 when PostgreSQL does not answer (or its circuit breaker is open: the
    probe is then refused at once). Redis is needed for speed, not for answers (the cache
    falls back to the database, jobs to the outbox), so Redis down or the cache's breaker open
    is ``degraded`` with 200; so is object storage down (only uploads and downloads stop), and
    so is the process short of CPU or memory (non-critical work deferred). ``reasons`` says
    why it is not ``ok``."""
    state: Any = request.state
    cache = state.cache

    async def backlog() -> dict[str, Any]:
        async with state.session_factory() as session:
            return {
                "deadLetters": sum((await dead_letter_counts(session)).values()),
                "outbox": await outbox_size(session),
            }

    database_state, redis_state, cache_redis_state, storage_state = await asyncio.gather(
        _probe(database_answers(state.engine)),
        _probe(state.redis.ping()),
        _probe(cache.redis.ping()),
        _probe(state.store.ensure_ready()),
    )
    pressure = state.resources.pressure()
    checks = {
        "database": database_state,
        "redis": redis_state,
        "cache": "up" if cache_redis_state == "up" and not cache.degraded else "down",
        "storage": storage_state,
        "resources": "constrained" if pressure.constrained else "ok",
    }
    reasons = [f"{name} {value}" for name, value in checks.items() if value == "down"]
    reasons += pressure.reasons
    if database_state != "up":
        status, code = "unavailable", 503
    elif reasons:
        status, code = "degraded", 200
    else:
        status, code = "ok", 200
    queue: dict[str, Any] = {"reachable": redis_state == "up"}
    if database_state == "up":
        with contextlib.suppress(Exception):
            queue.update(await asyncio.wait_for(backlog(), READY_TIMEOUT_SECONDS))
    return JSONResponse(
        {
            "status": status,
            "reasons": reasons,
            "checks": checks,
            "database": {"breaker": state.database_breaker.state.value},
            "queue": queue,
            "resources": {
                "cpuPercent": round(pressure.usage.cpu_percent, 1),
                "memoryPercent": round(pressure.usage.memory_percent, 1),
            },
            "cache": {"breaker": cache.breaker.state.value, **cache.stats.as_dict()},
            "live": {"connections": len(state.presence.leases), **state.hub.report()},
        },
        status_code=code,
    )


async def queues(request: Request) -> JSONResponse:
    """Waiting jobs and dead letters per queue, running jobs, the outbox, last cron runs."""
    try:
        body = await asyncio.wait_for(queue_figures(request.state), READY_TIMEOUT_SECONDS)
    except Exception:
        return JSONResponse({"status": "unavailable"}, status_code=503)
    return JSONResponse({"status": "ok", **body})
