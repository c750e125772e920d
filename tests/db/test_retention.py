"""Retention: old data goes per kind, in bounded rounds, never an unfinished study's, and the log
search index follows the lines. On both databases, through a real server."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, insert, select

from goliat_monitor.db.queries import retention
from goliat_monitor.db.tables import (
    log_lines,
    received_messages,
    worker_messages,
    worker_samples,
)
from goliat_monitor.domain.retention import DAY_S, Kind, RetentionPolicy
from goliat_monitor.pruning import Pruner, count
from goliat_monitor.server import services
from tests.api.helpers import create_study, gui, heartbeat, log_batch
from tests.conftest import LiveServer
from tests.db.test_query_plans import FTS5_INTERNAL, WRITE_STATEMENT, Recorder, full_scans, recorder  # noqa: F401 - a fixture

KEEP = {f"keep_{kind.value}_days": 7.0 for kind in Kind}
GROWING = ("log_lines", "worker_samples", "worker_messages", "assignment_events", "received_messages")


def worker_id(server: LiveServer, machine: str) -> str:
    workers = server.client.get("/api/workers", params={"includeStale": "true"}).json()
    return next(str(w["id"]) for w in workers if w["machineId"] == machine)


def say(server: LiveServer, machine: str, sequence: int, text_: str, **extra: Any) -> None:
    batch = log_batch(sequence, [(f"{text_} {n}", "info") for n in range(3)], at=server.clock.now)
    assert gui(server.client, batch, machine=machine, **extra).status_code == 200


def progress(server: LiveServer, machine: str, current: int) -> None:
    message = {"type": "overall_progress", "current": current, "total": 100}
    assert gui(server.client, message, machine=machine).status_code == 200


def campaign(server: LiveServer) -> dict[str, str]:
    """Twenty days ago: a study that finished (with a result file), a study still running, a
    machine outside any study, agent messages with ids. Now: a fresh machine. Returns ids."""
    server.clock.advance(-20 * DAY_S)
    done = create_study(server.client, name="done", count=1)
    running = create_study(server.client, name="running", count=2)
    ids = {"done": done["id"], "running": running["id"], "done_assignment": done["assignments"][0]["id"]}
    for machine, assignment in (
        ("10.0.0.1", done["assignments"][0]),
        ("10.0.0.2", running["assignments"][0]),
    ):
        heartbeat(server.client, machine=machine)
        claim = server.client.post(f"/api/assignments/{assignment['id']}/claim", json={"machineId": machine})
        assert claim.status_code == 200
    for step, machine in enumerate(("10.0.0.1", "10.0.0.2", "10.0.0.3")):
        heartbeat(server.client, machine=machine)
        say(server, machine, 0, f"old line of {machine}")
        progress(server, machine, 10)
        server.clock.advance(2)
        progress(server, machine, 20 + step)
    uploaded = server.client.post(
        f"/api/assignments/{ids['done_assignment']}/results",
        data={"relativePath": "far_field/thelonious/700MHz/x"},
        files=[("files", ("sar_results.json", b"{}", "application/json"))],
    )
    assert uploaded.status_code == 200, uploaded.text
    finished = gui(
        server.client, {"type": "finished", "message": "Study finished successfully"}, machine="10.0.0.1"
    )
    assert finished.status_code == 200
    assert server.client.get(f"/api/super-studies/{ids['done']}").json()["status"] == "COMPLETED"
    say(server, "10.0.0.3", 1, "old agent line", messageId="old-message")

    server.clock.advance(20 * DAY_S)
    heartbeat(server.client, machine="10.0.0.4")
    say(server, "10.0.0.4", 0, "fresh line", messageId="fresh-message")
    progress(server, "10.0.0.4", 5)
    for machine in ("10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.4"):
        ids[machine] = worker_id(server, machine)
    return ids


def by_worker(server: LiveServer, table: Any) -> dict[str, int]:
    def read(conn: Any) -> dict[str, int]:
        rows = conn.execute(select(table.c.worker_id, func.count()).group_by(table.c.worker_id)).all()
        return {row[0]: row[1] for row in rows}

    return server.context.db.read_sync(read)


def messages(server: LiveServer, query: str) -> list[str]:
    found = server.client.get("/api/logs", params={"q": query, "limit": 500})
    assert found.status_code == 200, found.text
    return sorted(hit["message"] for hit in found.json()["logs"])


def check_sqlite_index(server: LiveServer) -> None:
    """The index holds exactly the stored lines: once what is left is indexed, FTS5's own check
    against `log_lines` (rank 1: against the content too) finds no entry of a deleted line."""
    if server.context.db.is_sqlite:
        from goliat_monitor.db import search_index

        search_index.index_all(server.context.db.engine)
        server.context.db.write_sync(
            lambda conn: conn.exec_driver_sql(
                "INSERT INTO log_search(log_search, rank) VALUES ('integrity-check', 1)"
            )
        )


def test_a_pass_prunes_each_kind_and_keeps_what_an_unfinished_study_holds(
    make_server: Callable[..., LiveServer],
) -> None:
    server = make_server(**KEEP)
    ids = campaign(server)
    if server.context.db.is_sqlite:  # the lines the indexer has not reached yet are the case below
        from goliat_monitor.db import search_index

        search_index.index_all(server.context.db.engine)
    artifacts = server.settings.artifacts_dir / "results" / ids["done_assignment"]
    assert artifacts.is_dir()
    assert len(messages(server, "old line of")) == 9
    before_samples = by_worker(server, worker_samples)
    assert before_samples[ids["10.0.0.1"]] == 2 and before_samples[ids["10.0.0.2"]] == 2

    totals = server.run(services.prune_old_data(server.context))

    # Log lines: the finished study's worker and the study-less machine lose theirs; the running
    # study's worker keeps its own, and the fresh machine's lines are young.
    assert messages(server, "old line of") == [f"old line of 10.0.0.2 {n}" for n in range(3)]
    assert messages(server, "old agent line") == []
    assert messages(server, "fresh line") == [f"fresh line {n}" for n in range(3)]
    check_sqlite_index(server)
    lines = by_worker(server, log_lines)
    assert lines == {ids["10.0.0.2"]: 3, ids["10.0.0.4"]: 3}
    # Samples go by worker; the running study's worker keeps its charts.
    samples = by_worker(server, worker_samples)
    assert samples == {ids["10.0.0.2"]: 2, ids["10.0.0.4"]: 1}
    # Message ids: the old one is forgotten, the fresh one kept.
    kept_ids = server.context.db.read_sync(
        lambda conn: conn.execute(select(received_messages.c.message_id)).scalars().all()
    )
    assert kept_ids == ["fresh-message"]
    # The finished study is gone with its result files; the running one is whole.
    assert server.client.get(f"/api/super-studies/{ids['done']}").status_code == 404
    assert not artifacts.exists()
    running = server.client.get(f"/api/super-studies/{ids['running']}").json()
    assert running["status"] in ("RUNNING", "PENDING") and running["events"]
    # Events: the running study's history stays, the finished machine's kept messages go.
    assert set(by_worker(server, worker_messages)) <= {ids["10.0.0.2"], ids["10.0.0.4"]}
    assert totals[Kind.LOGS] == 6 + 3 and totals[Kind.SAMPLES] == 4 and totals[Kind.MESSAGE_IDS] == 1
    assert totals[Kind.STUDIES] == 1 and totals[Kind.EVENTS] >= 1

    # A second pass finds nothing more.
    again = server.run(services.prune_old_data(server.context))
    assert set(again.values()) == {0}


async def stop_log_indexer() -> bool:
    """Cancel the server's SQLite log indexer (run on the server's loop); False if it has none."""
    tasks = [task for task in asyncio.all_tasks() if task.get_name() == "log-indexer"]
    for task in tasks:
        task.cancel()
    return bool(tasks)


def test_lines_the_indexer_has_not_reached_are_pruned_too(make_server: Callable[..., LiveServer]) -> None:
    """On SQLite, lines above the index's mark are not in the FTS5 table: deleting them must
    leave the index whole; on PostgreSQL the GIN index is always current."""
    server = make_server(keep_logs_days=1.0)
    assert server.run(stop_log_indexer()) == server.context.db.is_sqlite
    server.clock.advance(-3 * DAY_S)
    heartbeat(server.client, machine="10.0.1.1")
    say(server, "10.0.1.1", 0, "unindexed old line")
    say(server, "10.0.1.1", 1, "unindexed young line")
    server.clock.advance(3 * DAY_S)
    say(server, "10.0.1.1", 2, "unindexed young line")
    if server.context.db.is_sqlite:
        from goliat_monitor.db import search_index

        top = server.context.db.read_sync(
            lambda conn: int(conn.execute(select(func.max(log_lines.c.id))).scalar_one())
        )
        assert server.context.db.read_sync(search_index.indexed_through) < top
    assert server.run(services.prune_old_data(server.context))[Kind.LOGS] == 6
    assert messages(server, "unindexed old line") == []
    assert len(messages(server, "unindexed young line")) == 3
    check_sqlite_index(server)


def test_dry_run_counts_what_a_pass_then_deletes(make_server: Callable[..., LiveServer]) -> None:
    server = make_server(**KEEP)
    campaign(server)
    engine, policy, now = server.context.db.engine, server.settings.retention, server.clock.now
    counted = count(engine, policy, now)
    assert count(engine, policy, now) == counted  # counting deletes nothing
    assert server.run(services.prune_old_data(server.context)) == counted


def test_rounds_are_bounded_and_a_policy_of_zero_keeps_everything(
    make_server: Callable[..., LiveServer], monkeypatch: pytest.MonkeyPatch
) -> None:
    server = make_server()
    heartbeat(server.client, machine="10.0.2.1")
    worker = worker_id(server, "10.0.2.1")
    old = server.clock.now - 10 * DAY_S
    rows = [{"worker_id": worker, "ts": old + n, "progress": 1.0} for n in range(95)]
    rows += [{"worker_id": worker, "ts": server.clock.now, "progress": 2.0}]
    server.context.db.write_sync(lambda conn: conn.execute(insert(worker_samples), rows))
    engine = server.context.db.engine

    forever = RetentionPolicy(dict.fromkeys(Kind, 0.0))
    with Pruner(engine, forever, server.clock.now) as pruner:
        assert list(pruner.rounds()) == []

    monkeypatch.setattr(retention, "ROUND_ROWS", 10)
    policy = RetentionPolicy({Kind.SAMPLES: 1.0})
    with Pruner(engine, policy, server.clock.now) as pruner:
        steps = list(pruner.rounds())
    assert all(step.count <= 10 for step in steps) and sum(step.count for step in steps) == 95
    assert len(steps) == 10
    assert by_worker(server, worker_samples) == {worker: 1}


def test_message_ids_drain_in_several_rounds(
    make_server: Callable[..., LiveServer], monkeypatch: pytest.MonkeyPatch
) -> None:
    """After downtime a backlog of ids is due at once: rounds repeat until it is drained."""
    monkeypatch.setattr(retention, "ROUND_ROWS", 10)
    server = make_server(keep_message_ids_days=1.0)
    day_ago = server.clock.now - DAY_S
    rows = [{"machine_id": "m", "message_id": f"old{n}", "received_at": day_ago - 1 - n} for n in range(25)]
    rows.append({"machine_id": "m", "message_id": "fresh", "received_at": day_ago + 60})
    server.context.db.write_sync(lambda conn: conn.execute(insert(received_messages), rows))

    assert server.run(services.prune_old_data(server.context)) == {Kind.MESSAGE_IDS: 25}
    left = server.context.db.read_sync(
        lambda conn: conn.execute(select(received_messages.c.message_id)).scalars().all()
    )
    assert left == ["fresh"]


def test_a_study_retried_after_the_pass_began_is_not_deleted(make_server: Callable[..., LiveServer]) -> None:
    server = make_server(keep_studies_days=1.0)
    server.clock.advance(-3 * DAY_S)
    study = create_study(server.client, name="failed", count=1, maxAttempts=1)
    assignment = study["assignments"][0]["id"]
    server.client.post(f"/api/assignments/{assignment}/claim", json={"machineId": "10.0.3.1"})
    gui(server.client, {"type": "finished", "message": "Study finished with errors"}, machine="10.0.3.1")
    assert server.client.get(f"/api/super-studies/{study['id']}").json()["status"] == "FAILED"
    server.clock.advance(3 * DAY_S)
    cutoff = server.clock.now - DAY_S
    engine = server.context.db.engine
    with engine.connect() as conn:
        assert retention.finished_studies(conn, cutoff) == [study["id"]]
    # Someone retries it: unfinished again, so the round that would delete it leaves it.
    assert server.client.post(f"/api/assignments/{assignment}/retry").status_code == 200
    with engine.begin() as conn:
        assert retention.delete_finished_study(conn, study["id"], cutoff) is None
    assert server.client.get(f"/api/super-studies/{study['id']}").status_code == 200


@pytest.mark.parametrize("backend", ["postgres"], indirect=True)
def test_one_replica_prunes_at_a_time(make_server: Callable[..., LiveServer]) -> None:
    server = make_server()
    engine = server.context.db.engine
    policy = RetentionPolicy({Kind.SAMPLES: 1.0})
    with Pruner(engine, policy, server.clock.now) as first:
        assert first.locked
        with Pruner(engine, policy, server.clock.now) as second:
            assert not second.locked and list(second.rounds()) == []
    with Pruner(engine, policy, server.clock.now) as after:
        assert after.locked  # released when the first pass ended


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_a_pass_never_scans_a_growing_table(
    make_server: Callable[..., LiveServer],
    recorder: Recorder,  # noqa: F811 - the fixture imported above
) -> None:
    server = make_server(**KEEP)
    campaign(server)
    recorder.on = True
    try:
        server.run(services.prune_old_data(server.context))
    finally:
        recorder.on = False
    explained = [s for s in recorder.statements if WRITE_STATEMENT.match(s) and not FTS5_INTERNAL.search(s)]
    assert any(s.lstrip().upper().startswith("DELETE FROM LOG_LINES") for s in explained), explained
    scans = {
        s: found
        for s in explained
        if (found := [f for f in full_scans(server, s) if f.split()[1] in GROWING])
    }
    assert scans == {}


def test_prune_command_says_what_goes_then_prunes(
    make_server: Callable[..., LiveServer], tmp_path: Path
) -> None:
    server = make_server(**KEEP)
    campaign(server)
    settings = server.settings
    env = {**os.environ, "GOLIAT_MONITOR_DATA_DIR": str(settings.data_dir)}
    env.pop("GOLIAT_MONITOR_DATABASE_URL", None)
    if settings.database_url:
        env["GOLIAT_MONITOR_DATABASE_URL"] = settings.database_url
    for kind in Kind:
        env[f"GOLIAT_MONITOR_KEEP_{kind.value.upper()}_DAYS"] = "7"
    # The server's clock is 20 days after the campaign began; the command uses the real clock.
    expected = count(server.context.db.engine, settings.retention, server.clock.now)

    def prune(*args: str) -> dict[str, Any]:
        done = subprocess.run(
            [sys.executable, "-m", "goliat_monitor", "prune", "--json", *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr
        return dict(json.loads(done.stdout))

    dry = prune("--dry-run")
    assert dry == {"dryRun": True, "counts": {kind.value: n for kind, n in expected.items()}}
    assert count(server.context.db.engine, settings.retention, server.clock.now) == expected
    done = prune()
    assert done == {"dryRun": False, "counts": {kind.value: n for kind, n in expected.items()}}
    assert set(count(server.context.db.engine, settings.retention, server.clock.now).values()) == {0}
    check_sqlite_index(server)
