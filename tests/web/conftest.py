"""Browser fixtures: Playwright's sync API driving Debian's Chromium against a live test server.

A missing browser is a failure, never a skip: these tests are the dashboard's only guard.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, ConsoleMessage, Dialog, Page, Playwright, sync_playwright

from tests.conftest import LiveServer

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@pytest.fixture(scope="session")
def playwright_instance() -> Iterator[Playwright]:
    with sync_playwright() as playwright:
        yield playwright


@pytest.fixture(scope="session")
def browser(playwright_instance: Playwright) -> Iterator[Browser]:
    if not CHROMIUM.exists():
        pytest.fail(
            f"Chromium is required for the web tests: install it (apt-get install chromium); {CHROMIUM} is missing"
        )
    browser = playwright_instance.chromium.launch(
        executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
    )
    yield browser
    browser.close()


class PageProblems(list[str]):
    """Console errors (CSP violations among them) and uncaught exceptions seen by one page."""


@pytest.fixture
def open_page(
    browser: Browser, make_server: Callable[..., LiveServer]
) -> Iterator[Callable[..., tuple[Page, PageProblems]]]:
    """New browser pages; they close before the server stops (an open EventSource would hold it)."""
    contexts: list[Any] = []

    def open_(**options: Any) -> tuple[Page, PageProblems]:
        context = browser.new_context(**{"viewport": {"width": 1280, "height": 900}, **options})
        contexts.append(context)
        page = context.new_page()
        problems = PageProblems()

        def on_console(message: ConsoleMessage) -> None:
            if message.type == "error":
                problems.append(message.text)

        page.on("console", on_console)
        page.on("pageerror", lambda error: problems.append(f"uncaught: {error}"))

        def on_dialog(dialog: Dialog) -> None:
            problems.append(f"dialog: {dialog.message}")
            dialog.dismiss()

        page.on("dialog", on_dialog)
        page.set_default_timeout(10_000)
        return page, problems

    yield open_
    for context in contexts:
        context.close()


@pytest.fixture
def page(open_page: Callable[..., tuple[Page, PageProblems]]) -> tuple[Page, PageProblems]:
    return open_page()
