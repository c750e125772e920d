"""Fewer round trips per write group on PostgreSQL: shared reads up front, blind writes sent together.

A GOLIAT message costs PostgreSQL a few statements, and each one was a network round trip in which
the writer thread and the database backend woke each other up: about half of a writer thread's
time went to waiting for them. A group commit already shares one transaction among a burst of
messages; this module lets it share round trips too:

- A write may name a *preparation* and its argument (`Database.write(..., prepare=(fn, arg))`).
  Before a group runs, each distinct preparation runs once with the arguments of every write that
  named it (one `SELECT ... FOR UPDATE` of all the group's worker rows instead of one per
  message) and leaves what it read in the group's cache (`group_cache`). The cache is dropped
  before any write that did not ask for it, so no other write sees what it may change.
- Statements whose result nobody reads (`Raw.send`: UPDATE a worker row, INSERT log lines) are
  held back and sent together in psycopg's pipeline mode: before the next statement that reads,
  and before the commit.

Both only apply to a group's first, straight-through run. A statement held back fails later than
it was issued, so any error sends the group to its second run, one savepoint per write, where
nothing is held back or shared and each write fails alone, as before. SQLite has no round trips
to save: there, everything runs at once.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable, Mapping
from typing import Any, Protocol

from sqlalchemy import Connection, Engine, event


class GroupWrite(Protocol):
    @property
    def prepare(self) -> tuple[Callable[[Connection, list[Any]], None], Any] | None: ...


_BATCHING = "gm_batching"
_HELD = "gm_held_statements"
_CACHE = "gm_group_cache"
_PREPARED = "gm_group_prepared"


def start(conn: Connection, group: Iterable[GroupWrite]) -> None:
    """Before a group's straight-through run: hold blind statements back, run the preparations."""
    if conn.dialect.name != "postgresql":
        return
    conn.info[_BATCHING] = True
    by_prepare: dict[Callable[[Connection, list[Any]], None], list[Any]] = {}
    for item in group:
        if item.prepare is not None:
            fn, arg = item.prepare
            by_prepare.setdefault(fn, []).append(arg)
    conn.info[_CACHE] = {}
    conn.info[_PREPARED] = set(by_prepare)
    for fn, args in by_prepare.items():
        fn(conn, args)


def before_write(conn: Connection, item: GroupWrite) -> None:
    """A write that did not ask for the group's preparations must not see (or stale) their cache."""
    prepared = conn.info.get(_PREPARED)
    if prepared and (item.prepare is None or item.prepare[0] not in prepared):
        conn.info.pop(_CACHE, None)
        conn.info.pop(_PREPARED, None)


def stop(conn: Connection) -> None:
    """After a group, whatever happened: nothing held, nothing cached."""
    try:
        info = conn.info
    except Exception:  # an invalidated connection: it is dropped, and its info with it
        return
    for key in (_BATCHING, _HELD, _CACHE, _PREPARED):
        info.pop(key, None)


def group_cache(conn: Connection) -> dict[Hashable, Any] | None:
    """What this group's preparations read, for the writes that asked for them; else None."""
    cache: dict[Hashable, Any] | None = conn.info.get(_CACHE)
    return cache


def hold(conn: Connection, sql: str, params: Mapping[str, Any] | list[Any]) -> bool:
    """Keep a driver-ready statement whose result nobody reads; False: run it now instead."""
    if not conn.info.get(_BATCHING):
        return False
    conn.info.setdefault(_HELD, []).append((sql, params))
    return True


def flush(conn: Connection) -> None:
    """Send the held statements in one pipeline: one round trip for all of them."""
    held: list[tuple[str, Any]] | None = conn.info.pop(_HELD, None)
    if not held:
        return
    dbapi: Any = conn.connection.driver_connection
    cursor = dbapi.cursor()
    if len(held) == 1:
        cursor.execute(*held[0])
        return
    with dbapi.pipeline():
        for sql, params in held:
            cursor.execute(sql, params)


def install(engine: Engine) -> None:
    """Send held statements before any SQLAlchemy statement on the same connection, so order holds."""
    if engine.dialect.name != "postgresql":
        return

    @event.listens_for(engine, "before_cursor_execute")
    def _flush_first(conn: Connection, *_args: Any) -> None:
        if _HELD in conn.info:
            flush(conn)
