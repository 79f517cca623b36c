"""The teacher's register (``/teacher``) in headless Chromium against a real API process: marks
written through the page are the API's, other teachers' marks show live, the student page sees
the register's marks live, on a phone's width and a desktop's.

Select them with ``pytest -m browser``; without /usr/bin/chromium they skip.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import update

from rollcall.processes import ServerProcess
from services.models import Student, Tenant, User
from tests.factories import PASSWORD, Factory, School
from tests.web.browsing import BROWSER_TESTS, api, expect, sign_in, text

pytestmark = BROWSER_TESTS

PHONE, DESKTOP = 375, 1280
WEEK = """query Week($weekStart: Date!, $studentId: ID) {
  weeklyAttendance(weekStart: $weekStart, studentId: $studentId) {
    days { date records { period status subject { name } } }
  }
}"""
MARK = """mutation Mark($input: MarkAttendanceInput!) {
  markAttendance(input: $input) { records { id } }
}"""
# A school whose day starts 14 hours before UTC's: "today" is the school's, not the browser's.
FAR_EAST = "Pacific/Kiritimati"


@pytest.fixture(params=[PHONE, DESKTOP], ids=["phone", "desktop"])
async def context(request: pytest.FixtureRequest, browser: Any) -> AsyncIterator[Any]:
    """A fresh profile per test, as wide as a phone (touch) or a desktop."""
    width: int = request.param
    phone = width == PHONE
    opened = await browser.new_context(
        viewport={"width": width, "height": 800}, is_mobile=phone, has_touch=phone
    )
    yield opened
    await opened.close()


async def open_register(page: Any, server: ServerProcess, school: School, user: User) -> None:
    """Signed in at /teacher, the first class's students listed, the websocket acknowledged."""
    await page.goto(server.base_url + "/teacher")
    await page.get_by_label("School code").fill(school.tenant.slug)
    await page.get_by_label("Email").fill(user.email)
    await page.get_by_label("Password", exact=True).fill(PASSWORD)
    await page.get_by_role("button", name="Sign in").click()
    students = school.students_of(school.classrooms[0])
    await expect(page.locator("#roster .mark")).to_have_count(len(students))
    await page.wait_for_selector("#connection[data-state='live']")


def mark_button(page: Any, student: Student) -> Any:
    return page.locator(f"#roster .mark[data-student-id='{student.id}']")


async def no_horizontal_overflow(page: Any) -> None:
    width = page.viewport_size["width"]
    assert await page.evaluate("document.documentElement.scrollWidth") <= width


async def record_of(
    server: ServerProcess, school: School, student: Student, day: date, period: int
) -> tuple[str, str] | None:
    """The student's status and subject for that period, as the API reads them (an admin)."""
    week = await api(
        server,
        WEEK,
        {
            "weekStart": (day - timedelta(days=day.weekday())).isoformat(),
            "studentId": str(student.id),
        },
        token=school.token(school.admin),
    )
    [found] = [d for d in week["weeklyAttendance"]["days"] if d["date"] == day.isoformat()]
    records = [r for r in found["records"] if r["period"] == period]
    return (records[0]["status"], records[0]["subject"]["name"]) if records else None


async def admin_marks(
    server: ServerProcess, school: School, day: date, period: int, marks: dict[Student, str]
) -> None:
    """The school's admin marks ``marks`` (of one class) through the API."""
    [classroom_id] = {student.classroom_id for student in marks}
    await api(
        server,
        MARK,
        {
            "input": {
                "classroomId": str(classroom_id),
                "date": day.isoformat(),
                "period": period,
                "subjectId": str(school.subjects[0].id),
                "marks": [{"studentId": str(s.id), "status": v} for s, v in marks.items()],
            }
        },
        token=school.token(school.admin),
    )


async def until_shown(
    act: Callable[[], Awaitable[None]], shown: Any, attribute: str, value: str
) -> None:
    """Acts until ``shown`` has the attribute's value: graphql-transport-ws acknowledges no
    subscribe, so the first mark may come before the server listens for the page."""
    for _ in range(8):
        await act()
        try:
            await expect(shown).to_have_attribute(attribute, value, timeout=1500)
            return
        except AssertionError:
            continue
    await expect(shown).to_have_attribute(attribute, value, timeout=1)


