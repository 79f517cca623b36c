"""The student page in headless Chromium against a real API process (uvicorn in a subprocess,
the tests' PostgreSQL and Redis): sign-in, figures equal to the API's, live marks, offline.

Select them with ``pytest -m browser``; without /usr/bin/chromium they skip.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis

from rollcall.processes import ServerProcess
from services.live import publish_notifications
from services.models import AttendanceStatus, NotificationType, Severity, Student
from services.notifications import Draft, create_notification
from tests.factories import PASSWORD, Factory, School
from tests.web.browsing import BROWSER_TESTS, api, expect, sign_in, text

pytestmark = BROWSER_TESTS

DASHBOARD = """query {
  studentDashboard {
    totalClasses presentDays absentDays sickDays leaveDays attendanceRate classAverage
    ranking classSize standing trend
  }
}"""
MARK = """mutation Mark($input: MarkAttendanceInput!) {
  markAttendance(input: $input) { records { id } }
}"""
# The smallest PNG: the upload is checked against its declared type's signature.
PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d49484452000000010000000108060000001f15c489"
    "0000000d49444154789c63f8cfc0f01f0005000201a5f5d8d10000000049454e44ae426082"
)
STANDING_LABELS = {
    "OK": "Good standing",
    "WARNING": "Warning",
    "TASDIQ": "Certificates due",
    "MAHROOM": "Barred (Mahroom)",
}


@pytest.fixture
async def context(browser) -> AsyncIterator[Any]:
    """A fresh profile per test: its own localStorage and service worker."""
    opened = await browser.new_context(viewport={"width": 1280, "height": 900})
    yield opened
    await opened.close()


async def mark_absent(server: ServerProcess, school: School, student: Student, period: int) -> None:
    """The student's teacher marks them ABSENT today, through the API."""
    await api(
        server,
        MARK,
        school.absence_today(student, period),
        token=school.token(school.teachers[0]),
    )


async def marked_school(factory: Factory) -> School:
    """A class of three with a few days of marks, its statistics refreshed."""
    school = await factory.school(students=3)
    today = datetime.now(UTC).date()
    statuses = [AttendanceStatus.PRESENT, AttendanceStatus.ABSENT, AttendanceStatus.SICK]
    for offset, student in enumerate(school.students):
        await factory.records(
            school,
            student,
            [
                (today - timedelta(days=day), period, statuses[(day + period + offset) % 3])
                for day in range(1, 6)
                for period in (1, 2)
            ],
        )
    await factory.refresh()
    return school


def percent(value: float) -> str:
    return f"{value:.1f}%"


async def test_signing_in_shows_the_apis_figures_and_keeps_them(context, server, factory):
    # given a student with marks, and the GraphQL requests the page will make
    school = await marked_school(factory)
    student = school.students[0]
    page = await context.new_page()
    requests: list[dict[str, Any]] = []
    page.on(
        "request",
        lambda request: (
            requests.append(json.loads(request.post_data))
            if request.url.endswith("/graphql") and request.method == "POST"
            else None
        ),
    )
    # when
    await sign_in(page, server, school, student)
    # then the figures are the API's for the same student
    expected = (await api(server, DASHBOARD, token=school.student_token(student)))[
        "studentDashboard"
    ]
    assert await text(page, "#rate-value") == percent(expected["attendanceRate"])
    assert await text(page, "#average-value") == percent(expected["classAverage"])
    assert (
        await text(page, "#rank-value")
        == f"{expected['ranking']}" + {1: "st", 2: "nd", 3: "rd"}[expected["ranking"]]
    )
    assert await text(page, "#class-size") == f"of {expected['classSize']}"
    assert await text(page, "#standing-badge") == STANDING_LABELS[expected["standing"]]
    for key, field in [
        ("total", "totalClasses"),
        ("present", "presentDays"),
        ("absent", "absentDays"),
        ("sick", "sickDays"),
        ("leave", "leaveDays"),
    ]:
        assert await text(page, f"#count-{key}") == str(expected[field])
    assert await text(page, "#student-name") == student.name
    assert await page.locator("#chart svg circle").count() >= 1
    # the last good data is kept with its time (property 26)
    snapshot = json.loads(await page.evaluate("localStorage.getItem('rollcall.snapshot')"))
    assert snapshot["data"]["studentDashboard"]["attendanceRate"] == expected["attendanceRate"]
    saved_at = datetime.fromisoformat(snapshot["savedAt"].replace("Z", "+00:00"))
    assert abs(datetime.now(UTC) - saved_at) < timedelta(minutes=1)
    # one read of the page's data, though the websocket's first push came too
    await page.wait_for_timeout(1000)
    reads = [body for body in requests if "weeks" in body["variables"] and "query" not in body]
    assert len(reads) == 1
    # queries went by hash first; a document only after PERSISTED_QUERY_NOT_FOUND
    queries = [body for body in requests if "persistedQuery" in body.get("extensions", {})]
    assert queries, requests
    for index, body in enumerate(queries):
        if "query" in body:
            digest = body["extensions"]["persistedQuery"]["sha256Hash"]
            earlier = queries[index - 1]
            assert "query" not in earlier
            assert earlier["extensions"]["persistedQuery"]["sha256Hash"] == digest


