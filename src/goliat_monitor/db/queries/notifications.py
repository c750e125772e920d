"""Notifications: the outbox, its deliveries, the dashboard's targets and what the detection reads.

The outbox row of an event is inserted by the transaction that made the event happen (`record`),
so a notification exists exactly when its event was committed. After commit a replica's delivery
loop fans it out into one delivery per target that wants it (`fan_out`), claims due deliveries
under a lease (`claim`: `FOR UPDATE SKIP LOCKED` on PostgreSQL; SQLite has one writer) and
settles each after its send (`settle`). Unique keys make every step safe to run on several
replicas at once: one notification per `dedup_key`, one delivery per notification and target.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, RowMapping, delete, func, insert, or_, select, text, update
from sqlalchemy.dialects import postgresql, sqlite

from goliat_monitor.db.queries.common import new_id
from goliat_monitor.db.tables import (
    assignment_events,
    notification_deliveries,
    notifications,
    notify_targets,
    workers,
)
from goliat_monitor.domain.notifications import Notice, wants

PENDING, DELIVERED, FAILED = "PENDING", "DELIVERED", "FAILED"


def _insert(conn: Connection, table: Any) -> Any:
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    return dialect.insert(table)


def _values(notice: Notice, now: float, *, fanned_out: bool = False) -> dict[str, Any]:
    return {
        "kind": str(notice.kind),
        "dedup_key": notice.key[:255],
        "subject": notice.subject[:255],
        "title": notice.title,
        "body": notice.body,
        "path": notice.path,
        "created_at": now,
        "fanned_out": fanned_out,
    }


def record(conn: Connection, notice: Notice, now: float) -> bool:
    """Put a notification in the outbox, in the caller's transaction; False when its key exists."""
    statement = _insert(conn, notifications).values(**_values(notice, now))
    result = conn.execute(statement.on_conflict_do_nothing(index_elements=["dedup_key"]))
    return bool(result.rowcount)


def known_keys(conn: Connection, keys: Iterable[str]) -> set[str]:
    wanted = list({key[:255] for key in keys})
    if not wanted:
        return set()
    found = conn.execute(select(notifications.c.dedup_key).where(notifications.c.dedup_key.in_(wanted)))
    return set(found.scalars())


def record_new(conn: Connection, notices: Sequence[Notice], now: float) -> int:
    """The detection loop's write: the notices whose key no replica recorded yet."""
    known = known_keys(conn, (n.key for n in notices))
    return sum(record(conn, n, now) for n in notices if n.key[:255] not in known)


# -- targets -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    """Somewhere notifications go: `env:<hash>` from the settings or `db:<id>` from the dashboard."""

    key: str
    label: str
    events: tuple[str, ...]
    url: str


def db_key(target_id: str) -> str:
    return f"db:{target_id}"


def add_target(
    conn: Connection, *, name: str, url: str, masked_url: str, events: Sequence[str], now: float, by: str
) -> str:
    target_id = new_id()
    conn.execute(
        insert(notify_targets).values(
            id=target_id,
            name=name,
            url=url,
            masked_url=masked_url,
            events=list(events),
            created_at=now,
            created_by=by[:128],
        )
    )
    return target_id


def list_targets(conn: Connection) -> list[RowMapping]:
    """The dashboard's targets, oldest first. The rows hold the secret URL: never show `url`."""
    return list(conn.execute(select(notify_targets).order_by(notify_targets.c.created_at)).mappings())


def delete_target(conn: Connection, target_id: str) -> bool:
    return bool(conn.execute(delete(notify_targets).where(notify_targets.c.id == target_id)).rowcount)


def db_targets(conn: Connection) -> list[Target]:
    return [
        Target(db_key(row["id"]), row["name"] or row["masked_url"], tuple(row["events"] or ()), row["url"])
        for row in list_targets(conn)
    ]


# -- delivery ------------------------------------------------------------------------------------


def _waiting(conn: Connection) -> Any:
    """Matches `ix_notifications_waiting`'s condition word for word (a partial index needs that)."""
    return text("fanned_out = false" if conn.dialect.name == "postgresql" else "fanned_out = 0")


