"""`--private`: nothing of the campaign is readable without a session or a token, GOLIAT still works.

Deny by default: every route is covered unless it is on the public list or guards itself, so a
route added later (`/metrics`, a new read) is private without anyone remembering to make it so.
"""

from __future__ import annotations

import asyncio
import io
import zipfile
from collections.abc import Callable
from contextlib import closing
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import Depends

from goliat_monitor.bridge import WebGUIBridge
from goliat_monitor.db.queries import accounts
from goliat_monitor.server.app import create_app
from goliat_monitor.server.auth import require_admin
from goliat_monitor.settings import ServerSettings
from tests.accounts import VIEWER, VIEWER_PASSWORD, bearer, private_server, sign_in, with_accounts
from tests.api.helpers import log_batch
from tests.conftest import LiveServer
from tests.goliat_client import multipart

MACHINE = "198.51.100.40"
JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + b"\x00" * 32 + b"\xff\xd9"


def run_goliat_flow(url: str, token: str) -> dict[str, str]:
    """What GOLIAT does through `/t/<token>/` (its client sends no headers): a super study made with
    the admin token, then `goliat worker` and the study's bridge with the worker token."""
    admin = httpx.Client(base_url=f"{url}/t/a-secret", timeout=30)
    goliat = httpx.Client(base_url=f"{url}/t/{token}", timeout=30)
    with admin, goliat:
        body = {"name": "private", "assignments": [{"splitConfig": {"x": 1}, "status": "PENDING"}]}
        created = admin.post("/api/super-studies", json=body)
        assert created.status_code == 200, created.text
        study_id = created.json()["id"]
        (found,) = goliat.get("/api/super-studies", params={"name": "private"}).json()
        (assignment,) = goliat.get(f"/api/super-studies/{found['id']}/assignments").json()
        assert goliat.get(f"/api/assignments/{assignment['id']}").status_code == 200
        claim = goliat.post(f"/api/assignments/{assignment['id']}/claim", json={"machineId": MACHINE})
        assert claim.status_code == 200, claim.text
        assert goliat.post("/api/heartbeat", json={"machineId": MACHINE, "hostname": "vm"}).status_code == 200
        update = {"machineId": MACHINE, "message": log_batch(0, [("hello", "info")]), "timestamp": 1.0}
        assert goliat.post("/api/gui-update", json=update).status_code == 200
        shots, content_type = multipart({"machineId": MACHINE}, [("Timings", JPEG)])
        stored = goliat.post("/api/gui-screenshots", content=shots, headers={"Content-Type": content_type})
        assert stored.status_code == 200, stored.text
        upload = goliat.post(
            f"/api/assignments/{assignment['id']}/results",
            data={"relativePath": "far_field/thelonious/700MHz/x_pos_theta"},
            files=[("files", ("sar.json", b'{"sar": 1}', "application/json"))],
        )
        assert upload.status_code == 200, upload.text
        # The study's GUI bridge (ours, as GOLIAT's would be) with the same prefixed URL.
        bridge = WebGUIBridge(f"{url}/t/{token}", MACHINE)
        bridge.start()
        bridge.enqueue({"type": "status", "message": "from the bridge", "log_type": "info"})
        bridge.stop(timeout=20)
        assert bridge.rejected == 0 and bridge.dropped == 0
        finished = {
            "machineId": MACHINE,
            "message": {"type": "finished", "message": "Study finished successfully"},
        }
        assert goliat.post("/api/gui-update", json={**finished, "timestamp": 2.0}).status_code == 200
        worker_id = admin.get("/api/workers").json()[0]["id"]
    return {"study": study_id, "assignment": assignment["id"], "worker": worker_id}


def campaign_urls(ids: dict[str, str]) -> list[str]:
    study, assignment, worker = ids["study"], ids["assignment"], ids["worker"]
    path = "far_field/thelonious/700MHz/x_pos_theta/sar.json"
    return [
        "/",
        "/workers",
        f"/workers/{worker}",
        "/super-studies",
        f"/super-studies/{study}",
        "/audit",
        "/no-such-page",
        "/api/workers",
        f"/api/workers/{worker}",
        f"/api/workers/{worker}/logs",
        f"/api/workers/{worker}/samples",
        f"/api/workers/{worker}/timings",
        f"/api/workers/{worker}/screenshots/Timings",
        "/api/super-studies",
        f"/api/super-studies/{study}",
        f"/api/super-studies/{study}/assignments",
        f"/api/assignments/{assignment}",
        f"/api/super-studies/{study}/results/list",
        f"/api/super-studies/{study}/results/file?path={path}",
        f"/api/super-studies/{study}/results/download",
        f"/api/assignments/{assignment}/results/list",
        f"/api/assignments/{assignment}/results/file?path={path}",
        f"/api/assignments/{assignment}/results/download",
        f"/api/super-studies/{study}/simulations",
        f"/api/super-studies/{study}/simulations/detail?key=x",
        f"/api/super-studies/{study}/results/table",
        f"/api/super-studies/{study}/results/table?format=csv",
        f"/api/super-studies/{study}/results/compare?with={study}",
        f"/super-studies/{study}/compare?with={study}",
        "/search",
        "/api/logs?q=line",
        "/notifications",
        "/api/notifications",
        "/api/notifications/targets",
        "/api/storage",
        "/api/events",
        "/api/audit",
        "/api/sessions",
        "/metrics",
        "/api/no-such-route",
        "/openapi.json",
        "/docs",
    ]


