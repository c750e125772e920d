"""The pages in a real browser, kept live by a scripted GOLIAT client posting real messages."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Error as PlaywrightError
from playwright.sync_api import Page, expect

from goliat_monitor.server.hub import get_hub
from goliat_monitor.settings import ServerSettings
from tests.api.helpers import create_study, gui, heartbeat, log_batch
from tests.conftest import FakeClock, LiveServer, start_server
from tests.web import demo
from tests.web.conftest import PageProblems

SQLITE = pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
OpenPage = Callable[..., tuple[Page, PageProblems]]


def card(page: Page, worker_id: str):  # type: ignore[no-untyped-def]
    return page.locator(f'.card.worker[data-id="{worker_id}"]')


def only_worker_id(server: LiveServer) -> str:
    return str(server.client.get("/api/workers").json()[0]["id"])


def mark_page(page: Page) -> None:
    """Put a marker in the page's JS state: it survives only if the page never reloads."""
    page.evaluate("window.__noReload = true")


def wait_until(page: Page, expression: str, timeout: float = 8.0) -> None:
    """Poll a JS expression (wait_for_function would need 'unsafe-eval', which our CSP forbids)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if page.evaluate(expression):
                return
        except PlaywrightError as exc:  # the page is navigating: ask the next one
            if "context was destroyed" not in str(exc):
                raise
        if time.monotonic() > deadline:
            raise TimeoutError(f"{expression} stayed false for {timeout}s")
        page.wait_for_timeout(50)


def not_reloaded(page: Page) -> bool:
    return bool(page.evaluate("window.__noReload === true"))


def test_overview_follows_a_worker_from_first_heartbeat_to_finished(
    server: LiveServer, page: tuple[Page, PageProblems]
) -> None:
    browser_page, problems = page
    browser_page.goto(server.url + "/")
    expect(browser_page.locator("#live-status")).to_have_attribute("data-state", "live")
    expect(browser_page.locator("#workers-empty")).to_be_visible()
    mark_page(browser_page)

    heartbeat(server.client, hostname="gpu-node-7", gpuName="NVIDIA RTX A4000")
    wid = only_worker_id(server)
    worker = card(browser_page, wid)
    expect(worker).to_have_attribute("data-light", "yellow")
    expect(worker.locator('[data-f="statusText"]')).to_have_text("Idle")
    expect(worker.locator('[data-f="gpu"]')).to_have_text("NVIDIA RTX A4000")

    gui(server.client, {"type": "overall_progress", "current": 1, "total": 8})
    gui(
        server.client,
        {"type": "stage_progress", "name": "Setup", "current": 1, "total": 3, "sub_stage": "Voxelize"},
    )
    expect(worker).to_have_attribute("data-light", "green")
    expect(worker.locator('[data-f="progress"]')).to_have_text("12.5%")
    expect(worker.locator('[data-f="stage"]')).to_have_text("Setup · Voxelize")
    expect(browser_page.locator('[data-total="running"]')).to_have_text("1")

    gui(server.client, {"type": "overall_progress", "current": 6, "total": 8})
    gui(server.client, {"type": "profiler_update", "eta_seconds": 125})
    expect(worker.locator('[data-f="progress"]')).to_have_text("75.0%")
    expect(worker.locator("progress")).to_have_js_property("value", 75)
    expect(worker.locator('[data-f="eta"]')).to_contain_text("2m")

    for _ in range(5):
        gui(server.client, {"type": "overall_progress", "current": 8, "total": 8})
    gui(server.client, {"type": "finished", "message": "Study finished successfully"})
    expect(worker).to_have_attribute("data-light", "yellow")
    expect(worker.locator('[data-f="statusText"]')).to_have_text("Idle")
    expect(worker.locator('[data-f="progress"]')).to_have_text("100.0%")
    expect(browser_page.locator('[data-total="running"]')).to_have_text("0")
    assert not_reloaded(browser_page)
    assert problems == []


@SQLITE
def test_a_posted_log_line_shows_on_the_worker_page_within_a_second(
    server: LiveServer, page: tuple[Page, PageProblems]
) -> None:
    browser_page, problems = page
    heartbeat(server.client, hostname="node")
    wid = only_worker_id(server)
    browser_page.goto(f"{server.url}/workers/{wid}")
    expect(browser_page.locator("#live-status")).to_have_attribute("data-state", "live")
    for sequence in range(3):
        started = time.monotonic()
        gui(server.client, log_batch(sequence, [(f"line number {sequence}", "success")]))
        browser_page.wait_for_selector(
            f"#log-lines .ll.lt-success:has-text('line number {sequence}')", timeout=1000
        )
        assert time.monotonic() - started < 1.0
    assert problems == []


@SQLITE
def test_hostile_text_renders_as_text_everywhere(server: LiveServer, page: tuple[Page, PageProblems]) -> None:
    browser_page, problems = page
    xss = "<img src=x onerror=alert(1)>"
    heartbeat(server.client, hostname="<script>alert(2)</script>", gpuName=xss)
    gui(server.client, log_batch(0, [(xss, "error")]))
    wid = only_worker_id(server)
    server.client.patch(f"/api/workers/{wid}", json={"machineLabel": "<b onmouseover=alert(3)>label</b>"})

    browser_page.goto(f"{server.url}/workers/{wid}")
    expect(browser_page.locator("#live-status")).to_have_attribute("data-state", "live")
    gui(server.client, log_batch(1, [(xss + " pushed live", "warning")]))
    expect(browser_page.locator("#log-lines .ll").nth(1)).to_contain_text("pushed live")
    lines = browser_page.locator("#log-lines .ll .msg")
    assert lines.all_text_contents() == [xss, xss + " pushed live"]
    assert (
        browser_page.locator(
            "#log img, #main img:not(#shot-img), b[onmouseover], script:not([src]):not([type])"
        ).count()
        == 0
    )
    expect(browser_page.locator("h1 [data-f=name]")).to_have_text("<b onmouseover=alert(3)>label</b>")

    browser_page.goto(server.url + "/")
    expect(card(browser_page, wid).locator('[data-f="gpu"]')).to_have_text(xss)
    heartbeat(server.client, hostname="<script>alert(2)</script>", gpuName=xss + "!")
    expect(card(browser_page, wid).locator('[data-f="gpu"]')).to_have_text(xss + "!")
    assert browser_page.locator(".card img, .card script").count() == 0
    assert not any("dialog" in p for p in problems), problems
    assert problems == []


@SQLITE
def test_result_files_browse_preview_and_download(
    server: LiveServer, page: tuple[Page, PageProblems]
) -> None:
    browser_page, problems = page
    study = create_study(server.client, count=2)
    piece = study["assignments"][0]["id"]
    server.client.post(f"/api/assignments/{piece}/claim", json={"machineId": "198.51.100.1"})
    browser_page.goto(f"{server.url}/super-studies/{study['id']}")
    expect(browser_page.locator("#live-status")).to_have_attribute("data-state", "live")
    expect(browser_page.locator("#results-tree")).to_contain_text("No result files yet")
    mark_page(browser_page)

    demo.upload_results(server, piece, "thelonious", 700)
    tree = browser_page.locator("#results-tree")
    expect(tree.locator("summary").first).to_have_text("far_field/")
    for _ in range(4):
        tree.locator("details:not([open]) > summary").first.click()
    expect(browser_page.locator("#results-summary")).to_contain_text("3 files")

    tree.locator(".file-name", has_text="sar_results.json").click()
    pre = browser_page.locator("#preview-body pre")
    expect(pre).to_contain_text('"peak_sar_10g_W_kg": 0.0123')
    assert json.loads(pre.text_content() or "")["frequency_mhz"] == 700
    assert "\n  " in (pre.text_content() or "")  # pretty-printed

    tree.locator(".file-name", has_text="point_sensor_data.png").click()
    image = browser_page.locator("#preview-body img")
    expect(image).to_be_visible()
    wait_until(browser_page, "document.querySelector('#preview-body img').naturalWidth > 0")

    with browser_page.expect_download() as info:
        tree.locator(".file:has-text('sar_results.json') a[download]").click()
    download = info.value
    assert download.suggested_filename == "sar_results.json"
    with open(download.path(), "rb") as handle:
        assert json.loads(handle.read())["phantom"] == "thelonious"

    with browser_page.expect_download() as info:
        browser_page.locator(f'#assignments tr[data-id="{piece}"] a[download]').click()
    assert info.value.suggested_filename.endswith(".zip")
    expect(
        browser_page.locator(f'#assignments tr[data-id="{study["assignments"][1]["id"]}"] a[download]')
    ).to_be_hidden()
    assert not_reloaded(browser_page)
    assert problems == []


@SQLITE
def test_stalled_and_offline_lights_change_with_time_alone(
    make_server: Callable[..., LiveServer], open_page: OpenPage
) -> None:
    server = make_server(stalled_after_s=20)
    heartbeat(server.client, hostname="slowpoke")
    gui(server.client, {"type": "overall_progress", "current": 1, "total": 4})
    wid = only_worker_id(server)
    browser_page, problems = open_page()
    browser_page.goto(server.url + "/")
    expect(card(browser_page, wid)).to_have_attribute("data-light", "green")
    mark_page(browser_page)

    server.clock.advance(25)  # online (30 s), but no progress for 25 s > 20 s
    expect(card(browser_page, wid)).to_have_attribute("data-light", "amber", timeout=6000)
    expect(card(browser_page, wid).locator('[data-f="statusText"]')).to_have_text("Stalled")
    expect(browser_page.locator('[data-total="stalled"]')).to_have_text("1")

    server.clock.advance(10)  # 35 s of silence: offline
    expect(card(browser_page, wid)).to_have_attribute("data-light", "red", timeout=6000)
    expect(card(browser_page, wid).locator('[data-f="statusText"]')).to_have_text("Offline")
    assert not_reloaded(browser_page)
    assert problems == []


@SQLITE
def test_overview_filters_and_sorts_without_asking_the_server(
    server: LiveServer, page: tuple[Page, PageProblems]
) -> None:
    for machine, host in (("10.0.0.1", "charlie"), ("10.0.0.2", "alpha"), ("10.0.0.3", "bravo")):
        heartbeat(server.client, machine, hostname=host)
    gui(server.client, {"type": "overall_progress", "current": 9, "total": 10}, machine="10.0.0.1")
    gui(server.client, {"type": "overall_progress", "current": 2, "total": 10}, machine="10.0.0.3")
    browser_page, problems = page
    browser_page.goto(server.url + "/")
    expect(browser_page.locator("#live-status")).to_have_attribute("data-state", "live")
    names = browser_page.locator(".card.worker:visible [data-f=link]")

    browser_page.select_option("select[name=sort]", "name")
    expect(names).to_have_text(["alpha", "bravo", "charlie"])
    browser_page.select_option("select[name=sort]", "progress")
    expect(names).to_have_text(["charlie", "bravo", "alpha"])
    browser_page.select_option("select[name=status]", "idle")
    expect(names).to_have_text(["alpha"])
    browser_page.select_option("select[name=status]", "all")
    browser_page.keyboard.press("/")
    browser_page.keyboard.type("brav")
    expect(names).to_have_text(["bravo"])
    assert "q=brav" in browser_page.url and "sort=progress" in browser_page.url

    browser_page.goto(browser_page.url)  # the same view, rendered by the server from the URL
    expect(names).to_have_text(["bravo"])
    assert problems == []


@SQLITE
def test_log_console_pages_back_searches_filters_and_pauses(
    server: LiveServer, page: tuple[Page, PageProblems]
) -> None:
    browser_page, problems = page
    heartbeat(server.client, hostname="chatty")
    for batch in range(50):
        kind = "warning" if batch % 10 == 0 else "info"
        gui(server.client, log_batch(batch, [(f"batch {batch} line {i}", kind) for i in range(10)]))
    wid = only_worker_id(server)
    browser_page.goto(f"{server.url}/workers/{wid}")
    lines = browser_page.locator("#log-lines .ll")
    expect(lines).to_have_count(200)
    expect(lines.last.locator(".msg")).to_have_text("batch 49 line 9")

    browser_page.click("#log-older")
    expect(lines).to_have_count(400)
    expect(lines.first.locator(".msg")).to_have_text("batch 10 line 0")
    browser_page.click("#log-older")
    expect(lines).to_have_count(500)
    expect(browser_page.locator("#log-top")).to_contain_text("Start of log")

    browser_page.fill("#log-search", "line 7")
    expect(lines).to_have_count(50)
    expect(lines.first.locator("mark")).to_have_text("line 7")
    browser_page.fill("#log-search", "")
    expect(lines).to_have_count(300)

    for box in browser_page.locator("#log-types input").all():
        if box.get_attribute("value") != "warning":
            box.uncheck()
    expect(lines).to_have_count(50)
    expect(browser_page.locator("#log-lines .ll:not(.lt-warning)")).to_have_count(0)
    for box in browser_page.locator("#log-types input").all():
        box.check()
    expect(lines).to_have_count(300)

    browser_page.click("#log-pause")
    gui(server.client, log_batch(50, [("arrived while paused", "success")]))
    expect(browser_page.locator("#log-state")).to_contain_text("1 new line")
    expect(browser_page.locator("#log-lines")).not_to_contain_text("arrived while paused")
    browser_page.click("#log-pause")
    expect(lines.last.locator(".msg")).to_have_text("arrived while paused")
    assert problems == []


@SQLITE
def test_machine_label_is_edited_in_place(server: LiveServer, page: tuple[Page, PageProblems]) -> None:
    browser_page, problems = page
    heartbeat(server.client, hostname="node-x")
    wid = only_worker_id(server)
    browser_page.goto(f"{server.url}/workers/{wid}")
    browser_page.fill("#label-input", "Rack 3 · A6000")
    browser_page.press("#label-input", "Enter")
    expect(browser_page.locator("#label-msg")).to_have_text("Saved.")
    expect(browser_page.locator("h1 [data-f=name]")).to_have_text("Rack 3 · A6000")
    assert server.client.get(f"/api/workers/{wid}").json()["machineLabel"] == "Rack 3 · A6000"
    assert problems == []


@SQLITE
def test_theme_toggle_and_system_preference(server: LiveServer, open_page: OpenPage) -> None:
    browser_page, problems = open_page(color_scheme="dark")
    browser_page.goto(server.url + "/")
    background = "getComputedStyle(document.body).backgroundColor"
    dark = browser_page.evaluate(background)
    browser_page.click("#theme-toggle")
    expect(browser_page.locator("html")).to_have_attribute("data-theme", "light")
    light = browser_page.evaluate(background)
    assert dark != light
    browser_page.reload()
    expect(browser_page.locator("html")).to_have_attribute("data-theme", "light")
    assert browser_page.evaluate(background) == light
    assert problems == []


@SQLITE
def test_a_lost_connection_is_shown_and_the_page_catches_up(tmp_path: Path, open_page: OpenPage) -> None:
    # A server of our own, to reach its stream hub and cut the connections.
    clock = FakeClock()
    url, app, stop = start_server(ServerSettings(data_dir=tmp_path / "own"), clock)
    try:
        with httpx.Client(base_url=url) as client:
            heartbeat(client, hostname="flaky")
            wid = client.get("/api/workers").json()[0]["id"]
            browser_page, problems = open_page()
            browser_page.goto(url + "/")
            status = browser_page.locator("#live-status")
            expect(status).to_have_attribute("data-state", "live")
            mark_page(browser_page)

            get_hub(app).close_all()
            expect(status).to_have_attribute("data-state", "down")
            expect(status).to_contain_text("reconnecting")
            gui(client, {"type": "overall_progress", "current": 1, "total": 2})
            expect(status).to_have_attribute("data-state", "live", timeout=8000)
            expect(card(browser_page, wid).locator('[data-f="progress"]')).to_have_text("50.0%")
            assert not_reloaded(browser_page)

            # Missed more than the server remembers: the page reloads its data.
            app.state.context.events.history = 3
            get_hub(app).close_all()
            expect(status).to_have_attribute("data-state", "down")
            for step in range(8):
                gui(client, {"type": "overall_progress", "current": step, "total": 8})
            wait_until(browser_page, "window.__noReload !== true")
            expect(card(browser_page, wid).locator('[data-f="progress"]')).to_have_text("87.5%")
            assert problems == [] or all("api/events" in p for p in problems), problems
            browser_page.context.close()
    finally:
        stop()


@SQLITE
def test_a_reconnected_machine_points_its_old_page_to_the_new_session(
    server: LiveServer, page: tuple[Page, PageProblems]
) -> None:
    browser_page, problems = page
    heartbeat(server.client, hostname="blinky")
    old = only_worker_id(server)
    browser_page.goto(f"{server.url}/workers/{old}")
    expect(browser_page.locator("#live-status")).to_have_attribute("data-state", "live")
    server.clock.advance(server.settings.offline_after_s + 5)
    heartbeat(server.client, hostname="blinky")  # back: a new session
    new = only_worker_id(server)
    assert new != old
    banner = browser_page.locator("#newer-session")
    expect(banner).to_be_visible()
    expect(banner.locator("a")).to_have_attribute("href", f"/workers/{new}")
    expect(browser_page.locator("[data-f=statusText]").first).to_have_text("Stale session")
    assert problems == []


@SQLITE
def test_pages_under_a_token_prefix_keep_it_for_links_api_calls_and_the_stream(
    make_server: Callable[..., LiveServer], open_page: OpenPage
) -> None:
    server = make_server(admin_token="s3cret", worker_token="w0rker")
    server.client.headers["Authorization"] = "Bearer w0rker"
    heartbeat(server.client, hostname="locked")
    wid = only_worker_id(server)
    browser_page, problems = open_page()
    browser_page.goto(f"{server.url}/t/s3cret/")
    expect(browser_page.locator("#live-status")).to_have_attribute("data-state", "live")
    expect(card(browser_page, wid).locator("[data-f=link]")).to_have_attribute(
        "href", f"/t/s3cret/workers/{wid}"
    )
    card(browser_page, wid).locator("[data-f=link]").click()
    browser_page.fill("#label-input", "labelled with the admin token")
    browser_page.press("#label-input", "Enter")
    expect(browser_page.locator("#label-msg")).to_have_text("Saved.")

    browser_page.goto(f"{server.url}/workers/{wid}")  # no token: reading works, changing does not
    browser_page.fill("#label-input", "nope")
    browser_page.press("#label-input", "Enter")
    expect(browser_page.locator("#label-msg")).to_contain_text("admin token")
    assert server.client.get(f"/api/workers/{wid}").json()["machineLabel"] == "labelled with the admin token"
    assert all("401" in p for p in problems), problems
