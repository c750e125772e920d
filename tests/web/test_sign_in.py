"""A private dashboard in Chromium: sign in, browse, be refused as a viewer, sign out."""

from __future__ import annotations

import re
from collections.abc import Callable

import httpx
import pytest
from playwright.sync_api import Page, expect

from tests.accounts import ADMIN, ADMIN_PASSWORD, VIEWER, VIEWER_PASSWORD, bearer, private_server
from tests.api.helpers import create_study, heartbeat
from tests.conftest import LiveServer
from tests.web.conftest import PageProblems

SQLITE = pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
OpenPage = Callable[..., tuple[Page, PageProblems]]


def campaign(server: LiveServer) -> tuple[str, str]:
    with httpx.Client(base_url=server.url, headers=bearer("admin")) as admin:
        study = create_study(admin, name="private campaign", count=2)
    with httpx.Client(base_url=server.url, headers=bearer("worker")) as worker:
        heartbeat(worker, hostname="gpu-box")
    with httpx.Client(base_url=server.url, headers=bearer("viewer")) as viewer:
        worker_id = viewer.get("/api/workers").json()[0]["id"]
    return study["id"], worker_id


def sign_in(page: Page, name: str, password: str) -> None:
    page.fill("#login-username", name)
    page.fill("#login-password", password)
    page.click("#login-submit")


@SQLITE
def test_an_admin_signs_in_browses_changes_and_signs_out(
    make_server: Callable[..., LiveServer], open_page: OpenPage
) -> None:
    server = private_server(make_server)
    study_id, _ = campaign(server)
    page, problems = open_page()

    page.goto(f"{server.url}/super-studies")
    expect(page).to_have_url(re.compile(r"/login\?next=%2Fsuper-studies$"))
    sign_in(page, ADMIN, ADMIN_PASSWORD)
    expect(page).to_have_url(f"{server.url}/super-studies")
    expect(page.locator("#account")).to_contain_text(ADMIN)
    expect(page.locator("#create-form")).to_be_visible()

    page.get_by_role("link", name="private campaign").click()
    cancel = page.locator('#study-actions [data-action="cancel"]')
    cancel.get_by_role("button", name="Cancel study").click()
    cancel.get_by_role("button", name="Yes, cancel study").click()  # a change: sent with the CSRF token
    expect(page.locator('#assignments [data-f="status"]')).to_have_text(["CANCELLED"] * 2)
    expect(page.locator("#live-status")).to_have_attribute("data-state", "live")  # the stream, signed in

    page.get_by_role("link", name="Audit log").click()
    expect(page.locator("#audit-table")).to_contain_text(f"POST /api/super-studies/{study_id}/cancel")
    expect(page.locator("#audit-table")).to_contain_text("sign-in")

    page.click("#sign-out")
    expect(page).to_have_url(re.compile(r"/login$"))
    page.goto(f"{server.url}/")
    expect(page).to_have_url(re.compile(r"/login\?next=%2F$"))
    assert problems == []


@SQLITE
def test_a_viewer_sees_no_change_control_and_the_server_refuses_anyway(
    make_server: Callable[..., LiveServer], open_page: OpenPage
) -> None:
    server = private_server(make_server)
    study_id, worker_id = campaign(server)
    page, problems = open_page()

    page.goto(f"{server.url}/super-studies/{study_id}")
    sign_in(page, VIEWER, "not-the-password")
    expect(page.locator("#login-msg")).to_have_text("Wrong user name or password")
    sign_in(page, VIEWER, VIEWER_PASSWORD)
    expect(page).to_have_url(f"{server.url}/super-studies/{study_id}")

    expect(page.locator("#assignments tbody tr")).to_have_count(2)
    expect(page.locator("#study-actions")).to_have_count(0)
    expect(page.locator("#actions-locked")).to_contain_text("your role may only look")
    expect(page.get_by_role("link", name="Audit log")).to_have_count(0)
    page.goto(f"{server.url}/super-studies")
    expect(page.locator("#create-form")).to_have_count(0)
    page.goto(f"{server.url}/workers/{worker_id}")
    expect(page.locator("dd[data-f=hostname]")).to_have_text("gpu-box")
    expect(page.locator("#label-form")).to_have_count(0)

    # Whatever the page shows, the server says no: the page's own session and CSRF token, refused.
    status = page.evaluate(
        """(id) => fetch("/api/super-studies/" + id + "/cancel", {method: "POST", headers: {
             "X-CSRF-Token": document.querySelector('meta[name="csrf-token"]').content}}).then(r => r.status)""",
        study_id,
    )
    assert status == 403
    page.goto(f"{server.url}/audit")
    expect(page.locator("h1")).to_have_text("Not allowed")

    page.click("#sign-out-everywhere")
    expect(page).to_have_url(re.compile(r"/login$"))
    page.goto(f"{server.url}/workers/{worker_id}")
    expect(page).to_have_url(re.compile(r"/login\?next="))
    assert problems and all("401" in p or "403" in p for p in problems), problems
    assert (
        server.client.get(f"/api/super-studies/{study_id}", headers=bearer("admin")).json()["status"]
        == "PENDING"
    )
