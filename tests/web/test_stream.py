"""`GET /api/events`: render-ready payloads, coalescing, resume from Last-Event-ID, resync, pings."""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Callable
from typing import Any

import pytest

from goliat_monitor.server import events_api, hub
from tests.api.helpers import MACHINE, create_study, gui, heartbeat, log_batch
from tests.conftest import LiveServer
from tests.web.sse import SseReader

pytestmark = pytest.mark.parametrize("backend", ["sqlite"], indirect=True)


def worker_id(server: LiveServer) -> str:
    heartbeat(server.client, hostname="node-1", gpuName="RTX 4090")
    return str(server.client.get("/api/workers").json()[0]["id"])


def test_worker_event_is_the_read_api_dict_with_its_light(server: LiveServer) -> None:
    wid = worker_id(server)
    with SseReader(server.url, {"workers": "all"}) as sse:
        sse.until(lambda e: e.event == "hello")
        gui(server.client, {"type": "overall_progress", "current": 1, "total": 4})
        event = sse.until(
            lambda e: e.event == "worker" and e.json["guiState"] and e.json["guiState"]["progress"] == 25
        )[-1]
    worker = event.json
    api = server.client.get(f"/api/workers/{wid}").json()
    assert worker["id"] == wid and worker["status"] == "RUNNING" and worker["light"] == "green"
    assert worker["displayName"] == "node-1" and worker["stalled"] is False
    assert {k: v for k, v in worker.items() if k in ("hostname", "gpuName", "machineId")} == {
        k: api[k] for k in ("hostname", "gpuName", "machineId")
    }
    assert re.fullmatch(r"[0-9a-f]+:\d+\.\d+", event.id or "")


def test_log_lines_are_pushed_only_to_pages_that_follow_the_worker(server: LiveServer) -> None:
    wid = worker_id(server)
    with (
        SseReader(server.url, {"workers": wid, "logs": wid}) as follower,
        SseReader(server.url, {"workers": "all"}) as other,
    ):
        follower.until(lambda e: e.event == "hello")
        other.until(lambda e: e.event == "hello")
        first = log_batch(0, [("first", "warning")])
        gui(server.client, log_batch(1, [("second", "info")]))
        gui(server.client, first)
        lines: list[dict[str, str]] = []
        while len(lines) < 2:
            event = follower.until(lambda e: e.event == "logs")[-1]
            assert event.json["workerId"] == wid
            lines += event.json["lines"]
        assert {line["message"] for line in lines} == {"first", "second"}
        assert all(set(line) == {"message", "logType", "timestamp", "cursor"} for line in lines)
        # Cursors sort the lines into GOLIAT's order whatever order they arrived in.
        ordered = sorted(lines, key=lambda line: tuple(int(p) for p in line["cursor"].split(".")))
        assert [line["message"] for line in ordered] == ["first", "second"]
        assert all(e.event != "logs" for e in other.collect(0.8))


def test_updates_to_one_worker_are_coalesced_to_four_a_second(server: LiveServer) -> None:
    worker_id(server)
    with SseReader(server.url, {"workers": "all"}) as sse:
        sse.until(lambda e: e.event == "hello")
        started = time.monotonic()
        for step in range(1, 101):
            gui(server.client, {"type": "overall_progress", "current": step, "total": 100})
        sent_for = time.monotonic() - started
        events = sse.until(
            lambda e: e.event == "worker" and (e.json["guiState"] or {}).get("progress") == 100.0
        )
    updates = [e for e in events if e.event == "worker"]
    # Leading edge plus at most one push per 250 ms while the burst lasts, and the last value arrives.
    assert len(updates) <= sent_for / hub.WORKER_INTERVAL_S + 3, (len(updates), sent_for)
    assert len(updates) < 100


