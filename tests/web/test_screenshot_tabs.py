"""The worker page's GUI screenshots: GOLIAT's tab names as labels, images by encoded field name."""

from __future__ import annotations

import re
from collections.abc import Callable

from playwright.sync_api import Page, expect

from tests.conftest import LiveServer
from tests.goliat_client import GOLIAT_FIELDS, GOLIAT_TABS, multipart
from tests.web.conftest import PageProblems

MACHINE = "203.0.113.41"


def post_tabs(server: LiveServer, fields: list[str], image: bytes) -> None:
    body, content_type = multipart({"machineId": MACHINE}, [(field, image) for field in fields])
    answer = server.client.post("/api/gui-screenshots", content=body, headers={"content-type": content_type})
    assert answer.status_code == 200 and answer.json()["dropped"] == [], answer.text


def test_goliat_tabs_show_their_labels_and_load_by_encoded_field_name(
    server: LiveServer, open_page: Callable[..., tuple[Page, PageProblems]]
) -> None:
    painter, _ = open_page(viewport={"width": 320, "height": 200})
    painter.set_content("<body style='background:#234;color:#fff'><h1>Disk I/O</h1></body>")
    image = painter.screenshot(type="jpeg", quality=70)
    post_tabs(server, ["Timings"], image)
    (worker,) = server.client.get("/api/workers").json()

    page, problems = open_page()
    page.goto(f"{server.url}/workers/{worker['id']}")
    expect(page.locator("#live-status")).to_have_attribute("data-state", "live")
    tabs = page.locator("#shot-tabs [role=tab]")
    expect(tabs).to_have_text(["Timings"])

    # The rest of GOLIAT's tabs arrive while the page is open: the live update adds them.
    post_tabs(server, GOLIAT_FIELDS, image)
    expect(tabs).to_have_count(len(GOLIAT_TABS))
    assert sorted(tabs.all_text_contents()) == sorted(GOLIAT_TABS)
    disk = tabs.filter(has_text="Disk I/O")
    expect(disk).to_have_attribute("href", re.compile(r"/screenshots/Disk_I%2FO\?v="))
    disk.click()
    shot = page.locator("#shot-img")
    expect(shot).to_have_attribute("src", re.compile(r"/screenshots/Disk_I%2FO\?v="))
    expect(shot).to_have_attribute("alt", "Latest screenshot of GOLIAT's Disk I/O tab")
    expect(shot).to_have_js_property("naturalWidth", 320)
    assert problems == []

    # The server-rendered page links the same way before any script runs (Disk_I/O sorts first).
    html = server.client.get(f"/workers/{worker['id']}").text
    assert re.search(r'href="[^"]*/screenshots/Disk_I%2FO\?v=[^"]*"[^>]*>Disk I/O</a>', html)
    assert re.search(
        r'<img id="shot-img" src="[^"]*/screenshots/Disk_I%2FO\?v=[^"]*" alt="[^"]*Disk I/O tab"', html
    )
