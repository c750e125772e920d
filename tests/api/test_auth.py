"""Optional shared secrets, accepted as Bearer, X-API-Key or a /t/<token>/ URL prefix."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.api.helpers import create_study
from tests.conftest import LiveServer

HB = {"machineId": "203.0.113.1"}


@pytest.fixture
def locked(make_server: Callable[..., LiveServer]) -> LiveServer:
    return make_server(worker_token="w-secret", admin_token="a-secret")


def test_ingest_needs_the_worker_token(locked: LiveServer) -> None:
    c = locked.client
    assert c.post("/api/heartbeat", json=HB).status_code == 401
    assert c.post("/api/heartbeat", json=HB, headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert c.post("/api/heartbeat", json=HB, headers={"Authorization": "Bearer w-secret"}).status_code == 200
    assert c.post("/api/heartbeat", json=HB, headers={"X-API-Key": "w-secret"}).status_code == 200
    assert c.post("/t/w-secret/api/heartbeat", json=HB).status_code == 200
    assert c.post("/t/wrong/api/heartbeat", json=HB).status_code == 401
    assert c.post("/t/a-secret/api/heartbeat", json=HB).status_code == 200  # admin may do anything


def test_refused_calls_change_nothing(locked: LiveServer) -> None:
    locked.client.post("/api/heartbeat", json=HB)
    assert locked.client.get("/api/workers").json() == []


def test_creating_and_deleting_studies_needs_the_admin_token(locked: LiveServer) -> None:
    body = {"name": "s", "assignments": [{"splitConfig": {}, "status": "PENDING"}]}
    c = locked.client
    assert c.post("/api/super-studies", json=body).status_code == 401
    assert c.post("/t/w-secret/api/super-studies", json=body).status_code == 401
    created = c.post("/t/a-secret/api/super-studies", json=body)
    assert created.status_code == 200
    # GOLIAT's worker flow works through the worker-token prefix.
    study_id = created.json()["id"]
    found = c.get("/t/w-secret/api/super-studies", params={"name": "s"}).json()
    assignment_id = found[0]["assignments"][0]["id"]
    assert c.post(f"/t/w-secret/api/assignments/{assignment_id}/claim", json=HB).status_code == 200
    assert c.delete(f"/api/super-studies/{study_id}", headers={"X-API-Key": "w-secret"}).status_code == 401
    assert c.delete(f"/api/super-studies/{study_id}", headers={"X-API-Key": "a-secret"}).status_code == 200


def test_without_tokens_the_server_is_open(server: LiveServer) -> None:
    assert server.client.post("/api/heartbeat", json=HB).status_code == 200
    create_study(server.client)
