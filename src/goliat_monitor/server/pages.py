"""The dashboard's HTML pages: rendered on the server, then kept live by ES modules in `static/`.

Every page works without JavaScript (it is a snapshot then); each page's module (`static/pages/`)
adds live updates from `GET /api/events`, filtering, the log console's paging and search, charts
and the file explorer.
Each page embeds the id of the last event it reflects, so the stream replays what happened while
the page was in flight and nothing is lost between render and subscribe.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import jinja2
from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from starlette.types import Scope

from goliat_monitor import __version__
from goliat_monitor.db.queries import costs as cost_queries
from goliat_monitor.db.queries import logs as log_queries
from goliat_monitor.db.queries import studies as study_queries
from goliat_monitor.db.queries import workers as worker_queries
from goliat_monitor.domain.cost import Pricing
from goliat_monitor.domain.models import ANSI_ESCAPE, LOG_TYPES
from goliat_monitor.errors import BadRequest, NotFound
from goliat_monitor.server import read_api, storage
from goliat_monitor.server import views as api_views
from goliat_monitor.server.auth import current_principal, may_change
from goliat_monitor.server.context import ServerContext
from goliat_monitor.server.hub import get_hub
from goliat_monitor.server.overview import SORTS, STATUS_FILTERS, shown_workers, totals
from goliat_monitor.server.views import (
    STUDY_EVENTS_SHOWN,
    assignment_rows,
    parse_iso,
    study_summary,
    worker_view,
)

HERE = Path(__file__).resolve().parent
TEMPLATES_DIR = HERE / "templates"
STATIC_DIR = HERE / "static"

ACTIVE_STUDY_STATUSES = ("RUNNING", "PENDING")
ASSIGNMENT_STATES = ("PENDING", "RUNNING", "COMPLETED", "FAILED", "CANCELLED")


def static_version(directory: Path = STATIC_DIR) -> str:
    """A hash of every static file (in every folder, names included) and of the package version.

    Pages link static files as `/static/<version>/<path>`. A module's imports are relative, so
    they resolve under the same version: after an upgrade every URL changes at once, and no
    browser can run a new page module against an old, cached helper module.
    """
    digest = hashlib.sha256(__version__.encode())
    for path in sorted(p for p in directory.rglob("*") if p.is_file()):
        digest.update(path.relative_to(directory).as_posix().encode() + b"\0")
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()[:12]


STATIC_VERSION = static_version()


# -- formatting, shared by the templates (static/lib/format.js formats live values the same way) -


def fmt_pct(value: float | None) -> str:
    return "—" if value is None else f"{value:.1f}%"


def fmt_hours(hours: float | None) -> str:
    return "—" if hours is None else f"{hours:.2f} h"


def fmt_money(value: object, currency: object = None) -> str:
    """A cost as the pages show it (`12.50 USD`); unknown (a projection without data, a template
    card without a worker) is a dash."""
    if not isinstance(value, int | float) or isinstance(value, bool):
        return "—"
    return f"{value:,.2f} {currency if isinstance(currency, str) else ''}".strip()


def fmt_duration(seconds: float | None) -> str:
    if seconds is None or seconds < 0:
        return "—"
    s = int(seconds)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m {s % 60:02d}s"
    if s < 86400:
        return f"{s // 3600}h {s % 3600 // 60:02d}m"
    return f"{s // 86400}d {s % 86400 // 3600:02d}h"


def fmt_ago(iso: str | None, now: float) -> str:
    ts = parse_iso(iso)
    if ts is None:
        return "never"
    delta = max(0.0, now - ts)
    return "just now" if delta < 2 else f"{fmt_duration(delta)} ago"


def fmt_until(iso: str | None, now: float) -> str:
    ts = parse_iso(iso)
    return "—" if ts is None else fmt_duration(max(0.0, ts - now))


def fmt_elapsed(start: str | None, end: str | None, now: float) -> str:
    began = parse_iso(start)
    if began is None:
        return "—"
    return fmt_duration(max(0.0, (parse_iso(end) or now) - began))


def fmt_datetime(iso: str | None) -> str:
    ts = parse_iso(iso)
    if ts is None:
        return "—"
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def fmt_clock(iso: str | None) -> str:
    ts = parse_iso(iso)
    return "" if ts is None else datetime.fromtimestamp(ts, UTC).strftime("%H:%M:%S")


def fmt_size(size: float | None) -> str:
    if size is None:
        return "—"
    value = float(size)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GB"


def strip_ansi(text: str | None) -> str:
    """GOLIAT's console colours arrive as escape codes in some lines; the log shows colour by type."""
    return ANSI_ESCAPE.sub("", text or "")


