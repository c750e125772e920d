"""What every request handler needs, built once per app and reached through `request.app.state`."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from anyio import to_thread
from fastapi import Request

from goliat_monitor.blobs import BlobStore, Readable
from goliat_monitor.db.engine import Database
from goliat_monitor.db.migrate import schema_revision
from goliat_monitor.db.queries.common import Changes, Clock
from goliat_monitor.domain.cost import Pricing
from goliat_monitor.events import EventBroker
from goliat_monitor.server.counters import IngestCounters, RequestTimes
from goliat_monitor.server.token_cache import TokenCache
from goliat_monitor.settings import ServerSettings


class SchemaProbe:
    """The schema revision the database holds, as read at most `max_age_s` ago.

    `/api/health` answers from it: a load balancer probing every replica many times a second
    then costs one database read a second, not one per probe, and a probe is as cheap as a GOLIAT
    message. One read is in flight at a time; a failed read is never kept, so the next probe
    asks the database again.
    """

    def __init__(self, db: Database, max_age_s: float = 1.0) -> None:
        self._db = db
        self.max_age_s = max_age_s
        self._read_at = -float("inf")
        self._revision: str | None = None
        self._in_flight: asyncio.Future[str | None] | None = None

    async def revision(self) -> str | None:
        if time.monotonic() - self._read_at < self.max_age_s:
            return self._revision
        if self._in_flight is None or self._in_flight.get_loop() is not asyncio.get_running_loop():
            self._in_flight = asyncio.ensure_future(self._read())
        return await asyncio.shield(self._in_flight)

    async def _read(self) -> str | None:
        try:
            revision = await self._db.read(schema_revision)
        finally:
            self._in_flight = None
        self._revision, self._read_at = revision, time.monotonic()
        return revision


@dataclass
class ServerContext:
    settings: ServerSettings
    db: Database
    blobs: BlobStore
    events: EventBroker = field(default_factory=EventBroker)
    now: Callable[[], float] = time.time
    token_cache: TokenCache = field(default_factory=TokenCache)
    ingest_counts: IngestCounters = field(default_factory=IngestCounters)
    """Counted after each committed GOLIAT write, for `/metrics` (per process)."""
    request_times: RequestTimes = field(default_factory=RequestTimes)
    schema: SchemaProbe = field(init=False)

    def __post_init__(self) -> None:
        self.schema = SchemaProbe(self.db)

    @property
    def pricing(self) -> Pricing:
        return Pricing(self.settings.price_per_hour, self.settings.currency)

    def clock(self) -> Clock:
        s = self.settings
        return Clock(
            now=self.now(),
            offline_after_s=s.offline_after_s,
            finish_grace_s=s.finish_grace_s,
            sample_interval_s=s.sample_interval_s,
            lease_timeout_s=s.lease_timeout_s,
        )

    async def open_blob(self, key: str) -> Readable | None:
        """A stored blob opened in a worker thread (an object store answers over the network), or None."""
        try:
            return await to_thread.run_sync(self.blobs.open, key)
        except FileNotFoundError:
            return None

    def publish(self, changes: Changes) -> None:
        """Tell live pages what a committed write touched."""
        for worker_id in changes.workers:
            self.events.publish("worker", {"id": worker_id})
        for study_id in changes.studies:
            self.events.publish("study", {"id": study_id})
        for worker_id in changes.log_workers:
            self.events.publish("logs", {"id": worker_id})
        for worker_id in changes.timing_workers:
            self.events.publish("timings", {"id": worker_id})


async def get_context(request: Request) -> ServerContext:
    """Async on purpose: a plain function dependency costs FastAPI a thread-pool hop per request."""
    context: ServerContext = request.app.state.context
    return context
