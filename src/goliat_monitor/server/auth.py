"""Who a request is, and the guards routes declare: `require_worker`, `require_admin`, `may_change`.

A request is someone by one of these, checked in this order:

- a shared secret from the environment (`GOLIAT_MONITOR_WORKER_TOKEN`, `..._ADMIN_TOKEN`), or an
  API token made with `goliat-monitor token create`, sent as `Authorization: Bearer <token>`, as
  `X-API-Key: <token>`, or as a URL prefix `/t/<token>/...`, because GOLIAT's client cannot set
  headers but can be given any server URL (the prefix is stripped before routing, so every route
  exists under it too);
- else the session cookie of a signed-in account (`server/session_api.py`).

Routes declare what they need with `Depends(require_worker)` or `Depends(require_admin)`; every
other route is a read, which `server/access.py` guards when the server is `--private`. A route
added later with `Depends(require_admin)` thus gets roles, CSRF and the audit log for free.

The ingest hot path calls `require_worker` thousands of times a second: an environment token is
compared in memory, and an API token's hash is looked up in a small in-process cache
(`server/token_cache.py`), so neither costs a database read per request.
"""

from __future__ import annotations

import secrets
from typing import Any

from fastapi import Depends, Request
from starlette.types import ASGIApp, Receive, Scope, Send

from goliat_monitor.credentials import digest
from goliat_monitor.db.queries import accounts
from goliat_monitor.domain.access import SAFE_METHODS, Need, Principal, Role, allows, may_read
from goliat_monitor.errors import Forbidden, Unauthorized
from goliat_monitor.server.context import ServerContext, get_context
from goliat_monitor.settings import ServerSettings

SESSION_COOKIE = "goliat_session"
CSRF_HEADER = "x-csrf-token"
CSRF_FIELD = "csrf_token"

_PRINCIPAL = "goliat.principal"  # scope keys: who the request is, once resolved; what to audit
AUDIT = "goliat.audit"
_UNRESOLVED = object()


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


def _env_principal(tokens: list[str], settings: ServerSettings) -> Principal | None:
    if settings.admin_token and _matches(tokens, settings.admin_token):
        return Principal("env", "admin token", Role.ADMIN)
    if settings.worker_token and _matches(tokens, settings.worker_token):
        return Principal("env", "worker token", Role.WORKER)
    return None


def has_credentials(request: Request) -> bool:
    return bool(presented_tokens(request)) or SESSION_COOKIE in request.cookies


async def principal_of(request: Request, context: ServerContext) -> Principal | None:
    """Who the request is, or None; resolved once per request and kept in its scope.

    A presented token decides alone (a wrong one is not rescued by a cookie), so a script gets
    the 401 its token deserves.
    """
    known = request.scope.get(_PRINCIPAL, _UNRESOLVED)
    if known is not _UNRESOLVED:
        return known  # type: ignore[no-any-return]
    principal = await _resolve(request, context)
    request.scope[_PRINCIPAL] = principal
    return principal


async def _resolve(request: Request, context: ServerContext) -> Principal | None:
    tokens = presented_tokens(request)
    if tokens:
        env = _env_principal(tokens, context.settings)
        if env is not None:
            return env
        for token in tokens:
            found = await _token(context, digest(token))
            if found is not None:
                return Principal("token", found[0], Role(found[1]))
        return None
    secret = request.cookies.get(SESSION_COOKIE)
    if not secret:
        return None
    now = context.now()
    session = await context.db.read(lambda conn: accounts.live_session(conn, digest(secret), now))
    if session is None:
        return None
    return Principal("session", session.username, Role(session.role), session.id, session.csrf_token)


async def _token(context: ServerContext, token_hash: str) -> tuple[str, str] | None:
    hit, value = context.token_cache.get(token_hash)
    if not hit:
        value = await context.db.read(lambda conn: accounts.token_role(conn, token_hash))
        context.token_cache.put(token_hash, value)
    return value


def is_open(settings: ServerSettings) -> bool:
    """No secret at all: anyone who reaches the server may do anything (a trusted network)."""
    return not settings.private and settings.worker_token is None and settings.admin_token is None


def actor(principal: Principal | None) -> str:
    if principal is None:
        return "anonymous"
    return f"token:{principal.name}" if principal.kind == "token" else principal.name


def client_address(request: Request, settings: ServerSettings) -> str:
    """The client's address; behind a trusted proxy, the one it appended to X-Forwarded-For last."""
    if settings.trust_proxy_headers and (forwarded := request.headers.get("x-forwarded-for")):
        return forwarded.rsplit(",", 1)[-1].strip()[:64]
    return request.client.host if request.client else ""


