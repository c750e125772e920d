"""`create_app()`: the whole server as one ASGI app you can build in a test.

The app opens its database and brings the schema up to date when it is built, so it is usable at
once (also in-process through httpx's ASGITransport); its lifespan runs the background services
and closes the database at shutdown.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from goliat_monitor import __version__
from goliat_monitor.blobs import open_store
from goliat_monitor.db import migrate
from goliat_monitor.db.engine import Database
from goliat_monitor.db.outages import is_connection_lost, is_storage_full
from goliat_monitor.db.queries import accounts
from goliat_monitor.errors import ApiError, DatabaseUnavailable, InsufficientStorage, RateLimited
from goliat_monitor.server import (
    account_pages,
    events_api,
    metrics,
    notify,
    notify_api,
    pages,
    read_api,
    results_api,
    services,
    session_api,
    studies_api,
    worker_api,
)
from goliat_monitor.server.access import AccessMiddleware
from goliat_monitor.server.auth import TokenPrefixMiddleware
from goliat_monitor.server.context import ServerContext
from goliat_monitor.server.hub import Hub
from goliat_monitor.server.lean_route import LeanRouteDispatch
from goliat_monitor.server.limits import BodyLimitMiddleware
from goliat_monitor.settings import ServerSettings

log = logging.getLogger("goliat_monitor.server")


def create_app(settings: ServerSettings | None = None, *, now: Callable[[], float] = time.time) -> FastAPI:
    settings = settings or ServerSettings()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    db = Database(settings.resolved_database_url, write_threads=settings.write_threads)
    migrate.upgrade(db.engine)
    if settings.private:
        _refuse_without_admin(db, settings)
    blobs = open_store(settings.artifacts_url, settings.artifacts_dir)
    context = ServerContext(settings=settings, db=db, blobs=blobs, now=now)
    hub = Hub(context)
    notifier = notify.Notifier(context)
    _warn_if_open(settings)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        tasks = services.start(context) + notify.start(notifier)
        try:
            yield
        finally:
            # The routers' own lifespans never run (their routes are copied in below), so
            # everything that must stop at shutdown stops here: open streams, then the loops.
            # Each step is bounded, so SIGTERM ends the process within its grace period even with
            # the database gone; `db.close` fails what is still queued at once in that case.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(hub.stop(), SHUTDOWN_STEP_S)
            for task in tasks:
                task.cancel()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), SHUTDOWN_STEP_S)
            db.close()

    app = GoliatMonitorApp(
        title="goliat-monitor",
        version=__version__,
        summary="Run and watch GOLIAT simulation campaigns.",
        lifespan=lifespan,
        **_NO_FRAMEWORK_TELEMETRY,
    )
    app.state.context = context
    app.state.sse_hub = hub
    app.state.metrics = metrics.Metrics(context)
    app.state.notifier = notifier
    # The routers' routes go straight into the app's route list. `include_router` would wrap each
    # router in a lazily matched layer that cost ~250 µs per request here; the routes already
    # carry their prefix and their router's dependencies. A router's `lifespan=` would be
    # skipped this way: shutdown work belongs in `lifespan` above.
    routers = (
        worker_api.ingest_router,
        worker_api.router,
        studies_api.router,
        results_api.router,
        read_api.router,
        events_api.router,
        session_api.router,
        metrics.router,
        notify_api.router,
        account_pages.router,
        pages.router,
    )
    for router in routers:
        app.router.routes.extend(router.routes)
    app.mount("/static", pages.VersionedStaticFiles(directory=pages.STATIC_DIR), name="static")
    _install_error_handlers(app)
    return app


_NO_FRAMEWORK_TELEMETRY: dict[str, Any] = (
    {"telemetry": {"tracing": False, "metrics": False, "logs": False, "operation_spans": False}}
    if "telemetry" in inspect.signature(FastAPI.__init__).parameters
    else {}
)
"""FastAPI's OpenTelemetry hooks (0.16x) are off: even unconfigured, asking whether a provider is
set cost ~3 % of a busy server's time, per request. The server's own metrics are elsewhere."""


class GoliatMonitorApp(FastAPI):
    """FastAPI with this server's edge layers outside the framework's own middleware stack."""

    def build_middleware_stack(self) -> ASGIApp:
        """Security headers, token prefix, the request timer and body limits, then the lean ingest
        calls, then the access rules (`--private`, CSRF, the audit log), then FastAPI.

        Built this way round so that the calls GOLIAT makes thousands of times a second pass the
        edge layers every request needs, and only those (see `LeanRouteDispatch`; they check
        their worker token themselves); the security headers are on every answer, a framework
        500 included.
        """
        settings: ServerSettings = self.state.context.settings
        stack: ASGIApp = AccessMiddleware(super().build_middleware_stack(), self)
        stack = LeanRouteDispatch(stack, self)
        stack = BodyLimitMiddleware(
            stack, json_limit=settings.max_json_bytes, upload_limit=settings.max_request_bytes
        )
        stack = metrics.RequestTimer(stack, self.state.context.request_times, self.routes)
        stack = TokenPrefixMiddleware(stack)
        return SecurityHeadersMiddleware(stack)


SECURITY_HEADERS = {
    "content-security-policy": "default-src 'self'; img-src 'self' data:; style-src 'self'; "
    "script-src 'self'; connect-src 'self'; frame-ancestors 'none'",
    "x-content-type-options": "nosniff",
    "referrer-policy": "same-origin",
    "x-frame-options": "DENY",
}


class SecurityHeadersMiddleware:
    """Every response, API and uploaded files included, forbids inline and third-party scripts.

    A result file (say a stored HTML report) opened from this origin can then not run script.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.headers = [(k.encode(), v.encode()) for k, v in SECURITY_HEADERS.items()]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                present = {name.lower() for name, _ in message.get("headers", [])}
                extra = [(k, v) for k, v in self.headers if k not in present]
                message = {**message, "headers": [*message.get("headers", []), *extra]}
            await send(message)

        await self.app(scope, receive, send_with_headers)