async def test_staff_are_sent_to_the_api_and_wrong_passwords_are_refused(context, server, factory):
    school = await factory.school(students=1)
    page = await context.new_page()
    await page.goto(server.base_url + "/")
    await page.get_by_label("School code").fill(school.tenant.slug)
    await page.get_by_label("Email").fill(school.teachers[0].email)
    await page.get_by_label("Password", exact=True).fill(PASSWORD)
    await page.get_by_role("button", name="Sign in").click()
    await expect(page.locator("#login-error")).to_contain_text("student")
    assert await page.evaluate("localStorage.getItem('rollcall.session')") is None
    await page.get_by_label("Email").fill(school.accounts[school.students[0].id].email)
    await page.get_by_label("Password", exact=True).fill("not the password")
    await page.get_by_role("button", name="Sign in").click()
    await expect(page.locator("#login-error")).to_contain_text("password is wrong")
    assert await page.locator("#dashboard-view").is_hidden()


async def test_a_teachers_mark_shows_live_without_a_reload(context, server, factory):
    # given a signed-in student
    school = await marked_school(factory)
    student = school.students[0]
    page = await context.new_page()
    await sign_in(page, server, school, student)
    absent_before = int(await text(page, "#count-absent"))
    await page.evaluate("window.stillTheSamePage = true")
    # when their teacher marks them absent through the API
    await mark_absent(server, school, student, period=3)
    # then the page shows it within seconds, without navigating
    await expect(page.locator("#count-absent")).to_have_text(str(absent_before + 1), timeout=10_000)
    expected = (await api(server, DASHBOARD, token=school.student_token(student)))[
        "studentDashboard"
    ]
    assert await text(page, "#rate-value") == percent(expected["attendanceRate"])
    # the weekly grid follows (read again after the push): today, period 3
    await page.wait_for_selector("#week tbody tr:nth-child(3) td.today .status-absent")
    assert await page.evaluate("window.stillTheSamePage") is True


async def test_earlier_weeks_can_be_browsed_and_the_current_one_comes_back(
    context, server, factory
):
    # given a student who was sick in period 3 on a Wednesday two weeks ago
    school = await factory.school(students=1)
    student = school.students[0]
    today = datetime.now(UTC).date()
    wednesday = today - timedelta(days=today.weekday()) - timedelta(days=14) + timedelta(days=2)
    await factory.records(school, student, [(wednesday, 3, AttendanceStatus.SICK)])
    page = await context.new_page()
    await sign_in(page, server, school, student)
    this_week = await text(page, "#week-title")
    assert await page.locator("#week-next").is_disabled()
    assert await page.locator("#week-current").is_hidden()
    # when they go back two weeks
    await page.locator("#week-previous").click()
    await expect(page.locator("#week-title")).not_to_have_text(this_week)
    await page.locator("#week-previous").click()
    # then that week's grid shows the sick period, and the way back is offered
    await page.wait_for_selector("#week tbody tr:nth-child(3) .status-sick")
    assert await page.locator("#week-next").is_enabled()
    assert await page.locator("#week-current").is_visible()
    # when they return to this week, then it is the current grid again, with nothing after it
    await page.locator("#week-current").click()
    await expect(page.locator("#week-title")).to_have_text(this_week)
    assert await page.locator("#week .status-sick").count() == 0
    assert await page.locator("#week-next").is_disabled()
    # and offline, where only this week is kept, earlier ones cannot be asked for
    await context.set_offline(True)
    await page.evaluate("window.dispatchEvent(new Event('offline'))")
    await page.wait_for_selector("#connection[data-state='offline']")
    assert await page.locator("#week-previous").is_disabled()
    await context.set_offline(False)


