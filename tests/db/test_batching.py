"""A write group's shared reads and held-back statements on PostgreSQL (`db.batching`).

Each test puts its writes into one group: a first write keeps the writer thread busy while the
others queue behind it, so they are taken, prepared and committed together.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from typing import Any

import psycopg
import pytest
from sqlalchemy import Connection, text

from goliat_monitor.db.engine import Database
from goliat_monitor.db.queries import ingest
from goliat_monitor.db.queries.common import Clock
from goliat_monitor.db.raw import Raw


@pytest.fixture
def db(pg_url: str) -> Iterator[Database]:
    database = Database(pg_url, write_threads=1)
    yield database
    database.close()


def _logs(machine: str, n: int, sequence: int, log_type: str = "warning") -> dict[str, Any]:
    lines = [{"message": f"{machine} line {sequence}.{k}", "log_type": log_type} for k in range(n)]
    return {"machineId": machine, "message": {"type": "log_batch", "logs": lines, "sequence": sequence}}


def _progress(machine: str, value: int) -> dict[str, Any]:
    return {"machineId": machine, "message": {"type": "overall_progress", "current": value, "total": 100}}


def _as_one_group(db: Database, writes: list[tuple[Callable[[Connection], Any], bool]]) -> list[Any]:
    """Run `writes` (fn, is GOLIAT message) as one group; returns each outcome or exception."""

    async def run() -> list[Any]:
        blocker = db.enqueue(lambda conn: time.sleep(0.3), key="one")
        await asyncio.sleep(0.05)  # the writer thread is now inside the blocker's group
        queued = [
            db.enqueue(fn, key="one", prepare=(ingest.lock_workers, fn.session) if message else None)  # type: ignore[attr-defined]
            for fn, message in writes
        ]
        await blocker
        return await asyncio.gather(*queued, return_exceptions=True)

    return asyncio.run(run())


def _message(body: dict[str, Any], now: float) -> Callable[[Connection], Any]:
    def write(conn: Connection) -> Any:
        return ingest.record_gui_update(conn, body, Clock(now=now))

    write.session = ingest.session_of(body["machineId"], None)  # type: ignore[attr-defined]
    return write


def _worker_rows(db: Database, machine: str) -> list[dict[str, Any]]:
    return db.read_sync(
        lambda conn: [
            dict(r)
            for r in conn.execute(
                text("SELECT * FROM workers WHERE machine_id = :m ORDER BY created_at"), {"m": machine}
            ).mappings()
        ]
    )


def test_messages_of_one_group_see_each_others_changes(db: Database) -> None:
    now = time.time()
    for machine in ("10.0.0.1", "10.0.0.2"):  # known sessions: the group reads them up front
        db.write_sync(_message(_progress(machine, 0), now - 1))
    bodies = []
    for k in range(6):
        for machine in ("10.0.0.1", "10.0.0.2"):
            bodies.append(_logs(machine, 3, k))
            bodies.append(_progress(machine, 10 * (k + 1)))
    outcomes = _as_one_group(db, [(_message(b, now + i * 0.001), True) for i, b in enumerate(bodies)])
    assert not [o for o in outcomes if isinstance(o, BaseException)]
    for machine in ("10.0.0.1", "10.0.0.2"):
        (row,) = _worker_rows(db, machine)  # one session, created once though six messages asked
        assert row["warning_count"] == 18
        assert row["progress"] == 60.0
        stored = db.read_sync(_messages_of(row["id"]))
        assert stored == [f"{machine} line {k}.{j}" for k in range(6) for j in range(3)]


def _messages_of(worker_id: str) -> Callable[[Connection], list[str]]:
    def read(conn: Connection) -> list[str]:
        query = text("SELECT message FROM log_lines WHERE worker_id = :w ORDER BY ord, id")
        return list(conn.execute(query, {"w": worker_id}).scalars().all())

    return read


def _held_statement_that_fails(conn: Connection) -> None:
    # Held back like a blind statement, so its error surfaces only when the group sends it.
    Raw(conn).send("INSERT INTO workers (id) VALUES (:id)", {"id": "no-required-columns"})


def _staged_row_that_fails(conn: Connection) -> None:
    # Staged like a log line: it travels as JSON, and the database refuses it at the flush.
    Raw(conn).insert(
        "log_lines",
        ("worker_id", "ord", "ts", "log_type", "message"),
        [("nobody", 1, time.time(), "info", "x")],
    )


@pytest.mark.parametrize(
    ("bad", "error"),
    [(_held_statement_that_fails, "null value"), (_staged_row_that_fails, "foreign key")],
    ids=["held statement", "staged row"],
)
def test_a_write_the_database_refuses_at_the_flush_fails_alone(
    db: Database, bad: Callable[[Connection], None], error: str
) -> None:
    """The group runs again in isolation: the refused write fails, the messages around it commit."""
    now = time.time()
    writes: list[tuple[Callable[[Connection], Any], bool]] = [
        (_message(_logs("10.0.0.3", 2, 0), now), True),
        (bad, False),
        (_message(_logs("10.0.0.3", 2, 1), now + 0.001), True),
    ]
    first, failed, last = _as_one_group(db, writes)
    assert isinstance(failed, Exception) and error in str(failed)
    assert not isinstance(first, BaseException) and not isinstance(last, BaseException)
    (row,) = _worker_rows(db, "10.0.0.3")
    assert row["warning_count"] == 4
    assert len(db.read_sync(_messages_of(row["id"]))) == 4


def test_a_write_that_did_not_ask_for_the_shared_rows_drops_them(db: Database) -> None:
    """Another write that changes the worker between two messages is never overwritten by a stale copy."""
    now = time.time()

    def retire(conn: Connection) -> None:
        conn.execute(text("UPDATE workers SET is_stale = true WHERE machine_id = '10.0.0.4'"))

    writes: list[tuple[Callable[[Connection], Any], bool]] = [
        (_message(_progress("10.0.0.4", 10), now), True),
        (retire, False),
        (_message(_progress("10.0.0.4", 20), now + 0.001), True),
    ]
    outcomes = _as_one_group(db, writes)
    assert not [o for o in outcomes if isinstance(o, BaseException)]
    old, new = _worker_rows(db, "10.0.0.4")
    assert old["is_stale"] and old["progress"] == 10.0
    assert not new["is_stale"] and new["progress"] == 20.0


def test_a_group_costs_a_handful_of_statements_whatever_its_size(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Rows inserted and rows updated are staged: one statement per table, not two per message."""
    now = time.time()
    machines = [f"10.0.1.{k}" for k in range(8)]
    for machine in machines:
        db.write_sync(_message(_progress(machine, 0), now - 1))
    sent: list[str] = []
    execute = psycopg.Cursor.execute

    def counting(self: psycopg.Cursor[Any], query: Any, *args: Any, **kwargs: Any) -> Any:
        sent.append(str(query))
        return execute(self, query, *args, **kwargs)

    monkeypatch.setattr(psycopg.Cursor, "execute", counting)
    bodies = [
        body for k in range(3) for m in machines for body in (_logs(m, 4, k), _progress(m, 10 * (k + 1)))
    ]
    outcomes = _as_one_group(db, [(_message(b, now + i * 0.001), True) for i, b in enumerate(bodies)])
    monkeypatch.setattr(psycopg.Cursor, "execute", execute)
    assert not [o for o in outcomes if isinstance(o, BaseException)]
    ingest_statements = [sql for sql in sent if "time.sleep" not in sql]
    # The shared read, one INSERT of 96 log lines, one UPDATE of 8 worker rows (and maybe samples).
    assert len(ingest_statements) <= 5, ingest_statements
    assert sum("INSERT INTO log_lines" in sql for sql in ingest_statements) == 1
    for machine in machines:
        (row,) = _worker_rows(db, machine)
        assert row["progress"] == 30.0 and row["warning_count"] == 12
        assert db.read_sync(_messages_of(row["id"])) == [
            f"{machine} line {k}.{j}" for k in range(3) for j in range(4)
        ]


def test_updates_of_one_row_merge_as_the_sequence_would_have_left_it(db: Database) -> None:
    now = time.time()
    db.write_sync(_message(_progress("10.0.0.6", 0), now - 1))
    (row,) = _worker_rows(db, "10.0.0.6")
    worker_id = row["id"]

    def set_label(label: str | None, price: float | None = None) -> Callable[[Connection], None]:
        def write(conn: Connection) -> None:
            values: dict[str, Any] = {"machine_label": label}
            if price is not None:
                values["price_per_hour"] = price
            Raw(conn).update("workers", {"id": worker_id}, values)

        return write

    writes: list[tuple[Callable[[Connection], Any], bool]] = [
        (set_label("a", 1.5), False),
        (set_label("b"), False),
        (set_label(None), False),
        (set_label("c"), False),
    ]
    assert not [o for o in _as_one_group(db, writes) if isinstance(o, BaseException)]
    (row,) = _worker_rows(db, "10.0.0.6")
    assert row["machine_label"] == "c" and row["price_per_hour"] == 1.5
