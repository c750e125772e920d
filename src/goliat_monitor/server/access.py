"""`AccessMiddleware`: with `--private`, nothing is readable without a session or a token.

Deny by default: a request is let through without a credential only when its path is on the
short public list (`PUBLIC_PATHS`, static files) or its route guards itself with
`require_worker` / `require_admin` (the GOLIAT calls, which check the worker token). Every other
route, whether it exists today or is added later (`/metrics`, a new read), needs a viewer, an
admin, or a worker credential on one of the reads `goliat worker` makes (`domain/access.py`).
Pages answer a refusal with a redirect to `/login?next=...`, everything else with a JSON 401.

The same layer writes the audit entry of an admin action once its answer is known, and, on any
server, resolves who a request with credentials is, so pages can show what the role may do.
The lean ingest calls never reach it (`LeanRouteDispatch` runs first; they guard themselves).
"""

from __future__ import annotations

import logging
import secrets
from urllib.parse import quote

from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.responses import JSONResponse, RedirectResponse
from fastapi.routing import APIRoute
from starlette.requests import Request
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from goliat_monitor.db.queries import accounts
from goliat_monitor.domain.access import SAFE_METHODS, Principal, may_read
from goliat_monitor.errors import ApiError
from goliat_monitor.server.auth import (
    AUDIT,
    CSRF_HEADER,
    client_address,
    has_credentials,
    principal_of,
    require_admin,
    require_metrics,
    require_worker,
)
from goliat_monitor.server.context import ServerContext

log = logging.getLogger("goliat_monitor.server")

SELF_GUARDS = (require_worker, require_admin, require_metrics)
"""Guards that decide alone who may call their route."""
PUBLIC_PATHS = frozenset({"/api/health", "/login", "/logout", "/api/session", "/favicon.ico"})
PUBLIC_PREFIXES = ("/static/",)
_FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")


def _guards_itself(dependant: Dependant) -> bool:
    for dependency in dependant.dependencies:
        if dependency.call in SELF_GUARDS or _guards_itself(dependency):
            return True
    return False


def is_page(path: str) -> bool:
    return not (path.startswith("/api/") or path == "/metrics")


class AccessMiddleware:
    def __init__(self, app: ASGIApp, fastapi: FastAPI) -> None:
        self.app = app
        self.context: ServerContext = fastapi.state.context
        self.private = self.context.settings.private
        self.self_guarded = [
            route
            for route in fastapi.routes
            if isinstance(route, APIRoute) and _guards_itself(route.dependant)
        ]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket" and self.private:
            await send({"type": "websocket.close", "code": 1008})
            return
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request = Request(scope, receive)
        try:
            refusal = await self._refusal(request)
        except ApiError as exc:  # the database is unreachable, say
            retry = getattr(exc, "retry_after_s", None)
            headers = {"Retry-After": str(retry)} if retry is not None else None
            refusal = JSONResponse({"error": exc.message}, status_code=exc.status_code, headers=headers)
        if refusal is not None:
            await refusal(scope, receive, send)
            return
        audited = False

        async def send_after_audit(message: Message) -> None:
            # An admin action is in the log before its answer leaves: whoever sees it succeed can
            # read it in the audit log at once, on any replica.
            nonlocal audited
            if message["type"] == "http.response.start" and AUDIT in scope and not audited:
                audited = True
                await self._audit(request, str(scope[AUDIT]), int(message["status"]))
            await send(message)

        try:
            await self.app(scope, receive, send_after_audit)
        finally:
            if AUDIT in scope and not audited:  # it failed before answering
                await self._audit(request, str(scope[AUDIT]), None)

    async def _refusal(self, request: Request) -> JSONResponse | RedirectResponse | None:
        """None to let the request through, else the answer that refuses it."""
        path: str = request.scope["path"]
        public = path in PUBLIC_PATHS or path.startswith(PUBLIC_PREFIXES)
        if not self.private:
            if has_credentials(request):
                principal = await principal_of(request, self.context)
                return _csrf_refusal(request, principal, public)
            return None
        if public or any(route.matches(request.scope)[0] is Match.FULL for route in self.self_guarded):
            if has_credentials(request):
                await principal_of(request, self.context)  # pages and guards read it from the scope
            return None
        principal = await principal_of(request, self.context)
        if principal is None or not may_read(principal.role, request.method, path):
            if is_page(path) and request.method in ("GET", "HEAD"):
                root = str(request.scope.get("root_path", "")).rstrip("/")
                query = f"?{request.url.query}" if request.url.query else ""
                return RedirectResponse(f"{root}/login?next={quote(path + query, safe='')}", status_code=303)
            return JSONResponse({"error": "Sign in or send an API token"}, status_code=401)
        return _csrf_refusal(request, principal, public)

    async def _audit(self, request: Request, who: str, status: int | None) -> None:
        context = self.context
        detail = f"{request.method} {request.scope['path']}"  # never the root path: it may hold a token
        address = client_address(request, context.settings)
        now = context.now()
        try:
            await context.db.write(
                lambda conn: accounts.audit(
                    conn,
                    at=now,
                    actor=who,
                    action="admin action",
                    detail=detail,
                    address=address,
                    status=status,
                )
            )
        except Exception:  # the change itself is done; a lost audit row must not turn it into a 500
            log.exception("could not write the audit entry for %s by %s", detail, who)


def _csrf_refusal(request: Request, principal: Principal | None, public: bool) -> JSONResponse | None:
    """A cookie-signed-in state change without the right CSRF header is refused here, for every route.

    A form post may carry the token as a hidden field instead: the route's guard checks it then.
    """
    if public or principal is None or not principal.needs_csrf or request.method in SAFE_METHODS:
        return None
    sent = request.headers.get(CSRF_HEADER)
    if sent is None and request.headers.get("content-type", "").startswith(_FORM_TYPES):
        return None
    if sent and secrets.compare_digest(sent.encode(), (principal.csrf_token or "").encode()):
        return None
    return JSONResponse({"error": "Missing or wrong X-CSRF-Token"}, status_code=403)
