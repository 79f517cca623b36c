"""What the pages' browser tests share: one API process and one Chromium per test module."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from rollcall.browser import launch_options
from rollcall.processes import ServerProcess, running_server
from services.platform.settings import Settings
from tests.factories import process_env


@pytest.fixture(scope="module")
async def server(
    settings: Settings, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[ServerProcess]:
    storage = f"file://{tmp_path_factory.mktemp('page-storage')}"
    async with running_server(process_env(settings, ROLLCALL_STORAGE_URL=storage)) as started:
        yield started


@pytest.fixture(scope="module")
async def browser() -> AsyncIterator[Any]:
    playwright_api = pytest.importorskip("playwright.async_api")
    async with playwright_api.async_playwright() as playwright:
        launched = await playwright.chromium.launch(**launch_options())
        yield launched
        await launched.close()
