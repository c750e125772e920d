"""Background loops of a server process: lease expiry and housekeeping.

Every loop is safe to run in several replicas at once: each step is one write transaction whose
conditions make a second run a no-op.
"""

from __future__ import annotations

import asyncio
import logging
import random

from goliat_monitor.db import queries
from goliat_monitor.server.context import ServerContext
from goliat_monitor.server.fanout import Fanout, conninfo

log = logging.getLogger(__name__)

LEASE_CHECK_S = 5.0
MESSAGE_ID_TTL_S = 24 * 3600.0


def start(context: ServerContext) -> list[asyncio.Task[None]]:
    tasks = [asyncio.create_task(_every(LEASE_CHECK_S, lambda: expire_leases(context)), name="lease-expiry")]
    if not context.db.is_sqlite:
        fanout = Fanout(conninfo(context.db.engine.url), context.events)
        context.events.forwarders.append(fanout.forward)
        tasks.append(asyncio.create_task(fanout.run_sender(), name="fanout-sender"))
        tasks.append(asyncio.create_task(fanout.run_listener(), name="fanout-listener"))
    return tasks


async def expire_leases(context: ServerContext) -> int:
    """Hand lapsed assignments back to PENDING (or FAILED past max attempts); forget old message ids."""
    clock = context.clock()

    def step(conn: object) -> tuple[int, queries.Changes]:
        changes = queries.Changes()
        count = queries.requeue_expired_leases(conn, clock, changes)  # type: ignore[arg-type]
        queries.forget_old_message_ids(conn, clock.now - MESSAGE_ID_TTL_S)  # type: ignore[arg-type]
        return count, changes

    count, changes = await context.db.write(step)
    if count:
        log.info("requeued %d assignment(s) whose lease expired", count)
    context.publish(changes)
    return count


async def _every(interval: float, action: object) -> None:
    while True:
        await asyncio.sleep(interval * random.uniform(0.8, 1.2))
        try:
            await action()  # type: ignore[operator]
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("background step failed; retrying next round")
