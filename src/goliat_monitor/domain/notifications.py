"""What a notification says and when one is due: pure rules, no I/O.

A notification is an event (`Kind`), a subject (a super study, a worker, the data folder) and a
*dedup key* that names the event's episode: "worker W stalled with its last progress at T", "the
study S completed at T". The outbox keeps one row per key, so every replica may detect the same
time-derived event and only one notification results (`db/queries/notifications.py`).

Texts carry a path (`/super-studies/ID`, `/workers/ID`); the sender makes it a link with the
server's public URL when one is set (`link`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum


class Kind(StrEnum):
    STUDY_COMPLETED = "study_completed"
    STUDY_FAILED = "study_failed"
    STUDY_CANCELLED = "study_cancelled"
    ASSIGNMENT_FAILED = "assignment_failed"
    ASSIGNMENT_OOM_RETRY = "assignment_oom_retry"
    WORKER_OFFLINE = "worker_offline"
    WORKER_STALLED = "worker_stalled"
    WORKER_IDLE = "worker_idle"
    DISK_LOW = "disk_low"
    DISK_OK = "disk_ok"
    DIGEST = "digest"
    TEST = "test"


EVENTS: dict[str, str] = {
    Kind.STUDY_COMPLETED: "Super study completed",
    Kind.STUDY_FAILED: "Super study failed",
    Kind.STUDY_CANCELLED: "Super study cancelled",
    Kind.ASSIGNMENT_FAILED: "Assignment failed after its last attempt",
    Kind.ASSIGNMENT_OOM_RETRY: "Assignment retried after running out of memory",
    Kind.WORKER_OFFLINE: "Worker went offline while running",
    Kind.WORKER_STALLED: "Worker stalled (no progress)",
    Kind.WORKER_IDLE: "Worker idle (online without work)",
    Kind.DISK_LOW: "Disk space low (and recovered)",
    Kind.DIGEST: "Daily digest",
}
"""The events a target can ask for, with what the admin page calls them. `disk_ok` (space came
back) goes wherever `disk_low` goes; `test` only to the target being tested."""

SUBSCRIBED_AS: dict[str, str] = {Kind.DISK_OK: Kind.DISK_LOW}


def wants(events: Sequence[str] | None, kind: str) -> bool:
    """Does a target that asked for `events` (None or empty: every event) get a `kind` notification?"""
    if kind == Kind.TEST:
        return False
    if not events:
        return True
    return SUBSCRIBED_AS.get(kind, kind) in events


def unknown_events(events: Iterable[str]) -> list[str]:
    return [event for event in events if event not in EVENTS]


@dataclass(frozen=True)
class Notice:
    """One notification as the outbox stores it."""

    kind: str
    key: str
    """The episode: one notification per key, whichever replica or transaction records it first."""
    subject: str
    title: str
    body: str
    path: str | None = None


def link(public_url: str | None, path: str | None) -> str | None:
    """The page's absolute URL, or None without a public URL (the body then names the path)."""
    if not path or not public_url:
        return None
    return public_url.rstrip("/") + path


def message_body(notice_body: str, path: str | None, public_url: str | None) -> str:
    """The body as sent: the stored text plus the link to the page (or its path)."""
    url = link(public_url, path)
    if url:
        return f"{notice_body}\n{url}"
    if path:
        return f"{notice_body}\nPage: {path} (set GOLIAT_MONITOR_PUBLIC_URL for a link)"
    return notice_body


# -- backoff ------------------------------------------------------------------------------------

RETRY_CAP_S = 3600.0


def retry_delay(attempts: int, first_s: float, cap_s: float = RETRY_CAP_S) -> float:
    """Seconds before the next try after `attempts` failed ones: first_s, 2*first_s, ... up to cap_s."""
    return float(min(cap_s, first_s * 2 ** max(0, attempts - 1)))


# -- events recorded by the write that causes them -------------------------------------------------


def study_path(study_id: str) -> str:
    return f"/super-studies/{study_id}"


def worker_path(worker_id: str) -> str:
    return f"/workers/{worker_id}"


STUDY_KINDS = {
    "COMPLETED": Kind.STUDY_COMPLETED,
    "FAILED": Kind.STUDY_FAILED,
    "CANCELLED": Kind.STUDY_CANCELLED,
}


