"""The study page's simulation map, results table and plot in a real browser, kept live over SSE."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from goliat_monitor.domain.splitting import split_config
from tests.api.helpers import gui
from tests.conftest import TEST_CONFIGS, LiveServer
from tests.web.conftest import PageProblems

SQLITE = pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
RESULTS = Path(__file__).resolve().parents[1] / "data" / "goliat-results"
MACHINE = "198.51.100.9"
HOSTILE = "<img src=x onerror=alert(1)>"


def _study(server: LiveServer, phantoms: list[str], name: str = "campaign") -> dict[str, Any]:
    config = {
        **json.loads((TEST_CONFIGS / "far_field_small.json").read_text(encoding="utf-8")),
        "phantoms": phantoms,
    }
    split = split_config(config, "phantom")
    body = {
        "name": name,
        "baseConfig": config,
        "assignments": [{"splitConfig": c} for c in split.configs],
    }
    response = server.client.post("/api/super-studies", json=body)
    assert response.status_code == 200, response.text
    return dict(response.json())


def _upload(server: LiveServer, sim: dict[str, Any], whole_body: float) -> None:
    sar = json.loads((RESULTS / "far_field_sar_results.json").read_text(encoding="utf-8"))
    sar["whole_body_sar"] = whole_body
    response = server.client.post(
        f"/api/assignments/{sim['assignmentId']}/results",
        data={"relativePath": sim["resultPath"]},
        files=[("files", ("sar_results.json", json.dumps(sar).encode(), "application/json"))],
    )
    assert response.status_code == 200, response.text


def _square(page: Page, key: str):  # type: ignore[no-untyped-def]
    return page.locator(f'#sim-map button[data-key="{key}"]')


@SQLITE
def test_map_table_and_plot_fill_in_live(server: LiveServer, page: tuple[Page, PageProblems]) -> None:
    browser_page, problems = page
    study = _study(server, ["thelonious", HOSTILE])
    sims = server.client.get(f"/api/super-studies/{study['id']}/simulations").json()
    assert len(sims) == 16
    browser_page.goto(f"{server.url}/super-studies/{study['id']}")
    expect(browser_page.locator("#live-status")).to_have_attribute("data-state", "live")
    expect(browser_page.locator("#sim-map button.sim")).to_have_count(16)
    grid = browser_page.locator("#sim-map table")
    expect(grid.locator("thead th")).to_have_text(["Phantom \\ frequency", "700 MHz", "900 MHz"])
    expect(grid.locator("tbody th")).to_have_text(["thelonious", HOSTILE])  # text, never markup
    first = _square(browser_page, sims[0]["key"])
    expect(first).to_have_class("sim s-pending")
    expect(first).to_have_attribute("title", "thelonious, 700 MHz, x_pos · theta: PENDING")
    expect(browser_page.locator("#table-summary")).to_have_text("0 simulations with results")

    # GOLIAT's "Simulation 1/8" turns the square blue, then the next one green: over SSE, no reload
    claimed = server.client.get("/api/assignment", params={"machineId": MACHINE})
    assert claimed.status_code == 200
    details = {
        "type": "simulation_details",
        "simulation_count": 1,
        "total_simulations": 8,
        "current_case": "c",
    }
    gui(server.client, details, machine=MACHINE)
    expect(first).to_have_class("sim s-running", timeout=8000)
    expect(first).to_have_text("▶")
    gui(server.client, {**details, "simulation_count": 2}, machine=MACHINE)
    expect(first).to_have_class("sim s-done", timeout=8000)
    expect(browser_page.locator('[data-f="count-done"]')).to_have_text("1")
    expect(browser_page.locator('[data-f="count-running"]')).to_have_text("1")

    # results arrive: the table and the plot fill in
    _upload(server, sims[0], 1e-05)
    _upload(server, sims[1], 3e-05)
    _upload(server, sims[4], 2e-05)
    expect(browser_page.locator("#results-table tbody tr")).to_have_count(3, timeout=8000)
    expect(browser_page.locator("#table-summary")).to_have_text("3 simulations with results")
    expect(_square(browser_page, sims[4]["key"])).to_have_class("sim s-done")
    headers = browser_page.locator("#results-table thead th")
    expect(headers.nth(0)).to_have_text("Simulation")
    expect(browser_page.locator("#results-table thead th", has_text="Whole-body SAR (W/kg)")).to_have_count(1)
    expect(browser_page.locator("#plot-figure")).to_have_value("whole_body_sar")
    series = browser_page.locator('#results-plot g.series[data-phantom="thelonious"]')
    expect(series.locator("path.line")).to_have_count(1)
    expect(series.locator("circle.point")).to_have_count(
        2
    )  # 700 MHz (two directions/polarizations) and 900 MHz
    expect(series.locator("polygon.band")).to_have_count(1)  # the spread at 700 MHz
    expect(browser_page.locator("#plot-legend")).to_contain_text("thelonious")

    # sort by the figure, descending on the second click
    sort = browser_page.locator('#results-table th button[data-col="whole_body_sar"]')
    sort.click()
    sort.click()
    expect(browser_page.locator('#results-table th[aria-sort="descending"]')).to_have_count(1)
    expect(browser_page.locator("#results-table tbody tr").first).to_have_attribute(
        "data-key", sims[1]["key"]
    )

    # another figure in the plot
    browser_page.locator("#plot-figure").select_option("peak_sar_10g_W_kg")
    expect(series.locator("circle.point")).to_have_count(2)

    # a click shows the simulation's files, and its file opens in the result browser
    first.click()
    detail = browser_page.locator("#sim-detail")
    expect(detail).to_be_visible()
    expect(detail.locator("h3")).to_have_text(sims[0]["key"])
    link = detail.locator('[data-f="log-link"]')
    expect(link).to_be_visible()
    worker_id = server.client.get("/api/workers").json()[0]["id"]
    assert (link.get_attribute("href") or "").startswith(f"/workers/{worker_id}?before=")
    detail.locator(".sim-files button", has_text="sar_results.json").click()
    expect(browser_page.locator("#preview-name")).to_have_text(f"{sims[0]['resultPath']}/sar_results.json")
    expect(browser_page.locator("#preview-body pre")).to_contain_text('"whole_body_sar": 0.00001,')

    with browser_page.expect_download() as info:
        browser_page.locator("#results-csv").click()
    assert info.value.suggested_filename.endswith("-results.csv")
    assert problems == []


@SQLITE
def test_compare_page_shows_both_sides_and_the_difference(
    server: LiveServer, page: tuple[Page, PageProblems]
) -> None:
    browser_page, problems = page
    before = _study(server, ["thelonious"])
    after_config = {**json.loads((TEST_CONFIGS / "far_field_small.json").read_text(encoding="utf-8"))}
    after_config.update(phantoms=["thelonious"], run_tag="fine")
    split = split_config(after_config, "phantom")
    body = {
        "name": "fine",
        "baseConfig": after_config,
        "assignments": [{"splitConfig": c} for c in split.configs],
    }
    after = server.client.post("/api/super-studies", json=body).json()
    a = server.client.get(f"/api/super-studies/{before['id']}/simulations").json()[0]
    b = server.client.get(f"/api/super-studies/{after['id']}/simulations").json()[0]
    _upload(server, a, 2e-05)
    _upload(server, b, 2.5e-05)

    browser_page.goto(f"{server.url}/super-studies/{before['id']}")
    browser_page.locator("#compare-with").select_option(after["id"])
    browser_page.locator("#compare-form button[type=submit]").click()
    browser_page.wait_for_url(f"**/super-studies/{before['id']}/compare?with={after['id']}*")
    row = browser_page.locator(f'#cmp-table tr[data-key="{a["key"]}"]')
    expect(row.locator('[data-f="reldiff"]')).to_have_text("+25.00 %")
    expect(row.locator('[data-f="reldiff"]')).to_have_class("num diff-big")
    expect(browser_page.locator("#cmp-figure")).to_have_value("whole_body_sar")
    expect(browser_page.locator("#cmp-summary")).to_contain_text("8 simulation(s) compared")

    assert problems == []

    smaller = _study(server, ["eartha"], name="other")
    browser_page.goto(f"{server.url}/super-studies/{before['id']}/compare?with={smaller['id']}")
    expect(browser_page.locator("#cmp-message")).to_contain_text("share no simulation")
    # the browser logs the API's 409 itself; nothing else went wrong
    assert [p for p in problems if "status of 409" not in p] == []
