"""Notification targets and history: the admin API and the Notifications page.

| Call | For |
| --- | --- |
| `GET /api/notifications/targets` | the targets (settings and dashboard), URLs masked, and the events |
| `POST /api/notifications/targets` `{"name", "url", "events"}` | add an apprise URL (events: [] = all) |
| `DELETE /api/notifications/targets/{id}` | remove a dashboard target |
| `POST /api/notifications/targets/{id}/test` | send a test now: `{"ok", "error"}` |
| `GET /api/notifications?limit=&before=` | the history, newest first, each delivery with its last error |

Every call goes through `require_admin` (roles, CSRF, the audit log). A target's URL holds its
service's secret (a webhook token, a password), so no answer and no page ever carries it: they
show apprise's privacy form (`slack://T...A/T...B/T...C/`) instead.
"""

from __future__ import annotations

from typing import Annotated, Any

from anyio import to_thread
from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse
from pydantic import BaseModel, Field

from goliat_monitor.db.queries import notifications as queries
from goliat_monitor.domain.notifications import EVENTS, link, unknown_events
from goliat_monitor.errors import BadRequest, NotFound
from goliat_monitor.server.account_pages import refuse_unless_admin
from goliat_monitor.server.auth import actor, current_principal, require_admin
from goliat_monitor.server.context import ServerContext, get_context
from goliat_monitor.server.notify import Notifier
from goliat_monitor.server.pages import render
from goliat_monitor.server.views import iso

router = APIRouter(tags=["notifications"])


def _notifier(request: Request) -> Notifier:
    notifier: Notifier = request.app.state.notifier
    return notifier


class NewTarget(BaseModel):
    name: Annotated[str, Field(min_length=1, max_length=128)]
    url: Annotated[str, Field(min_length=3, max_length=4000)]
    events: Annotated[list[str], Field(max_length=len(EVENTS))] = []


def _target_json(target: queries.Target, *, source: str, row: Any = None) -> dict[str, Any]:
    return {
        "id": target.key.removeprefix("db:"),
        "name": target.label if row is None else row["name"],
        "url": target.label if row is None else row["masked_url"],
        "events": list(target.events),
        "source": source,
        "createdAt": iso(row["created_at"]) if row is not None else None,
        "createdBy": row["created_by"] if row is not None else None,
    }


def _settings_json(number: int, target: queries.Target) -> dict[str, Any]:
    return {**_target_json(target, source="settings"), "name": f"GOLIAT_MONITOR_NOTIFY_URLS #{number}"}


async def targets_json(request: Request, context: ServerContext) -> list[dict[str, Any]]:
    env = await to_thread.run_sync(_notifier(request).env_targets)
    rows = await context.db.read(queries.list_targets)
    return [
        *(_settings_json(number, t) for number, t in enumerate(env, start=1)),
        *(
            _target_json(
                queries.Target(queries.db_key(r["id"]), r["name"], tuple(r["events"]), ""),
                source="dashboard",
                row=r,
            )
            for r in rows
        ),
    ]


def _events_json() -> list[dict[str, str]]:
    return [{"id": kind, "label": label} for kind, label in EVENTS.items()]


@router.get("/api/notifications/targets", dependencies=[Depends(require_admin)])
async def list_targets(request: Request, context: ServerContext = Depends(get_context)) -> dict[str, Any]:
    return {"targets": await targets_json(request, context), "events": _events_json()}


@router.post("/api/notifications/targets", status_code=201, dependencies=[Depends(require_admin)])
async def add_target(
    body: NewTarget, request: Request, context: ServerContext = Depends(get_context)
) -> dict[str, Any]:
    from goliat_monitor.server.notify_send import masked

    url = body.url.strip()
    if unknown := unknown_events(body.events):
        raise BadRequest(f"Unknown events: {', '.join(unknown)}; known: {', '.join(EVENTS)}")
    shown = await to_thread.run_sync(masked, url)
    if shown is None:
        raise BadRequest("apprise cannot read this URL (see https://github.com/caronc/apprise/wiki)")
    now = context.now()
    who = actor(current_principal(request))
    name = body.name.strip() or shown
    events = [e for e in EVENTS if e in body.events]
    target_id = await context.db.write(
        lambda conn: queries.add_target(
            conn, name=name, url=url, masked_url=shown, events=events, now=now, by=who
        )
    )
    row = {"id": target_id, "name": name, "masked_url": shown, "created_at": now, "created_by": who}
    target = queries.Target(queries.db_key(target_id), name, tuple(events), "")
    return _target_json(target, source="dashboard", row=row)


