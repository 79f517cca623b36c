"""markAttendance schedules one debounced refresh; the arq worker runs it against real Redis."""

from __future__ import annotations

from datetime import UTC, datetime

from services.queue import REFRESH_STATISTICS, Queue
from tests.factories import gql, run_jobs

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
        for key in await redis.zrange(Queue.NORMAL.value, 0, -1)
        if key.decode().startswith(REFRESH_STATISTICS)
    ]
    assert 1 <= len(queued) <= 2
    # and until the refresh runs, the class figures say they lag behind marks
    pending = await gql(client, STATS, {"id": room}, token=teacher)
    assert pending["extensions"]["freshness"]["statistics"]["reason"] == "marks-pending"
    # and running the worker brings the class figures up to date, no longer stale
    workers = await run_jobs(settings)
    refreshed = await gql(client, STATS, {"id": room}, token=teacher)
    assert refreshed["extensions"]["freshness"]["statistics"]["stale"] is False
    after = refreshed["data"]["classStatistics"]
    assert before["averageAttendance"] == 100.0
    assert after["averageAttendance"] == 0.0
    assert after["lastCalculated"] > before["lastCalculated"]
    assert sum(w.jobs_complete for w in workers) >= 1 and sum(w.jobs_failed for w in workers) == 0
