"""The route class of the hot ingest calls keeps FastAPI's contract and refuses shapes it cannot serve."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from fastapi import APIRouter, Depends, Request

from goliat_monitor.db.queries import ingest
from goliat_monitor.db.queries import workers as worker_queries
from goliat_monitor.protocol import GuiUpdate, OkResponse
from goliat_monitor.server.auth import require_worker
from goliat_monitor.server.context import ServerContext, get_context
from goliat_monitor.server.lean_route import LeanJsonRoute
from tests.conftest import LiveServer


def lean_router(*guards: Any) -> APIRouter:
    return APIRouter(route_class=LeanJsonRoute, dependencies=[Depends(g) for g in guards])


def test_the_hot_calls_keep_their_openapi_contract(server: LiveServer) -> None:
    paths = server.client.get("/openapi.json").json()["paths"]
    for path, model in (
        ("/api/gui-update", "GuiUpdate"),
        ("/api/heartbeat", "Heartbeat"),
        ("/api/gui-updates", "GuiUpdateBatch"),
    ):
        post = paths[path]["post"]
        body = post["requestBody"]["content"]["application/json"]["schema"]
        assert body == {"$ref": f"#/components/schemas/{model}"}
        assert "200" in post["responses"] and "422" in post["responses"]


def test_an_endpoint_must_take_a_model_body_and_the_context() -> None:
    router = lean_router()

    async def ok(body: GuiUpdate, context: ServerContext = Depends(get_context)) -> dict[str, Any]:
        return {}

    router.post("/ok", response_model=OkResponse)(ok)

    async def no_context(body: GuiUpdate) -> dict[str, Any]:
        return {}

    async def plain_body(
        body: dict[str, Any], context: ServerContext = Depends(get_context)
    ) -> dict[str, Any]:
        return {}

    def not_async(body: GuiUpdate, context: ServerContext = Depends(get_context)) -> dict[str, Any]:
        return {}

    for endpoint in (no_context, plain_body, not_async):
        with pytest.raises(TypeError, match="LeanJsonRoute"):
            router.post(f"/{endpoint.__name__}")(endpoint)


def test_route_dependencies_must_be_guards() -> None:
    async def endpoint(body: GuiUpdate, context: ServerContext = Depends(get_context)) -> dict[str, Any]:
        return {}

    lean_router(require_worker).post("/guarded")(endpoint)

    async def wants_only_request(request: Request) -> None:
        return None

    def sync_guard(request: Request, context: ServerContext = Depends(get_context)) -> None:
        return None

    for guard in (wants_only_request, sync_guard):
        with pytest.raises(TypeError, match="guard"):
            lean_router(guard).post("/guarded")(endpoint)


def test_other_methods_get_the_frameworks_405(server: LiveServer) -> None:
    response = server.client.get("/api/gui-update")
    assert response.status_code == 405
    assert response.json() == {"error": "Method Not Allowed"}


CSP = (
    "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
    "connect-src 'self'; frame-ancestors 'none'"
)


def test_lean_answers_pass_the_edge_layers(make_server: Callable[..., LiveServer]) -> None:
    server = make_server(worker_token="w-secret")
    body = {"machineId": "10.0.0.9", "message": {"type": "status", "message": "hi"}}
    answers = [
        server.client.post("/t/w-secret/api/gui-update", json=body),  # token prefix stripped
        server.client.post("/api/gui-update", json=body, headers={"X-API-Key": "w-secret"}),
        server.client.post("/api/gui-update", json=body),  # no token
        server.client.post("/t/w-secret/api/gui-update", json={"machineId": ""}),  # invalid
    ]
    assert [a.status_code for a in answers] == [200, 200, 401, 422]
    for answer in answers:
        assert answer.headers["content-security-policy"] == CSP
        assert answer.headers["x-content-type-options"] == "nosniff"
        assert answer.headers["content-type"] == "application/json"


def test_unexpected_failures_are_json_500s_with_security_headers(
    server: LiveServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*_args: Any, **_kwargs: Any) -> Any:
        raise RuntimeError("a bug")

    monkeypatch.setattr(ingest, "record_heartbeat", broken)  # a lean route
    monkeypatch.setattr(worker_queries, "list_workers", broken)  # a route through FastAPI's whole stack
    for response in (
        server.client.post("/api/heartbeat", json={"machineId": "10.0.0.9"}),
        server.client.get("/api/workers"),
    ):
        assert response.status_code == 500
        assert response.json() == {"error": "Internal server error"}
        assert response.headers["content-security-policy"] == CSP
