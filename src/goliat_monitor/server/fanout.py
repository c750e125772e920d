"""Live events across server replicas, through PostgreSQL's LISTEN/NOTIFY.

Each replica publishes to its own in-process broker. With PostgreSQL, what it publishes is also
sent on one notification channel, and every replica listens and republishes what other replicas
sent, so a browser connected to any replica sees every change. The sender wakes when an event is
published and sends at once, batching only what arrives within `FLUSH_S` of its previous send:
an idle relay adds no delay, a busy one sends one notification per `FLUSH_S`.
SQLite servers are single-process and skip this.

Both connections outlive a database restart or a network cut: each reconnects by itself with a
short backoff (`RECONNECT_BASE_S` doubling to `RECONNECT_CAP_S`), so the relay is back within
a couple of seconds of the database. Events published while a replica cannot notify are dropped;
the pages' state is always in the database.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import uuid
from collections.abc import Hashable
from typing import Any

import psycopg
from sqlalchemy.engine import URL

from goliat_monitor.events import EventBroker

log = logging.getLogger(__name__)
_jitter = random.Random()
"""Jitter of our own: the global `random` state belongs to the program embedding the server."""

CHANNEL = "goliat_monitor_events"
FLUSH_S = 0.025
"""Shortest time between two sends: what a live page may wait on the relay, at most."""
MAX_PAYLOAD = 7000  # PostgreSQL's limit is 8000 bytes per notification
RECONNECT_BASE_S = 0.2
RECONNECT_CAP_S = 2.0


def conninfo(sqlalchemy_url: URL) -> str:
    """A libpq URL from the SQLAlchemy one (drop the `+psycopg` driver suffix)."""
    return sqlalchemy_url.set(drivername="postgresql").render_as_string(hide_password=False)


def reconnect_delay(failures: int) -> float:
    """Backoff after `failures` failed attempts in a row, with jitter so replicas do not stampede."""
    delay = min(RECONNECT_CAP_S, RECONNECT_BASE_S * 2.0 ** min(max(failures, 1) - 1, 10))
    return delay / 2 + _jitter.uniform(0, delay / 2)


class Fanout:
    def __init__(self, url: str, broker: EventBroker, *, connect_args: dict[str, Any] | None = None) -> None:
        self.url = url
        self.broker = broker
        self.connect_args = connect_args or {}
        self.origin = uuid.uuid4().hex
        self._pending: list[tuple[str, dict[str, Any]]] = []
        self._seen: set[Hashable] = set()
        self._wake = asyncio.Event()

    def forward(self, kind: str, data: dict[str, Any]) -> None:
        """Queue a locally published event for the other replicas (deduplicated per flush)."""
        key = _dedup_key(kind, data)
        if key not in self._seen:
            self._seen.add(key)
            self._pending.append((kind, data))
            self._wake.set()

    async def _connect(self) -> psycopg.AsyncConnection[Any]:
        return await psycopg.AsyncConnection.connect(self.url, autocommit=True, **self.connect_args)

    async def run_sender(self) -> None:
        """Send what was published locally as it comes, at most every `FLUSH_S`; after a failure,
        reconnect with backoff."""
        conn: psycopg.AsyncConnection[Any] | None = None
        failures = 0
        loop = asyncio.get_running_loop()
        last_send = -FLUSH_S
        try:
            while True:
                if failures:
                    await asyncio.sleep(reconnect_delay(failures))
                await self._wake.wait()
                gap = last_send + FLUSH_S - loop.time()
                if gap > 0:
                    await asyncio.sleep(gap)  # let a burst gather into one notification
                self._wake.clear()
                last_send = loop.time()
                if not self._pending:
                    continue
                events, self._pending, self._seen = self._pending, [], set()
                try:
                    if conn is None or conn.closed or conn.broken:
                        conn = await self._connect()
                    for payload in _payloads(self.origin, events):
                        await conn.execute("SELECT pg_notify(%s, %s)", (CHANNEL, payload))
                except (psycopg.Error, OSError) as exc:
                    failures += 1
                    if failures == 1:
                        log.warning("could not notify other replicas (%s); reconnecting", exc)
                    await _close_quietly(conn)
                    conn = None
                    continue
                if failures:
                    log.info("notifying other replicas again")
                failures = 0
        finally:
            await _close_quietly(conn)

    async def run_listener(self) -> None:
        """Republish what other replicas send; a lost connection is replaced, with backoff."""
        failures = 0
        while True:
            try:
                async with await self._connect() as conn:
                    await conn.execute(f"LISTEN {CHANNEL}")
                    if failures:
                        log.info("listening to other replicas again")
                    failures = 0
                    async for note in conn.notifies():
                        self._republish(note.payload)
            except (psycopg.Error, OSError) as exc:
                if failures == 0:
                    log.warning("lost the notification connection (%s); reconnecting", exc)
            failures += 1  # also when the stream of notifications just ended: never spin
            await asyncio.sleep(reconnect_delay(failures))

    def _republish(self, payload: str) -> None:
        try:
            message = json.loads(payload)
        except ValueError:
            return
        if message.get("origin") == self.origin:
            return
        for kind, data in message.get("events", []):
            self.broker.publish(kind, data, relayed=True)


def _dedup_key(kind: str, data: dict[str, Any]) -> Hashable:
    """What makes two events the same: almost all are `{"id": ...}`, which need no encoding."""
    if len(data) == 1 and isinstance(data.get("id"), str):
        return kind, data["id"]
    return kind, json.dumps(data, sort_keys=True)


def _payloads(origin: str, events: list[tuple[str, dict[str, Any]]]) -> list[str]:
    """Pack events into as few notifications as fit PostgreSQL's size limit.

    Each event is encoded once: re-encoding the growing chunk for every event made a busy
    relay's flush quadratic (a tenth of a busy server's time went here).
    """
    head = '{"origin": ' + json.dumps(origin) + ', "events": ['
    payloads: list[str] = []
    chunk: list[str] = []
    size = len(head) + 2
    for event in events:
        encoded = json.dumps(event)
        if chunk and size + len(encoded) + 2 > MAX_PAYLOAD:
            payloads.append(head + ", ".join(chunk) + "]}")
            chunk, size = [], len(head) + 2
        chunk.append(encoded)
        size += len(encoded) + 2
    if chunk:
        payloads.append(head + ", ".join(chunk) + "]}")
    return payloads


async def _close_quietly(conn: psycopg.AsyncConnection[Any] | None) -> None:
    if conn is not None:
        with contextlib.suppress(psycopg.Error, OSError):
            await conn.close()
