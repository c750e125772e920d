"""The in-process broker: ids, bounded per-subscriber queues, overflow, unsubscribe and replay."""

from __future__ import annotations

import asyncio
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from goliat_monitor.events import Event, EventBroker, Subscription


def drain(sub: Subscription) -> list[Event]:
    events = []
    while not sub.queue.empty():
        events.append(sub.queue.get_nowait())
    return events


def test_ids_start_at_one_and_increase() -> None:
    broker = EventBroker()
    assert broker.last_id == 0
    first = broker.publish("worker", {"id": "w1"})
    second = broker.publish("study", {"id": "s1"})
    assert (first.id, second.id) == (1, 2)
    assert second == Event(2, "study", {"id": "s1"})
    assert broker.last_id == 2


def test_every_subscriber_gets_every_event_in_order() -> None:
    broker = EventBroker()
    subs = [broker.subscribe(), broker.subscribe()]
    broker.publish_many("worker", [{"id": "a"}, {"id": "b"}, {"id": "c"}])
    for sub in subs:
        assert [event.data["id"] for event in drain(sub)] == ["a", "b", "c"]
        assert not sub.overflowed


def test_a_subscriber_sees_only_what_was_published_after_it_subscribed() -> None:
    broker = EventBroker()
    broker.publish("worker", {"id": "before"})
    sub = broker.subscribe()
    broker.publish("worker", {"id": "after"})
    assert [event.data["id"] for event in drain(sub)] == ["after"]


def test_unsubscribed_queues_receive_nothing_more() -> None:
    broker = EventBroker()
    stays, leaves = broker.subscribe(), broker.subscribe()
    assert broker.subscriber_count == 2
    broker.unsubscribe(leaves)
    broker.unsubscribe(leaves)  # twice is harmless (a stream may close from both ends)
    assert broker.subscriber_count == 1
    broker.publish("worker", {"id": "w"})
    assert drain(leaves) == []
    assert len(drain(stays)) == 1


def test_a_slow_subscriber_keeps_the_newest_events_and_is_marked() -> None:
    broker = EventBroker(max_queue=3)
    slow, fast = broker.subscribe(), broker.subscribe()
    for n in range(5):
        broker.publish("worker", {"n": n})
        if n < 4:
            drain(fast)
    assert [event.data["n"] for event in drain(slow)] == [2, 3, 4]
    assert slow.overflowed
    assert [event.data["n"] for event in drain(fast)] == [4]
    assert not fast.overflowed  # one subscriber's backlog does not touch another's


def test_a_full_but_not_overflowing_queue_is_not_marked() -> None:
    broker = EventBroker(max_queue=2)
    sub = broker.subscribe()
    broker.publish_many("worker", [{}, {}])
    assert sub.queue.full()
    assert not sub.overflowed


def test_forwarders_see_local_events_only() -> None:
    broker = EventBroker()
    forwarded: list[tuple[str, dict[str, Any]]] = []
    broker.forwarders.append(lambda kind, data: forwarded.append((kind, data)))
    sub = broker.subscribe()
    broker.publish("worker", {"id": "local"})
    broker.publish("worker", {"id": "remote"}, relayed=True)
    assert forwarded == [("worker", {"id": "local"})]  # a relayed event is not sent back out
    assert [event.data["id"] for event in drain(sub)] == ["local", "remote"]


def test_a_waiting_consumer_is_woken_by_publish() -> None:
    async def scenario() -> Event:
        broker = EventBroker()
        sub = broker.subscribe()
        waiter = asyncio.create_task(sub.queue.get())
        await asyncio.sleep(0)  # let it start waiting on the empty queue
        broker.publish("study", {"id": "s"})
        return await asyncio.wait_for(waiter, timeout=5)

    assert asyncio.run(scenario()).data == {"id": "s"}


# -- replay ------------------------------------------------------------------------------------


def test_since_on_an_empty_broker_is_nothing_missed() -> None:
    assert EventBroker().since(0) == []


def test_since_returns_what_came_after_the_given_id() -> None:
    broker = EventBroker()
    broker.publish_many("worker", [{"n": n} for n in range(5)])
    assert [event.id for event in broker.since(2) or []] == [3, 4, 5]
    assert broker.since(5) == []
    assert broker.since(99) == []  # the caller tells a stale id from the future by last_id


def test_since_is_none_once_the_gap_is_forgotten() -> None:
    broker = EventBroker(history=3)
    broker.publish_many("worker", [{"n": n} for n in range(5)])  # ids 1..5, remembered 3..5
    assert [event.id for event in broker.since(2) or []] == [3, 4, 5]
    assert broker.since(1) is None
    assert broker.since(0) is None
    assert broker.last_id == 5


@given(
    st.integers(min_value=1, max_value=10),
    st.integers(min_value=0, max_value=30),
    st.integers(min_value=0, max_value=35),
)
def test_since_is_complete_or_says_it_cannot_be(history: int, published: int, last_id: int) -> None:
    broker = EventBroker(history=history)
    broker.publish_many("worker", [{"n": n} for n in range(published)])
    missed = broker.since(last_id)
    wanted = list(range(last_id + 1, published + 1))
    remembered = set(range(max(1, published - history + 1), published + 1))
    if set(wanted) <= remembered:
        assert missed is not None
        assert [event.id for event in missed] == wanted
    else:
        assert missed is None
