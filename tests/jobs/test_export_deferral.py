"""The export build defers itself while the worker is short of CPU or memory."""

from __future__ import annotations

import time
from datetime import date, timedelta

from arq.connections import RedisSettings, create_pool

from jobs.exports import build_export
from jobs.worker import shared_context
from services.access import Access
from services.audit import Origin
from services.auth import Viewer
from services.exports import MAX_DEFERRALS, ExportRequest, request_export
from services.models import Export, ExportFormat, ExportStatus
from services.platform.resources import Usage
from services.queue import BUILD_EXPORT, Queue

DAY = date(2026, 10, 5)


def busy() -> Usage:
    return Usage(cpu_percent=50.0, memory_percent=97.0)


async def test_a_constrained_worker_defers_the_build_then_builds_at_the_last_deferral(
    settings, factory, session_factory, redis
):
    # given a requested export, and a worker over its memory threshold
    school = await factory.school(students=1)
    admin = school.admin
    queue = await create_pool(RedisSettings.from_dsn(settings.redis_url))
    try:
        export = await request_export(
            session_factory=session_factory,
            queue=queue,
            access=Access(
                viewer=Viewer(user_id=admin.id, tenant_id=school.tenant.id, role=admin.role),
                session_factory=session_factory,
            ),
            request=ExportRequest(
                format=ExportFormat.CSV, date_from=DAY, date_to=DAY + timedelta(days=4)
            ),
            origin=Origin(),
        )
        async with shared_context(settings, usage=busy) as shared:
            ctx = {**shared, "redis": queue}
            # when its build job runs
            outcome = await build_export(ctx, str(school.tenant.id), str(export.id))
            # then the export waits, and its build is queued again two minutes on
            assert outcome == "DEFERRED"
            runs_at = await redis.zscore(
                Queue.NORMAL.value, f"{BUILD_EXPORT}:{export.id}:deferred-1"
            )
            assert runs_at is not None and runs_at / 1000 > time.time() + 100
            async with session_factory() as session:
                assert (await session.get(Export, export.id)).status is ExportStatus.PENDING
            # when it has been deferred as often as it may be, then it is built all the same
            last = await build_export(ctx, str(school.tenant.id), str(export.id), MAX_DEFERRALS)
            assert last == ExportStatus.READY.value
    finally:
        await queue.aclose()
