"""Claims beside each other on PostgreSQL: each takes one row, and only that one is locked."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from goliat_monitor.db.engine import Database
from goliat_monitor.db.queries import assignments, studies
from goliat_monitor.db.queries.common import Clock


@pytest.fixture
def db(pg_url: str) -> Iterator[Database]:
    database = Database(pg_url)
    yield database
    database.close()


def test_a_claim_in_progress_leaves_the_other_assignments_to_other_claims(db: Database) -> None:
    now = time.time()
    db.write_sync(
        lambda conn: studies.create_super_study(
            conn, name="three", description=None, base_config={}, split_configs=[{}, {}, {}], now=now
        )
    )
    clock = Clock(now=now)
    with db.engine.connect() as first, db.engine.connect() as second:
        first.begin()
        second.begin()
        mine = assignments.claim_next(first, "10.0.0.1", None, clock)
        # The first claim's transaction is still open: its lock must cover its own row only.
        theirs = assignments.claim_next(second, "10.0.0.2", None, clock)
        assert mine is not None and theirs is not None
        assert mine.assignment.row["id"] != theirs.assignment.row["id"]
        assert (mine.assignment.row["index"], theirs.assignment.row["index"]) == (0, 1)
        first.commit()
        second.commit()
