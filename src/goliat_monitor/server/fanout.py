"""Live events across server replicas, through PostgreSQL's LISTEN/NOTIFY.

Each replica publishes to its own in-process broker. With PostgreSQL, what it publishes is also
sent (batched, at most every `FLUSH_S`) on one notification channel, and every replica listens and
republishes what other replicas sent, so a browser connected to any replica sees every change.
SQLite servers are single-process and skip this.
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from typing import Any

import psycopg
from sqlalchemy.engine import URL

from goliat_monitor.events import EventBroker

log = logging.getLogger(__name__)

CHANNEL = "goliat_monitor_events"
FLUSH_S = 0.05
MAX_PAYLOAD = 7000  # PostgreSQL's limit is 8000 bytes per notification


def conninfo(sqlalchemy_url: URL) -> str:
    """A libpq URL from the SQLAlchemy one (drop the `+psycopg` driver suffix)."""
    return sqlalchemy_url.set(drivername="postgresql").render_as_string(hide_password=False)


class Fanout:
    def __init__(self, url: str, broker: EventBroker) -> None:
        self.url = url
        self.broker = broker
        self.origin = uuid.uuid4().hex
        self._pending: list[tuple[str, dict[str, Any]]] = []
        self._seen: set[str] = set()

    def forward(self, kind: str, data: dict[str, Any]) -> None:
        """Queue a locally published event for the other replicas (deduplicated per flush)."""
        key = f"{kind}:{json.dumps(data, sort_keys=True)}"
        if key not in self._seen:
            self._seen.add(key)
            self._pending.append((kind, data))

    async def run_sender(self) -> None:
        conn: psycopg.AsyncConnection[Any] | None = None
        try:
            while True:
                await asyncio.sleep(FLUSH_S)
                if not self._pending:
                    continue
                events, self._pending, self._seen = self._pending, [], set()
                try:
                    if conn is None or conn.closed:
                        conn = await psycopg.AsyncConnection.connect(self.url, autocommit=True)
                    for payload in _payloads(self.origin, events):
                        await conn.execute("SELECT pg_notify(%s, %s)", (CHANNEL, payload))
                except psycopg.Error:
                    log.warning("could not notify other replicas; retrying", exc_info=True)
                    if conn is not None:
                        await conn.close()
                    conn = None
        finally:
            if conn is not None:
                await conn.close()

    async def run_listener(self) -> None:
        while True:
            try:
                async with await psycopg.AsyncConnection.connect(self.url, autocommit=True) as conn:
                    await conn.execute(f"LISTEN {CHANNEL}")
                    async for note in conn.notifies():
                        self._republish(note.payload)
            except psycopg.Error:
                log.warning("lost the notification connection; reconnecting", exc_info=True)
                await asyncio.sleep(1.0)

    def _republish(self, payload: str) -> None:
        try:
            message = json.loads(payload)
        except ValueError:
            return
        if message.get("origin") == self.origin:
            return
        for kind, data in message.get("events", []):
            self.broker.publish(kind, data, relayed=True)


def _payloads(origin: str, events: list[tuple[str, dict[str, Any]]]) -> list[str]:
    """Pack events into as few notifications as fit PostgreSQL's size limit."""
    payloads: list[str] = []
    chunk: list[tuple[str, dict[str, Any]]] = []
    for event in events:
        candidate = json.dumps({"origin": origin, "events": [*chunk, event]})
        if len(candidate) > MAX_PAYLOAD and chunk:
            payloads.append(json.dumps({"origin": origin, "events": chunk}))
            chunk = [event]
        else:
            chunk.append(event)
    if chunk:
        payloads.append(json.dumps({"origin": origin, "events": chunk}))
    return payloads
