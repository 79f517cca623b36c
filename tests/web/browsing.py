"""Helpers of the pages' browser tests: the API as a test reads it, a page's text, a student
signed in to the student page."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from rollcall.browser import chromium_missing
from rollcall.processes import ServerProcess
from services.models import Student
from tests.factories import PASSWORD, School

# Each browser test module's pytestmark: selected by ``-m browser``, skipped without Chromium.
BROWSER_TESTS = [
    pytest.mark.browser,
    pytest.mark.skipif(chromium_missing() is not None, reason=chromium_missing() or ""),
]
playwright_api = pytest.importorskip("playwright.async_api")
expect = playwright_api.expect


async def api(
    server: ServerProcess, query: str, variables: dict[str, Any] | None = None, *, token: str
) -> dict[str, Any]:
    """The data of ``query`` as ``token``'s user, failing the test on any error."""
    async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as http:
        response = await http.post(
            "/graphql",
            json={"query": query, "variables": variables or {}},
            headers={"authorization": f"Bearer {token}"},
        )
    body: dict[str, Any] = response.json()
    assert "errors" not in body, body
    data: dict[str, Any] = body["data"]
    return data


async def text(page: Any, selector: str) -> str:
    return (await page.locator(selector).text_content() or "").strip()


async def sign_in(page: Any, server: ServerProcess, school: School, student: Student) -> None:
    await page.goto(server.base_url + "/")
    await page.get_by_label("School code").fill(school.tenant.slug)
    await page.get_by_label("Email").fill(school.accounts[student.id].email)
    await page.get_by_label("Password", exact=True).fill(PASSWORD)
    await page.get_by_role("button", name="Sign in").click()
    await live(page)


async def live(page: Any) -> None:
    """Until the figures are in and the websocket is acknowledged. (Locators, not
    ``wait_for_function``: the page's CSP forbids evaluating strings.)"""
    await playwright_api.expect(page.locator("#rate-value")).not_to_have_text("–")
    await page.wait_for_selector("#connection[data-state='live']")
