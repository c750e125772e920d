"""Two server replicas on one PostgreSQL database: each notification reaches each target once.

Both replicas fan out, claim and detect at the same time (their loops run every second, their
detection every 0.2 s here): the claims' `FOR UPDATE SKIP LOCKED` and the outbox's unique keys
are what keep the deliveries single.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable

import pytest

from goliat_monitor.server import notify
from tests.api.helpers import create_study, gui, heartbeat
from tests.conftest import FakeClock
from tests.notify_support import Receiver, Running, finish, history, pull, receiver, start
from tests.support import wait_for

__all__ = ["receiver", "start"]

POSTGRES = pytest.mark.parametrize("backend", ["postgres"], indirect=True)
STUDIES = 8


@POSTGRES
def test_two_replicas_deliver_every_notification_once(
    start: Callable[..., Running], receiver: Receiver
) -> None:
    receiver.codes = [500, 500, 500]  # a few first tries fail: their retries are claimed anew
    clock = FakeClock()
    settings = {
        "notify_urls": receiver.url,
        "notify_retry_s": 1.0,
        "stalled_after_s": 300,
        "offline_after_s": 3600,
        "lease_timeout_s": 7200,
        "notify_idle_after_min": 0,
        "disk_free_alert_mb": 0,
    }
    replicas = [start(clock=clock, **settings), start(clock=clock, **settings)]
    for n in range(STUDIES):
        one, other = replicas[n % 2], replicas[(n + 1) % 2]
        create_study(one.client, name=f"study-{n}", count=1)
        pull(other.client, f"10.0.1.{n}")
        finish(one.client, f"10.0.1.{n}")
    heartbeat(replicas[0].client, machine="10.0.2.1", hostname="stuck")
    create_study(replicas[0].client, name="stuck-study", count=1)
    pull(replicas[1].client, "10.0.2.1")
    gui(replicas[1].client, {"type": "overall_progress", "current": 5, "total": 100}, machine="10.0.2.1")
    clock.advance(301)
    heartbeat(replicas[0].client, machine="10.0.2.1")

    expected = {f"Super study 'study-{n}' completed" for n in range(STUDIES)} | {"Worker stuck stalled"}

    def all_arrived() -> bool:
        clock.advance(2)  # retries come due
        return set(receiver.titles()) >= expected

    wait_for(all_arrived, timeout=30, what="every notification", every=0.5)
    time.sleep(4 * notify.POLL_S)
    clock.advance(100)  # past any retry's wait: nothing is sent again
    time.sleep(4 * notify.POLL_S)
    counts = Counter(receiver.titles())
    assert set(counts) == expected and set(counts.values()) == {1}, counts
    assert receiver.refused == 3
    deliveries = [d for n in history(replicas[1].client) for d in n["deliveries"]]
    assert len(deliveries) == len(expected)
    assert {d["status"] for d in deliveries} == {"DELIVERED"}
    assert sum(d["attempts"] for d in deliveries) == len(expected) + 3