def study_ended(
    *, study_id: str, name: str, status: str, counts: Mapping[str, int], total: int, now: float
) -> Notice | None:
    """The notification of a super study that just reached COMPLETED, FAILED or CANCELLED."""
    kind = STUDY_KINDS.get(status)
    if kind is None:
        return None
    done, failed, cancelled = (counts.get(s, 0) for s in ("COMPLETED", "FAILED", "CANCELLED"))
    parts = [f"{done} of {total} assignments completed"]
    if failed:
        parts.append(f"{failed} failed")
    if cancelled:
        parts.append(f"{cancelled} cancelled")
    verb = status.lower()
    return Notice(
        kind=kind,
        key=f"{kind}:{study_id}:{now!r}",
        subject=f"study:{study_id}",
        title=f"Super study {name!r} {verb}",
        body=f"Super study {name!r} {verb}: {', '.join(parts)}.",
        path=study_path(study_id),
    )


def assignment_failed(
    *,
    assignment_id: str,
    study_id: str,
    study_name: str,
    index: int,
    attempts: int,
    reason: str,
    worker: str | None,
    now: float,
) -> Notice:
    where = f" on {worker}" if worker else ""
    tries = f"{attempts} attempt{'s' if attempts != 1 else ''}"
    return Notice(
        kind=Kind.ASSIGNMENT_FAILED,
        key=f"{Kind.ASSIGNMENT_FAILED}:{assignment_id}:{now!r}",
        subject=f"study:{study_id}",
        title=f"Assignment {index} of {study_name!r} failed",
        body=f"Assignment {index} of super study {study_name!r} failed{where} after {tries}: {reason}.",
        path=study_path(study_id),
    )


def out_of_memory_retry(
    *,
    assignment_id: str,
    study_id: str,
    study_name: str,
    index: int,
    attempts: int,
    max_attempts: int,
    worker: str | None,
    now: float,
) -> Notice:
    where = f" on {worker}" if worker else ""
    return Notice(
        kind=Kind.ASSIGNMENT_OOM_RETRY,
        key=f"{Kind.ASSIGNMENT_OOM_RETRY}:{assignment_id}:{now!r}",
        subject=f"study:{study_id}",
        title=f"Assignment {index} of {study_name!r} ran out of memory; retrying",
        body=(
            f"Assignment {index} of super study {study_name!r} ran out of GPU memory{where} "
            f"(attempt {attempts} of {max_attempts}); it goes back to the queue for another worker."
        ),
        path=study_path(study_id),
    )


# -- events derived from time (every replica's detection loop) -----------------------------------


@dataclass(frozen=True)
class WorkerFacts:
    """What the detection loop reads of a live worker session."""

    id: str
    name: str
    status: str
    """The stored status: IDLE, RUNNING or ERROR (offline is derived from `online`)."""
    online: bool
    last_seen: float
    last_progress_at: float | None
    created_at: float
    finished_at: float | None


def worker_notices(
    workers: Iterable[WorkerFacts], *, now: float, stalled_after_s: float, idle_after_s: float
) -> list[Notice]:
    """Offline while running, stalled, idle too long: one notice per worker and episode.

    The episode is the moment the condition started (the last message, the last progress, the
    end of the last run), which every replica reads the same from the database.
    """
    out: list[Notice] = []
    for w in workers:
        if w.status == "RUNNING" and not w.online:
            out.append(
                Notice(
                    kind=Kind.WORKER_OFFLINE,
                    key=f"{Kind.WORKER_OFFLINE}:{w.id}:{w.last_seen!r}",
                    subject=f"worker:{w.id}",
                    title=f"Worker {w.name} went offline while running",
                    body=f"Worker {w.name} has sent nothing for {_minutes(now - w.last_seen)} while it "
                    "was running a study.",
                    path=worker_path(w.id),
                )
            )
        elif w.status == "RUNNING" and w.online:
            since = w.last_progress_at if w.last_progress_at is not None else w.created_at
            if now - since > stalled_after_s:
                out.append(
                    Notice(
                        kind=Kind.WORKER_STALLED,
                        key=f"{Kind.WORKER_STALLED}:{w.id}:{since!r}",
                        subject=f"worker:{w.id}",
                        title=f"Worker {w.name} stalled",
                        body=f"Worker {w.name} is online and running, but has reported no progress for "
                        f"{_minutes(now - since)}.",
                        path=worker_path(w.id),
                    )
                )
        elif w.online and idle_after_s > 0 and w.status in ("IDLE", "ERROR"):
            since = w.finished_at if w.finished_at is not None else w.created_at
            if now - since > idle_after_s:
                out.append(
                    Notice(
                        kind=Kind.WORKER_IDLE,
                        key=f"{Kind.WORKER_IDLE}:{w.id}:{since!r}",
                        subject=f"worker:{w.id}",
                        title=f"Worker {w.name} is idle",
                        body=f"Worker {w.name} is online and has had no work for {_minutes(now - since)}.",
                        path=worker_path(w.id),
                    )
                )
    return out