def _tolerant(fn: Callable[[Any], str]) -> Callable[[Any], str]:
    """A missing value in a template (a field an older record lacks) formats like None."""

    def wrapper(value: Any) -> str:
        return fn(None if isinstance(value, jinja2.Undefined) else value)

    return wrapper


def url_segment(value: str) -> str:
    """`value` as one URL path segment, encoded exactly as JavaScript's `encodeURIComponent` does.

    Jinja's `urlencode` keeps `/`, which would split a tab's field name like `Disk_I/O`; matching
    the browser's encoding keeps the server-rendered and live-updated links the same strings.
    """
    return quote(str(value), safe="!*'()")


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES_DIR),
        autoescape=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    filters: dict[str, Callable[[Any], str]] = {
        "pct": fmt_pct,
        "duration": fmt_duration,
        "datetime": fmt_datetime,
        "clock": fmt_clock,
        "size": fmt_size,
        "ansi": strip_ansi,
        "segment": url_segment,
        "hours": fmt_hours,
    }
    env.filters.update({name: _tolerant(fn) for name, fn in filters.items()})
    env.globals.update(log_types=LOG_TYPES, money=fmt_money)
    return env


templates = Jinja2Templates(env=_environment())


VERSION_SEGMENT = re.compile(r"[0-9a-f]{12}")


class VersionedStaticFiles(StaticFiles):
    """Static files, also under `/static/<version>/`; that URL never changes content, so browsers keep it.

    A version that is not the current one (a page rendered before a restart into an upgrade)
    still gets today's files, but not cacheable: the page reloads into matching URLs anyway.
    JavaScript is always sent as `text/javascript`: browsers refuse a module of any other type,
    and `mimetypes` reads the host's tables, which on some systems say otherwise.
    """

    def __init__(self, *, directory: Path, version: str = STATIC_VERSION) -> None:
        super().__init__(directory=directory)
        self.version = version

    async def get_response(self, path: str, scope: Scope) -> Response:
        segment, _, rest = path.replace(os.sep, "/").partition("/")
        versioned = bool(rest) and VERSION_SEGMENT.fullmatch(segment) is not None
        response = await super().get_response(rest if versioned else path, scope)
        if response.status_code == 200 and path.endswith(".js"):
            response.headers["Content-Type"] = "text/javascript; charset=utf-8"
        if response.status_code == 200 and versioned:
            current = segment == self.version
            response.headers["Cache-Control"] = (
                "public, max-age=31536000, immutable" if current else "no-cache"
            )
        return response


router = APIRouter(include_in_schema=False)


def _context(request: Request) -> ServerContext:
    context: ServerContext = request.app.state.context
    return context


def _base(request: Request) -> str:
    """Links and API calls keep the `/t/<token>/` prefix (and a proxy's root path) the page came with."""
    return str(request.scope.get("root_path", "")).rstrip("/")


def _static_base(request: Request) -> str:
    """Static files are public and served outside the token prefix (the mount does not see it)."""
    base = _base(request)
    token = request.scope.get("state", {}).get("url_token")
    suffix = f"/t/{token}"
    return base[: -len(suffix)] if token and base.endswith(suffix) else base