def test_reconnect_with_last_event_id_replays_what_was_missed(server: LiveServer) -> None:
    wid = worker_id(server)
    params = {"workers": "all", "logs": wid}
    with SseReader(server.url, params) as sse:
        hello = sse.until(lambda e: e.event == "hello")[-1]
    assert hello.id
    gui(server.client, {"type": "overall_progress", "current": 3, "total": 4})
    gui(server.client, log_batch(0, [("missed while away", "info")]))
    with SseReader(server.url, params, last_event_id=hello.id) as sse:
        events = sse.until(lambda e: e.event == "hello")
    kinds = [e.event for e in events]
    assert "resync" not in kinds
    worker = next(e.json for e in events if e.event == "worker")
    assert worker["guiState"]["progress"] == 75.0
    logs = [line["message"] for e in events if e.event == "logs" for line in e.json["lines"]]
    assert logs == ["missed while away"]
    # The new hello marks the new position: resuming from it replays nothing.
    with SseReader(server.url, params, last_event_id=events[-1].id) as sse:
        again = sse.until(lambda e: e.event == "hello")
    assert [e.event for e in again] == ["hello"]


def test_a_freshly_rendered_page_misses_nothing_before_it_subscribes(server: LiveServer) -> None:
    wid = worker_id(server)
    html = server.client.get(f"/workers/{wid}").text
    event_id = re.search(r'data-event-id="([^"]+)"', html)
    assert event_id
    gui(server.client, log_batch(0, [("between render and subscribe", "info")]))
    with SseReader(server.url, {"workers": wid, "logs": wid, "lastEventId": event_id.group(1)}) as sse:
        events = sse.until(lambda e: e.event == "hello")
    assert [line["message"] for e in events if e.event == "logs" for line in e.json["lines"]] == [
        "between render and subscribe"
    ]


def test_a_light_that_changes_between_render_and_stream_is_pushed(
    make_server: Callable[..., LiveServer],
) -> None:
    """The hub's first liveness check must not take the changed light as its baseline: the page
    still shows the light it was rendered with."""
    server = make_server(stalled_after_s=20)
    worker_id(server)
    gui(server.client, {"type": "overall_progress", "current": 1, "total": 4})
    assert 'data-light="green"' in server.client.get("/").text
    server.clock.advance(25)  # stalled before any stream (and so the hub) has started
    with SseReader(server.url, {"workers": "all"}) as sse:
        event = sse.until(lambda e: e.event == "worker", timeout=2 * hub.LIVENESS_INTERVAL_S + 2)[-1]
    assert event.json["light"] == "amber" and event.json["stalled"] is True


def test_resync_when_the_missed_events_are_forgotten(server: LiveServer) -> None:
    worker_id(server)
    server.context.events.history = 5
    with SseReader(server.url, {"workers": "all"}) as sse:
        hello = sse.until(lambda e: e.event == "hello")[-1]
    for step in range(10):
        gui(server.client, {"type": "overall_progress", "current": step, "total": 10})
    with SseReader(server.url, {"workers": "all"}, last_event_id=hello.id) as sse:
        events = sse.until(lambda e: e.event == "hello")
    assert events[0].event == "resync"
    # An id from another process (a restart, or another replica) cannot be resumed from.
    epoch, _, position = (hello.id or "").partition(":")
    with SseReader(server.url, {"workers": "all"}, last_event_id=f"0{epoch}:{position}") as sse:
        assert sse.until(lambda e: e.event == "hello")[0].event == "resync"
    with SseReader(server.url, {"workers": "all"}, last_event_id="not-an-id") as sse:
        assert sse.until(lambda e: e.event == "hello")[0].event == "hello"


def test_study_summaries_go_to_everyone_and_assignment_tables_to_study_pages(server: LiveServer) -> None:
    study = create_study(server.client, count=2)
    piece = study["assignments"][0]["id"]
    with SseReader(server.url, {"study": study["id"]}) as page, SseReader(server.url, {}) as everyone:
        page.until(lambda e: e.event == "hello")
        everyone.until(lambda e: e.event == "hello")
        assert (
            server.client.post(f"/api/assignments/{piece}/claim", json={"machineId": MACHINE}).status_code
            == 200
        )
        table = page.until(lambda e: e.event == "assignments")[-1].json
        summary = everyone.until(lambda e: e.event == "study")[-1].json
    assert table["id"] == study["id"] and table["assignments"][0]["status"] == "RUNNING"
    assert "splitConfig" not in table["assignments"][0]
    assert summary["id"] == study["id"] and summary["runningAssignments"] == 1
    assert "assignments" not in summary and "baseConfig" not in summary


