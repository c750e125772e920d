"""`LeanJsonRoute`: the route class of the calls GOLIAT makes thousands of times a second.

FastAPI's request handler resolves the dependency graph, validates the body through its own field
layer and re-validates the answer against the response model on every call: ~120 µs of the ~200 µs
a `POST /api/gui-update` cost in the framework here. A route of this class keeps everything FastAPI
knows about it (path, body model, response model, OpenAPI entry, exception handlers) and replaces
only that per-request work: it runs the route's guards, validates the body with the model's own
JSON validator and calls the endpoint with `(body, context)`.

The shape this needs is checked when the route is declared, so a route that does not fit fails at
import, not on a request.
"""

from __future__ import annotations

import inspect
import typing
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from pydantic import BaseModel, ValidationError
from pydantic_core import to_json
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from goliat_monitor.errors import UnsupportedMediaType
from goliat_monitor.server.context import ServerContext

Guard = Callable[[Request, ServerContext], Awaitable[None]]

_JSON_HEADERS = (b"content-type", b"application/json")


class LeanJsonRoute(APIRoute):
    """A JSON-in, JSON-out route: `async def endpoint(body: Model, context: ServerContext = ...)`.

    Its dependencies must be guards, `async def guard(request, context) -> None`, that raise to
    refuse the request (the token checks of `server.auth`).
    """

    def __init__(self, path: str, endpoint: Callable[..., Any], **kwargs: Any) -> None:
        super().__init__(path, endpoint, **kwargs)
        self._model = _body_model(endpoint)
        self._guards: list[Guard] = [_guard(depends.dependency) for depends in self.dependencies]

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["method"] not in (self.methods or ()):
            await super().handle(scope, receive, send)  # the framework's 405
            return
        await _send_json(send, await self.answer(scope, receive))

    async def answer(self, scope: Scope, receive: Receive) -> bytes:
        """The JSON body of the 200 answer; anything wrong is raised for the exception handlers."""
        request = Request(scope, receive)
        context: ServerContext = request.app.state.context
        for guard in self._guards:
            await guard(request, context)
        if not _is_json(request.headers.get("content-type", "")):
            # Like FastAPI's strict content type: a cross-site form post cannot reach the API.
            raise UnsupportedMediaType("Content-Type must be application/json")
        body = await request.body()
        try:
            value = self._model.model_validate_json(body)
        except ValidationError as exc:
            # The same errors, with the same locations, FastAPI's own body validation reports.
            errors = exc.errors(include_url=False)
            raise RequestValidationError(
                [{**error, "loc": ("body", *error["loc"])} for error in errors], body=body
            ) from None
        return to_json(await self.endpoint(value, context))


class LeanRouteDispatch:
    """Hands a POST for a lean route straight to it, past the framework's middleware stack.

    That stack (error, telemetry, body-limit, exception and exit-stack layers, then the router)
    cost ~50 µs per request here, a tenth of what a GOLIAT message costs the server in all. The app
    installs this inside its own edge layers (token prefix, body limit, security headers), so a
    lean request still passes those; a failure gets the app's own exception handler, so every
    answer is the one the full stack would have given.
    """

    def __init__(self, app: ASGIApp, fastapi: FastAPI) -> None:
        self.app = app
        self.fastapi = fastapi
        self.routes = {
            route.path: route
            for route in fastapi.routes
            if isinstance(route, LeanJsonRoute) and "POST" in (route.methods or ())
        }

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        route = (
            self.routes.get(scope["path"]) if scope["type"] == "http" and scope["method"] == "POST" else None
        )
        if route is None:
            await self.app(scope, receive, send)
            return
        try:
            answer = await route.answer(scope, receive)
        except Exception as exc:
            handler = self._handler_for(exc)
            if handler is None:
                raise
            response = await handler(Request(scope, receive), exc)
            await response(scope, receive, send)
            return
        await _send_json(send, answer)

    def _handler_for(self, exc: Exception) -> Callable[[Request, Exception], Awaitable[Response]] | None:
        handlers = self.fastapi.exception_handlers
        for kind in type(exc).__mro__:
            if kind in handlers:
                return typing.cast(Callable[[Request, Exception], Awaitable[Response]], handlers[kind])
        return None


async def _send_json(send: Send, answer: bytes) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [_JSON_HEADERS, (b"content-length", b"%d" % len(answer))],
        }
    )
    await send({"type": "http.response.body", "body": answer})


def _is_json(content_type: str) -> bool:
    media_type = content_type.partition(";")[0].strip().lower()
    return media_type == "application/json" or (
        media_type.startswith("application/") and media_type.endswith("+json")
    )


def _body_model(endpoint: Callable[..., Any]) -> type[BaseModel]:
    parameters = list(inspect.signature(endpoint).parameters)
    hints = typing.get_type_hints(endpoint)
    if len(parameters) != 2 or parameters[1] != "context" or hints.get("context") is not ServerContext:
        raise TypeError(f"{endpoint.__name__}: a LeanJsonRoute endpoint takes (body, context: ServerContext)")
    model = hints.get(parameters[0])
    if not (isinstance(model, type) and issubclass(model, BaseModel)):
        raise TypeError(f"{endpoint.__name__}: the body of a LeanJsonRoute must be a pydantic model")
    if not inspect.iscoroutinefunction(endpoint):
        raise TypeError(f"{endpoint.__name__}: a LeanJsonRoute endpoint must be async")
    return model


def _guard(dependency: Callable[..., Any] | None) -> Guard:
    if dependency is None or not inspect.iscoroutinefunction(dependency):
        raise TypeError("LeanJsonRoute dependencies must be async guards (request, context)")
    if list(inspect.signature(dependency).parameters) != ["request", "context"]:
        raise TypeError(f"{dependency.__name__}: a LeanJsonRoute guard takes (request, context)")
    return typing.cast(Guard, dependency)
