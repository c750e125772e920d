"""Who may do what, and how long a sign-in stays refused: rules without I/O.

Three roles. A viewer reads the whole campaign and changes nothing; an admin does everything; a
worker (a GOLIAT machine's credential, handed to many machines) makes the calls GOLIAT makes and
reads only what `goliat worker` reads, so a leaked worker token does not open the dashboard.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Sequence
from dataclasses import dataclass


class Role(enum.StrEnum):
    VIEWER = "viewer"
    ADMIN = "admin"
    WORKER = "worker"


ACCOUNT_ROLES = (Role.ADMIN, Role.VIEWER)
"""Roles a person's account can have; a worker is a token only."""


class Need(enum.Enum):
    """What a request needs: to read the campaign, to report as a worker, or to change something."""

    READ = "read"
    WORKER = "worker"
    ADMIN = "admin"


_GRANTS: dict[Role, frozenset[Need]] = {
    Role.ADMIN: frozenset(Need),
    Role.VIEWER: frozenset({Need.READ}),
    Role.WORKER: frozenset({Need.WORKER}),
}


def allows(role: Role, need: Need) -> bool:
    return need in _GRANTS[role]


# The reads `goliat worker` and `goliat super_study` make (docs/goliat-protocol.md): finding a
# study by name, its assignments, one assignment. A worker credential reads these and nothing else.
WORKER_READS = tuple(
    re.compile(pattern)
    for pattern in (
        r"/api/super-studies",
        r"/api/super-studies/[^/]+",
        r"/api/super-studies/[^/]+/assignments",
        r"/api/assignments/[^/]+",
    )
)


def may_read(role: Role, method: str, path: str) -> bool:
    """Whether `role` may make this read; the path is the one routed (after any `/t/<token>/`)."""
    if allows(role, Need.READ):
        return True
    if role is Role.WORKER and method in ("GET", "HEAD"):
        return any(pattern.fullmatch(path) for pattern in WORKER_READS)
    return False


@dataclass(frozen=True)
class Principal:
    """Who a request is: signed in (`session`), an API token from the database, or an env token."""

    kind: str  # "session" | "token" | "env"
    name: str
    role: Role
    session_id: str | None = None
    csrf_token: str | None = None

    @property
    def needs_csrf(self) -> bool:
        """A cookie is sent by the browser on its own; only a session must prove the page sent it."""
        return self.kind == "session"


SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def retry_after(recent_failures: Sequence[float], *, now: float, window_s: float, limit: int) -> float | None:
    """Seconds until one more sign-in attempt may be made, or None when it may be made now.

    `recent_failures` are the times of the newest failures of one account or address (at most
    `limit` of them are needed). Attempts are refused while `limit` failures lie inside the sliding
    window; the refusal ends when the oldest of those `limit` leaves it.
    """
    inside = sorted(t for t in recent_failures if now - t < window_s)
    if limit <= 0 or len(inside) < limit:
        return None
    oldest_that_counts = inside[-limit]
    return max(1.0, oldest_that_counts + window_s - now)


def safe_next(target: str | None, default: str = "/") -> str:
    """Where to go after signing in: a path on this site only (never `//host` or `http://...`)."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return default
    if any(ord(c) < 0x20 for c in target):
        return default
    return target