def _render(request: Request, name: str, status_code: int = 200, **values: Any) -> HTMLResponse:
    context = _context(request)
    now = context.now()
    values.setdefault("event_id", "")
    values.setdefault("events_query", "")
    values.setdefault("page_data", None)
    values.setdefault("page", name.removesuffix(".html"))
    # Who is looking: the header shows the account and its sign-out control, the pages hide what
    # the role may not do (the server refuses it anyway), and scripts send the CSRF token.
    account = current_principal(request)
    values.setdefault("can_admin", may_change(request, context.settings))
    values.setdefault("account", account if account is not None and account.kind == "session" else None)
    values.setdefault("read_only", account is not None and not values["can_admin"])
    values.setdefault("private", context.settings.private)
    base = _base(request)
    response = templates.TemplateResponse(
        request,
        name,
        {
            "base": base,
            "static_root": f"{_static_base(request)}/static/{STATIC_VERSION}",
            "now": now,
            "ago": lambda iso: fmt_ago(iso, now),
            "until": lambda iso: fmt_until(iso, now),
            "elapsed": lambda start, end=None: fmt_elapsed(start, end, now),
            **values,
        },
        status_code=status_code,
    )
    response.headers["Cache-Control"] = "no-store"
    return response


render = _render
"""For the account pages (`server/account_pages.py`), which share the layout."""


def _not_found(request: Request, what: str) -> HTMLResponse:
    return _render(request, "not_found.html", status_code=404, what=what, title="Not found")


def _event_id(request: Request, broker_id: int, log_id: int) -> str:
    """Where the page's live stream resumes: right after the state this page shows."""
    return get_hub(request.app).event_id(broker_id, log_id)


# -- overview ----------------------------------------------------------------------------------


def _study_listings(conn: Any) -> list[dict[str, Any]]:
    return [api_views.study_listing(listing) for listing in study_queries.list_super_studies(conn)]


def _with_eta(conn: Any, studies: list[dict[str, Any]], now: float, pricing: Pricing) -> list[dict[str, Any]]:
    """Study summaries; running ones re-read one by one for the campaign ETA and cost the list lacks."""
    out = []
    for study in studies:
        if study["status"] in ACTIVE_STUDY_STATUSES:
            with contextlib.suppress(NotFound):
                detail = study_queries.get_super_study(conn, study["id"], now=now, pricing=pricing)
                study = api_views.super_study(detail)
        out.append(study_summary(study))
    return out


@router.get("/", response_class=HTMLResponse)
async def overview(
    request: Request,
    status: str = Query("all", max_length=16),
    q: str = Query("", max_length=200),
    sort: str = Query("status", max_length=16),
    stale: bool = Query(False),
) -> HTMLResponse:
    """Every worker as a card with its light, progress and stage; active super studies on top."""
    context = _context(request)
    status = status if status in STATUS_FILTERS else "all"
    sort = sort if sort in SORTS else "status"
    broker_id = context.events.last_id
    clock = context.clock()

    def read(conn: Any) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        studies = [s for s in _study_listings(conn) if s["status"] in ACTIVE_STUDY_STATUSES]
        rows = worker_queries.list_workers(conn, include_stale=stale)
        spent = cost_queries.worker_costs(conn, rows, clock, context.pricing)
        workers = api_views.workers(rows, clock, spent, context.pricing)
        return workers, _with_eta(conn, studies, clock.now, context.pricing)

    workers, active = await context.db.read(read)
    views = [worker_view(w, now=clock.now, stalled_after_s=context.settings.stalled_after_s) for w in workers]
    get_hub(request.app).note_shown(views)
    return _render(
        request,
        "overview.html",
        storage=await storage.report(context, storage.get_probe(request.app)),
        human_bytes=storage.human_bytes,
        title="Overview",
        workers=shown_workers(views, status=status, search=q.strip().lower(), sort=sort),
        total_count=len(views),
        totals=totals(views),
        studies=active,
        filters={"status": status, "q": q, "sort": sort, "stale": stale},
        status_filters=STATUS_FILTERS,
        sorts=SORTS,
        event_id=_event_id(request, broker_id, 0),
        events_query="workers=all",
        page_data={"workers": views, "studies": active, "showStale": stale},
    )


@router.get("/workers")
async def workers_index(request: Request) -> Response:
    return RedirectResponse(f"{_base(request)}/", status_code=307)


# -- one worker --------------------------------------------------------------------------------


