"""A minimal Server-Sent Events reader over httpx, to test the stream without a browser."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx


@dataclass
class SseEvent:
    event: str = "message"
    data: str = ""
    id: str | None = None
    comments: list[str] = field(default_factory=list)

    @property
    def json(self) -> Any:
        return json.loads(self.data)


class SseReader:
    def __init__(
        self, url: str, params: dict[str, Any] | None = None, last_event_id: str | None = None
    ) -> None:
        headers = {"Accept": "text/event-stream"}
        if last_event_id is not None:
            headers["Last-Event-ID"] = last_event_id
        self.client = httpx.Client(timeout=httpx.Timeout(10.0, read=3.0))
        self._context = self.client.stream("GET", url + "/api/events", params=params or {}, headers=headers)
        self.response = self._context.__enter__()
        assert self.response.status_code == 200, self.response.read()
        self._lines: Iterator[str] = self.response.iter_lines()
        self.comments: list[str] = []

    def next(self) -> SseEvent:
        event = SseEvent()
        seen_field = False
        for line in self._lines:
            if line == "":
                if seen_field:
                    return event
                continue
            if line.startswith(":"):
                self.comments.append(line)
                event.comments.append(line)
                continue
            name, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            seen_field = True
            if name == "event":
                event.event = value
            elif name == "data":
                event.data = f"{event.data}\n{value}" if event.data else value
            elif name == "id":
                event.id = value
        raise EOFError("stream ended")

    def next_comment(self, timeout: float) -> str:
        """The next comment line (a heartbeat), skipping events."""
        deadline = time.monotonic() + timeout
        for line in self._lines:
            if line.startswith(":"):
                return line
            if time.monotonic() > deadline:
                break
        raise TimeoutError("no comment line")

    def until(self, predicate: Callable[[SseEvent], bool], timeout: float = 5.0) -> list[SseEvent]:
        """Events read up to and including the first one matching `predicate`."""
        deadline = time.monotonic() + timeout
        seen = []
        while time.monotonic() < deadline:
            event = self.next()
            seen.append(event)
            if predicate(event):
                return seen
        raise TimeoutError(f"no matching event within {timeout}s; saw {[e.event for e in seen]}")

    def collect(self, seconds: float) -> list[SseEvent]:
        """Every event that arrives within `seconds`."""
        deadline = time.monotonic() + seconds
        seen = []
        while time.monotonic() < deadline:
            try:
                seen.append(self.next())
            except httpx.ReadTimeout:
                break
        return seen

    def close(self) -> None:
        self._context.__exit__(None, None, None)
        self.client.close()

    def __enter__(self) -> SseReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
