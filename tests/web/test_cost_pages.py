"""GPU-hours and cost on the overview, the study page and the worker page, in Chromium."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from playwright.sync_api import Page, expect

from tests.api.helpers import create_study, gui, heartbeat
from tests.conftest import LiveServer
from tests.web.conftest import PageProblems

SQLITE = pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
OpenPage = Callable[..., tuple[Page, PageProblems]]
H = 3600.0
MACHINE = "10.0.0.1"


@SQLITE
def test_overview_and_study_page_show_the_costs(
    make_server: Callable[..., LiveServer], open_page: OpenPage
) -> None:
    server = make_server(price_per_hour=2.5, currency="EUR", offline_after_s=10 * H)
    client = server.client
    study = create_study(client, name="priced", count=2)
    first, second = (a["id"] for a in study["assignments"])
    assert heartbeat(client, MACHINE, hostname="gpu-box").status_code == 200
    assert client.post(f"/api/assignments/{first}/claim", json={"machineId": MACHINE}).status_code == 200
    server.clock.advance(2 * H)
    assert (
        gui(
            client, {"type": "finished", "message": "Study finished successfully"}, machine=MACHINE
        ).status_code
        == 200
    )
    server.clock.advance(1 * H)  # an idle hour
    assert client.post(f"/api/assignments/{second}/claim", json={"machineId": MACHINE}).status_code == 200
    assert (
        gui(client, {"type": "overall_progress", "current": 50, "total": 100}, machine=MACHINE).status_code
        == 200
    )
    worker_id = client.get("/api/workers").json()[0]["id"]

    page, problems = open_page()
    page.goto(server.url + "/")
    card = page.locator(f'.card.worker[data-id="{worker_id}"]')
    expect(card.locator('[data-f="cost"]')).to_have_text("5.00 EUR")  # 2 busy hours at 2.50
    expect(card.locator('[data-f="idleCost"]')).to_have_text("2.50 EUR")
    study_card = page.locator(f'.card.study[data-id="{study["id"]}"]')
    expect(study_card.locator('[data-f="cost"]')).to_have_text("5.00 EUR")
    expect(study_card.locator('[data-f="gpuHours"]')).to_have_text("2.00 h")
    # Projected: 4/3 h per simulation so far (2 h over 1.5 simulations done), and half of one
    # left on the running piece: 5.00 + 2/3 h at 2.50.
    expect(study_card.locator('[data-f="projectedCost"]')).to_have_text("6.67 EUR")

    page.goto(f"{server.url}/super-studies/{study['id']}")
    totals = page.locator("#study-totals")
    expect(totals.locator('[data-f="gpuHours"]')).to_have_text("2.00 h")
    expect(totals.locator('[data-f="cost"]')).to_have_text("5.00 EUR")
    expect(totals.locator('[data-f="projectedCost"]')).to_have_text("6.67 EUR")
    expect(page.locator(f'#assignments tr[data-id="{first}"] [data-f="cost"]')).to_have_text("5.00 EUR")
    # Live: an hour later the running piece has cost 2.50 more, pushed without a reload.
    server.clock.advance(1 * H)
    assert (
        gui(client, {"type": "overall_progress", "current": 60, "total": 100}, machine=MACHINE).status_code
        == 200
    )
    expect(totals.locator('[data-f="cost"]')).to_have_text("7.50 EUR")
    expect(page.locator(f'#assignments tr[data-id="{second}"] [data-f="cost"]')).to_have_text("2.50 EUR")
    assert problems == []


@SQLITE
def test_the_price_is_edited_on_the_worker_page(
    make_server: Callable[..., LiveServer], open_page: OpenPage
) -> None:
    server = make_server(price_per_hour=1.0, offline_after_s=10 * H)
    assert heartbeat(server.client, MACHINE).status_code == 200
    server.clock.advance(2 * H)
    assert heartbeat(server.client, MACHINE).status_code == 200
    worker_id = server.client.get("/api/workers").json()[0]["id"]
    page, problems = open_page()
    page.goto(f"{server.url}/workers/{worker_id}")
    expect(page.locator('[data-f="price"]')).to_have_text("1.00 USD (default)")
    expect(page.locator('[data-f="idleCost"]')).to_have_text("2.00 USD")
    page.fill("#price-input", "a lot")
    page.press("#price-input", "Enter")
    expect(page.locator("#price-msg")).to_contain_text("A price is a number")
    page.fill("#price-input", "3,5")
    page.press("#price-input", "Enter")
    expect(page.locator("#price-msg")).to_have_text("Saved.")
    expect(page.locator('[data-f="price"]')).to_have_text("3.50 USD")
    expect(page.locator('[data-f="idleCost"]')).to_have_text("7.00 USD")
    assert server.client.get(f"/api/workers/{worker_id}").json()["pricePerHour"] == 3.5
    page.fill("#price-input", "")
    page.press("#price-input", "Enter")
    expect(page.locator('[data-f="price"]')).to_have_text("1.00 USD (default)")
    assert problems == []