class NoAdminAccount(RuntimeError):
    """`--private` with nobody who could sign in and manage the server."""


def _refuse_without_admin(db: Database, settings: ServerSettings) -> None:
    if db.read_sync(accounts.count_admins) > 0:
        return
    db.close()
    where = (
        f"--database-url {settings.database_url}"
        if settings.database_url
        else f"--data-dir {settings.data_dir}"
    )
    raise NoAdminAccount(
        "--private needs an admin account to sign in with, and this database has none. Add one, "
        f"then start again:\n  goliat-monitor user add NAME --role admin {where}"
    )


def _warn_if_open(settings: ServerSettings) -> None:
    if settings.private:
        return  # every call needs an account or a token (worker calls: a worker token)
    if settings.worker_token is None and settings.admin_token is None:
        log.warning(
            "No worker or admin token is set: anyone who can reach this server can post updates "
            "and create or delete super studies. Set GOLIAT_MONITOR_WORKER_TOKEN and "
            "GOLIAT_MONITOR_ADMIN_TOKEN on a shared network."
        )
    elif settings.worker_token is None:
        log.warning("No worker token is set: anyone who can reach this server can post worker updates.")


SHUTDOWN_STEP_S = 1.5
"""Longest the lifespan waits for the SSE hub, then for the background loops, at shutdown."""


def _error(status: int, message: str, headers: dict[str, str] | None = None, **extra: Any) -> JSONResponse:
    return JSONResponse({"error": message, **extra}, status_code=status, headers=headers)


def _unavailable(exc: DatabaseUnavailable) -> JSONResponse:
    return _error(exc.status_code, exc.message, headers={"Retry-After": str(exc.retry_after_s)})


def _database_full(settings: ServerSettings) -> InsufficientStorage:
    if settings.is_sqlite:
        path = settings.resolved_database_url.removeprefix("sqlite:///")
        return InsufficientStorage("database", path=path)
    return InsufficientStorage("database", detail=" (the PostgreSQL server's disk)")


def _install_error_handlers(app: FastAPI) -> None:
    settings: ServerSettings = app.state.context.settings

    @app.exception_handler(ApiError)
    async def api_error(_request: Request, exc: ApiError) -> JSONResponse:
        if isinstance(exc, DatabaseUnavailable):
            return _unavailable(exc)
        if isinstance(exc, InsufficientStorage):
            if exc.ran_out == "database" and exc.path is None:
                exc = _database_full(settings)  # the writer knows no settings: name the file here
            return _error(exc.status_code, exc.message, ranOut=exc.ran_out, path=exc.path)
        if isinstance(exc, RateLimited):
            return _error(exc.status_code, exc.message, headers={"Retry-After": str(exc.retry_after_s)})
        return _error(exc.status_code, exc.message)

    @app.exception_handler(RequestValidationError)
    async def validation_error(_request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = exc.errors()
        if any(error.get("type") == "json_invalid" for error in errors):
            return _error(400, "Malformed JSON body")
        parts = []
        for error in errors[:5]:
            where = ".".join(str(p) for p in error.get("loc", ()) if p not in ("body",))
            parts.append(f"{where}: {error.get('msg')}" if where else str(error.get("msg")))
        detail = [{"loc": e.get("loc"), "msg": e.get("msg"), "type": e.get("type")} for e in errors[:20]]
        return _error(422, "; ".join(parts) or "Invalid request", detail=_jsonable(detail))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return _error(exc.status_code, str(exc.detail))

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        if is_storage_full(exc):  # SQLITE_FULL, or PostgreSQL's disk_full: nothing was committed
            log.warning("database out of disk space: %s", exc)
            return await api_error(request, _database_full(settings))
        if is_connection_lost(exc):  # a database call outside `Database.read`/`write` met the outage
            log.warning("database unavailable: %s", exc)
            return _unavailable(DatabaseUnavailable())
        log.exception("unexpected error", exc_info=exc)
        return _error(500, "Internal server error")


def _jsonable(value: Any) -> Any:
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    return str(value)
