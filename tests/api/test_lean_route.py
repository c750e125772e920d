"""The route class of the hot ingest calls keeps FastAPI's contract and refuses shapes it cannot serve."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi import APIRouter, Depends, Request

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
