"""The notification loops of a server process: delivery, and detection of time-derived events.

- **Delivery** (every `POLL_S`): fan new outbox rows out to the targets that want them, claim the
  due deliveries under a lease, send each through apprise on a thread of its own
  (`notify_send`), then record what happened: delivered, retried later with backoff, or failed
  for good after `notify_max_attempts`. Replicas claim different rows, so each notification
  reaches each target once; a replica that dies mid-send leaves its lease to lapse
  (`LEASE_S`), and another one sends again (at least once, then).
- **Detection** (every `DETECT_S`): workers offline while running, stalled or idle too long, low
  disk space and the daily digest. Each replica runs it; the outbox's unique key (kind,
  subject, episode) lets only the first record a notification.

Events caused by a write (a study completed, an assignment failed) are not detected here: that
write records them itself (`db/queries/studies.note_assignment_end`).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import shutil
import socket
import uuid
from dataclasses import dataclass
from functools import partial

from anyio import to_thread
from sqlalchemy import Connection

from goliat_monitor.db.queries import notifications as queries
from goliat_monitor.db.queries import studies as study_queries
from goliat_monitor.db.queries.common import is_online
from goliat_monitor.domain import notifications as notices
from goliat_monitor.domain.notifications import Kind, Notice, WorkerFacts
from goliat_monitor.errors import DatabaseUnavailable
from goliat_monitor.server.context import ServerContext

log = logging.getLogger(__name__)

POLL_S = 1.0
"""How often a replica looks for notifications to fan out and deliveries due (one indexed read)."""
DETECT_S = 10.0
"""How often a replica looks for offline, stalled and idle workers, low disk space and the digest."""
SEND_TIMEOUT_S = 30.0
"""Longest one send may take before it counts as failed."""
LEASE_S = 120.0
"""How long a claimed delivery is its replica's: longer than any send, so it is never sent twice
unless that replica died mid-send."""
CLAIM_BATCH = 16
OFFLINE_WINDOW_S = 86400.0
"""A worker silent for longer than this is old news: a server started after a long downtime does
not notify about machines that left days ago."""


def env_key(url: str) -> str:
    return "env:" + hashlib.sha256(url.encode()).hexdigest()[:16]


@dataclass
class Notifier:
    context: ServerContext
    owner: str = ""
    _env: list[queries.Target] | None = None

    def __post_init__(self) -> None:
        self.owner = self.owner or str(uuid.uuid4())

    def env_targets(self) -> list[queries.Target]:
        """The settings' URLs (every event). Apprise masks them, so it is imported only when there are any."""
        if self._env is None:
            targets: list[queries.Target] = []
            urls = self.context.settings.notify_url_list
            if urls:
                from goliat_monitor.server.notify_send import masked

                for url in urls:
                    label = masked(url)
                    if label is None:
                        label = notices.mask_url(url)
                        log.warning("GOLIAT_MONITOR_NOTIFY_URLS: apprise cannot read %s", label)
                    targets.append(queries.Target(env_key(url), label, (), url))
            self._env = targets
        return self._env

    # -- delivery --------------------------------------------------------------------------------

    async def deliver_once(self) -> int:
        """Fan out, claim, send, settle; returns how many deliveries were attempted."""
        db = self.context.db
        now = self.context.now()
        if not await db.read(lambda conn: queries.has_work(conn, now)):
            return 0
        # The first call loads apprise to mask the settings' URLs: on a thread, not on the loop.
        env = self._env if self._env is not None else await to_thread.run_sync(self.env_targets)
        await db.write(lambda conn: queries.fan_out(conn, env, now))
        jobs = await db.write(
            lambda conn: queries.claim(
                conn, owner=self.owner, now=now, lease_s=LEASE_S, env_targets=env, limit=CLAIM_BATCH
            )
        )
        if not jobs:
            return 0
        outcomes = await asyncio.gather(*(self._send(job) for job in jobs))
        s = self.context.settings
        done = self.context.now()
        await db.write(
            lambda conn: queries.settle(
                conn,
                outcomes,
                owner=self.owner,
                now=done,
                max_attempts=s.notify_max_attempts,
                retry_delay=partial(notices.retry_delay, first_s=s.notify_retry_s),
            )
        )
        for job, outcome in zip(jobs, outcomes, strict=True):
            if outcome.error is not None:
                log.warning(
                    "notification %s to %s failed (try %d): %s",
                    job.kind,
                    job.target,
                    job.attempts,
                    outcome.error,
                )
        return len(jobs)

    async def _send(self, job: queries.Job) -> queries.Outcome:
        if job.url is None:
            return queries.Outcome(job.delivery_id, "the target was removed", final=True)
        from goliat_monitor.server.notify_send import deliver

        body = notices.message_body(job.body, job.path, self.context.settings.public_url)
        error = await deliver(job.url, job.title, body, SEND_TIMEOUT_S)
        return queries.Outcome(job.delivery_id, error)

    async def send_trial(self, target: queries.Target, who: str) -> str | None:
        """The admin page's "Send a test": sent at once, then kept in the history; the error or None."""
        from goliat_monitor.server.notify_send import deliver

        notice = notices.trial_notice(target.key, who, self.context.now())
        body = notices.message_body(notice.body, notice.path, self.context.settings.public_url)
        error = await deliver(target.url, notice.title, body, SEND_TIMEOUT_S)
        now = self.context.now()
        await self.context.db.write(
            lambda conn: queries.record_trial(conn, notice, target, error=error, now=now)
        )
        return error

    # -- detection -------------------------------------------------------------------------------

    async def detect_once(self) -> int:
        """Record the time-derived notifications due now; returns how many were new."""
        found: list[Notice] = []
        found += await self._workers()
        found += await self._disk()
        found += await self._digest()
        if not found:
            return 0
        now = self.context.now()
        db = self.context.db
        known = await db.read(lambda conn: queries.known_keys(conn, [n.key for n in found]))
        fresh = [n for n in found if n.key[:255] not in known]
        if not fresh:  # the usual case: a stalled worker stays stalled, its notice is out already
            return 0
        return await db.write(lambda conn: queries.record_new(conn, fresh, now))

    async def _workers(self) -> list[Notice]:
        s = self.context.settings
        clock = self.context.clock()
        rows = await self.context.db.read(queries.live_workers)
        facts = [
            WorkerFacts(
                id=row["id"],
                name=row["machine_label"] or row["hostname"] or row["machine_id"],
                status=row["status"],
                online=is_online(row, clock),
                last_seen=row["last_seen"],
                last_progress_at=row["last_progress_at"],
                created_at=row["created_at"],
                finished_at=row["finished_at"],
            )
            for row in rows
            if clock.now - row["last_seen"] < OFFLINE_WINDOW_S
        ]
        return notices.worker_notices(
            facts,
            now=clock.now,
            stalled_after_s=s.stalled_after_s,
            idle_after_s=s.notify_idle_after_min * 60.0,
        )

    async def _disk(self) -> list[Notice]:
        s = self.context.settings
        if s.disk_free_alert_mb <= 0:
            return []
        folder = s.data_dir.resolve()
        usage = await to_thread.run_sync(shutil.disk_usage, folder)
        subject = f"disk:{socket.gethostname()}:{folder}"[:255]
        kinds = (Kind.DISK_LOW, Kind.DISK_OK)
        latest = await self.context.db.read(lambda conn: queries.latest_of(conn, subject, kinds))
        notice = notices.disk_notice(
            subject=subject,
            where=f"{folder} on {socket.gethostname()}",
            free_bytes=usage.free,
            total_bytes=usage.total,
            threshold_mb=s.disk_free_alert_mb,
            previous=latest[0] if latest else None,
            previous_id=latest[1] if latest else None,
        )
        return [notice] if notice is not None else []

    async def _digest(self) -> list[Notice]:
        now = self.context.now()
        day = notices.digest_day(now, self.context.settings.notify_digest_hour)
        if day is None:
            return []
        key = f"{Kind.DIGEST}:{day}"
        if await self.context.db.read(lambda conn: bool(queries.known_keys(conn, [key]))):
            return []
        clock = self.context.clock()

        def read(conn: Connection) -> notices.DigestFacts:
            counts: dict[str, int] = {}
            for row in queries.live_workers(conn):
                if now - row["last_seen"] >= OFFLINE_WINDOW_S:
                    continue
                status = row["status"] if is_online(row, clock) else "OFFLINE"
                counts[status] = counts.get(status, 0) + 1
            active = [
                (listing.row["id"], listing.row["name"], listing.summary.master_progress)
                for listing in study_queries.list_super_studies(conn)
                if listing.summary.status in ("PENDING", "RUNNING")
            ]
            ended = queries.assignment_endings_since(conn, now - 86400.0)
            return notices.DigestFacts(counts, active, ended.get("COMPLETED", 0), ended.get("FAILED", 0))

        return [notices.digest(day, await self.context.db.read(read))]


async def _loop(interval: float, step: object, name: str) -> None:
    """Run `step` every `interval` s until cancelled; an outage is logged once, not every round."""
    down = False
    while True:
        await asyncio.sleep(interval)
        try:
            await step()  # type: ignore[operator]
            if down:
                log.info("%s: the database is back", name)
            down = False
        except asyncio.CancelledError:
            raise
        except DatabaseUnavailable:
            if not down:
                log.warning("%s paused: the database is unavailable", name)
            down = True
        except Exception:
            log.exception("%s step failed; retrying next round", name)


def start(notifier: Notifier) -> list[asyncio.Task[None]]:
    """The two loops, started and cancelled by the app's lifespan with the other background loops."""
    return [
        asyncio.create_task(
            _loop(POLL_S, notifier.deliver_once, "notification delivery"), name="notify-deliver"
        ),
        asyncio.create_task(
            _loop(DETECT_S, notifier.detect_once, "notification detection"), name="notify-detect"
        ),
    ]