def is_https(request: Request, settings: ServerSettings) -> bool:
    if request.url.scheme == "https":
        return True
    proto = request.headers.get("x-forwarded-proto", "") if settings.trust_proxy_headers else ""
    return proto.split(",", 1)[0].strip().lower() == "https"


async def check_csrf(request: Request, principal: Principal) -> None:
    """A state change made with the session cookie must carry the session's CSRF token.

    Header `X-CSRF-Token` from the pages' scripts, or a form's hidden `csrf_token` field.
    """
    if not principal.needs_csrf or request.method in SAFE_METHODS:
        return
    sent = request.headers.get(CSRF_HEADER)
    if sent is None:
        content_type = request.headers.get("content-type", "")
        if content_type.startswith(("application/x-www-form-urlencoded", "multipart/form-data")):
            field = (await request.form()).get(CSRF_FIELD)
            sent = field if isinstance(field, str) else None
    if not sent or not secrets.compare_digest(sent.encode(), (principal.csrf_token or "").encode()):
        raise Forbidden("Missing or wrong X-CSRF-Token: reload the page and try again")


async def require_worker(request: Request, context: ServerContext = Depends(get_context)) -> None:
    """Ingest, claim and upload calls: a worker or admin credential when the server has any secret.

    Without a worker token and without `--private` these calls stay open, as before accounts.
    """
    s = context.settings
    if s.worker_token is None and not s.private:
        return
    tokens = presented_tokens(request)
    if tokens and _env_principal(tokens, s) is not None:  # the hot path: no I/O at all
        return
    principal = await principal_of(request, context)
    if principal is None:
        raise Unauthorized("A valid worker token is required")
    if not allows(principal.role, Need.WORKER):
        raise Forbidden(f"The role {principal.role.value!r} may not make worker calls")
    await check_csrf(request, principal)


def _is_admin(principal: Principal | None, settings: ServerSettings) -> bool:
    if principal is None:
        return False
    if allows(principal.role, Need.ADMIN):
        return True
    # Before accounts, a server with only a worker token let that token change things too.
    return not settings.private and settings.admin_token is None and principal.role is Role.WORKER


def may_change(request: Request, settings: ServerSettings) -> bool:
    """Whether this request would pass `require_admin`: pages show their change buttons only then.

    Reads who the request is from its scope (`server/access.py` resolved it before the page ran).
    """
    if is_open(settings):
        return True
    principal = request.scope.get(_PRINCIPAL, _UNRESOLVED)
    if principal is _UNRESOLVED:
        principal = _env_principal(presented_tokens(request), settings)
    return _is_admin(principal if isinstance(principal, Principal) else None, settings)


def current_principal(request: Request) -> Principal | None:
    """Who the request is, if `principal_of` already resolved it (pages render with this)."""
    principal = request.scope.get(_PRINCIPAL)
    return principal if isinstance(principal, Principal) else None


async def require_admin(request: Request, context: ServerContext = Depends(get_context)) -> None:
    """Creating, changing and deleting: an admin account, an admin token, or an open server.

    A viewer is refused with 403; a request without a credential that reaches the dashboard
    (none, a wrong one, a worker's) with 401. The change is written to the audit log.
    """
    s = context.settings
    if is_open(s):
        _note_change(request, "anonymous")
        return
    principal = await principal_of(request, context)
    if not _is_admin(principal, s):
        if principal is None or principal.role is Role.WORKER:
            raise Unauthorized(
                "A valid admin token is required" if s.admin_token else "A valid token is required"
            )
        raise Forbidden(f"The role {principal.role.value!r} may not change anything")
    assert principal is not None
    await check_csrf(request, principal)
    _note_change(request, actor(principal))


def _note_change(request: Request, who: str) -> None:
    """A change (not an admin's read) goes to the audit log once its answer is known."""
    if request.method not in SAFE_METHODS:
        request.scope[AUDIT] = who


async def require_metrics(request: Request, context: ServerContext = Depends(get_context)) -> None:
    """The metrics token when one is set, else open; any credential that may read the dashboard
    also does (an admin in the browser). With `--private` and no metrics token: that credential.

    `server/access.py` counts this among the guards that decide alone, so with `--private`
    Prometheus needs only the metrics token, not an account.
    """
    settings = context.settings
    token = settings.metrics_token
    if token is None and not settings.private:
        return
    if token is not None:
        for sent in presented_tokens(request):
            if secrets.compare_digest(sent.encode(), token.encode()):
                return
    principal = await principal_of(request, context)
    if principal is not None and may_read(principal.role, "GET", "/metrics"):
        return
    raise Unauthorized("Send the metrics token as Authorization: Bearer <token>")
