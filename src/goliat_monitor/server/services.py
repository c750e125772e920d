"""Background loops of a server process: lease expiry, housekeeping, retention and the log indexer.

Every loop is safe to run in several replicas at once: each step is one write transaction whose
conditions make a second run a no-op.
"""

from __future__ import annotations

import asyncio
import logging
import random

import anyio
from sqlalchemy import Connection

from goliat_monitor.db import search_index
from goliat_monitor.db.outages import pg_connect_args
from goliat_monitor.db.queries import accounts, assignments
from goliat_monitor.db.queries.common import Changes
from goliat_monitor.domain.retention import Kind
from goliat_monitor.errors import DatabaseUnavailable
from goliat_monitor.pruning import PAUSE_S, Pruner
from goliat_monitor.server.context import ServerContext
from goliat_monitor.server.fanout import Fanout, conninfo

log = logging.getLogger(__name__)
_jitter = random.Random()
"""Jitter of our own: the global `random` state belongs to the program embedding the server."""

LEASE_CHECK_S = 5.0
SIGN_IN_HOUSEKEEPING_S = 600.0


def start(context: ServerContext) -> list[asyncio.Task[None]]:
    tasks = [
        asyncio.create_task(_every(LEASE_CHECK_S, lambda: expire_leases(context)), name="lease-expiry"),
        asyncio.create_task(
            _every(SIGN_IN_HOUSEKEEPING_S, lambda: forget_sign_ins(context)), name="sign-ins"
        ),
    ]
    if not context.db.is_sqlite or ":memory:" not in context.db.url:
        tasks.append(
            asyncio.create_task(
                _every(context.settings.prune_interval_s, lambda: prune_old_data(context)), name="retention"
            )
        )
    if context.db.is_sqlite and ":memory:" not in context.db.url:
        tasks.append(asyncio.create_task(index_log_text(context), name="log-indexer"))
    if not context.db.is_sqlite:
        tasks.append(asyncio.create_task(merge_log_index(context), name="log-index-merges"))
        url = context.db.engine.url
        fanout = Fanout(conninfo(url), context.events, connect_args=pg_connect_args(url))
        context.events.forwarders.append(fanout.forward)
        tasks.append(asyncio.create_task(fanout.run_sender(), name="fanout-sender"))
        tasks.append(asyncio.create_task(fanout.run_listener(), name="fanout-listener"))
    return tasks


async def expire_leases(context: ServerContext) -> int:
    """Hand lapsed assignments back to PENDING (or FAILED past max attempts)."""
    clock = context.clock()

    def step(conn: Connection) -> tuple[int, Changes]:
        changes = Changes()
        count = assignments.requeue_expired_leases(conn, clock, changes)
        return count, changes

    count, changes = await context.db.write(step)
    if count:
        log.info("requeued %d assignment(s) whose lease expired", count)
    context.publish(changes)
    return count


async def prune_old_data(context: ServerContext) -> dict[Kind, int]:
    """One retention pass (`pruning.py`): each round a short transaction on a worker thread with a
    connection of its own, `PAUSE_S` between rounds, so ingest's writes go on throughout. On
    PostgreSQL a pass another replica is running makes this one a no-op. Returns what went."""
    policy = context.settings.retention
    now = context.now()
    totals = dict.fromkeys(policy.cutoffs(now), 0)
    if not totals:
        return totals
    pruner = Pruner(context.db.engine, policy, now, blobs=context.blobs)
    try:
        # Inside the `try`: a shutdown that cancels this task just as the connection is opened
        # (the thread finishes, the await then raises) must still close it.
        await anyio.to_thread.run_sync(pruner.__enter__)
        while (step := await anyio.to_thread.run_sync(pruner.next_round)) is not None:
            totals[step.kind] += step.count
            for study_id in step.studies:
                context.events.publish("study", {"id": study_id, "deleted": True})
            await asyncio.sleep(PAUSE_S)
    finally:
        await anyio.to_thread.run_sync(pruner.__exit__, None, None, None)
    if any(totals.values()):
        log.info("retention: %s", ", ".join(f"{n} {kind.label}" for kind, n in totals.items() if n))
    return totals


async def forget_sign_ins(context: ServerContext) -> int:
    """Drop sessions that can sign nobody in any more and failed sign-ins the limit no longer counts."""
    now = context.now()
    window = context.settings.login_window_s

    def step(conn: Connection) -> int:
        return accounts.purge_sessions(conn, now) + accounts.purge_failures(conn, now - window)

    return await context.db.write(step)


async def index_log_text(context: ServerContext) -> None:
    """SQLite's log indexer (`db/search_index.py`): full batches back to back while lines wait, a
    short sleep once caught up. Each batch runs on a worker thread with a connection of its own, so
    the tokenizing happens beside the event loop, never on it."""
    engine = context.db.engine
    pause = search_index.INDEX_IDLE_S
    while True:
        await asyncio.sleep(pause)
        try:
            added = await anyio.to_thread.run_sync(search_index.index_step, engine)
        except asyncio.CancelledError:
            raise
        except Exception:  # a vanished file or a long-held lock must not end the loop
            log.warning("log indexing failed; retrying", exc_info=True)
            added = 0
        pause = search_index.INDEX_BUSY_S if added >= search_index.INDEX_BATCH else search_index.INDEX_IDLE_S


async def merge_log_index(context: ServerContext) -> None:
    """PostgreSQL's log index: every `MERGE_S`, merge the lines waiting in its pending list
    (`search_index.merge_pending`) on a worker thread with a connection of its own, beside the
    writers. While that fails (the database away, a role that does not own the index) inserts and
    autovacuum merge it as before; the failure is logged once, not every second."""
    failing = False
    while True:
        await asyncio.sleep(search_index.MERGE_S)
        try:
            await anyio.to_thread.run_sync(search_index.merge_pending, context.db.engine)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            if not failing:
                log.warning("cannot merge the log index's pending list, retrying every second: %s", exc)
            failing = True
            continue
        if failing:
            log.info("merging the log index's pending list again")
        failing = False


async def _every(interval: float, action: object) -> None:
    while True:
        await asyncio.sleep(interval * _jitter.uniform(0.8, 1.2))
        try:
            await action()  # type: ignore[operator]
        except asyncio.CancelledError:
            raise
        except DatabaseUnavailable:
            log.warning("background step skipped: the database is unavailable")
        except Exception:
            log.exception("background step failed; retrying next round")
