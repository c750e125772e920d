"""Optional shared secrets: a worker token for ingest, claim and upload, an admin token for changes.

A token is accepted as `Authorization: Bearer <token>`, as `X-API-Key: <token>`, or as a URL
prefix `/t/<token>/...`, because GOLIAT's client cannot set headers but can be given any server
URL. The prefix is stripped before routing, so every route exists under it too.
"""

from __future__ import annotations

import secrets
from typing import Any

from fastapi import Depends, Request
from starlette.types import ASGIApp, Receive, Scope, Send

from goliat_monitor.errors import ApiError
from goliat_monitor.server.context import ServerContext, get_context
from goliat_monitor.settings import ServerSettings


class Forbidden(ApiError):
    status_code = 401


class TokenPrefixMiddleware:
    """Move a `/t/<token>/` URL prefix into the request scope."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket"):
            path: str = scope["path"]
            if path.startswith("/t/"):
                token, slash, rest = path[3:].partition("/")
                scope = dict(scope)
                scope["path"] = slash + rest if slash else "/"
                scope["raw_path"] = scope["path"].encode()
                scope["root_path"] = scope.get("root_path", "") + f"/t/{token}"
                scope.setdefault("state", {})
                scope["state"] = {**scope["state"], "url_token": token}
        await self.app(scope, receive, send)


def presented_tokens(request: Request) -> list[str]:
    tokens: list[str] = []
    header = request.headers.get("authorization", "")
    if header.lower().startswith("bearer "):
        tokens.append(header[7:].strip())
    if key := request.headers.get("x-api-key"):
        tokens.append(key.strip())
    url_token: Any = request.scope.get("state", {}).get("url_token")
    if url_token:
        tokens.append(str(url_token))
    return tokens


def _matches(tokens: list[str], expected: str) -> bool:
    return any(secrets.compare_digest(token.encode(), expected.encode()) for token in tokens)


async def require_worker(request: Request, context: ServerContext = Depends(get_context)) -> None:
    """Ingest, claim and upload calls: the worker token (or the admin token) when one is set."""
    s = context.settings
    accepted = [t for t in (s.worker_token, s.admin_token) if t]
    if s.worker_token is None:
        return
    if not any(_matches(presented_tokens(request), t) for t in accepted):
        raise Forbidden("A valid worker token is required")


def may_change(request: Request, settings: ServerSettings) -> bool:
    """Whether this request would pass `require_admin`: pages show their change buttons only then."""
    if settings.admin_token is not None:
        return _matches(presented_tokens(request), settings.admin_token)
    if settings.worker_token is not None:
        return _matches(presented_tokens(request), settings.worker_token)
    return True


async def require_admin(request: Request, context: ServerContext = Depends(get_context)) -> None:
    """Creating, changing and deleting super studies: the admin token when one is set.

    With only a worker token set, that token is enough: a server with any secret is never open.
    """
    s = context.settings
    if s.admin_token is not None:
        if not _matches(presented_tokens(request), s.admin_token):
            raise Forbidden("A valid admin token is required")
    elif s.worker_token is not None and not _matches(presented_tokens(request), s.worker_token):
        raise Forbidden("A valid token is required")
