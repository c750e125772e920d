"""What every request handler needs, built once per app and reached through `request.app.state`."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from anyio import to_thread
from fastapi import Request

from goliat_monitor.blobs import BlobStore, Readable
from goliat_monitor.db.engine import Database
from goliat_monitor.db.queries.common import Changes, Clock
from goliat_monitor.events import EventBroker
from goliat_monitor.server.token_cache import TokenCache
from goliat_monitor.settings import ServerSettings


@dataclass
class ServerContext:
    settings: ServerSettings
    db: Database
    blobs: BlobStore
    events: EventBroker = field(default_factory=EventBroker)
    now: Callable[[], float] = time.time
    token_cache: TokenCache = field(default_factory=TokenCache)

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
