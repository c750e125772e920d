"""The Notifications page in Chromium: an admin adds a target with some events and sends a test."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from playwright.sync_api import Page, expect

from tests.accounts import ADMIN, ADMIN_PASSWORD, private_server
from tests.conftest import LiveServer
from tests.notify_support import Receiver, receiver
from tests.support import wait_for
from tests.web.conftest import PageProblems

__all__ = ["receiver"]

SQLITE = pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
OpenPage = Callable[..., tuple[Page, PageProblems]]


@SQLITE
def test_an_admin_adds_a_target_and_sends_a_test(
    make_server: Callable[..., LiveServer], open_page: OpenPage, receiver: Receiver
) -> None:
    server = private_server(make_server)
    page, problems = open_page()
    page.goto(f"{server.url}/notifications")
    page.fill("#login-username", ADMIN)
    page.fill("#login-password", ADMIN_PASSWORD)
    page.click("#login-submit")
    expect(page.get_by_role("heading", name="Notifications", exact=True)).to_be_visible()
    expect(page.locator("#targets")).to_contain_text("No target yet")

    page.fill("#nt-name", "ops webhook")
    page.fill("#nt-url", f"json://ops:hunter2-secret@127.0.0.1:{receiver.port}/hook")
    for box in page.locator('#target-form input[name="events"]').all():
        if box.get_attribute("value") not in ("study_failed", "worker_offline"):
            box.uncheck()
    page.click("#nt-add")

    row = page.locator("#targets tbody tr[data-id]")
    expect(row).to_have_count(1)
    expect(row.locator('[data-f="name"]')).to_have_text("ops webhook")
    expect(row.locator('[data-f="url"]')).to_have_text(f"json://ops:****@127.0.0.1:{receiver.port}/hook")
    expect(row.locator('[data-f="events"]')).to_have_text(
        "Super study failed, Worker went offline while running"
    )
    assert "hunter2-secret" not in page.content()

    row.get_by_role("button", name="Send a test").click()
    expect(row.locator('[data-f="result"]')).to_have_text("Sent")
    wait_for(
        lambda: receiver.titles() == ["goliat-monitor test notification"], what="the test at the receiver"
    )

    page.reload()
    expect(page.locator("#history")).to_contain_text("goliat-monitor test notification")
    expect(page.locator("#history [data-status]")).to_have_attribute("data-status", "DELIVERED")
    page.get_by_role("link", name="Notifications").click()  # the header links the page for admins
    expect(page).to_have_url(f"{server.url}/notifications")

    page.locator("#targets tbody tr[data-id]").get_by_role("button", name="Remove").click()
    expect(page.locator("#targets")).to_contain_text("No target yet")
    assert problems == []