_DUE = text("status = 'PENDING'")  # `ix_notification_deliveries_due`'s condition


def has_work(conn: Connection, now: float) -> bool:
    """Is there a notification to fan out or a delivery due? A cheap read, every second."""
    unfanned = conn.execute(select(notifications.c.id).where(_waiting(conn)).limit(1)).first()
    if unfanned is not None:
        return True
    due = conn.execute(
        select(notification_deliveries.c.id)
        .where(_DUE, notification_deliveries.c.next_attempt_at <= now)
        .limit(1)
    ).first()
    return due is not None


FAN_OUT_BATCH = 100


def fan_out(conn: Connection, env_targets: Sequence[Target], now: float) -> int:
    """One delivery per waiting notification and target that wants it; returns notifications done."""
    waiting = conn.execute(
        select(notifications.c.id, notifications.c.kind)
        .where(_waiting(conn))
        .order_by(notifications.c.id)
        .limit(FAN_OUT_BATCH)
        .with_for_update(skip_locked=True)
    ).all()
    if not waiting:
        return 0
    targets = [*env_targets, *db_targets(conn)]
    rows = [
        {
            "notification_id": row.id,
            "target": target.key,
            "target_label": target.label[:255],
            "status": PENDING,
            "attempts": 0,
            "next_attempt_at": now,
            "updated_at": now,
        }
        for row in waiting
        for target in targets
        if wants(target.events, row.kind)
    ]
    if rows:
        statement = _insert(conn, notification_deliveries).on_conflict_do_nothing(
            index_elements=["notification_id", "target"]
        )
        conn.execute(statement, rows)
    conn.execute(
        update(notifications)
        .where(notifications.c.id.in_([row.id for row in waiting]))
        .values(fanned_out=True)
    )
    return len(waiting)


@dataclass(frozen=True)
class Job:
    """A claimed delivery: what to send, and where (`url` None: the target is gone)."""

    delivery_id: int
    target: str
    attempts: int
    kind: str
    title: str
    body: str
    path: str | None
    url: str | None


def claim(
    conn: Connection, *, owner: str, now: float, lease_s: float, env_targets: Sequence[Target], limit: int
) -> list[Job]:
    """Take up to `limit` due deliveries for `owner` until `now + lease_s`; none another replica holds."""
    d = notification_deliveries
    ids = list(
        conn.execute(
            select(d.c.id)
            .where(
                _DUE,
                d.c.next_attempt_at <= now,
                or_(d.c.lease_until.is_(None), d.c.lease_until < now),
            )
            .order_by(d.c.next_attempt_at, d.c.id)
            .limit(limit)
            .with_for_update(skip_locked=True)
        ).scalars()
    )
    if not ids:
        return []
    conn.execute(
        update(d)
        .where(d.c.id.in_(ids))
        .values(lease_owner=owner, lease_until=now + lease_s, attempts=d.c.attempts + 1, updated_at=now)
    )
    rows = conn.execute(
        select(
            d.c.id,
            d.c.target,
            d.c.attempts,
            notifications.c.kind,
            notifications.c.title,
            notifications.c.body,
            notifications.c.path,
        )
        .join(notifications, notifications.c.id == d.c.notification_id)
        .where(d.c.id.in_(ids))
        .order_by(d.c.id)
    ).all()
    urls = {target.key: target.url for target in env_targets}
    wanted_db = [row.target[3:] for row in rows if row.target.startswith("db:")]
    if wanted_db:
        found = conn.execute(
            select(notify_targets.c.id, notify_targets.c.url).where(notify_targets.c.id.in_(wanted_db))
        ).all()
        urls.update({db_key(row.id): row.url for row in found})
    return [
        Job(row.id, row.target, row.attempts, row.kind, row.title, row.body, row.path, urls.get(row.target))
        for row in rows
    ]


@dataclass(frozen=True)
class Outcome:
    delivery_id: int
    error: str | None
    """None: delivered."""
    final: bool = False
    """The error cannot get better by trying again (the target was removed)."""


