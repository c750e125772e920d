"""Several server replicas share one PostgreSQL database: state and live events reach all of them."""

from __future__ import annotations

from pathlib import Path

import httpx
import psycopg
import pytest

from goliat_monitor.server.fanout import CHANNEL
from goliat_monitor.settings import ServerSettings
from tests.api.helpers import create_study, gui
from tests.conftest import start_server
from tests.support import wait_for


def wait_for_listeners(database_url: str, count: int) -> None:
    """Until `count` connections to the database have run `LISTEN`: the replicas hear each other."""
    url = database_url.replace("postgresql+psycopg://", "postgresql://", 1)
    with psycopg.connect(url, autocommit=True) as conn:

        def listening() -> bool:
            row = conn.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND query = %s",
                (f"LISTEN {CHANNEL}",),
            ).fetchone()
            return row is not None and row[0] >= count

        wait_for(listening, timeout=10, what=f"{count} replicas to LISTEN")


@pytest.mark.parametrize("backend", ["postgres"], indirect=True)
def test_two_replicas_share_state_and_events(backend: str, tmp_path: Path) -> None:
    shared = tmp_path / "artifacts-shared"
    url_a, _app_a, stop_a = start_server(ServerSettings(data_dir=shared, database_url=backend))
    url_b, app_b, stop_b = start_server(ServerSettings(data_dir=shared, database_url=backend))
    try:
        with httpx.Client(base_url=url_a) as a, httpx.Client(base_url=url_b) as b:
            wait_for_listeners(backend, 2)
            study = create_study(a, count=2)
            claimed = b.post(
                f"/api/assignments/{study['assignments'][0]['id']}/claim", json={"machineId": "m1"}
            )
            assert claimed.status_code == 200
            assert (
                a.post(
                    f"/api/assignments/{study['assignments'][0]['id']}/claim", json={"machineId": "m2"}
                ).status_code
                == 409
            )
            assert (
                gui(a, {"type": "overall_progress", "current": 1, "total": 2}, machine="m1").status_code
                == 200
            )
            worker_id = b.get("/api/workers").json()[0]["id"]
            events_b = app_b.state.context.events
            wait_for(
                lambda: [
                    e for e in events_b.since(0) or [] if e.kind == "worker" and e.data.get("id") == worker_id
                ],
                timeout=10,
                what="replica B to hear of the worker update made through replica A",
            )
    finally:
        stop_a()
        stop_b()
