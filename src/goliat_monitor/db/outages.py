"""What a database that went away looks like: which errors mean "unreachable" (and which a retry
may fix), and the libpq settings that make a cut network fail in seconds instead of minutes.

`db/engine.py` turns such errors into `DatabaseUnavailable` (503 with Retry-After); the replica
relay (`server/fanout.py`) connects with the same settings.
"""

from __future__ import annotations

import sqlite3
from typing import Any

import psycopg
from sqlalchemy import URL, Connection, make_url
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError

from goliat_monitor.errors import DatabaseUnavailable

PG_CONNECT_DEFAULTS: dict[str, Any] = {
    # A cut network must not hold a connect for libpq's default of minutes.
    "connect_timeout": 5,
    # An idle connection (the replica relay's LISTEN) notices a vanished peer within ~20 s...
    "keepalives": 1,
    "keepalives_idle": 10,
    "keepalives_interval": 3,
    "keepalives_count": 3,
    # ... and a statement whose packets go unacknowledged fails after 10 s instead of ~15 min.
    "tcp_user_timeout": 10_000,
}
"""libpq settings every PostgreSQL connection gets unless the database URL sets them itself."""

# SQLSTATEs of a server going away or not yet back: admin shutdown, crash shutdown, cannot connect now.
_UNREACHABLE_PGCODES = {"57P01", "57P02", "57P03"}


def pg_connect_args(url: str | URL) -> dict[str, Any]:
    """`PG_CONNECT_DEFAULTS` minus what the URL's query string already sets."""
    query = make_url(url).query
    return {name: value for name, value in PG_CONNECT_DEFAULTS.items() if name not in query}


def is_connection_lost(exc: BaseException) -> bool:
    """True when `exc` says the database cannot be reached, not that a statement was wrong.

    Covers SQLAlchemy's wrapped errors and the driver's own (the hot path's `Raw` cursor raises
    those): a closed or broken connection, a failed connect, a server shutting down or starting up.
    """
    if isinstance(exc, DatabaseUnavailable):
        return True
    if isinstance(exc, DBAPIError):
        if exc.connection_invalidated:
            return True
        return is_connection_lost(exc.orig) if isinstance(exc.orig, BaseException) else False
    if not isinstance(exc, psycopg.OperationalError | psycopg.InterfaceError):
        return False
    code = exc.sqlstate
    return code is None or code.startswith("08") or code in _UNREACHABLE_PGCODES


def is_broken(conn: Connection) -> bool:
    """The connection can no longer be used: closed, invalidated, or its driver says so."""
    if conn.closed or conn.invalidated:
        return True
    return bool(getattr(conn.connection.driver_connection, "broken", False))


def lost(conn: Connection, exc: BaseException) -> bool:
    """`exc`, raised on `conn`, means the connection is gone (not that the statement was wrong)."""
    return is_connection_lost(exc) or is_broken(conn)


# PostgreSQL SQLSTATEs worth a retry: serialization failure, deadlock, unique violation (a concurrent
# first message created the same worker session).
_RETRYABLE_PGCODES = {"40001", "40P01", "23505"}


def is_retryable(exc: BaseException) -> bool:
    """A write that failed this way may succeed if run again: a race with another writer or replica."""
    if isinstance(exc, IntegrityError):
        return True
    if isinstance(exc, OperationalError | DBAPIError):
        code = getattr(getattr(exc, "orig", None), "sqlstate", None)
        return code in _RETRYABLE_PGCODES
    return False


SQLITE_FULL = 13
DISK_FULL_PGCODE = "53100"


def is_storage_full(exc: BaseException) -> bool:
    """The database could not write for want of disk space: SQLite's SQLITE_FULL ("database or
    disk is full"), PostgreSQL's disk_full (53100). Wrapped by SQLAlchemy or the driver's own."""
    if isinstance(exc, DBAPIError):
        return isinstance(exc.orig, BaseException) and is_storage_full(exc.orig)
    if isinstance(exc, sqlite3.Error):
        return getattr(exc, "sqlite_errorcode", None) == SQLITE_FULL or "database or disk is full" in str(exc)
    if isinstance(exc, psycopg.Error):
        return exc.sqlstate == DISK_FULL_PGCODE
    return False