@router.get("/workers/{worker_id}", response_class=HTMLResponse)
async def worker_page(
    request: Request,
    worker_id: str,
    before: str | None = Query(None, max_length=64, pattern=r"^-?\d+\.\d+$"),
    line: str | None = Query(None, max_length=64, pattern=r"^-?\d+\.\d+$"),
) -> HTMLResponse:
    """GOLIAT's progress window for one worker: bars, stage, ETA, live log, charts, screenshots.

    `?before=CURSOR` shows an older page of the log; `?line=CURSOR` (a search hit) the lines
    around that one, which the page highlights and scrolls to.
    """
    context = _context(request)
    settings = context.settings
    broker_id = context.events.last_id
    clock = context.clock()

    def read(conn: Any) -> tuple[dict[str, Any], dict[str, Any] | None, int, dict[str, str]]:
        detail = worker_queries.get_worker(conn, worker_id, recent_logs=settings.recent_log_lines)
        spent = cost_queries.worker_costs(conn, [detail.row], clock, context.pricing)[worker_id]
        worker = api_views.worker_detail(detail, clock, spent, context.pricing)
        older = None
        if line:
            older = api_views.log_page(
                worker_queries.log_around(conn, worker_id, line, limit=settings.recent_log_lines)
            )
        elif before:
            older = api_views.log_page(
                worker_queries.log_page(conn, worker_id, before=before, limit=settings.recent_log_lines)
            )
        top = worker_queries.max_log_line_id(conn)
        names = {s.row["id"]: s.row["name"] for s in study_queries.list_super_studies(conn)}
        return worker, older, top, names

    try:
        worker, older, top, study_names = await context.db.read(read)
    except NotFound:
        return _not_found(request, "worker")
    view = worker_view(worker, now=clock.now, stalled_after_s=settings.stalled_after_s)
    get_hub(request.app).note_shown([view])
    gui = view["guiState"] or {}
    logs = older["logs"] if older else gui.get("logMessages", [])
    older_cursor = older["nextBefore"] if older else view.get("olderLogsCursor")
    current = next((a for a in view["assignments"] if a["id"] == view.get("currentAssignmentId")), None)
    run_started = (current or {}).get("startedAt") or view.get("createdAt")
    assignments = [
        {
            **{k: v for k, v in a.items() if k != "splitConfig"},
            "studyName": study_names.get(a["superStudyId"]),
        }
        for a in view["assignments"]
    ]
    data = {k: v for k, v in view.items() if k not in ("assignments",)}
    data["guiState"] = {k: v for k, v in gui.items() if k != "logMessages"}
    data["assignments"] = assignments
    data["runStartedAt"] = run_started
    return _render(
        request,
        "worker.html",
        title=f"{view['summary']} · {view['displayName']}",
        worker=view,
        gui=gui,
        logs=logs,
        older_cursor=older_cursor,
        paging_back=bool(older),
        hit_cursor=line,
        assignments=assignments,
        run_started=run_started,
        event_id=_event_id(request, broker_id, top),
        events_query=f"workers={worker_id}&logs={worker_id}",
        page_data=data,
    )


# -- log search --------------------------------------------------------------------------------


@router.get("/search", response_class=HTMLResponse)
async def search_page(
    request: Request,
    q: str = Query("", max_length=500),
    log_type: list[str] = Query([], alias="type"),
    study: str = Query("", max_length=36),
    before: str | None = Query(None, max_length=64),
) -> HTMLResponse:
    """ "Where did this error happen?": every worker's log lines containing the text, newest first,
    each linking to the line in its worker's log. The first page is rendered here; the page's
    module searches again without reloading and loads older hits."""
    context = _context(request)
    chosen = [] if set(LOG_TYPES) <= set(log_type) else log_type
    search = None
    problem = ""
    if q:
        try:
            search = read_api.parse_search(
                q, chosen, study=study or None, limit=read_api.SEARCH_LIMIT, before=before
            )
        except BadRequest as exc:
            problem = exc.message

    def read(conn: Any) -> tuple[list[dict[str, Any]], dict[str, Any] | None, str]:
        studies = [
            {"id": listing.row["id"], "name": listing.row["name"]}
            for listing in study_queries.list_super_studies(conn)
        ]
        try:
            found = api_views.log_search(log_queries.search_page(conn, search)) if search else None
        except NotFound as exc:  # a study deleted since the form was drawn
            return studies, None, exc.message
        return studies, found, problem

    studies, found, problem = await context.db.read(read)
    older_href = None
    if found and found["nextBefore"]:
        params = [("q", q), *(("type", t) for t in chosen), *((("study", study),) if study else ())]
        older_href = "?" + urlencode([*params, ("before", found["nextBefore"])])
    return _render(
        request,
        "search.html",
        title=f"{q} · Log search" if q else "Log search",
        q=q,
        chosen_types=chosen or list(LOG_TYPES),
        study=study,
        studies=studies,
        found=found,
        before=before,
        older_href=older_href,
        problem=problem,
        page_data={"q": q, "types": chosen, "study": study, "found": found, "problem": problem},
    )


