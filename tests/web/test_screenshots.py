"""Screenshots of every page in a demo-like state.

The pictures go to a temporary folder, so the suite leaves the checkout clean; to refresh the
README's pictures run `GOLIAT_MONITOR_SCREENSHOTS=docs/screenshots pytest tests/web/test_screenshots.py`.
It doubles as a smoke test: every page renders the demo without console errors, CSP violations
or dialogs.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path

import pytest
from playwright.sync_api import Page

from tests.conftest import LiveServer
from tests.web import demo
from tests.web.conftest import PageProblems

SCREENSHOTS = Path(os.environ.get("GOLIAT_MONITOR_SCREENSHOTS") or tempfile.mkdtemp(prefix="gm-screenshots-"))

FAKE_GUI = """<!doctype html><html><body style="margin:0;background:#2b2b2b;color:#f0f0f0;font:13px sans-serif">
<div style="padding:14px"><div style="display:flex;gap:4px;margin-bottom:10px">
<span style="background:#3c3c3c;padding:5px 10px">Progress</span><span style="padding:5px 10px">Timings</span>
<span style="padding:5px 10px">System Utilization</span></div>
<div>Simulation: 23 / 36</div><div>Current Case: thelonious, 700MHz, x_pos, theta</div>
<p>Overall Progress:</p><div style="background:#222;height:18px"><div style="background:#007acc;width:62%;height:18px"></div></div>
<p>Current Stage: Run</p><div style="background:#222;height:18px"><div style="background:#007acc;width:45%;height:18px"></div></div>
<pre style="background:#1e1e1e;margin-top:14px;padding:8px;color:#5cb85c;height:120px">  - Run simulation...
<span style="color:#17a2b8">iSolve: starting solver on GPU 0</span>
<span style="color:#007acc">[PROGRESS]: 50% [ 2000/4000] Time Update</span></pre></div></body></html>"""


def _shoot(page: Page, name: str, *, full_page: bool = True) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.evaluate("window.scrollTo(0, 0)")
    page.wait_for_timeout(300)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=full_page)


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_screenshots_of_every_page(
    server: LiveServer, open_page: Callable[..., tuple[Page, PageProblems]]
) -> None:
    painter, _ = open_page(viewport={"width": 640, "height": 420})
    painter.set_content(FAKE_GUI)
    jpeg = painter.screenshot(type="jpeg", quality=80)
    built = demo.build(server, screenshot_jpeg=jpeg)
    study_id = built.study["id"]

    page, problems = open_page(viewport={"width": 1280, "height": 900}, color_scheme="light")
    page.goto(server.url + "/")
    page.wait_for_selector("#live-status[data-state=live]")
    _shoot(page, "overview")

    page.goto(f"{server.url}/workers/{built.workers['fast']}")
    page.wait_for_selector("#live-status[data-state=live]")
    page.wait_for_selector("#chart-util path.line")
    _shoot(page, "worker")

    page.goto(server.url + "/super-studies")
    page.wait_for_selector("#live-status[data-state=live]")
    _shoot(page, "super-studies")

    page.goto(f"{server.url}/super-studies/{study_id}")
    page.wait_for_selector("#results-tree details")
    for summary in page.locator("#results-tree summary").all()[:4]:
        summary.click()
    page.locator("#results-tree .file-name", has_text="sar_results.json").first.click()
    page.wait_for_selector("#preview-body pre:not(:text('Loading…'))")
    _shoot(page, "super-study")

    dark, dark_problems = open_page(viewport={"width": 1280, "height": 900}, color_scheme="dark")
    dark.goto(server.url + "/")
    dark.wait_for_selector("#live-status[data-state=live]")
    _shoot(dark, "overview-dark")
    dark.goto(f"{server.url}/workers/{built.workers['fast']}")
    dark.wait_for_selector("#chart-util path.line")
    _shoot(dark, "worker-dark")

    phone, phone_problems = open_page(
        viewport={"width": 390, "height": 844}, device_scale_factor=2, is_mobile=True, has_touch=True
    )
    phone.goto(server.url + "/")
    phone.wait_for_selector("#live-status[data-state=live]")
    _shoot(phone, "overview-phone", full_page=False)
    phone.goto(f"{server.url}/workers/{built.workers['fast']}")
    phone.wait_for_selector("#live-status[data-state=live]")
    _shoot(phone, "worker-phone", full_page=False)

    assert problems == [] and dark_problems == [] and phone_problems == []
