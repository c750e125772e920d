"""The sign-in page, the sign-out form and the audit log page.

`/login` works without JavaScript (a plain form post, answered with a redirect to `next`); its
module (`static/pages/login.js`) signs in through `POST /api/session` instead and shows a refusal
without a reload. The header's sign-out control is a form post to `/logout` carrying the CSRF
token as a hidden field.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from goliat_monitor.domain.access import safe_next
from goliat_monitor.errors import ApiError, RateLimited
from goliat_monitor.server.auth import check_csrf, current_principal, may_change, principal_of
from goliat_monitor.server.context import ServerContext
from goliat_monitor.server.pages import render
from goliat_monitor.server.session_api import (
    audit_entries,
    clear_session_cookie,
    set_session_cookie,
    sign_in,
    sign_out,
)

router = APIRouter(include_in_schema=False)


def _context(request: Request) -> ServerContext:
    context: ServerContext = request.app.state.context
    return context


def _root(request: Request) -> str:
    return str(request.scope.get("root_path", "")).rstrip("/")


def _login_page(
    request: Request, next_path: str, *, error: str = "", username: str = "", status: int = 200
) -> HTMLResponse:
    return render(
        request,
        "login.html",
        status_code=status,
        title="Sign in",
        next_path=next_path,
        error=error,
        username=username,
        page_data={"next": next_path},
    )


@router.get("/login", response_class=HTMLResponse)
async def login_page(request: Request, next: str = Query("/", max_length=2048)) -> Response:
    """The sign-in form; someone already signed in goes straight on to `next`."""
    next_path = safe_next(next)
    principal = await principal_of(request, _context(request))
    if principal is not None and principal.kind == "session":
        return RedirectResponse(_root(request) + next_path, status_code=303)
    return _login_page(request, next_path)


@router.post("/login", response_class=HTMLResponse)
async def login_form(
    request: Request,
    username: str = Form("", max_length=64),
    password: str = Form("", max_length=1024),
    next: str = Form("/", max_length=2048),
) -> Response:
    context = _context(request)
    next_path = safe_next(next)
    try:
        signed = await sign_in(request, context, username, password)
    except ApiError as exc:
        response = _login_page(
            request, next_path, error=exc.message, username=username, status=exc.status_code
        )
        if isinstance(exc, RateLimited):
            response.headers["Retry-After"] = str(exc.retry_after_s)
        return response
    redirect = RedirectResponse(_root(request) + next_path, status_code=303)
    set_session_cookie(request, redirect, context, signed)
    return redirect


@router.post("/logout")
async def logout_form(request: Request, everywhere: str = Form("")) -> Response:
    """The header's sign-out button: a form with the CSRF token as its hidden field."""
    context = _context(request)
    principal = await principal_of(request, context)
    response = RedirectResponse(_root(request) + "/login", status_code=303)
    if principal is not None and principal.kind == "session":
        await check_csrf(request, principal)
        await sign_out(request, context, principal, everywhere=bool(everywhere))
    clear_session_cookie(request, response, context)
    return response


async def refuse_unless_admin(request: Request, context: ServerContext, what: str) -> HTMLResponse | None:
    """The 403 page for an admin-only page seen by anyone else, signed-out visitors of a private
    dashboard included; None when an admin may see it. Every admin page starts with it."""
    await principal_of(request, context)
    if may_change(request, context.settings) and not (
        context.settings.private and current_principal(request) is None
    ):
        return None
    return render(request, "forbidden.html", status_code=403, what=what, title="Not allowed")


@router.get("/audit", response_class=HTMLResponse)
async def audit_page(request: Request, before: int | None = Query(None, ge=1)) -> HTMLResponse:
    """Sign-ins, failed sign-ins and admin actions, newest first: admins only (else a 403 page)."""
    context = _context(request)
    if refused := await refuse_unless_admin(request, context, "The audit log is for admins."):
        return refused
    limit = 200
    entries: list[dict[str, Any]] = await audit_entries(context, limit, before)
    return render(
        request,
        "audit.html",
        title="Audit log",
        entries=entries,
        next_before=entries[-1]["id"] if len(entries) == limit else None,
    )
