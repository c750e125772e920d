"""Server-Sent Events framing: encoding a message, frames, one connection's queue, event ids.

Pure bookkeeping, no database and no app: the hub (`hub.py`) decides what to send, the route
(`events_api.py`) writes the bytes.

Frame ids are `<epoch>:<broker event id>.<log row id>`. The epoch is random per process, so an
id from before a restart or from another replica is recognised; the broker id says which state
changes a page has seen (`EventBroker.since`), the log row id which log lines.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from typing import Any

CLIENT_QUEUE = 2048
"""Frames a connection may fall behind by (about 5 s of 100 busy workers) before it must resync."""


def encode(event: str, data: Any, *, event_id: str | None = None, retry: int | None = None) -> bytes:
    """One SSE message. JSON from `json.dumps` has no newlines, so `data:` is a single line."""
    lines = []
    if event_id is not None:
        lines.append(f"id: {event_id}")
    if retry is not None:
        lines.append(f"retry: {retry}")
    lines.append(f"event: {event}")
    lines.append("data: " + json.dumps(data, separators=(",", ":"), default=str))
    return ("\n".join(lines) + "\n\n").encode()


@dataclass(frozen=True)
class Frame:
    body: bytes
    topic: tuple[str, str] | None = None
    """None: for every page; ("worker" | "timings" | "logs" | "study", id): only for pages that follow
    it ("timings": only pages of that one worker, not the overview that follows them all)."""


RESYNC = Frame(encode("resync", {}))


CLOSE = Frame(b"")
"""Ends a stream; the browser reconnects by itself and resumes from its last event id."""


@dataclass(eq=False)
class Client:
    """One open EventSource: its queue and what it asked to follow besides the shared updates."""

    all_workers: bool = False
    workers: frozenset[str] = frozenset()
    log_workers: frozenset[str] = frozenset()
    studies: frozenset[str] = frozenset()
    queue: asyncio.Queue[Frame] = field(default_factory=lambda: asyncio.Queue(CLIENT_QUEUE))
    dropped: int = 0

    def wants(self, frame: Frame) -> bool:
        if frame.topic is None:
            return True
        kind, key = frame.topic
        if kind == "worker":
            return self.all_workers or key in self.workers
        if kind == "timings":
            return key in self.workers
        return key in (self.log_workers if kind == "logs" else self.studies)

    def offer(self, frame: Frame) -> None:
        """Queue a frame; a client that cannot keep up loses its backlog and must resync."""
        if self.queue.full():
            self.dropped += 1
            while not self.queue.empty():
                self.queue.get_nowait()
            self.queue.put_nowait(RESYNC)
            return
        self.queue.put_nowait(frame)


def format_event_id(epoch: str, broker_id: int, log_id: int) -> str:
    return f"{epoch}:{broker_id}.{log_id}"


def parse_event_id(value: str | None) -> tuple[str, int, int] | None:
    """`<epoch>:<broker id>.<log row id>` as (epoch, broker id, log row id); None if malformed."""
    if not value:
        return None
    epoch, _, rest = value.strip().partition(":")
    broker_part, _, log_part = rest.partition(".")
    try:
        return epoch, int(broker_part), int(log_part or 0)
    except ValueError:
        return None
