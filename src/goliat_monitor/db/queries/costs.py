"""What GPU-hours and cost are computed from: assignment history rows, never log lines.

A study's figures come from its assignments and their events (a few rows per attempt, read with
the study anyway); a worker's from the events of its own session (`ix_assignment_events_worker`).
The rules themselves are pure (`domain/cost.py`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from sqlalchemy import Connection, select

from goliat_monitor.db.queries.common import Clock, is_online
from goliat_monitor.db.tables import assignment_events, workers
from goliat_monitor.domain import cost
from goliat_monitor.domain.models import AssignmentStatus


def transition(row: Mapping[Any, Any]) -> cost.Transition:
    """An `assignment_events` row as the cost rules read it."""
    return cost.Transition(
        row["assignment_id"], row["ts"], row["from_status"], row["to_status"], row["worker_id"]
    )


def study_cost(
    conn: Connection,
    assignment_rows: Sequence[Mapping[Any, Any]],
    event_rows: Iterable[Mapping[Any, Any]],
    *,
    pricing: cost.Pricing,
    now: float,
) -> cost.StudyCost:
    """A study's spent and projected cost from the assignments and events already read with it."""
    running = {
        row["id"]: row["worker_id"] for row in assignment_rows if row["status"] == AssignmentStatus.RUNNING
    }
    history = cost.attempts((transition(row) for row in event_rows), running=running, now=now)
    work = [
        cost.Work(row["id"], row["status"], row["size"], row["progress"], row["eta_at"], row["worker_id"])
        for row in assignment_rows
    ]
    ids = {a.worker_id for a in history} | {w.worker_id for w in work}
    return cost.study_cost(
        work, history, prices=worker_prices(conn, ids), default_price=pricing.default_price, now=now
    )


def worker_prices(conn: Connection, worker_ids: Iterable[str | None]) -> dict[str, float | None]:
    ids = sorted({w for w in worker_ids if w is not None})
    if not ids:
        return {}
    rows = conn.execute(select(workers.c.id, workers.c.price_per_hour).where(workers.c.id.in_(ids)))
    return {row.id: row.price_per_hour for row in rows}


def online_window(row: Mapping[Any, Any], clock: Clock) -> tuple[float, float]:
    """A session's online time: its first message to its last, or to now while it is online."""
    end = clock.now if not row["is_stale"] and is_online(row, clock) else row["last_seen"]
    return row["created_at"], max(row["created_at"], end)


def worker_costs(
    conn: Connection, rows: Sequence[Mapping[Any, Any]], clock: Clock, pricing: cost.Pricing
) -> dict[str, cost.WorkerCost]:
    """Busy and idle hours and cost of these worker sessions, from their own assignment events."""
    if not rows:
        return {}
    by_worker: dict[str, list[cost.Transition]] = {row["id"]: [] for row in rows}
    events = conn.execute(
        select(
            assignment_events.c.assignment_id,
            assignment_events.c.ts,
            assignment_events.c.from_status,
            assignment_events.c.to_status,
            assignment_events.c.worker_id,
        )
        .where(assignment_events.c.worker_id.in_(list(by_worker)))
        .order_by(assignment_events.c.id)
    ).mappings()
    for event in events:
        by_worker[event["worker_id"]].append(transition(event))
    out = {}
    for row in rows:
        window = online_window(row, clock)
        holding = [row["current_assignment_id"]] if row["current_assignment_id"] else []
        busy = cost.busy_intervals(by_worker[row["id"]], window=window, holding=holding)
        price = pricing.default_price if row["price_per_hour"] is None else row["price_per_hour"]
        out[row["id"]] = cost.worker_cost(online=window, busy=busy, price=price)
    return out
