"""Creating a super study from the browser, and acting on one from its page."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest
from playwright.sync_api import FilePayload, Page, expect

from tests.api.helpers import create_study
from tests.conftest import TEST_CONFIGS, LiveServer
from tests.web.conftest import PageProblems

SQLITE = pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
OpenPage = Callable[..., tuple[Page, PageProblems]]
FAR_FIELD = TEST_CONFIGS / "far_field_config.json"
BASE = TEST_CONFIGS / "base_config.json"


def fill_create_form(page: Page, name: str, strategy: str, splits: int | None = None) -> None:
    page.fill("#cs-name", name)
    page.set_input_files("#cs-config", str(FAR_FIELD))
    page.set_input_files("#cs-parents", [str(BASE)])
    page.select_option("#cs-strategy", strategy)
    if splits is not None:
        page.fill("#cs-splits", str(splits))


def statuses(server: LiveServer, study_id: str) -> list[str]:
    study = server.client.get(f"/api/super-studies/{study_id}").json()
    return [a["status"] for a in sorted(study["assignments"], key=lambda a: a["index"])]


@SQLITE
def test_create_form_previews_the_split_and_creates_the_study(
    server: LiveServer, page: tuple[Page, PageProblems]
) -> None:
    browser_page, problems = page
    browser_page.goto(server.url + "/super-studies")
    expect(browser_page.locator("#cs-create")).to_be_disabled()
    fill_create_form(browser_page, "far field in eight", "auto", 8)
    browser_page.fill("#cs-attempts", "5")
    browser_page.click("#cs-preview")

    rows = browser_page.locator("#cs-assignments tbody tr")
    expect(rows).to_have_count(8)
    sizes = [
        int(text) for text in browser_page.locator('#cs-assignments [data-f="size"]').all_text_contents()
    ]
    assert sum(sizes) == 432
    expect(browser_page.locator("#cs-total")).to_contain_text("432 simulations in 8 assignments")
    expect(browser_page.locator("#cs-plan")).to_contain_text("8 assignment(s)")
    expect(browser_page.locator("#cs-create")).to_be_enabled()

    browser_page.click("#cs-create")
    browser_page.wait_for_url(re.compile(r"/super-studies/[^/]+$"))
    expect(browser_page.locator("#study-head h1")).to_have_text("far field in eight")

    studies = server.client.get("/api/super-studies").json()
    assert len(studies) == 1
    study = server.client.get(f"/api/super-studies/{studies[0]['id']}").json()
    assert browser_page.url.endswith(f"/super-studies/{study['id']}")
    assert study["maxAttempts"] == 5
    assert study["splitStrategy"] == "auto"
    assignments = sorted(study["assignments"], key=lambda a: a["index"])
    assert [a["status"] for a in assignments] == ["PENDING"] * 8
    assert [a["size"] for a in assignments] == sizes
    assert problems == []


@SQLITE
def test_a_config_goliat_refuses_to_split_shows_the_error_and_creates_nothing(
    server: LiveServer, page: tuple[Page, PageProblems]
) -> None:
    browser_page, problems = page
    browser_page.goto(server.url + "/super-studies")
    fill_create_form(browser_page, "not splittable", "scenario")
    browser_page.click("#cs-preview")
    message = browser_page.locator("#cs-msg")
    expect(message).to_contain_text("only supported for near-field")
    expect(message).to_have_class(re.compile(r"\berr\b"))
    expect(browser_page.locator("#cs-preview-out")).to_be_hidden()
    expect(browser_page.locator("#cs-create")).to_be_disabled()
    assert server.client.get("/api/super-studies").json() == []
    assert all("400" in p for p in problems), problems


@SQLITE
def test_create_form_reports_bad_json_and_a_taken_name(
    server: LiveServer, page: tuple[Page, PageProblems]
) -> None:
    browser_page, problems = page
    create_study(server.client, name="taken")
    browser_page.goto(server.url + "/super-studies")
    browser_page.set_input_files(
        "#cs-config", files=[FilePayload(name="broken.json", mimeType="application/json", buffer=b"{nope")]
    )
    browser_page.click("#cs-preview")
    expect(browser_page.locator("#cs-msg")).to_contain_text("broken.json is not valid JSON")

    fill_create_form(browser_page, "taken", "auto", 2)
    browser_page.click("#cs-preview")
    expect(browser_page.locator("#cs-assignments tbody tr")).to_have_count(2)
    browser_page.click("#cs-create")
    expect(browser_page.locator("#cs-msg")).to_contain_text("already exists")
    expect(browser_page.locator("#cs-replace")).to_be_visible()
    browser_page.check("#cs-replace")
    browser_page.click("#cs-create")
    browser_page.wait_for_url(re.compile(r"/super-studies/[^/]+$"))
    studies = server.client.get("/api/super-studies").json()
    assert [s["name"] for s in studies] == ["taken"]
    assert studies[0]["totalAssignments"] == 2
    assert all("409" in p for p in problems), problems


@SQLITE
def test_cancel_retry_and_delete_from_the_study_page(
    server: LiveServer, page: tuple[Page, PageProblems]
) -> None:
    browser_page, problems = page
    study = create_study(server.client, name="to cancel", count=3)
    study_id = study["id"]
    browser_page.goto(f"{server.url}/super-studies/{study_id}")
    expect(browser_page.locator("#live-status")).to_have_attribute("data-state", "live")
    expect(browser_page.locator("#actions-locked")).to_have_count(0)
    rows = browser_page.locator("#assignments tbody tr")
    expect(rows.get_by_role("button", name="Retry")).to_have_count(0)

    cancel = browser_page.locator('#study-actions [data-action="cancel"]')
    cancel.get_by_role("button", name="Cancel study").click()
    cancel.get_by_role("button", name="No").click()  # changed its mind: nothing happens
    assert statuses(server, study_id) == ["PENDING"] * 3
    cancel.get_by_role("button", name="Cancel study").click()
    cancel.get_by_role("button", name="Yes, cancel study").click()
    expect(rows.locator('[data-f="status"]')).to_have_text(["CANCELLED"] * 3)
    assert statuses(server, study_id) == ["CANCELLED"] * 3
    expect(cancel.get_by_role("button", name="Cancel study")).to_be_disabled()

    first = rows.filter(has=browser_page.locator('[data-f="index"]', has_text="0"))
    first.get_by_role("button", name="Retry").click()
    first.get_by_role("button", name="Yes, retry").click()
    expect(first.locator('[data-f="status"]')).to_have_text("PENDING")
    expect(first.get_by_role("button", name="Retry")).to_have_count(0)
    assert statuses(server, study_id) == ["PENDING", "CANCELLED", "CANCELLED"]
    expect(rows.get_by_role("button", name="Retry")).to_have_count(2)

    delete = browser_page.locator('#study-actions [data-action="delete"]')
    delete.get_by_role("button", name="Delete study").click()
    delete.get_by_role("button", name="Yes, delete").click()
    browser_page.wait_for_url(re.compile(r"/super-studies$"))
    assert server.client.get(f"/api/super-studies/{study_id}").status_code == 404
    assert server.client.get("/api/super-studies").json() == []
    assert problems == []


@SQLITE
def test_requeue_follows_a_running_assignment(server: LiveServer, page: tuple[Page, PageProblems]) -> None:
    browser_page, problems = page
    study = create_study(server.client, name="running", count=2)
    browser_page.goto(f"{server.url}/super-studies/{study['id']}")
    expect(browser_page.locator("#live-status")).to_have_attribute("data-state", "live")
    rows = browser_page.locator("#assignments tbody tr")
    expect(rows.get_by_role("button", name="Requeue")).to_have_count(0)

    claimed = server.client.get(f"/api/super-studies/{study['id']}/assignments").json()[0]
    response = server.client.post(f"/api/assignments/{claimed['id']}/claim", json={"machineId": "gpu-1"})
    assert response.status_code == 200, response.text
    row = browser_page.locator(f'#assignments tbody tr[data-id="{claimed["id"]}"]')
    expect(row.locator('[data-f="status"]')).to_have_text("RUNNING")
    row.get_by_role("button", name="Requeue").click()
    row.get_by_role("button", name="Yes, requeue").click()
    expect(row.locator('[data-f="status"]')).to_have_text("PENDING")
    expect(row.get_by_role("button", name="Requeue")).to_have_count(0)
    assert problems == []


@SQLITE
def test_actions_need_the_admin_token(make_server: Callable[..., LiveServer], open_page: OpenPage) -> None:
    server = make_server(admin_token="a")
    server.client.headers["Authorization"] = "Bearer a"
    study = create_study(server.client, name="guarded", count=2)
    browser_page, problems = open_page()

    browser_page.goto(f"{server.url}/super-studies/{study['id']}")
    expect(browser_page.locator("#actions-locked")).to_be_visible()
    expect(browser_page.locator("#study-actions")).to_have_count(0)
    expect(browser_page.get_by_role("button", name="Cancel study")).to_have_count(0)

    browser_page.goto(f"{server.url}/t/a/super-studies/{study['id']}")
    expect(browser_page.locator("#actions-locked")).to_have_count(0)
    cancel = browser_page.locator('#study-actions [data-action="cancel"]')
    expect(cancel.get_by_role("button", name="Cancel study")).to_be_visible()
    cancel.get_by_role("button", name="Cancel study").click()
    cancel.get_by_role("button", name="Yes, cancel study").click()
    expect(browser_page.locator('#assignments [data-f="status"]')).to_have_text(["CANCELLED"] * 2)
    assert problems == []


@SQLITE
def test_creating_without_the_admin_token_says_how_to_get_it(
    make_server: Callable[..., LiveServer], open_page: OpenPage
) -> None:
    server = make_server(admin_token="a")
    browser_page, problems = open_page()
    browser_page.goto(f"{server.url}/super-studies")
    fill_create_form(browser_page, "no token", "auto", 2)
    browser_page.click("#cs-preview")
    expect(browser_page.locator("#cs-assignments tbody tr")).to_have_count(2)
    browser_page.click("#cs-create")
    expect(browser_page.locator("#cs-msg")).to_contain_text("an admin token is required", ignore_case=True)
    expect(browser_page.locator("#cs-msg")).to_contain_text("/t/<admin token>/")

    browser_page.goto(f"{server.url}/t/a/super-studies")
    fill_create_form(browser_page, "with token", "auto", 2)
    browser_page.click("#cs-preview")
    expect(browser_page.locator("#cs-assignments tbody tr")).to_have_count(2)
    browser_page.click("#cs-create")
    browser_page.wait_for_url(re.compile(r"/t/a/super-studies/[^/]+$"))
    assert [s["name"] for s in server.client.get("/api/super-studies").json()] == ["with token"]
    assert all("401" in p for p in problems), problems
