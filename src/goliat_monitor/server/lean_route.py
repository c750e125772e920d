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

from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from pydantic import BaseModel, ValidationError
from pydantic_core import to_json
from starlette.requests import Request
from starlette.types import Receive, Scope, Send

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
        answer = to_json(await self.endpoint(value, context))
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
