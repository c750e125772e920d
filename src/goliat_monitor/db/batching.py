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

- Rows the hot path inserts (`Raw.insert`: log lines, samples) and row updates nobody reads
  (`Raw.update`: the worker row, an assignment's lease) are *staged*: at the flush, all the rows a
  group inserts into one table go in as one `INSERT ... SELECT FROM json_populate_recordset(...)`
  of one JSON parameter, and the updates of one row are merged (later values win) and sent, for
  every row with the same columns, as one `UPDATE ... FROM json_populate_recordset(...)`. A group
  of thirty GOLIAT messages then costs PostgreSQL a handful of statements, each of fixed text
  (prepared once), instead of two per message: the statements, not the rows, were what cost both
  the database and the driver's Python time. No statement reads between two staged ones (any
  read flushes first), so the merged updates leave the rows exactly as the sequence would have.

Both only apply to a group's first, straight-through run. A statement held back fails later than
it was issued, so any error sends the group to its second run, one savepoint per write, where
nothing is held back or shared and each write fails alone, as before. SQLite has no round trips
to save: there, everything runs at once.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from functools import lru_cache
from typing import Any, Protocol

from pydantic_core import to_json
from sqlalchemy import Connection, Engine, event

from goliat_monitor.db.tables import metadata


class GroupWrite(Protocol):
    @property
    def prepare(self) -> tuple[Callable[[Connection, list[Any]], None], Any] | None: ...


_BATCHING = "gm_batching"
_HELD = "gm_held_statements"
_CACHE = "gm_group_cache"
_PREPARED = "gm_group_prepared"
_STAGED = "gm_staged_rows"


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
    for key in (_BATCHING, _HELD, _CACHE, _PREPARED, _STAGED):
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


def stage_insert(
    conn: Connection, table: str, columns: tuple[str, ...], rows: Sequence[Sequence[Any]]
) -> bool:
    """Keep rows to insert with the group's other rows of `table`; False: insert them now instead."""
    if not conn.info.get(_BATCHING) or table not in metadata.tables:
        return False
    staged: dict[tuple[Any, ...], Any] = conn.info.setdefault(_STAGED, {})
    staged.setdefault(("insert", table, columns), []).extend(rows)
    return True


def stage_update(
    conn: Connection, table: str, match: Mapping[str, Any], values: Mapping[str, Any], where: str
) -> bool:
    """Keep an update of the row(s) `match` names, merged with earlier ones; False: run it now."""
    if not conn.info.get(_BATCHING) or table not in metadata.tables:
        return False
    staged: dict[tuple[Any, ...], Any] = conn.info.setdefault(_STAGED, {})
    key = ("update", table, tuple(match.items()), where)
    merged = staged.get(key)
    if merged is None:
        staged[key] = dict(values)
    else:
        merged.update(values)
    return True


def flush(conn: Connection) -> None:
    """Send the held statements and the staged rows in one pipeline: one round trip for all."""
    statements: list[tuple[str, Any]] = conn.info.pop(_HELD, None) or []
    staged: dict[tuple[Any, ...], Any] | None = conn.info.pop(_STAGED, None)
    if staged:
        statements.extend(_staged_statements(staged))
    if not statements:
        return
    driver: Any = conn.connection.driver_connection
    cursor = driver.cursor()
    if len(statements) == 1:
        cursor.execute(*statements[0])
        return
    with driver.pipeline():
        for sql, params in statements:
            cursor.execute(sql, params)


def _staged_statements(staged: dict[tuple[Any, ...], Any]) -> list[tuple[str, list[str]]]:
    """One statement per table inserted into, one per (table, columns) of the merged updates."""
    statements: list[tuple[str, list[str]]] = []
    updates: dict[tuple[str, tuple[str, ...], tuple[str, ...], str], list[dict[str, Any]]] = {}
    for key, value in staged.items():
        if key[0] == "insert":
            _, table, columns = key
            rows = [dict(zip(columns, row, strict=True)) for row in value]
            statements.append((_insert_sql(table, columns), [_json(rows)]))
        else:
            _, table, match, where = key
            row = dict(match)
            row.update(value)
            updates.setdefault((table, tuple(k for k, _ in match), tuple(sorted(value)), where), []).append(
                row
            )
    for (table, match_columns, names, where), rows in updates.items():
        statements.append((_update_sql(table, match_columns, names, where), [_json(rows)]))
    return statements


def _json(rows: list[dict[str, Any]]) -> str:
    """The rows as one JSON document, which PostgreSQL reads as rows of the table's type.

    One text parameter, encoded in Rust: psycopg's array adaptation cost ~10 µs of Python per
    row. NaN and infinity are written as such, which is not JSON: such a row fails the flush and
    the group runs again, statement by statement, where the driver sends them as they are.
    """
    return to_json(rows, inf_nan_mode="constants").decode()


@lru_cache(maxsize=64)
def _insert_sql(table: str, columns: tuple[str, ...]) -> str:
    names = ", ".join(columns)
    return f"INSERT INTO {table} ({names}) SELECT {names} FROM json_populate_recordset(NULL::{table}, %s)"


@lru_cache(maxsize=256)
def _update_sql(table: str, match: tuple[str, ...], names: tuple[str, ...], where: str) -> str:
    sets = ", ".join(f"{name} = v.{name}" for name in names)
    matched = " AND ".join(f"{table}.{name} = v.{name}" for name in match)
    condition = f" AND {where}" if where else ""
    return f"UPDATE {table} SET {sets} FROM json_populate_recordset(NULL::{table}, %s) AS v WHERE {matched}{condition}"


def install(engine: Engine) -> None:
    """Send held statements before any SQLAlchemy statement on the same connection, so order holds."""
    if engine.dialect.name != "postgresql":
        return

    @event.listens_for(engine, "before_cursor_execute")
    def _flush_first(conn: Connection, *_args: Any) -> None:
        if _HELD in conn.info or _STAGED in conn.info:
            flush(conn)
