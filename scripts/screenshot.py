"""A screenshot of the student page for the README (docs/dashboard.png): signs in as a demo
student on a running API and saves the dashboard once its figures and live connection are in.

Against the demo data (``make demo`` in another terminal, or ``rollcall seed --demo`` and
``rollcall serve --with-worker``)::

    .venv/bin/python scripts/screenshot.py [--url http://127.0.0.1:8000] [--output FILE]
"""

from __future__ import annotations

import argparse
from pathlib import Path

from playwright.sync_api import expect, sync_playwright

from rollcall.browser import chromium_missing, launch_options

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", default="http://127.0.0.1:8000")
    parser.add_argument("--tenant", default="demo")
    parser.add_argument("--email", default="student1@demo.school")
    parser.add_argument("--password", default="demo-password")
    parser.add_argument("--output", type=Path, default=ROOT / "docs" / "dashboard.png")
    parser.add_argument("--width", type=int, default=1440)
    parser.add_argument("--height", type=int, default=1100)
    options = parser.parse_args()
    if reason := chromium_missing():
        raise SystemExit(reason)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(**launch_options())
        page = browser.new_page(viewport={"width": options.width, "height": options.height})
        page.goto(options.url + "/")
        page.get_by_label("School code").fill(options.tenant)
        page.get_by_label("Email").fill(options.email)
        page.get_by_label("Password").fill(options.password)
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_selector("#connection[data-state='live']")
        expect(page.locator("#rate-value")).not_to_have_text("–")
        page.wait_for_selector("#chart svg")
        # Hover and focus rings off: the picture shows the page at rest.
        page.mouse.move(0, 0)
        page.evaluate("document.activeElement && document.activeElement.blur()")
        options.output.parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(options.output), full_page=True)
        browser.close()
    print(f"saved {options.output}")


if __name__ == "__main__":
    main()
