"""The log search page in a real browser: search every worker, filter, open a hit on its line."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from goliat_monitor.db import search_index
from tests.api.helpers import gui, log_batch
from tests.conftest import LiveServer
from tests.web.conftest import PageProblems

EVIL = "CUDA_ERROR_OUT_OF_MEMORY <img src=x onerror=alert(1)> in solver"


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_search_box_finds_the_line_and_its_link_lands_on_it_highlighted(
    server: LiveServer, page: tuple[Page, PageProblems]
) -> None:
    browser_page, problems = page
    # Machine A: the hit lies far back in its history, behind 300 newer lines (the page shows 200).
    for seq in range(46):
        lines = [(f"A step {seq}-{i}", "info") for i in range(10)]
        if seq == 15:
            lines[5] = (EVIL, "error")
        gui(server.client, log_batch(seq, lines), machine="10.0.0.1")
    gui(server.client, log_batch(0, [("cuda_error_out_of_memory again", "fatal")]), machine="10.0.0.2")
    search_index.index_all(server.context.db.engine)
    gui(server.client, log_batch(1, [("B after the index mark", "info")]), machine="10.0.0.2")
    workers = {w["machineId"]: w["id"] for w in server.client.get("/api/workers").json()}

    browser_page.goto(f"{server.url}/")
    browser_page.click("nav >> text=Log search")
    expect(browser_page).to_have_url(f"{server.url}/search")
    hits = browser_page.locator("#search-hits .hit-row")
    browser_page.fill("#search-q", "cu")
    browser_page.press("#search-q", "Enter")
    expect(browser_page.locator("#search-state")).to_contain_text("at least 3 characters")
    browser_page.fill("#search-q", "Cuda_Error")
    browser_page.press("#search-q", "Enter")
    expect(hits).to_have_count(2)
    expect(hits.nth(0).locator(".hit-worker")).to_have_text("10.0.0.2")
    expect(hits.nth(0).locator(".hit-type")).to_have_text("fatal")
    expect(hits.nth(1).locator(".hit-msg")).to_have_text(EVIL)  # shown as text, never as markup
    expect(hits.nth(1).locator(".hit-msg mark")).to_have_text("CUDA_ERROR")
    assert browser_page.locator("#search-hits img").count() == 0
    expect(browser_page).to_have_url(f"{server.url}/search?q=Cuda_Error")

    browser_page.locator("#search-types input[value=fatal]").uncheck()
    expect(hits).to_have_count(1)
    expect(hits.nth(0).locator(".hit-worker")).to_have_text("10.0.0.1")
    assert "type=error" in browser_page.url

    # The first page also comes rendered by the server, for a shared link.
    browser_page.goto(f"{server.url}/search?q=cuda_error")
    expect(hits).to_have_count(2)
    assert browser_page.locator("#search-hits img").count() == 0

    hits.nth(1).locator("a").click()
    browser_page.wait_for_url(f"**/workers/{workers['10.0.0.1']}?line=*")
    hit = browser_page.locator("#log-lines .ll.hit")
    expect(hit).to_have_count(1)
    expect(hit.locator(".msg")).to_have_text(EVIL)
    expect(hit).to_be_in_viewport()
    # In the middle of the console's own scroll box, not merely somewhere in the page.
    inside = browser_page.evaluate(
        """() => {
            const box = document.querySelector('#log').getBoundingClientRect();
            const line = document.querySelector('#log-hit').getBoundingClientRect();
            const middle = (line.top + line.bottom) / 2 - (box.top + box.bottom) / 2;
            return line.top >= box.top && line.bottom <= box.bottom && Math.abs(middle) < 40;
        }"""
    )
    assert inside
    shown = browser_page.locator("#log-lines .ll .msg")
    expect(shown.first).to_have_text("A step 5-5")  # 100 lines before the hit, 99 after it
    expect(shown.last).to_have_text("A step 25-4")
    expect(browser_page.locator("#log-top")).to_contain_text("Back to the live tail")
    assert problems == []
