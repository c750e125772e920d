"""What a GOLIAT message costs must not grow with history: every statement it runs uses an index.

Every SQLite connection records the statements a whole GOLIAT run makes (heartbeats, claim,
progress, log batches, legacy status lines, the agent's timings and disk figures, finished, and
the reads of a worker page's charts and Timings tabs), and each is then explained: a full scan
of any table would make every message slower as a campaign goes on.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from sqlalchemy import event, text
from sqlalchemy.pool import Pool

from goliat_monitor.db.queries import assignments, ingest
from goliat_monitor.db.queries.common import Changes
from goliat_monitor.server import notify
from tests.api.helpers import MACHINE, create_study, gui, heartbeat, log_batch
from tests.conftest import LiveServer

WRITE_STATEMENT = re.compile(r"^\s*(SELECT|UPDATE|DELETE|INSERT|WITH)\b", re.IGNORECASE)
# What FTS5 itself runs on the log index's shadow tables (reading its one-row config when a
# connection first touches the index, e.g. the background indexer's): SQLite's, not a message's.
FTS5_INTERNAL = re.compile(r"'main'\.'log_search_\w+'")


class Recorder:
    """Every SQLite connection opened while installed traces its statements; kept while `on`."""

    def __init__(self) -> None:
        self.statements: list[str] = []
        self.on = False

    def _trace(self, sql: str) -> None:
        if self.on:
            self.statements.append(sql)

    def __call__(self, dbapi_connection: Any, _record: Any) -> None:
        if isinstance(dbapi_connection, sqlite3.Connection):
            dbapi_connection.set_trace_callback(self._trace)


@pytest.fixture
def recorder() -> Iterator[Recorder]:
    recording = Recorder()
    event.listen(Pool, "connect", recording)
    yield recording
    event.remove(Pool, "connect", recording)


def full_scans(server: LiveServer, statement: str) -> list[str]:
    def explain(conn: Any) -> list[str]:
        rows = conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}").all()
        return [row[-1] for row in rows if re.match(r"SCAN (?!CONSTANT ROW|\d+ CONSTANT ROWS)", row[-1])]

    return server.context.db.read_sync(explain)


@pytest.fixture
def no_notification_rounds(monkeypatch: pytest.MonkeyPatch) -> None:
    """The notification loops' own queries (a scan of the live workers, say) are not GOLIAT's:
    with the tests' 0.2 s rounds one would often land among the recorded statements."""
    monkeypatch.setattr(notify, "POLL_S", 3600.0)
    monkeypatch.setattr(notify, "DETECT_S", 3600.0)


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
@pytest.mark.usefixtures("no_notification_rounds")
def test_a_goliat_run_never_scans_a_table(make_server: Callable[..., LiveServer], recorder: Recorder) -> None:
    server = make_server()  # after the recorder: its connections all trace
    study = create_study(server.client, count=2)
    heartbeat(server.client)  # a first message creates the session; the rest find it
    worker_id = server.client.get("/api/workers").json()[0]["id"]
    recorder.on = True
    try:
        assert heartbeat(server.client, gpuName="RTX", cpuCores=8).status_code == 200
        assert (
            heartbeat(server.client, cpuPercent=20.0, diskReadMBps=1.5, pageFaultsPerSec=9.0).status_code
            == 200
        )
        claimed = server.client.post(
            f"/api/assignments/{study['assignments'][0]['id']}/claim", json={"machineId": MACHINE}
        )
        assert claimed.status_code == 200
        for step in range(3):
            server.clock.advance(2)
            assert (
                gui(server.client, {"type": "overall_progress", "current": step, "total": 10}).status_code
                == 200
            )
            assert (
                gui(
                    server.client, {"type": "stage_progress", "name": "Run", "current": step, "total": 5}
                ).status_code
                == 200
            )
            assert (
                gui(
                    server.client, log_batch(step, [("a line", "info"), ("a warning", "warning")])
                ).status_code
                == 200
            )
        assert (
            gui(
                server.client, {"type": "status", "message": "legacy line", "log_type": "progress"}
            ).status_code
            == 200
        )
        for number in (1, 2, 2):  # "Simulation N/M": the first finishes when the second starts
            counter = {"type": "simulation_details", "simulation_count": number, "total_simulations": 4}
            assert gui(server.client, {**counter, "current_case": f"case {number}"}).status_code == 200
        timing = {
            "type": "timing",
            "phase": "run",
            "subtask": "isolve_execution",
            "seconds": 8.5,
            "simulation": 1,
        }
        assert gui(server.client, timing).status_code == 200
        assert server.client.get(f"/api/workers/{worker_id}/timings").json()["sampleCount"] == 1
        assert gui(server.client, {"type": "eta", "seconds": 120}).status_code == 200
        assert gui(server.client, log_batch(0, [("a new run starts", "info")])).status_code == 200
        assert gui(server.client, {"type": "finished", "message": "done"}).status_code == 200
        # Idle: the timings shown are those of the run with the newest timing.
        assert server.client.get(f"/api/workers/{worker_id}/timings").json()["sampleCount"] == 1
        assert server.client.get(f"/api/workers/{worker_id}/samples").status_code == 200
        assert heartbeat(server.client).status_code == 200
        # Back after being offline: a new session, which takes over the old session's assignments.
        server.clock.advance(server.settings.offline_after_s * 3)
        assert heartbeat(server.client).status_code == 200
        # An agent's message (with a messageId, kept a day for idempotency), then housekeeping.
        assert (
            gui(
                server.client, {"type": "overall_progress", "current": 5, "total": 10}, messageId="m-1"
            ).status_code
            == 200
        )
        second = study["assignments"][1]["id"]
        claimed = server.client.post(f"/api/assignments/{second}/claim", json={"machineId": MACHINE})
        assert claimed.status_code == 200
        server.clock.advance(server.settings.lease_timeout_s * 2)  # ... and then silence
        clock = server.context.clock()
        db = server.context.db
        assert db.write_sync(lambda conn: assignments.requeue_expired_leases(conn, clock, Changes())) == 1
        forgotten = db.write_sync(lambda conn: ingest.forget_old_message_ids(conn, clock.now + 1))
        assert forgotten == 1
    finally:
        recorder.on = False

    explained = [s for s in recorder.statements if WRITE_STATEMENT.match(s) and not FTS5_INTERNAL.search(s)]
    assert len(explained) > 30, recorder.statements  # the recording really saw the run
    assert any("simulation_runs" in s for s in explained)  # the simulation map's marks too
    scans = {statement: found for statement in explained if (found := full_scans(server, statement))}
    assert scans == {}
    stored = server.context.db.read_sync(
        lambda conn: conn.execute(text("SELECT count(*) FROM log_lines")).scalar()
    )
    assert stored == 8