async def test_a_teacher_marks_a_period_and_the_api_has_it(context, server, factory: Factory):
    # given a teacher of a class of three, in a school whose today is not UTC's
    school = await factory.school(students=3)
    async with factory.session_factory() as session, session.begin():
        await session.execute(
            update(Tenant).where(Tenant.id == school.tenant.id).values(timezone=FAR_EAST)
        )
    first, second, third = school.students
    page = await context.new_page()
    await open_register(page, server, school, school.teachers[0])
    # then everyone starts present, on the school's today
    today = datetime.now(ZoneInfo(FAR_EAST)).date()
    assert await page.get_by_label("Date").input_value() == today.isoformat()
    assert await page.get_by_label("My classes").input_value() == str(school.classrooms[0].id)
    for student in school.students:
        await expect(mark_button(page, student)).to_have_attribute("data-status", "PRESENT")
    assert await text(page, "#roster-summary") == "3 present · 0 absent · 0 sick · 0 leave"
    # when they choose the second subject and period 2, and tap a student once
    await page.get_by_label("Subject").select_option(label=school.subjects[1].name)
    await page.get_by_label("Period").select_option("2")
    await mark_button(page, second).click()
    # then that student is absent
    await expect(mark_button(page, second)).to_have_attribute("data-status", "ABSENT")
    assert await text(page, f"#roster .mark[data-student-id='{second.id}'] .status") == "Absent"
    assert await text(page, "#roster-summary") == "2 present · 1 absent · 0 sick · 0 leave"
    # and four taps go round the statuses back to present
    seen = []
    for _ in range(4):
        await mark_button(page, third).click()
        seen.append(await mark_button(page, third).get_attribute("data-status"))
    assert seen == ["ABSENT", "SICK", "LEAVE", "PRESENT"]
    await no_horizontal_overflow(page)
    # when they submit
    await page.get_by_role("button", name="Submit register").click()
    # then the page says so, and the API has exactly those marks
    await expect(page.locator("#register-status")).to_have_attribute("data-tone", "success")
    assert "Saved: Class 0, period 2" in await text(page, "#register-status")
    subject = school.subjects[1].name
    assert await record_of(server, school, first, today, 2) == ("PRESENT", subject)
    assert await record_of(server, school, second, today, 2) == ("ABSENT", subject)
    assert await record_of(server, school, third, today, 2) == ("PRESENT", subject)
    assert await record_of(server, school, second, today, 1) is None
    await no_horizontal_overflow(page)


async def test_a_period_marked_before_the_page_opened_shows_its_marks(
    context, server, factory: Factory
):
    # given period 2 of today marked by the admin: the first student absent, the others present
    school = await factory.school(students=3)
    first, second, third = school.students
    today = datetime.now(UTC).date()
    await admin_marks(server, school, today, 2, {first: "ABSENT", second: "PRESENT"})
    page = await context.new_page()
    await open_register(page, server, school, school.teachers[0])
    # when the teacher opens that period, then its marks show, the unmarked student present
    await page.get_by_label("Period").select_option("2")
    await expect(mark_button(page, first)).to_have_attribute("data-status", "ABSENT")
    await expect(mark_button(page, third)).to_have_attribute("data-status", "PRESENT")
    await expect(page.locator("#register-status")).to_contain_text("Already marked")
    # and submitting again after one tap keeps the earlier absence
    await mark_button(page, third).click()
    await page.get_by_role("button", name=re.compile("^Submit")).click()
    await expect(page.locator("#register-status")).to_contain_text("Saved")
    assert await record_of(server, school, first, today, 2) == ("ABSENT", "Subject 0")
    assert (await record_of(server, school, third, today, 2) or ("",))[0] == "ABSENT"


