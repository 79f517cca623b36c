"""markAttendance schedules one debounced refresh; the arq worker runs it against real Redis."""

from __future__ import annotations

from datetime import UTC, datetime

from jobs.worker import create_worker
from services.queue import REFRESH_STATISTICS
from tests.factories import gql

MARK = """mutation M($input: MarkAttendanceInput!) { markAttendance(input: $input) { records { id } } }"""
STATS = (
    "query S($id: ID!) { classStatistics(classroomId: $id) { averageAttendance lastCalculated } }"
)


async def test_marks_schedule_one_refresh_that_the_worker_runs(client, factory, redis, settings):
    # given a refreshed classroom where everyone is present
    school = await factory.school(students=2)
    await factory.refresh()
    teacher, room = school.token(school.teachers[0]), str(school.classrooms[0].id)
    before = (await gql(client, STATS, {"id": room}, token=teacher))["data"]["classStatistics"]

    # when a teacher marks several periods in quick succession
    for period in (1, 2, 3):
        body = await gql(
            client,
            MARK,
            {
                "input": {
                    "classroomId": room,
                    "date": datetime.now(UTC).date().isoformat(),
                    "period": period,
                    "subjectId": str(school.subjects[0].id),
                    "marks": [
                        {"studentId": str(s.id), "status": "ABSENT"} for s in school.students
                    ],
                }
            },
            token=teacher,
        )
        assert "errors" not in body

    # then at most two refreshes are queued (the marks may straddle one window boundary)
    queued = [
        key
        for key in await redis.zrange("arq:queue", 0, -1)
        if key.decode().startswith(REFRESH_STATISTICS)
    ]
    assert 1 <= len(queued) <= 2
    # and running the worker brings the class figures up to date
    worker = create_worker(settings, handle_signals=False, burst=True)
    worker.cron_jobs = []
    try:
        await worker.main()
    finally:
        await worker.close()
    after = (await gql(client, STATS, {"id": room}, token=teacher))["data"]["classStatistics"]
    assert before["averageAttendance"] == 100.0
    assert after["averageAttendance"] == 0.0
    assert after["lastCalculated"] > before["lastCalculated"]
    assert worker.jobs_complete >= 1 and worker.jobs_failed == 0
