"""Debian's chromium driven by playwright, for the browser tests (never `playwright install`)."""

from __future__ import annotations

from collections.abc import Iterator

from playwright.sync_api import Browser, sync_playwright

CHROMIUM = "/usr/bin/chromium"


def launched() -> Iterator[Browser]:
    """A headless browser for one test module's fixture: playwright's sync API allows one instance at a time
    in a process, so no browser may outlive the module that started it."""
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True)
        yield browser
        browser.close()