def _minutes(seconds: float) -> str:
    minutes = max(0, round(seconds / 60))
    if minutes < 120:
        return f"{minutes} minute{'s' if minutes != 1 else ''}"
    return f"{minutes / 60:.1f} hours"


DISK_RECOVERY_FACTOR = 1.2
"""Space counts as back once it is 20 % above the threshold, so a disk hovering at the line does
not notify on every check."""


def disk_notice(
    *,
    subject: str,
    where: str,
    free_bytes: int,
    total_bytes: int,
    threshold_mb: float,
    previous: str | None,
    previous_id: int | None,
) -> Notice | None:
    """A low-space or space-back notice when the state changed since the subject's last one.

    `previous` is the kind of the subject's latest disk notice (None: never). The key names that
    notice, so replicas that see the same change at once record it once.
    """
    if threshold_mb <= 0:
        return None
    free_mb = free_bytes / 2**20
    low = previous == Kind.DISK_LOW
    after = f"after:{previous_id or 0}"
    if not low and free_mb < threshold_mb:
        return Notice(
            kind=Kind.DISK_LOW,
            key=f"{Kind.DISK_LOW}:{subject}:{after}",
            subject=subject,
            title=f"Disk space low: {free_mb:.0f} MB free",
            body=f"Only {free_mb:.0f} MB of {total_bytes / 2**30:.1f} GB are free for {where} "
            f"(alert below {threshold_mb:.0f} MB). Uploads and logs fail once it is full.",
        )
    if low and free_mb >= threshold_mb * DISK_RECOVERY_FACTOR:
        return Notice(
            kind=Kind.DISK_OK,
            key=f"{Kind.DISK_OK}:{subject}:{after}",
            subject=subject,
            title=f"Disk space back: {free_mb:.0f} MB free",
            body=f"{free_mb:.0f} MB are free again for {where}.",
        )
    return None


def digest_day(now: float, hour: int | None) -> str | None:
    """The UTC day whose digest is due at `now` (during hour `hour` UTC), or None."""
    if hour is None:
        return None
    moment = datetime.fromtimestamp(now, UTC)
    return moment.strftime("%Y-%m-%d") if moment.hour == hour else None


@dataclass(frozen=True)
class DigestFacts:
    workers: Mapping[str, int]
    """Live worker sessions by what the dashboard shows: RUNNING, IDLE, ERROR, OFFLINE."""
    active_studies: Sequence[tuple[str, str, float]]
    """(id, name, master progress %) of every PENDING or RUNNING super study."""
    completed_day: int
    failed_day: int
    """Assignments that completed / failed for good in the last 24 hours."""


def digest(day: str, facts: DigestFacts) -> Notice:
    lines = [
        "Workers: "
        + ", ".join(f"{count} {status.lower()}" for status, count in sorted(facts.workers.items()))
        if facts.workers
        else "Workers: none",
        f"Last 24 hours: {facts.completed_day} assignments completed, {facts.failed_day} failed.",
    ]
    if facts.active_studies:
        lines.append("Active super studies:")
        lines.extend(f"- {name}: {progress:.1f} %" for _, name, progress in facts.active_studies)
    else:
        lines.append("No super study is running.")
    return Notice(
        kind=Kind.DIGEST,
        key=f"{Kind.DIGEST}:{day}",
        subject="digest",
        title=f"goliat-monitor daily digest {day}",
        body="\n".join(lines),
        path="/",
    )


def trial_notice(target: str, who: str, now: float) -> Notice:
    return Notice(
        kind=Kind.TEST,
        key=f"{Kind.TEST}:{target}:{now!r}",
        subject=f"target:{target}",
        title="goliat-monitor test notification",
        body=f"A test sent by {who} from the Notifications page. This target works.",
        path="/notifications",
    )


def mask_url(url: str) -> str:
    """A target URL with everything after the scheme's host part hidden, when apprise cannot say."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return "****"
    return f"{scheme}://****{rest[-4:] if len(rest) > 12 else ''}"
