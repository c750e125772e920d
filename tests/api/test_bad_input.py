"""Bad input gets a clear 4xx JSON error and changes nothing; no body of any shape yields a 5xx."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Connection, func, select

from goliat_monitor.db.tables import log_lines, workers
from tests.conftest import LiveServer

ENDPOINTS = ["/api/heartbeat", "/api/gui-update", "/api/super-studies", "/api/assignments/x/claim"]


def counts(server: LiveServer) -> tuple[int, int]:
    def read(conn: Connection) -> tuple[int, int]:
        return (
            conn.execute(select(func.count()).select_from(workers)).scalar_one(),
            conn.execute(select(func.count()).select_from(log_lines)).scalar_one(),
        )

    return server.context.db.read_sync(read)


@pytest.mark.parametrize(
    ("path", "body", "status"),
    [
        ("/api/gui-update", b"{not json", 400),
        ("/api/gui-update", b'{"message": {"type": "overall_progress", "current": 1, "total": 2}}', 422),
        (
            "/api/gui-update",
            b'{"machineId": "m", "message": {"type": "overall_progress", "current": "abc", "total": 2}}',
            422,
        ),
        (
            "/api/gui-update",
            b'{"machineId": "m", "message": {"type": "overall_progress", "current": NaN, "total": 2}}',
            422,
        ),
        ("/api/gui-update", b'{"machineId": "m", "message": {"type": "log_batch", "logs": "nope"}}', 422),
        (
            "/api/gui-update",
            b'{"machineId": "m", "message": {"type": "log_batch", "logs": [{"message": 5}]}}',
            422,
        ),
        ("/api/gui-update", b'{"machineId": "m", "message": "text"}', 422),
        ("/api/gui-update", b'{"machineId": "m", "message": {}}', 422),
        ("/api/gui-update", b"[]", 422),
        ("/api/heartbeat", b"{}", 422),
        ("/api/heartbeat", b'{"machineId": ""}', 422),
        ("/api/heartbeat", b'{"machineId": "m", "cpuCores": "many"}', 422),
        ("/api/super-studies", b'{"name": "x"}', 422),
        ("/api/super-studies", b'{"name": "x", "assignments": [{"status": "PENDING"}]}', 422),
    ],
)
def test_bad_bodies_get_a_4xx_json_error_and_change_nothing(
    server: LiveServer, path: str, body: bytes, status: int
) -> None:
    response = server.client.post(path, content=body, headers={"content-type": "application/json"})
    assert response.status_code == status, response.text
    assert isinstance(response.json()["error"], str) and response.json()["error"]
    assert counts(server) == (0, 0)
    assert server.client.get("/api/super-studies").json() == []


@pytest.mark.parametrize("path", ["/api/heartbeat", "/api/gui-update", "/api/gui-updates"])
@pytest.mark.parametrize("content_type", [None, "text/plain", "application/x-www-form-urlencoded"])
def test_ingest_bodies_must_be_declared_json(server: LiveServer, path: str, content_type: str | None) -> None:
    """A browser's cross-site form post (no preflight) cannot feed a worker's log."""
    body = json.dumps({"machineId": "m", "message": {"type": "status", "message": "hi"}})
    headers = {"content-type": content_type} if content_type else {}
    response = server.client.post(path, content=body, headers=headers)
    if content_type is None:
        # httpx sends no Content-Type for raw content; the refusal must be the same.
        assert "content-type" not in response.request.headers
    assert response.status_code == 415, response.text
    assert response.json() == {"error": "Content-Type must be application/json"}
    assert counts(server) == (0, 0)
    ok = server.client.post(path, content=body, headers={"content-type": "application/json; charset=utf-8"})
    # The same body declared as JSON gets past the media type check (the batch call wants `updates`).
    assert ok.status_code == (422 if path == "/api/gui-updates" else 200), ok.text


def test_empty_ingest_body_is_malformed_json(server: LiveServer) -> None:
    response = server.client.post(
        "/api/gui-update", content=b"", headers={"content-type": "application/json"}
    )
    assert response.status_code == 400
    assert response.json() == {"error": "Malformed JSON body"}


def test_huge_strings_are_refused(server: LiveServer) -> None:
    huge = "x" * 100_000
    response = server.client.post(
        "/api/gui-update", json={"machineId": huge, "message": {"type": "status", "message": "m"}}
    )
    assert response.status_code == 422
    response = server.client.post(
        "/api/gui-update", json={"machineId": "m", "message": {"type": "status", "message": huge}}
    )
    assert response.status_code == 422
    assert counts(server) == (0, 0)


def test_body_over_the_json_limit_is_413(make_server: Callable[..., LiveServer]) -> None:
    server = make_server(max_json_bytes=1000)
    response = server.client.post(
        "/api/gui-update", content=b" " * 2000, headers={"content-type": "application/json"}
    )
    assert response.status_code == 413

    def chunks() -> Iterator[bytes]:
        for _ in range(20):
            yield b" " * 100

    chunked = server.client.post(
        "/api/gui-update", content=chunks(), headers={"content-type": "application/json"}
    )
    assert chunked.status_code == 413


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=5)
    ),
    max_leaves=20,
)
message_like = st.fixed_dictionaries(
    {
        "type": st.sampled_from(
            [
                "overall_progress",
                "stage_progress",
                "log_batch",
                "status",
                "finished",
                "profiler_update",
                "simulation_details",
                "sim_details",
                "fatal_error",
                "x",
            ]
        )
    },
    optional={
        "current": json_values,
        "total": json_values,
        "logs": st.lists(
            st.dictionaries(st.sampled_from(["message", "log_type", "timestamp", "type"]), json_values),
            max_size=3,
        ),
        "sequence": json_values,
        "eta_seconds": json_values,
        "exit_code": json_values,
        "message": json_values,
        "name": json_values,
    },
)
bodies = st.one_of(
    json_values,
    st.fixed_dictionaries(
        {"machineId": st.one_of(st.text(max_size=10), json_values)},
        optional={
            "message": st.one_of(message_like, json_values),
            "timestamp": json_values,
            "messageId": json_values,
        },
    ),
)


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(path=st.sampled_from(ENDPOINTS), body=bodies)
def test_random_json_never_yields_a_5xx(server: LiveServer, path: str, body: object) -> None:
    response = server.client.post(
        path, content=json.dumps(body), headers={"content-type": "application/json"}
    )
    assert response.status_code < 500, (body, response.text)
    if response.status_code >= 400:
        assert "error" in response.json()