def test_heartbeat_comments_keep_the_stream_open(server: LiveServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(events_api, "PING_INTERVAL_S", 0.3)
    with SseReader(server.url, {}) as sse:
        sse.until(lambda e: e.event == "hello")
        comment = sse.next_comment(timeout=3)
    assert comment.startswith(": ping")


def test_security_headers_on_pages_api_static_and_stream(server: LiveServer) -> None:
    expected = (
        "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
        "connect-src 'self'; frame-ancestors 'none'"
    )
    for path in ("/", "/super-studies", "/api/workers", "/static/app.js", "/no-such-page"):
        response = server.client.get(path)
        assert response.headers["content-security-policy"] == expected, path
        assert response.headers["x-content-type-options"] == "nosniff"
    html = server.client.get("/").text
    script = re.search(r'src="(/static/[0-9a-f]{12}/pages/overview\.js)"', html)
    assert script and "immutable" in server.client.get(script.group(1)).headers["cache-control"]
    with SseReader(server.url, {}) as sse:
        assert sse.response.headers["content-security-policy"] == expected
        assert sse.response.headers["content-type"].startswith("text/event-stream")


def test_pages_render_without_javascript_and_escape_everything(server: LiveServer) -> None:
    hostile = '<script>alert("x")</script>'
    heartbeat(server.client, hostname=hostile, gpuName="<b>gpu</b>")
    gui(server.client, log_batch(0, [("<img src=x onerror=alert(1)>", "error")]))
    wid = server.client.get("/api/workers").json()[0]["id"]
    create_study(server.client, name="<i>study</i>")
    pages = [server.client.get(p).text for p in ("/", f"/workers/{wid}", "/super-studies")]
    for html in pages:
        assert "<script>alert" not in html and "<b>gpu</b>" not in html and "<i>study</i>" not in html
        assert "<img src=x" not in html
        # The only scripts are the external file and a JSON data block.
        assert re.findall(r"<script(?![^>]*(?:src=|application/json))", html) == []
    assert "&lt;img src=x onerror=alert(1)&gt;" in pages[1]
    assert server.client.get("/workers/does-not-exist").status_code == 404


def test_the_last_log_page_closing_while_its_lines_are_read_is_no_error(
    server: LiveServer, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Closing the last log page resets the hub's log position, and the hub reads lines on a
    thread: a page closed during that read must not make the next push fail (it did, and every
    page was told to resync). The next page then starts from the newest line."""
    the_hub = hub.get_hub(server.app)
    context = server.context

    async def close_the_page_during_the_read() -> bool:
        page = the_hub.connect(log_workers=["w1"])
        the_hub.start_log_tracking(0)
        real_read = context.db.read
        read_done = asyncio.Event()

        async def read_as_the_page_closes(fn: Callable[..., Any]) -> Any:
            the_hub.disconnect(page)
            try:
                return await real_read(fn)
            finally:
                read_done.set()

        monkeypatch.setattr(context.db, "read", read_as_the_page_closes)
        context.events.publish("logs", {"id": "w1"})
        await asyncio.wait_for(read_done.wait(), 10)
        await asyncio.sleep(0.2)  # the hub acts on what it read
        return bool(the_hub.tracking_logs)

    with caplog.at_level(logging.ERROR, logger=hub.__name__):
        still_tracking = asyncio.run_coroutine_threadsafe(
            close_the_page_during_the_read(), server.loop
        ).result(timeout=30)
    assert [r.getMessage() for r in caplog.records if r.name == hub.__name__] == []
    assert not still_tracking