def assert_refused(client: httpx.Client, url: str) -> None:
    response = client.get(url)
    if "/api/" in url or url.endswith("/metrics"):
        assert response.status_code == 401, (url, response.status_code, response.text[:200])
        assert set(response.json()) == {"error"}
    else:
        assert response.status_code == 303, (url, response.status_code)
        assert response.headers["location"].startswith("/login?next=")


@pytest.mark.parametrize("worker_token", ["w-secret", "gmt_worker-secret"], ids=["env-token", "api-token"])
def test_goliat_works_through_the_prefix_and_nothing_is_readable_without_a_credential(
    make_server: Callable[..., LiveServer], worker_token: str
) -> None:
    server = private_server(make_server, worker_token="w-secret", admin_token="a-secret")
    ids = run_goliat_flow(server.url, worker_token)
    with httpx.Client(base_url=server.url, timeout=30) as anonymous:
        for url in campaign_urls(ids):
            assert_refused(anonymous, url)
        # The worker's own token reads what `goliat worker` reads, and nothing else of the campaign.
        worker_reads = {
            "/api/super-studies",
            f"/api/super-studies/{ids['study']}",
            f"/api/super-studies/{ids['study']}/assignments",
            f"/api/assignments/{ids['assignment']}",
        }
        for url in campaign_urls(ids):
            if url.startswith("/api/") and url not in worker_reads:
                assert_refused(anonymous, f"/t/{worker_token}{url}")
        assert anonymous.get("/api/health").status_code == 200
        assert anonymous.get("/login").status_code == 200
        login = anonymous.get("/login").text
        static = login.split('rel="stylesheet" href="', 1)[1].split('"', 1)[0]
        assert anonymous.get(static).status_code == 200
    # With a session, all of it is there: the upload, the screenshot, the log line.
    viewer, _ = sign_in(server, VIEWER, VIEWER_PASSWORD)
    with closing(viewer):
        zipped = viewer.get(f"/api/assignments/{ids['assignment']}/results/download")
        assert zipped.status_code == 200
        assert zipfile.ZipFile(io.BytesIO(zipped.content)).namelist()
        assert viewer.get(f"/api/workers/{ids['worker']}/screenshots/Timings").content == JPEG
        detail = viewer.get(f"/api/workers/{ids['worker']}").json()
        assert [line["message"] for line in detail["guiState"]["logMessages"]] == ["hello", "from the bridge"]
        assert viewer.get(f"/super-studies/{ids['study']}").status_code == 200


def test_the_login_redirect_keeps_the_page_and_its_query(private: LiveServer) -> None:
    response = private.client.get("/?status=running&q=gpu")
    assert response.status_code == 303
    assert response.headers["location"] == "/login?next=%2F%3Fstatus%3Drunning%26q%3Dgpu"
    signed = private.client.post(
        "/login", data={"username": VIEWER, "password": VIEWER_PASSWORD, "next": "/?status=running&q=gpu"}
    )
    assert signed.status_code == 303 and signed.headers["location"] == "/?status=running&q=gpu"
    evil = private.client.post(
        "/login", data={"username": VIEWER, "password": VIEWER_PASSWORD, "next": "//evil"}
    )
    assert evil.headers["location"] == "/"


@pytest.fixture
def private(make_server: Callable[..., LiveServer]) -> LiveServer:
    return private_server(make_server)


def test_the_hot_path_checks_an_api_token_without_reading_the_database(private: LiveServer) -> None:
    """A worker's API token is looked up once, then served from the in-process cache for a few
    seconds: with its row gone, the next calls still pass until the cache forgets it."""
    update = {"machineId": MACHINE, "message": {"type": "overall_progress", "current": 1, "total": 2}}
    url = "/t/gmt_worker-secret/api/gui-update"
    assert private.client.post(url, json={**update, "timestamp": 1.0}).status_code == 200
    private.context.db.write_sync(lambda conn: accounts.revoke_token(conn, "worker-token"))
    assert private.client.post(url, json={**update, "timestamp": 2.0}).status_code == 200
    private.context.token_cache.clear()
    assert private.client.post(url, json={**update, "timestamp": 3.0}).status_code == 401


def test_a_route_added_later_is_private_by_default(backend: str | None, tmp_path: Path) -> None:
    """Another module's new read and new admin action need nothing to be covered (`/metrics`, which
    guards itself, is tested in tests/api/test_metrics.py)."""
    settings = ServerSettings(data_dir=tmp_path / "data", database_url=backend, private=True)
    with_accounts(settings)
    app = create_app(settings)

    async def metrics() -> dict[str, Any]:
        return {"secret": "campaign figures"}

    async def new_admin_action() -> dict[str, Any]:
        return {"done": True}

    app.add_api_route("/api/new-read", metrics)
    app.add_api_route("/new-page", metrics)
    app.add_api_route(
        "/api/new-action", new_admin_action, methods=["POST"], dependencies=[Depends(require_admin)]
    )

    async def check() -> None:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            assert (await client.get("/api/new-read")).status_code == 401
            assert (await client.get("/new-page")).status_code == 303
            assert (await client.get("/api/new-read", headers=bearer("viewer"))).json() == {
                "secret": "campaign figures"
            }
            assert (await client.post("/api/new-action")).status_code == 401
            assert (await client.post("/api/new-action", headers=bearer("viewer"))).status_code == 403
            assert (await client.post("/api/new-action", headers=bearer("admin"))).status_code == 200

    try:
        asyncio.run(check())
    finally:
        app.state.context.db.close()
