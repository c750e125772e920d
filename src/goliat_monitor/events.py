"""In-process publish/subscribe for live pages: one bounded queue per subscriber.

Route handlers publish what a committed write touched; the SSE stream (and anything else that
wants to know) subscribes. A subscriber that cannot keep up loses its oldest events and is told
so with a `resync` event, so a slow browser never slows a worker's request.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Event:
    id: int
    kind: str
    data: dict[str, Any]


@dataclass(eq=False)
class Subscription:
    """One subscriber's queue; compared by identity so the broker can keep a set of them."""

    queue: asyncio.Queue[Event]
    overflowed: bool = False


@dataclass
class EventBroker:
    max_queue: int = 1000
    history: int = 2000
    _subscribers: set[Subscription] = field(default_factory=set)
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    _recent: list[Event] = field(default_factory=list)
    forwarders: list[Callable[[str, dict[str, Any]], None]] = field(default_factory=list)
    """Called for every event published here (not for ones relayed from other replicas)."""

    def publish(self, kind: str, data: dict[str, Any], *, relayed: bool = False) -> Event:
        event = Event(next(self._ids), kind, data)
        if not relayed:
            for forward in self.forwarders:
                forward(kind, data)
        self._recent.append(event)
        if len(self._recent) > self.history:
            del self._recent[: len(self._recent) - self.history]
        for sub in list(self._subscribers):
            if sub.queue.full():
                sub.overflowed = True
                with contextlib.suppress(asyncio.QueueEmpty):
                    sub.queue.get_nowait()
            sub.queue.put_nowait(event)
        return event

    def publish_many(self, kind: str, items: Iterable[dict[str, Any]]) -> None:
        for data in items:
            self.publish(kind, data)

    def since(self, last_id: int) -> list[Event] | None:
        """Events after `last_id`, or None when they are no longer all remembered."""
        if not self._recent or last_id >= self._recent[-1].id:
            return []
        if last_id < self._recent[0].id - 1:
            return None
        return [event for event in self._recent if event.id > last_id]

    @property
    def last_id(self) -> int:
        """The newest event id handed out (0 before the first)."""
        return self._recent[-1].id if self._recent else 0

    def subscribe(self) -> Subscription:
        sub = Subscription(asyncio.Queue(self.max_queue))
        self._subscribers.add(sub)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        self._subscribers.discard(sub)

    @property
    def subscriber_count(self) -> int:
        return len(self._subscribers)