async def test_the_page_reconnects_and_subscribes_again(context, server, factory):
    # given a signed-in student whose websocket goes through the test (Playwright's routing)
    school = await marked_school(factory)
    student = school.students[0]
    page = await context.new_page()
    sockets: list[tuple[Any, Any]] = []

    def through(socket) -> None:
        sockets.append((socket, socket.connect_to_server()))

    await page.route_web_socket("**/graphql", through)
    await sign_in(page, server, school, student)
    absent_before = int(await text(page, "#count-absent"))
    # when the server goes away as on a deploy (1012: reconnect at once)
    page_side, server_side = sockets[0]
    await server_side.close()
    await page_side.close(code=1012, reason="Service Restart")
    # then the page connects again and its subscription is live again
    await page.wait_for_selector("#connection[data-state='live']", timeout=10_000)
    assert len(sockets) == 2
    await mark_absent(server, school, student, period=4)
    await expect(page.locator("#count-absent")).to_have_text(str(absent_before + 1), timeout=10_000)


async def test_offline_the_saved_data_shows_with_a_warning_and_no_uploads(context, server, factory):
    # given a student who has seen their dashboard once (page files kept by the worker)
    school = await marked_school(factory)
    student = school.students[0]
    page = await context.new_page()
    await sign_in(page, server, school, student)
    rate = await text(page, "#rate-value")
    await page.evaluate("navigator.serviceWorker.ready.then(() => true)")
    # when the network goes away and the page is opened again
    await context.set_offline(True)
    await page.reload()
    # then the saved figures show with the offline indicator, and changes are disabled
    await page.wait_for_selector("#connection[data-state='offline']")
    assert await text(page, "#rate-value") == rate
    assert await page.locator("#offline-banner").is_visible()
    assert "saved" in await text(page, "#offline-text")
    assert await page.locator("#upload-file").is_disabled()
    assert await page.locator("#upload-submit").is_disabled()
    assert await page.locator("#preferences-fieldset input >> nth=0").is_disabled()
    assert not await page.locator("#stale-banner").is_visible()
    # when the saved data is more than a day old
    await page.evaluate(
        """() => {
          const snapshot = JSON.parse(localStorage.getItem('rollcall.snapshot'));
          snapshot.savedAt = new Date(Date.now() - 25 * 3600 * 1000).toISOString();
          localStorage.setItem('rollcall.snapshot', JSON.stringify(snapshot));
        }"""
    )
    await page.reload()
    # then the staleness banner says so
    await page.wait_for_selector("#stale-banner", state="visible")
    assert "24 hours" in await text(page, "#stale-banner")
    # when the network is back: fresh data at once, banners gone, uploads possible
    await context.set_offline(False)
    await page.wait_for_selector("#connection[data-state='live']", timeout=15_000)
    await page.wait_for_selector("#stale-banner", state="hidden")
    assert not await page.locator("#offline-banner").is_visible()
    assert await page.locator("#upload-submit").is_enabled()
    snapshot = json.loads(await page.evaluate("localStorage.getItem('rollcall.snapshot')"))
    saved_at = datetime.fromisoformat(snapshot["savedAt"].replace("Z", "+00:00"))
    assert datetime.now(UTC) - saved_at < timedelta(minutes=1)


async def test_a_failing_api_is_detected_without_the_browser_saying_offline(
    context, server, factory
):
    # given a signed-in student
    school = await marked_school(factory)
    page = await context.new_page()
    await sign_in(page, server, school, school.students[0])
    # when the API stops answering (the browser itself still says it is online)
    await page.route("**/graphql", lambda route: route.abort())
    await page.reload()
    # then the page falls back to the saved data
    await page.wait_for_selector("#connection[data-state='offline']")
    assert await page.locator("#offline-banner").is_visible()
    assert await page.locator("#upload-submit").is_disabled()


async def test_server_text_is_shown_as_text_and_notifications_arrive_live(
    context, server, factory, settings
):
    # given a signed-in student
    school = await marked_school(factory)
    student = school.students[0]
    page = await context.new_page()
    await sign_in(page, server, school, student)
    # when a notification whose title is markup is written and pushed
    title = '<img src=x onerror="window.pwned = true">Hello'
    async with factory.session_factory() as session, session.begin():
        notification = await create_notification(
            session,
            tenant_id=school.tenant.id,
            user_id=school.accounts[student.id].id,
            draft=Draft(
                kind=NotificationType.SYSTEM_ANNOUNCEMENT,
                severity=Severity.INFO,
                title=title,
                message="<b>not bold</b>",
            ),
        )
    assert notification is not None
    assert settings.redis_url is not None
    async with aioredis.Redis.from_url(settings.redis_url) as redis:
        await publish_notifications(redis, tenant_id=school.tenant.id, notifications=[notification])
    # then it shows at once, as the very text sent
    item = page.locator(".notification-title", has_text="Hello")
    await item.wait_for(timeout=10_000)
    assert await item.text_content() == title
    assert await page.locator("#notifications img, #notifications b").count() == 0
    assert await page.evaluate("window.pwned") is None
    assert await text(page, "#unread-count") == "1 unread"
    # and marking it read works
    await page.get_by_role("button", name="Mark “" + title + "” as read").click()
    await page.wait_for_selector("#unread-count", state="hidden")