async def test_another_teachers_marks_show_live(context, server, factory: Factory):
    # given a teacher with period 3 of today open
    school = await factory.school(students=3)
    first, second, third = school.students
    today = datetime.now(UTC).date()
    page = await context.new_page()
    await open_register(page, server, school, school.teachers[0])
    await page.get_by_label("Period").select_option("3")
    await page.evaluate("window.stillTheSamePage = true")

    # when an admin marks the first student sick in that period, then the page shows it
    async def sick() -> None:
        await admin_marks(server, school, today, 3, {first: "SICK"})

    await until_shown(sick, mark_button(page, first), "data-status", "SICK")
    assert "Another teacher marked" in await text(page, "#announcer")
    # when they mark another period, then this one: only this one's mark shows
    await admin_marks(server, school, today, 4, {second: "ABSENT"})
    await admin_marks(server, school, today, 3, {third: "LEAVE"})
    await expect(mark_button(page, third)).to_have_attribute("data-status", "LEAVE")
    await expect(mark_button(page, second)).to_have_attribute("data-status", "PRESENT")
    assert await text(page, "#roster-summary") == "1 present · 0 absent · 1 sick · 1 leave"
    await no_horizontal_overflow(page)
    # and the other period, chosen next, shows the mark pushed while it was not on screen
    await page.get_by_label("Period").select_option("4")
    await expect(mark_button(page, second)).to_have_attribute("data-status", "ABSENT")
    await expect(mark_button(page, first)).to_have_attribute("data-status", "PRESENT")
    assert await page.evaluate("window.stillTheSamePage") is True


async def test_the_student_page_shows_the_registers_mark_live(browser, server, factory: Factory):
    # given a student on their page (a desktop) and their teacher's register (a phone)
    school = await factory.school(students=2)
    student = school.students[1]
    desk = await browser.new_context(viewport={"width": DESKTOP, "height": 900})
    phone = await browser.new_context(
        viewport={"width": PHONE, "height": 800}, is_mobile=True, has_touch=True
    )
    try:
        own = await desk.new_page()
        await sign_in(own, server, school, student)
        assert await text(own, "#count-absent") == "0"
        register = await phone.new_page()
        await open_register(register, server, school, school.teachers[0])
        await register.get_by_label("Period").select_option("5")
        # when the teacher marks them absent in period 5 and submits
        await mark_button(register, student).click()
        await register.get_by_role("button", name="Submit register").click()
        await expect(register.locator("#register-status")).to_have_attribute("data-tone", "success")
        # then the student's page shows it without a reload: the counts, then today's period 5
        await expect(own.locator("#count-absent")).to_have_text("1", timeout=10_000)
        await own.wait_for_selector("#week tbody tr:nth-child(5) td.today .status-absent")
        await no_horizontal_overflow(register)
    finally:
        await desk.close()
        await phone.close()


async def test_the_register_follows_the_chosen_class_and_reconnects(browser, server, factory):
    # given a teacher of two classes whose websocket goes through the test
    school = await factory.school(classrooms=2, students=2)
    later = school.students_of(school.classrooms[1])
    context = await browser.new_context(viewport={"width": DESKTOP, "height": 900})
    page = await context.new_page()
    sockets: list[tuple[Any, Any]] = []
    sent: list[dict[str, Any]] = []

    def through(socket: Any) -> None:
        upstream = socket.connect_to_server()

        def forward(message: str | bytes) -> None:
            sent.append(json.loads(message))
            upstream.send(message)

        socket.on_message(forward)
        sockets.append((socket, upstream))

    try:
        await page.route_web_socket("**/graphql", through)
        await open_register(page, server, school, school.teachers[0])
        # when they choose the other class
        await page.get_by_label("My classes").select_option(label="Class 1")
        await expect(mark_button(page, later[0])).to_be_visible()
        # then the first class's subscription is ended and the second's started
        subscribed = {
            message["payload"]["variables"]["classroomId"]: message["id"]
            for message in sent
            if message["type"] == "subscribe"
        }
        first_id = subscribed[str(school.classrooms[0].id)]
        assert str(school.classrooms[1].id) in subscribed
        assert {"id": first_id, "type": "complete"} in sent
        # when the server goes away as on a deploy (1012: reconnect at once)
        page_side, server_side = sockets[0]
        before = len(sent)
        await server_side.close()
        await page_side.close(code=1012, reason="Service Restart")
        # then the page connects again, says marks may have been missed, and is live again
        await expect(page.locator("#live-note")).to_be_visible(timeout=10_000)
        await page.wait_for_selector("#connection[data-state='live']")
        assert len(sockets) == 2
        # (the page sends its subscriptions in the same task as it shows Live: let them come)
        for _ in range(50):
            again = [m for m in sent[before:] if m["type"] == "subscribe"]
            if again:
                break
            await page.wait_for_timeout(100)
        assert [m["payload"]["variables"]["classroomId"] for m in again] == [
            str(school.classrooms[1].id)
        ]

        async def absent() -> None:
            await admin_marks(server, school, datetime.now(UTC).date(), 1, {later[1]: "ABSENT"})

        await until_shown(absent, mark_button(page, later[1]), "data-status", "ABSENT")
    finally:
        await context.close()


