"""Setting a password from the student page in headless Chromium: a new student asks for a
link on the sign-in card, opens it, chooses a password and signs in to a live dashboard.

Select them with ``pytest -m browser``; without /usr/bin/chromium they skip.
"""

from __future__ import annotations

import logging
import re
from typing import Any

import pytest

from tests.factories import run_jobs
from tests.web.browsing import BROWSER_TESTS, api, expect, live

pytestmark = BROWSER_TESTS

CREATE_STUDENT = """mutation CreateStudent($input: CreateStudentInput!) {
  createStudent(input: $input) { id }
}"""
NEW_PASSWORD = "my own password 2026"
LINK = re.compile(r"password reset link for \S+: (\S+)")


@pytest.mark.parametrize("width", [375, 1280])
async def test_a_new_student_sets_a_password_by_the_emailed_link(
    server, browser, factory, caplog, width
):
    school = await factory.school(students=1)
    email = f"new-{width}@school.test"
    variables = {
        "input": {"name": "New Pupil", "email": email, "classroomId": str(school.classrooms[0].id)}
    }
    await api(server, CREATE_STUDENT, variables, token=school.token(school.admin))
    context = await browser.new_context(viewport={"width": width, "height": 800})
    page: Any = await context.new_page()
    try:
        await page.goto(server.base_url + "/")
        forgot = page.get_by_role("button", name=re.compile("Email me a link"))
        await forgot.click()
        await expect(page.locator("#forgot-message")).to_contain_text("school code and email")
        await page.get_by_label("School code").fill(school.tenant.slug)
        await page.get_by_label("Email").fill(email)
        await forgot.click()
        await expect(page.locator("#forgot-message")).to_contain_text("on its way")

        caplog.clear()
        with caplog.at_level(logging.INFO, logger="jobs.administration"):
            await run_jobs(factory.settings)
        (link,) = [m[1] for r in caplog.records if (m := LINK.search(r.getMessage()))]
        assert link.startswith(server.base_url + "/#reset=")

        await page.goto(link)
        await expect(page.locator("#reset-view")).to_be_visible()
        assert "#reset" not in page.url  # the token leaves the address bar once read
        await page.get_by_label("New password").fill(NEW_PASSWORD)
        await page.get_by_label("The same again").fill(NEW_PASSWORD + "x")
        await page.get_by_role("button", name="Set my password").click()
        await expect(page.locator("#reset-message")).to_have_text("The two passwords differ.")
        await page.get_by_label("The same again").fill(NEW_PASSWORD)
        await page.get_by_role("button", name="Set my password").click()
        await expect(page.locator("#login-error")).to_have_text(
            "Your password is set: sign in with it."
        )

        await page.get_by_label("School code").fill(school.tenant.slug)
        await page.get_by_label("Email").fill(email)
        await page.get_by_label("Password", exact=True).fill(NEW_PASSWORD)
        await page.get_by_role("button", name="Sign in").click()
        await live(page)
        await expect(page.locator("#student-name")).to_have_text("New Pupil")
        # Nothing wider than a phone, a new student's empty cards included.
        assert await page.evaluate("document.documentElement.scrollWidth") <= width

        await page.goto(link)  # a spent link says so
        await page.get_by_label("New password").fill("yet another password")
        await page.get_by_label("The same again").fill("yet another password")
        await page.get_by_role("button", name="Set my password").click()
        await expect(page.locator("#reset-message")).to_contain_text("unknown, used or expired")
    finally:
        await context.close()
