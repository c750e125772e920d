"""Plain DB-API statements for the hot path: GUI updates and heartbeats.

SQLAlchemy Core costs 200-400 µs per statement here (building and caching the expression,
wrapping the result); the same statement through the driver's cursor costs 5-15 µs. A GOLIAT
message needs a handful of statements, so the messages that arrive by the thousand per second use
this thin layer, in the same transaction as the rest, and everything else stays in Core.
SQL is written once with `:name` parameters, which this module rewrites for psycopg.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from functools import lru_cache
from typing import Any

from sqlalchemy import Connection

from goliat_monitor.db import batching

_COLUMN_NAMES: dict[str, tuple[str, ...]] = {}
"""Column names of each statement `Raw.one` has run, by its SQL text."""

_CURSOR = "gm_raw_cursor"

_NAMED = re.compile(r"(?<!:):([a-zA-Z_][a-zA-Z0-9_]*)")


@lru_cache(maxsize=512)
def _for_psycopg(sql: str) -> str:
    return _NAMED.sub(r"%(\1)s", sql.replace("%", "%%"))


class Raw:
    """The driver cursor of a SQLAlchemy connection, with the little this server needs."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn
        self.is_sqlite = conn.dialect.name == "sqlite"
        # One cursor per connection, made once: psycopg builds an adapters map for every cursor
        # (~10 µs), and the hot path makes a `Raw` per statement.
        dbapi = conn.connection.driver_connection
        assert dbapi is not None
        info = conn.connection.info
        made = info.get(_CURSOR)
        if made is None or made[0] is not dbapi:
            made = info[_CURSOR] = (dbapi, dbapi.cursor())
        self._cursor = made[1]

    def _sql(self, sql: str) -> str:
        return sql if self.is_sqlite else _for_psycopg(sql)

    @property
    def for_update(self) -> str:
        """Row locks: PostgreSQL needs them; SQLite's single writer already serialises."""
        return "" if self.is_sqlite else " FOR UPDATE"

    @property
    def false(self) -> str:
        """The literal a partial index's `WHERE is_stale = false` is written with, so the planner uses it.

        SQLite proves a query's condition matches a partial index only term by term: `NOT is_stale`
        does not match `is_stale = 0` and would scan every session the table ever held.
        """
        return "0" if self.is_sqlite else "false"

    def _execute(self, sql: str, params: Mapping[str, Any]) -> Any:
        """Run a statement whose result is read; on PostgreSQL what is held back goes first."""
        if not self.is_sqlite:
            batching.flush(self._conn)
        self._cursor.execute(self._sql(sql), params)
        return self._cursor

    def one(self, sql: str, params: Mapping[str, Any]) -> dict[str, Any] | None:
        cursor = self._execute(sql, params)
        row = cursor.fetchone()
        if row is None:
            return None
        names = _COLUMN_NAMES.get(sql)
        if names is None:
            # psycopg builds a Column object per column for every `description`: ~140 µs for a
            # worker row, more than the query. A statement's columns are fixed once the schema is.
            names = _COLUMN_NAMES[sql] = tuple(column[0] for column in cursor.description)
        return dict(zip(names, row, strict=True))

    def all(self, sql: str, params: Mapping[str, Any]) -> list[dict[str, Any]]:
        cursor = self._execute(sql, params)
        rows = cursor.fetchall()
        if not rows:
            return []
        names = _COLUMN_NAMES.get(sql)
        if names is None:
            names = _COLUMN_NAMES[sql] = tuple(column[0] for column in cursor.description)
        return [dict(zip(names, row, strict=True)) for row in rows]

    def scalar(self, sql: str, params: Mapping[str, Any]) -> Any:
        row = self._execute(sql, params).fetchone()
        return None if row is None else row[0]

    def run(self, sql: str, params: Mapping[str, Any]) -> int:
        """Run a statement now and return how many rows it changed."""
        return int(self._execute(sql, params).rowcount)

    def send(self, sql: str, params: Mapping[str, Any]) -> None:
        """A statement whose outcome nobody reads: on PostgreSQL it may travel with the next ones."""
        sql = self._sql(sql)
        if self.is_sqlite or not batching.hold(self._conn, sql, params):
            self._cursor.execute(sql, params)

    def insert(self, table: str, columns: tuple[str, ...], rows: Sequence[Sequence[Any]]) -> None:
        """Insert `rows` (values in `columns` order); nobody reads the outcome.

        In a PostgreSQL write group the rows join the group's other rows of `table` in one
        statement (`batching.stage_insert`). Otherwise: one multi-row statement per 200 rows, not
        `executemany`, whose per-row pipeline bookkeeping in psycopg cost ~50 µs a row.
        """
        if not self.is_sqlite and batching.stage_insert(self._conn, table, columns, rows):
            return
        placeholder = "?" if self.is_sqlite else "%s"
        for start in range(0, len(rows), INSERT_CHUNK):
            chunk = rows[start : start + INSERT_CHUNK]
            sql = _insert_sql(table, columns, len(chunk), placeholder)
            values = [value for row in chunk for value in row]
            if self.is_sqlite or not batching.hold(self._conn, sql, values):
                self._cursor.execute(sql, values)

    def update(
        self, table: str, match: Mapping[str, Any], values: Mapping[str, Any], *, where: str = ""
    ) -> None:
        """`UPDATE table SET values WHERE match [AND where]`; nobody reads the outcome.

        `where` is a fixed condition naming columns as `table.column`. In a PostgreSQL write
        group the update is merged with the group's other updates of the same row and sent with
        them (`batching.stage_update`).
        """
        if not values:
            return
        if not self.is_sqlite and batching.stage_update(self._conn, table, match, values, where):
            return
        sql = _update_sql(table, tuple(sorted(values)), tuple(match), where)
        self._cursor.execute(self._sql(sql), {**values, **match})


INSERT_CHUNK = 200
"""Rows per multi-row INSERT: 200 x a handful of columns stays far below every parameter limit."""


@lru_cache(maxsize=256)
def _insert_sql(table: str, columns: tuple[str, ...], count: int, placeholder: str) -> str:
    row = "(" + ", ".join([placeholder] * len(columns)) + ")"
    return f"INSERT INTO {table} ({', '.join(columns)}) VALUES " + ", ".join([row] * count)


@lru_cache(maxsize=512)
def _update_sql(table: str, columns: tuple[str, ...], match: tuple[str, ...], where: str) -> str:
    """Column names come from code, never from input."""
    assert not set(columns) & set(match), "a matched column cannot also be set"
    assignments = ", ".join(f"{column} = :{column}" for column in columns)
    condition = " AND ".join(f"{column} = :{column}" for column in match)
    return f"UPDATE {table} SET {assignments} WHERE {condition}" + (f" AND {where}" if where else "")