# -- super studies -----------------------------------------------------------------------------


@router.get("/super-studies", response_class=HTMLResponse)
async def super_studies(request: Request) -> HTMLResponse:
    """Every live super study with its master progress and how many pieces are in each state."""
    context = _context(request)
    broker_id = context.events.last_id
    now = context.now()
    summaries = await context.db.read(
        lambda conn: _with_eta(conn, _study_listings(conn), now, context.pricing)
    )
    return _render(
        request,
        "super_studies.html",
        title="Super studies",
        studies=summaries,
        can_admin=may_change(request, context.settings),
        event_id=_event_id(request, broker_id, 0),
        page_data={"studies": summaries},
    )


@router.get("/super-studies/{study_id}", response_class=HTMLResponse)
async def super_study(request: Request, study_id: str) -> HTMLResponse:
    """One campaign: master progress, every assignment, its history, and its result files."""
    context = _context(request)
    broker_id = context.events.last_id
    now = context.now()

    def read(conn: Any) -> tuple[dict[str, Any], list[dict[str, Any]], list[dict[str, Any]]]:
        study = api_views.super_study(
            study_queries.get_super_study(conn, study_id, now=now, pricing=context.pricing)
        )
        others = [
            {"id": s.row["id"], "name": s.row["name"]}
            for s in study_queries.list_super_studies(conn)
            if s.row["id"] != study_id
        ]
        return study, study["events"], others

    try:
        study, events, others = await context.db.read(read)
    except NotFound:
        return _not_found(request, "super study")
    summary = study_summary(study)
    rows = assignment_rows(study)
    shown_events = list(reversed(events[-STUDY_EVENTS_SHOWN:]))
    return _render(
        request,
        "super_study.html",
        title=study["name"],
        study=summary,
        assignments=rows,
        events=shown_events,
        event_count=len(events),
        states=ASSIGNMENT_STATES,
        can_admin=may_change(request, context.settings),
        event_id=_event_id(request, broker_id, 0),
        events_query=f"study={study_id}",
        page_data={"study": summary, "assignments": rows, "canAdmin": may_change(request, context.settings)},
        others=others,
        study_type=_study_type(study),
    )


def _study_type(study: dict[str, Any]) -> str | None:
    """far_field or near_field, from the base config or else the first split config."""
    for config in [
        study.get("baseConfig") or {},
        *[a.get("splitConfig") or {} for a in study["assignments"][:1]],
    ]:
        if config.get("study_type"):
            return str(config["study_type"])
    return None


@router.get("/super-studies/{study_id}/compare", response_class=HTMLResponse)
async def compare_studies(
    request: Request,
    study_id: str,
    with_: str = Query(..., alias="with", max_length=64),
    intersect: bool = False,
) -> HTMLResponse:
    """Two campaigns' figures side by side per simulation, with relative differences."""
    context = _context(request)

    def read(conn: Any) -> tuple[dict[str, Any], dict[str, Any]]:
        return dict(study_queries.require_study(conn, study_id)), dict(
            study_queries.require_study(conn, with_)
        )

    try:
        this, other = await context.db.read(read)
    except NotFound:
        return _not_found(request, "super study")
    names = {"id": this["id"], "name": this["name"], "otherId": other["id"], "otherName": other["name"]}
    return _render(
        request,
        "compare.html",
        title=f"{this['name']} vs {other['name']}",
        this=this,
        other=other,
        intersect=intersect,
        event_id=_event_id(request, context.events.last_id, 0),
        events_query="",
        page_data={**names, "intersect": intersect},
    )