async def test_refusals_are_shown_with_the_field_they_name(context, server, factory: Factory):
    # given a teacher who picks a day to come (the date field allows typing one)
    school = await factory.school(students=2)
    page = await context.new_page()
    await open_register(page, server, school, school.teachers[0])
    later = (datetime.now(UTC).date() + timedelta(days=3)).isoformat()
    await page.get_by_label("Date").fill(later)
    # when they submit
    await page.get_by_role("button", name="Submit register").click()
    # then the refusal is shown, and the date field is marked as the one at fault
    status = page.locator("#register-status")
    await expect(status).to_have_attribute("data-tone", "error")
    assert "Not saved" in await text(page, "#register-status")
    assert "future" in await text(page, "#register-status")
    await expect(page.get_by_label("Date")).to_have_attribute("aria-invalid", "true")
    await no_horizontal_overflow(page)


async def test_students_are_sent_to_their_page_and_logging_out_forgets(
    context, server, factory: Factory
):
    school = await factory.school(students=1)
    page = await context.new_page()
    await page.goto(server.base_url + "/teacher")
    # a student is refused, and pointed to their page
    await page.get_by_label("School code").fill(school.tenant.slug)
    await page.get_by_label("Email").fill(school.accounts[school.students[0].id].email)
    await page.get_by_label("Password", exact=True).fill(PASSWORD)
    await page.get_by_role("button", name="Sign in").click()
    await expect(page.locator("#login-error")).to_contain_text("students see their attendance")
    assert await page.evaluate("localStorage.getItem('rollcall.teacher-session')") is None
    assert await page.get_by_role("link", name="see your attendance").get_attribute("href") == "/"
    await no_horizontal_overflow(page)
    # a teacher's session is kept for the register only: the student page still asks to sign in
    await open_register(page, server, school, school.teachers[0])
    await page.reload()
    await expect(page.locator("#roster .mark")).to_have_count(1)
    await page.goto(server.base_url + "/")
    await expect(page.locator("#login-view")).to_be_visible()
    await page.get_by_role("link", name="take the register").click()
    await expect(page.locator("#register-view")).to_be_visible()
    # logging out forgets it
    await page.get_by_role("button", name="Log out").click()
    await expect(page.locator("#login-view")).to_be_visible()
    assert await page.evaluate("localStorage.getItem('rollcall.teacher-session')") is None
    await page.reload()
    await expect(page.locator("#login-view")).to_be_visible()


async def test_the_registers_own_rules(browser, server):
    context = await browser.new_context()
    page = await context.new_page()
    await page.goto(server.base_url + "/teacher")
    cycle = await page.evaluate(
        "import('/web/js/format.js').then(m => "
        "['PRESENT', 'ABSENT', 'SICK', 'LEAVE', 'NOT_MARKED'].map(m.nextStatus))"
    )
    assert cycle == ["ABSENT", "SICK", "LEAVE", "PRESENT", "PRESENT"]
    urls = await page.evaluate(
        "import('/web/js/live.js').then(m => [m.socketUrl({protocol: 'https:', host: 'a.test'}), "
        "m.socketUrl({protocol: 'http:', host: '127.0.0.1:8000'})])"
    )
    assert urls == ["wss://a.test/graphql", "ws://127.0.0.1:8000/graphql"]
    await context.close()
