"""The light `timings` event: only the pages of that worker get it, coalesced, and replayed."""

from __future__ import annotations

import time

import pytest

from goliat_monitor.server import hub
from tests.api.helpers import gui, heartbeat
from tests.conftest import LiveServer
from tests.web.sse import SseReader

pytestmark = pytest.mark.parametrize("backend", ["sqlite"], indirect=True)

TIMING = {"type": "timing", "phase": "run", "subtask": "isolve_execution", "seconds": 12.5, "simulation": 1}


def worker_id(server: LiveServer) -> str:
    heartbeat(server.client, hostname="node-1")
    return str(server.client.get("/api/workers").json()[0]["id"])


def test_new_timings_notify_the_worker_page_only_and_at_most_once_a_second(server: LiveServer) -> None:
    wid = worker_id(server)
    with (
        SseReader(server.url, {"workers": wid, "logs": wid}) as page,
        SseReader(server.url, {"workers": "all"}) as overview,
    ):
        page.until(lambda e: e.event == "hello")
        overview.until(lambda e: e.event == "hello")
        for _ in range(5):
            assert gui(server.client, TIMING).status_code == 200
        notice = page.until(lambda e: e.event == "timings")[-1]
        assert notice.json == {"workerId": wid}
        # Five timings, one notice at once and at most one a second later for the rest of the
        # burst; the page reads every timing of the run on each.
        started = time.monotonic()
        later = [(e, time.monotonic()) for e in page.collect(1.5) if e.event == "timings"]
        assert len(later) <= 1
        assert all(at - started >= hub.TIMINGS_INTERVAL_S * 0.5 for _, at in later)
        assert all(e.event != "timings" for e in overview.collect(0.5))
        assert server.client.get(f"/api/workers/{wid}/timings").json()["sampleCount"] == 5


def test_a_page_that_reconnects_hears_of_timings_it_missed(server: LiveServer) -> None:
    wid = worker_id(server)
    params = {"workers": wid, "logs": wid}
    with SseReader(server.url, params) as sse:
        hello = sse.until(lambda e: e.event == "hello")[-1]
    assert gui(server.client, TIMING).status_code == 200
    with SseReader(server.url, params, last_event_id=hello.id) as sse:
        events = sse.until(lambda e: e.event == "hello")
    assert [e.json for e in events if e.event == "timings"] == [{"workerId": wid}]