def settle(
    conn: Connection,
    outcomes: Sequence[Outcome],
    *,
    owner: str,
    now: float,
    max_attempts: int,
    retry_delay: Any,
) -> None:
    """Record each send's outcome, if `owner` still holds the lease: delivered, failed, or retried.

    `retry_delay(attempts)` gives the wait before the next try.
    """
    d = notification_deliveries
    for outcome in outcomes:
        row = conn.execute(
            select(d.c.attempts).where(d.c.id == outcome.delivery_id, d.c.lease_owner == owner)
        ).first()
        if row is None:
            continue  # the lease lapsed and another replica took it over
        values: dict[str, Any] = {"lease_owner": None, "lease_until": None, "updated_at": now}
        if outcome.error is None:
            values.update(status=DELIVERED, delivered_at=now, last_error=None)
        elif outcome.final or row.attempts >= max_attempts:
            values.update(status=FAILED, last_error=outcome.error)
        else:
            values.update(last_error=outcome.error, next_attempt_at=now + retry_delay(row.attempts))
        conn.execute(update(d).where(d.c.id == outcome.delivery_id).values(**values))


def record_trial(conn: Connection, notice: Notice, target: Target, *, error: str | None, now: float) -> None:
    """A test an admin sent by hand, sent already: kept in the history with its outcome."""
    notification_id = conn.execute(
        insert(notifications).values(**_values(notice, now, fanned_out=True)).returning(notifications.c.id)
    ).scalar_one()
    conn.execute(
        insert(notification_deliveries).values(
            notification_id=notification_id,
            target=target.key,
            target_label=target.label[:255],
            status=DELIVERED if error is None else FAILED,
            attempts=1,
            next_attempt_at=now,
            last_error=error,
            delivered_at=now if error is None else None,
            updated_at=now,
        )
    )


# -- history -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class HistoryEntry:
    notification: RowMapping
    deliveries: list[RowMapping]


def history(conn: Connection, *, limit: int, before: int | None = None) -> list[HistoryEntry]:
    """Notifications newest first, each with its deliveries (target, status, attempts, last error)."""
    query = select(notifications).order_by(notifications.c.id.desc()).limit(limit)
    if before is not None:
        query = query.where(notifications.c.id < before)
    rows = list(conn.execute(query).mappings())
    by_notification: dict[int, list[RowMapping]] = {row["id"]: [] for row in rows}
    if rows:
        for delivery in conn.execute(
            select(notification_deliveries)
            .where(notification_deliveries.c.notification_id.in_(list(by_notification)))
            .order_by(notification_deliveries.c.id)
        ).mappings():
            by_notification[delivery["notification_id"]].append(delivery)
    return [HistoryEntry(row, by_notification[row["id"]]) for row in rows]


# -- what the detection loop reads ---------------------------------------------------------------


def live_workers(conn: Connection) -> list[RowMapping]:
    """Every live worker session with what the offline, stalled and idle rules need."""
    w = workers
    return list(
        conn.execute(
            select(
                w.c.id,
                w.c.machine_id,
                w.c.hostname,
                w.c.machine_label,
                w.c.status,
                w.c.last_seen,
                w.c.heartbeat_interval_s,
                w.c.last_progress_at,
                w.c.created_at,
                w.c.finished_at,
            ).where(w.c.is_stale.is_(False))
        ).mappings()
    )


def latest_of(conn: Connection, subject: str, kinds: Sequence[str]) -> tuple[str, int] | None:
    """(kind, id) of the newest notification about `subject` among `kinds`."""
    row = conn.execute(
        select(notifications.c.kind, notifications.c.id)
        .where(notifications.c.subject == subject, notifications.c.kind.in_(list(kinds)))
        .order_by(notifications.c.id.desc())
        .limit(1)
    ).first()
    return None if row is None else (str(row.kind), int(row.id))


def assignment_endings_since(conn: Connection, since: float) -> dict[str, int]:
    """How many assignments reached each status since `since` (for the daily digest)."""
    rows = conn.execute(
        select(assignment_events.c.to_status, func.count())
        .where(assignment_events.c.ts >= since, assignment_events.c.to_status.in_(["COMPLETED", "FAILED"]))
        .group_by(assignment_events.c.to_status)
    ).all()
    return {str(status): int(count) for status, count in rows}
