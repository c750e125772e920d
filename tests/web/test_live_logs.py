"""Log lines reach a following page without waiting on a timer: not in the hub, not in the relay."""

from __future__ import annotations

import asyncio
import json
from concurrent.futures import ThreadPoolExecutor

import psycopg
import pytest
from sqlalchemy.engine import make_url

from goliat_monitor.events import EventBroker
from goliat_monitor.server import fanout, hub
from goliat_monitor.server.sse import parse_event_id
from tests.api.helpers import gui, heartbeat, log_batch
from tests.conftest import LiveServer
from tests.web.sse import SseEvent, SseReader

FOLLOWED = "198.51.100.21"
OTHER = "198.51.100.22"


def lines_of(event: SseEvent) -> list[str]:
    return [line["message"] for line in event.json["lines"]]


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_followed_log_lines_skip_the_flush_gap_that_progress_waits_for(
    server: LiveServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A gap far longer than the reader's timeout: whatever waits for it cannot arrive in this test.
    monkeypatch.setattr(hub, "FLUSH_GAP_S", 60.0)
    heartbeat(server.client, machine=FOLLOWED, hostname="followed")
    heartbeat(server.client, machine=OTHER, hostname="other")
    ids = {w["machineId"]: w["id"] for w in server.client.get("/api/workers").json()}
    followed, other = ids[FOLLOWED], ids[OTHER]
    with SseReader(server.url, {"workers": "all", "logs": followed}) as sse:
        sse.until(lambda e: e.event == "hello")
        gui(server.client, log_batch(0, [("first", "info")]), machine=FOLLOWED)
        first = sse.until(lambda e: e.event == "logs")[-1]
        assert lines_of(first) == ["first"]

        # The flush just happened: this update starts the hub waiting out the gap, to gather a
        # burst; the followed worker's next lines end that wait and go out at once, with the card.
        gui(server.client, {"type": "overall_progress", "current": 1, "total": 2}, machine=OTHER)
        gui(server.client, log_batch(1, [("second", "warning"), ("third", "info")]), machine=FOLLOWED)
        events = sse.until(lambda e: e.event == "logs", timeout=2.5)
        second = events[-1]
        assert second.json["workerId"] == followed
        assert lines_of(second) == ["second", "third"]
        assert any(e.event == "worker" and e.json["id"] == other for e in events)
    first_id, second_id = parse_event_id(first.id), parse_event_id(second.id)
    assert first_id is not None and second_id is not None
    # The resume point moves past the lines each frame carried: a reconnect replays none twice.
    assert first_id[0] == second_id[0] and first_id[2] < second_id[2]


@pytest.mark.parametrize("backend", ["postgres"], indirect=True)
def test_an_idle_relay_notifies_at_once_and_batches_a_burst(
    backend: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A send interval far longer than the wait below: only a sender that wakes on the event passes.
    monkeypatch.setattr(fanout, "FLUSH_S", 60.0)
    url = fanout.conninfo(make_url(backend))

    async def scenario() -> list[str]:
        relay = fanout.Fanout(url, EventBroker())
        async with await psycopg.AsyncConnection.connect(url, autocommit=True) as listener:
            await listener.execute(f"LISTEN {fanout.CHANNEL}")
            sender = asyncio.create_task(relay.run_sender())
            try:
                relay.forward("logs", {"id": "w1"})
                relay.forward("worker", {"id": "w1"})
                payloads = []
                async with asyncio.timeout(5):
                    async for note in listener.notifies():
                        payloads.append(note.payload)
                        break
                return payloads
            finally:
                sender.cancel()
                with pytest.raises(asyncio.CancelledError):
                    await sender

    # A thread of its own: the browser tests keep an event loop running on the main thread.
    with ThreadPoolExecutor(1) as pool:
        payloads = pool.submit(asyncio.run, scenario()).result(timeout=30)
    assert [json.loads(p)["events"] for p in payloads] == [[["logs", {"id": "w1"}], ["worker", {"id": "w1"}]]]