async def test_a_certificate_is_uploaded_and_listed(context, server, factory, tmp_path: Path):
    # given a signed-in student with a scan of a certificate
    school = await marked_school(factory)
    page = await context.new_page()
    await sign_in(page, server, school, school.students[0])
    scan = tmp_path / f"certificate-{uuid.uuid4().hex[:6]}.png"
    scan.write_bytes(PNG)
    # when
    await page.get_by_label("File (PDF, PNG or JPEG, up to 10 MB)").set_input_files(str(scan))
    await page.get_by_role("button", name="Upload certificate").click()
    # then
    await page.wait_for_selector(f".certificate-name:text('{scan.name}')", timeout=10_000)
    assert "Uploaded" in await text(page, "#upload-status")
    assert await text(page, ".certificate .badge") in {"Waiting for scan", "Scanning"}


async def test_the_scripts_own_rules(context, server):
    """The reconnection backoff and the staleness rule, run in the browser itself."""
    page = await context.new_page()
    await page.goto(server.base_url + "/")
    delays = await page.evaluate(
        "import('/web/js/live.js').then(m => [0, 1, 2, 3, 4, 5, 6, 20].map(m.backoffDelay))"
    )
    assert delays == [1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000]
    stale = await page.evaluate(
        """import('/web/js/store.js').then(m => [
             m.isStale({savedAt: new Date(Date.now() - 23 * 3600e3).toISOString()}),
             m.isStale({savedAt: new Date(Date.now() - 25 * 3600e3).toISOString()}),
           ])"""
    )
    assert stale == [False, True]
    monday = await page.evaluate(
        "import('/web/js/format.js').then(m => [m.mondayOf('2026-03-11'), m.mondayOf('2026-03-15'), "
        "m.schoolToday('UTC', new Date('2026-03-11T23:30:00Z')), "
        "m.schoolToday('Asia/Tashkent', new Date('2026-03-11T23:30:00Z'))])"
    )
    assert monday == ["2026-03-09", "2026-03-09", "2026-03-11", "2026-03-12"]


OVERFLOWING = """() => {
  const found = [];
  const root = document.documentElement;
  if (root.scrollWidth > root.clientWidth) found.push(`the page: ${root.scrollWidth}px wide`);
  for (const cell of document.querySelectorAll(".week-table th, .week-table td, .week-table span")) {
    // (a label hidden for sight but kept for screen readers is 1 px wide on purpose)
    if (cell.clientWidth > 1 && cell.scrollWidth > cell.clientWidth + 1) {
      found.push(`${cell.tagName} ${cell.className} "${cell.textContent.trim()}": ${cell.scrollWidth} > ${cell.clientWidth}`);
    }
  }
  return found;
}"""


@pytest.mark.parametrize("width", [375, 1280])
async def test_the_week_grid_fits_the_screen(browser, server, factory, width):
    """Every label of the week inside its cell, on a phone as on a desktop: the longest
    status and subject names marked this week."""
    school = await marked_school(factory)
    monday = datetime.now(UTC).date() - timedelta(days=datetime.now(UTC).date().weekday())
    statuses = [AttendanceStatus.PRESENT, AttendanceStatus.NOT_MARKED, AttendanceStatus.ABSENT]
    await factory.records(
        school,
        school.students[0],
        [
            (monday + timedelta(days=day), period, statuses[(day + period) % 3])
            for day in range(5)
            for period in range(1, 7)
        ],
    )
    phone = width < 600
    opened = await browser.new_context(
        viewport={"width": width, "height": 800}, is_mobile=phone, has_touch=phone
    )
    try:
        page = await opened.new_page()
        await sign_in(page, server, school, school.students[0])
        await page.locator(".week-table").wait_for()
        assert await page.evaluate(OVERFLOWING) == []
    finally:
        await opened.close()
