"""Headless Chromium for the page's browser tests and its screenshot: Debian's ``chromium``
package, driven by Playwright (never ``playwright install``: nothing is downloaded)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)


def chromium_missing() -> str | None:
    """Why the browser cannot run here, or None when it can."""
    if not CHROMIUM.exists():
        return f"{CHROMIUM} is missing (Debian package chromium; .ci/run installs it)"
    return None


def launch_options() -> dict[str, Any]:
    """Keyword arguments of Playwright's ``chromium.launch``."""
    return {"executable_path": str(CHROMIUM), "args": list(CHROMIUM_ARGS), "headless": True}
