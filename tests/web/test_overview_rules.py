"""The overview's filter, sort and totals rules live in server/overview.py; the browser only applies them.

The first tests pin the rules; the last one pins that the browser reorders and filters a live page
exactly as the server renders the same URL, for every filter and sort, with names chosen so that
a second implementation in JavaScript (localeCompare, toLowerCase) would put them differently.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from goliat_monitor.server.overview import SORTS, STATUS_FILTERS, shown_workers, totals
from goliat_monitor.server.views import worker_view
from tests.api.helpers import gui, heartbeat, log_batch
from tests.conftest import LiveServer
from tests.web.conftest import PageProblems

NOW = 1_800_000_000.0
CARD_ID = re.compile(r'<article class="card worker" data-id="([^"]+)"')


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat()


def view(worker_id: str, status: str = "IDLE", **fields: Any) -> dict[str, Any]:
    worker = {
        "id": worker_id,
        "status": status,
        "machineId": f"10.0.0.{len(worker_id)}",
        "hostname": worker_id,
        "machineLabel": None,
        "gpuName": None,
        "isStale": False,
        "guiState": None,
        "createdAt": iso(NOW - 5),
        "lastSeen": iso(NOW - 1),
        "lastProgressAt": iso(NOW - 1),
        **fields,
    }
    return worker_view(worker, now=NOW, stalled_after_s=60)


def names(views: list[dict[str, Any]]) -> list[str]:
    return [v["displayName"] for v in views]


def test_each_status_filter_matches_its_own_workers() -> None:
    views = [
        view("run", "RUNNING"),
        view("stuck", "RUNNING", lastProgressAt=iso(NOW - 120)),
        view("idle"),
        view("broken", "ERROR"),
        view("gone", "OFFLINE"),
    ]
    chosen = {
        status: names(shown_workers(views, status=status, search="", sort="name"))
        for status in STATUS_FILTERS
    }
    assert chosen == {
        "all": ["broken", "gone", "idle", "run", "stuck"],
        "running": ["run"],
        "stalled": ["stuck"],
        "idle": ["idle"],
        "error": ["broken"],
        "offline": ["gone"],
    }


def test_each_sort_order() -> None:
    gui_state = {"progress": 40.0}
    views = [
        view("b-idle", lastSeen=iso(NOW - 30)),
        view("a-run", "RUNNING", guiState=gui_state, lastSeen=iso(NOW - 10)),
        view(
            "c-stuck",
            "RUNNING",
            guiState={"progress": 90.0},
            lastProgressAt=iso(NOW - 120),
            lastSeen=iso(NOW - 60),
        ),
        view("d-error", "ERROR", lastSeen=iso(NOW - 5)),
        view("e-gone", "OFFLINE", lastSeen=None),
        view("f-run", "RUNNING", guiState=gui_state, lastSeen=iso(NOW - 20)),
    ]
    order = {sort: names(shown_workers(views, status="all", search="", sort=sort)) for sort in SORTS}
    assert order == {
        "status": ["d-error", "c-stuck", "a-run", "f-run", "b-idle", "e-gone"],
        "name": ["a-run", "b-idle", "c-stuck", "d-error", "e-gone", "f-run"],
        "progress": ["c-stuck", "a-run", "f-run", "b-idle", "d-error", "e-gone"],
        "seen": ["d-error", "a-run", "f-run", "b-idle", "c-stuck", "e-gone"],
    }


def test_names_sort_by_lowercased_code_points_then_by_id() -> None:
    views = [
        view("ábc"),
        view("Ab"),
        view("a_b"),
        view("x2", machineLabel="same"),
        view("x1", machineLabel="same"),
    ]
    ordered = shown_workers(views, status="all", search="", sort="name")
    assert [v["id"] for v in ordered] == ["a_b", "Ab", "x1", "x2", "ábc"]


def test_search_looks_in_name_host_machine_gpu_and_id_only() -> None:
    views = [
        view("w1", machineLabel="Render box", hostname="node-7", gpuName="RTX A4000"),
        view("w2", guiState={"stage": "render"}),
    ]
    for needle, expected in (("render", ["w1"]), ("node-7", ["w1"]), ("a4000", ["w1"]), ("w2", ["w2"])):
        assert [v["id"] for v in shown_workers(views, status="all", search=needle, sort="name")] == expected


def test_totals_leave_out_stale_sessions() -> None:
    views = [
        view("run", "RUNNING", guiState={"warningCount": 2, "errorCount": 1}),
        view("stuck", "RUNNING", lastProgressAt=iso(NOW - 120)),
        view("idle"),
        view("broken", "ERROR"),
        view("gone", "OFFLINE"),
        view("old", "RUNNING", isStale=True, guiState={"warningCount": 5}),
    ]
    assert totals(views) == {
        "online": 4,
        "running": 2,
        "stalled": 1,
        "idle": 1,
        "offline": 2,
        "warnings": 2,
        "errors": 1,
    }


def server_order(server: LiveServer, status: str, sort: str) -> list[str]:
    return CARD_ID.findall(server.client.get("/", params={"status": status, "sort": sort}).text)


def browser_order(page: Page) -> list[str]:
    ids: list[str] = page.evaluate(
        "Array.from(document.querySelectorAll('#workers .card.worker'))"
        ".filter(card => !card.hidden).map(card => card.dataset.id)"
    )
    return ids


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_the_browser_filters_and_sorts_exactly_as_the_server_renders(
    make_server: Callable[..., LiveServer], open_page: Callable[..., tuple[Page, PageProblems]]
) -> None:
    server = make_server(stalled_after_s=20)
    hosts = {
        "10.0.0.1": "ábc",  # running
        "10.0.0.2": "Ab",  # idle, with a warning
        "10.0.0.3": "a_b",  # error
        "10.0.0.4": "zed",  # stalled
        "10.0.0.5": "Mid",  # offline
        "10.0.0.6": "ab",  # running, as far as "ábc"
    }
    for machine, host in hosts.items():
        heartbeat(server.client, machine, hostname=host)
    gui(server.client, {"type": "overall_progress", "current": 9, "total": 10}, machine="10.0.0.4")
    server.clock.advance(25)  # no progress for 25 s > 20 s: stalled
    awake = [machine for machine in hosts if machine != "10.0.0.5"]
    for machine in awake:
        heartbeat(server.client, machine, hostname=hosts[machine])
    for machine in ("10.0.0.1", "10.0.0.6"):
        gui(server.client, {"type": "overall_progress", "current": 5, "total": 10}, machine=machine)
    gui(server.client, {"type": "fatal_error", "message": "solver died"}, machine="10.0.0.3")
    gui(server.client, log_batch(0, [("careful", "warning")]), machine="10.0.0.2")
    server.clock.advance(10)  # 10.0.0.5 has been silent for 35 s: offline
    for machine in awake:
        heartbeat(server.client, machine, hostname=hosts[machine])

    page, problems = open_page()
    page.goto(server.url + "/")
    expect(page.locator("#live-status")).to_have_attribute("data-state", "live")
    statuses = {w["status"] for w in server.client.get("/api/workers").json()}
    assert statuses == {"RUNNING", "IDLE", "ERROR", "OFFLINE"}
    for sort in SORTS:
        page.select_option("select[name=sort]", sort)
        for status in STATUS_FILTERS:
            page.select_option("select[name=status]", status)
            assert browser_order(page) == server_order(server, status, sort), (status, sort)
    assert len(server_order(server, "all", "name")) == len(hosts)
    assert problems == []
