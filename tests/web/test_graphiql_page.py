"""GraphiQL in headless Chromium with every other host unreachable: it loads from the app
alone and runs a query. Select with ``pytest -m browser``; without /usr/bin/chromium it skips."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote, urlsplit

from tests.web.browsing import BROWSER_TESTS, expect

pytestmark = BROWSER_TESTS


async def test_graphiql_runs_a_query_with_the_network_cut(server, browser):
    context = await browser.new_context(viewport={"width": 1280, "height": 800})
    page: Any = await context.new_page()
    own = urlsplit(server.base_url).netloc
    elsewhere: list[str] = []

    async def cut_off(route: Any) -> None:
        if urlsplit(route.request.url).netloc in {own, ""}:
            await route.continue_()
        else:
            elsewhere.append(route.request.url)
            await route.abort("internetdisconnected")

    await context.route("**/*", cut_off)
    try:
        await page.goto(f"{server.base_url}/graphql?q={quote('{ __typename }')}")
        run = page.locator(".graphiql-execute-button")
        await expect(run).to_be_visible(timeout=15_000)
        await run.click()
        await expect(page.locator(".result-window")).to_contain_text('"__typename": "Query"')
        assert elsewhere == []
    finally:
        await context.close()
