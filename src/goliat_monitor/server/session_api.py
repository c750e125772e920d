"""Signing in and out (`/api/session`), sessions, and the audit log's API.

`POST /api/session` `{"username", "password"}` answers `{"username", "role", "csrfToken"}` and sets
the session cookie; `GET` answers the same or 401; `DELETE` signs out (`?everywhere=true`: every
session of the account). The `/login` form (`server/account_pages.py`) signs in through the same
`sign_in`.

A wrong name or a wrong password get the same 401 after the same work (a dummy argon2 check when
the account does not exist). Failed attempts are counted per account and per client address in
the database, so every replica sees them; past the limit the answer is 429 with `Retry-After`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from anyio import to_thread
from fastapi import APIRouter, Depends, Query, Request, Response
from pydantic import BaseModel, Field

from goliat_monitor.credentials import digest, new_secret, verify_password
from goliat_monitor.db.queries import accounts
from goliat_monitor.domain.access import Principal, retry_after
from goliat_monitor.errors import NotFound, RateLimited, Unauthorized
from goliat_monitor.server.auth import (
    SESSION_COOKIE,
    check_csrf,
    client_address,
    is_https,
    principal_of,
    require_admin,
)
from goliat_monitor.server.context import ServerContext, get_context
from goliat_monitor.server.views import iso

router = APIRouter(prefix="/api", tags=["accounts"])

WRONG_CREDENTIALS = "Wrong user name or password"


@dataclass(frozen=True)
class SignedIn:
    username: str
    role: str
    csrf_token: str
    secret: str
    expires_at: float


async def sign_in(request: Request, context: ServerContext, username: str, password: str) -> SignedIn:
    """Check a name and password, under the rate limit; make a session on success."""
    s = context.settings
    now = context.now()
    address = client_address(request, s)
    user_key, address_key = f"user:{username.lower()[:64]}", f"addr:{address}"
    since = now - s.login_window_s

    def read(conn: Any) -> tuple[list[float], list[float], Any]:
        return (
            accounts.recent_failures(conn, user_key, since=since, limit=s.login_max_failures),
            accounts.recent_failures(conn, address_key, since=since, limit=s.login_max_failures_per_address),
            accounts.user_by_name(conn, username),
        )

    by_user, by_address, user = await context.db.read(read)
    waits = [
        retry_after(by_user, now=now, window_s=s.login_window_s, limit=s.login_max_failures),
        retry_after(by_address, now=now, window_s=s.login_window_s, limit=s.login_max_failures_per_address),
    ]
    wait = max((w for w in waits if w is not None), default=None)
    if wait is not None:
        await _audit(context, now, username, "sign-in refused", "too many failed sign-ins", address, 429)
        raise RateLimited("Too many failed sign-ins; try again later", retry_after_s=int(wait + 0.999))
    ok = await to_thread.run_sync(verify_password, user["password_hash"] if user else None, password)
    if not ok or user is None:

        def failed(conn: Any) -> None:
            accounts.record_failure(conn, (user_key, address_key), now, forget_before=since)
            accounts.audit(
                conn, at=now, actor=username[:128], action="sign-in failed", address=address, status=401
            )

        await context.db.write(failed)
        raise Unauthorized(WRONG_CREDENTIALS)
    secret, csrf = new_secret(), new_secret()
    expires_at = now + s.session_ttl_s

    def succeeded(conn: Any) -> None:
        accounts.create_session(
            conn,
            user_id=user["id"],
            secret_hash=digest(secret),
            csrf_token=csrf,
            now=now,
            expires_at=expires_at,
            address=address,
        )
        accounts.clear_failures(conn, user_key)
        accounts.audit(conn, at=now, actor=user["username"], action="sign-in", address=address, status=200)

    await context.db.write(succeeded)
    return SignedIn(user["username"], user["role"], csrf, secret, expires_at)


def set_session_cookie(
    request: Request, response: Response, context: ServerContext, signed: SignedIn
) -> None:
    response.set_cookie(
        SESSION_COOKIE,
        signed.secret,
        max_age=int(context.settings.session_ttl_s),
        path="/",
        httponly=True,
        samesite="lax",
        secure=is_https(request, context.settings),
    )


def clear_session_cookie(request: Request, response: Response, context: ServerContext) -> None:
    response.delete_cookie(
        SESSION_COOKIE, path="/", httponly=True, samesite="lax", secure=is_https(request, context.settings)
    )


async def sign_out(
    request: Request, context: ServerContext, principal: Principal, *, everywhere: bool
) -> None:
    now = context.now()
    address = client_address(request, context.settings)
    session_id = principal.session_id or ""

    def write(conn: Any) -> None:
        if everywhere:
            user = accounts.user_by_name(conn, principal.name)
            if user is not None:
                accounts.revoke_user_sessions(conn, user["id"], now)
        else:
            accounts.revoke_session(conn, session_id, now)
        action = "sign-out everywhere" if everywhere else "sign-out"
        accounts.audit(conn, at=now, actor=principal.name, action=action, address=address, status=200)

    await context.db.write(write)


async def _audit(
    context: ServerContext, now: float, who: str, action: str, detail: str, address: str, status: int
) -> None:
    await context.db.write(
        lambda conn: accounts.audit(
            conn, at=now, actor=who[:128], action=action, detail=detail, address=address, status=status
        )
    )


class Credentials(BaseModel):
    username: Annotated[str, Field(min_length=1, max_length=64)]
    password: Annotated[str, Field(min_length=1, max_length=1024)]


def _session_json(principal: Principal) -> dict[str, Any]:
    return {"username": principal.name, "role": principal.role.value, "csrfToken": principal.csrf_token}


@router.post("/session")
async def create_session(
    body: Credentials, request: Request, response: Response, context: ServerContext = Depends(get_context)
) -> dict[str, Any]:
    signed = await sign_in(request, context, body.username, body.password)
    set_session_cookie(request, response, context, signed)
    response.headers["Cache-Control"] = "no-store"
    return {"username": signed.username, "role": signed.role, "csrfToken": signed.csrf_token}


@router.get("/session")
async def get_session(
    request: Request, response: Response, context: ServerContext = Depends(get_context)
) -> Any:
    """Who this request is: a signed-in account (with its CSRF token) or a token's name and role."""
    principal = await principal_of(request, context)
    if principal is None:
        raise Unauthorized("Not signed in")
    response.headers["Cache-Control"] = "no-store"
    return _session_json(principal)


