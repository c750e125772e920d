"""The replica relay packs events into PostgreSQL notifications: all of them, in order, none too big."""

from __future__ import annotations

import json

from goliat_monitor.server.fanout import MAX_PAYLOAD, _payloads


def _events(count: int) -> list[tuple[str, dict[str, object]]]:
    return [("worker", {"id": f"w{i:04d}", "detail": "x" * (i % 37)}) for i in range(count)]


def test_every_event_arrives_once_in_order_under_the_size_limit() -> None:
    events = _events(2_000)
    payloads = _payloads("origin-1", events)
    assert len(payloads) > 1
    unpacked: list[tuple[str, dict[str, object]]] = []
    for payload in payloads:
        assert len(payload) <= MAX_PAYLOAD
        message = json.loads(payload)
        assert message["origin"] == "origin-1"
        unpacked.extend((kind, data) for kind, data in message["events"])
    assert unpacked == events


def test_a_small_burst_is_one_notification() -> None:
    (payload,) = _payloads("o", _events(3))
    assert [kind for kind, _ in json.loads(payload)["events"]] == ["worker"] * 3


def test_nothing_to_send_is_no_notification() -> None:
    assert _payloads("o", []) == []