@router.delete("/api/notifications/targets/{target_id}", dependencies=[Depends(require_admin)])
async def delete_target(target_id: str, context: ServerContext = Depends(get_context)) -> dict[str, Any]:
    if target_id.startswith("env:"):
        raise BadRequest("This target comes from GOLIAT_MONITOR_NOTIFY_URLS: change the setting instead")
    if not await context.db.write(lambda conn: queries.delete_target(conn, target_id)):
        raise NotFound("No such notification target")
    return {"success": True}


@router.post("/api/notifications/targets/{target_id}/test", dependencies=[Depends(require_admin)])
async def test_target(
    target_id: str, request: Request, context: ServerContext = Depends(get_context)
) -> dict[str, Any]:
    """Send a test notification to one target now and say whether it arrived."""
    notifier = _notifier(request)
    if target_id.startswith("env:"):
        env = await to_thread.run_sync(notifier.env_targets)
        found = [t for t in env if t.key == target_id]
    else:
        found = [t for t in await context.db.read(queries.db_targets) if t.key == queries.db_key(target_id)]
    if not found:
        raise NotFound("No such notification target")
    error = await notifier.send_trial(found[0], actor(current_principal(request)))
    return {"ok": error is None, "error": error}


def history_json(entries: list[queries.HistoryEntry], public_url: str | None) -> list[dict[str, Any]]:
    return [
        {
            "id": e.notification["id"],
            "kind": e.notification["kind"],
            "title": e.notification["title"],
            "body": e.notification["body"],
            "path": e.notification["path"],
            "link": link(public_url, e.notification["path"]),
            "createdAt": iso(e.notification["created_at"]),
            "deliveries": [
                {
                    "target": d["target"],
                    "targetLabel": d["target_label"],
                    "status": d["status"],
                    "attempts": d["attempts"],
                    "lastError": d["last_error"],
                    "nextAttemptAt": iso(d["next_attempt_at"]) if d["status"] == queries.PENDING else None,
                    "deliveredAt": iso(d["delivered_at"]),
                }
                for d in e.deliveries
            ],
        }
        for e in entries
    ]


async def _history(context: ServerContext, limit: int, before: int | None) -> list[dict[str, Any]]:
    entries = await context.db.read(lambda conn: queries.history(conn, limit=limit, before=before))
    return history_json(entries, context.settings.public_url)


@router.get("/api/notifications", dependencies=[Depends(require_admin)])
async def get_history(
    limit: int = Query(100, ge=1, le=500),
    before: int | None = Query(None, ge=1),
    context: ServerContext = Depends(get_context),
) -> dict[str, Any]:
    """Notifications newest first with each target's delivery; page back with `before` = the last `id`."""
    items = await _history(context, limit, before)
    return {"notifications": items, "nextBefore": items[-1]["id"] if len(items) == limit else None}


@router.get("/notifications", response_class=HTMLResponse, include_in_schema=False)
async def notifications_page(request: Request, before: int | None = Query(None, ge=1)) -> HTMLResponse:
    """Targets, the add form, "Send a test" and the history: admins only (else a 403 page)."""
    context: ServerContext = request.app.state.context
    if refused := await refuse_unless_admin(request, context, "Notifications are for admins."):
        return refused
    limit = 100
    history = await _history(context, limit, before)
    return render(
        request,
        "notifications.html",
        title="Notifications",
        targets=await targets_json(request, context),
        events=_events_json(),
        history=history,
        public_url=context.settings.public_url,
        next_before=history[-1]["id"] if len(history) == limit else None,
    )