@router.delete("/session")
async def delete_session(
    request: Request,
    response: Response,
    everywhere: bool = Query(False),
    context: ServerContext = Depends(get_context),
) -> dict[str, Any]:
    principal = await principal_of(request, context)
    if principal is None or principal.kind != "session":
        raise Unauthorized("Not signed in")
    await check_csrf(request, principal)
    await sign_out(request, context, principal, everywhere=everywhere)
    clear_session_cookie(request, response, context)
    return {"success": True}


@router.get("/sessions", dependencies=[Depends(require_admin)])
async def list_sessions(context: ServerContext = Depends(get_context)) -> list[dict[str, Any]]:
    """Every live session (admins only): who, since when, until when, from where."""
    now = context.now()
    rows = await context.db.read(lambda conn: accounts.list_live_sessions(conn, now))
    return [
        {
            "id": r["id"],
            "username": r["username"],
            "role": r["role"],
            "createdAt": iso(r["created_at"]),
            "expiresAt": iso(r["expires_at"]),
            "address": r["address"],
        }
        for r in rows
    ]


@router.delete("/sessions/{session_id}", dependencies=[Depends(require_admin)])
async def revoke_session(session_id: str, context: ServerContext = Depends(get_context)) -> dict[str, Any]:
    now = context.now()
    if not await context.db.write(lambda conn: accounts.revoke_session(conn, session_id, now)):
        raise NotFound("No such live session")
    return {"success": True}


def audit_json(row: Any) -> dict[str, Any]:
    return {
        "id": row["id"],
        "at": iso(row["at"]),
        "actor": row["actor"],
        "action": row["action"],
        "detail": row["detail"],
        "address": row["address"],
        "status": row["status"],
    }


async def audit_entries(context: ServerContext, limit: int, before: int | None) -> list[dict[str, Any]]:
    rows = await context.db.read(lambda conn: accounts.audit_page(conn, limit=limit, before=before))
    return [audit_json(row) for row in rows]


@router.get("/audit", dependencies=[Depends(require_admin)])
async def get_audit(
    limit: int = Query(100, ge=1, le=1000),
    before: int | None = Query(None, ge=1),
    context: ServerContext = Depends(get_context),
) -> dict[str, Any]:
    """The audit log, newest first (admins only); page back with `before` = the last `id` seen."""
    entries = await audit_entries(context, limit, before)
    return {"entries": entries, "nextBefore": entries[-1]["id"] if len(entries) == limit else None}
