"""Commands that talk to a running server over HTTP: `status`, `logs`, `watch` (and `super-study
create`, in campaign.py, with the same `--server` and `--token` options).

Reads only: the read API for what is there now, the live stream (`GET /api/events`, Server-Sent
Events) for what comes next, reconnecting with `Last-Event-ID` so nothing is missed.
"""

from __future__ import annotations

import json
import sys
import time
import unicodedata
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NoReturn

import click

if TYPE_CHECKING:
    import httpx
    from rich.console import Console

DEFAULT_SERVER = "http://127.0.0.1:8000"
REQUEST_TIMEOUT_S = 10.0
RECONNECT_S = 1.0
"""Wait before reconnecting a dropped live stream (the server's `retry:` overrides it)."""
WATCH_REREAD_S = 0.25
"""Least time between two reads of a watched study: a burst of pushes costs one read."""

LOG_STYLES = {
    "default": "",
    "progress": "cyan",
    "info": "",
    "verbose": "dim",
    "warning": "yellow",
    "error": "red",
    "fatal": "bold red",
    "success": "green",
    "header": "bold magenta",
    "highlight": "bold yellow",
}
"""GOLIAT's GUI colours per log type, in terminal terms."""

ACTIVE = ("PENDING", "RUNNING")
EXIT_COMPLETED, EXIT_FAILED, EXIT_CANCELLED, EXIT_GONE, EXIT_UNREACHABLE = 0, 1, 3, 4, 5
WATCH_EXIT_CODES = {"COMPLETED": EXIT_COMPLETED, "FAILED": EXIT_FAILED, "CANCELLED": EXIT_CANCELLED}


def server_options(function: Any) -> Any:
    """`--server` and `--token`, the same for every command that talks to a server."""
    function = click.option(
        "--token",
        envvar=["GOLIAT_MONITOR_API_TOKEN", "GOLIAT_MONITOR_ADMIN_TOKEN"],
        default=None,
        help="An API token (`goliat-monitor token create`) or the admin token, sent as "
        "Authorization: Bearer [env: GOLIAT_MONITOR_API_TOKEN, GOLIAT_MONITOR_ADMIN_TOKEN].",
    )(function)
    return click.option(
        "--server",
        envvar=["GOLIAT_MONITOR_SERVER", "GOLIAT_MONITORING_URL"],
        default=DEFAULT_SERVER,
        show_default=True,
        help="Server URL [env: GOLIAT_MONITOR_SERVER, GOLIAT_MONITORING_URL].",
    )(function)


def fail(message: str, code: int = 1) -> NoReturn:
    click.echo(f"error: {message}", err=True)
    raise SystemExit(code)


class Remote:
    """An HTTP client for one server; a refusal or an unreachable server ends the command."""

    def __init__(self, server: str, token: str | None) -> None:
        import httpx

        self.server = server.rstrip("/")
        self.headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.client = httpx.Client(base_url=self.server, headers=self.headers, timeout=REQUEST_TIMEOUT_S)

    def close(self) -> None:
        self.client.close()

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        import httpx

        try:
            return self.client.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            fail(f"cannot reach {self.server}: {exc}", EXIT_UNREACHABLE)

    def get(self, path: str, **params: Any) -> Any:
        response = self.request("GET", path, params=params)
        if response.status_code != 200:
            self.refused(response)
        return response.json()

    def refused(self, response: httpx.Response, code: int = 1) -> NoReturn:
        try:
            message = response.json().get("error", response.text)
        except ValueError:
            message = response.text
        fail(f"the server refused ({response.status_code}): {message}", code)


def safe(text: str) -> str:
    """`text` with nothing a terminal would act on: control characters (escape sequences among
    them) and bidirectional overrides are shown as `\\xNN` / `\\uNNNN` instead."""

    def show(char: str) -> str:
        if char == "\t":
            return char
        if unicodedata.category(char) == "Cc" or "\u202a" <= char <= "\u202e" or "\u2066" <= char <= "\u2069":
            return char.encode("unicode_escape").decode("ascii")
        return char

    return "".join(show(c) for c in text)


def ascii_lower(text: str) -> str:
    """A-Z folded only, as the server's log search matches (`é` does not find `É`)."""
    return text.translate(_ASCII_LOWER)


_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


def worker_name(worker: dict[str, Any]) -> str:
    return str(
        worker.get("machineLabel") or worker.get("hostname") or worker.get("machineId") or worker["id"]
    )


def find_worker(remote: Remote, name: str) -> dict[str, Any]:
    """A worker by id, else by label, hostname or machine id (its newest live session first)."""
    workers: list[dict[str, Any]] = remote.get("/api/workers", includeStale="true")
    exact = [w for w in workers if w["id"] == name]
    if exact:
        return exact[0]
    wanted = name.casefold()
    named = [
        w
        for w in workers
        if wanted in {str(w.get(k) or "").casefold() for k in ("machineLabel", "hostname", "machineId")}
    ]
    if not named:
        fail(f"no worker called {name!r} (an id, label, hostname or machine id); see `goliat-monitor status`")
    named.sort(key=lambda w: (bool(w.get("isStale")), -_seconds(w.get("lastSeen"))))
    return named[0]


def _seconds(iso: str | None) -> float:
    from datetime import datetime

    if not iso:
        return 0.0
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


def _clock(iso: str | None) -> str:
    if not iso:
        return "--:--:--"
    return time.strftime("%H:%M:%S", time.localtime(_seconds(iso)))


def _percent(value: float | None) -> str:
    return "" if value is None else f"{value:.0f} %"


def _until(iso: str | None) -> str:
    if not iso:
        return ""
    left = max(0.0, _seconds(iso) - time.time())
    hours, rest = divmod(int(left), 3600)
    return f"{hours}h{rest // 60:02d}m" if hours else f"{rest // 60}m{rest % 60:02d}s"


# -- live stream --------------------------------------------------------------------------------


@dataclass
class SseEvent:
    event: str
    data: Any
    id: str | None


def follow_events(
    remote: Remote, params: dict[str, Any], stop: Callable[[], bool] = lambda: False
) -> Iterator[SseEvent]:
    """`GET /api/events` as parsed events, for ever: a dropped stream is reconnected with the last
    event id, so the server replays what was missed (or sends `resync`)."""
    import httpx

    last_id: str | None = None
    wait = RECONNECT_S
    while not stop():
        headers = {"Last-Event-ID": last_id} if last_id else {}
        timeout = httpx.Timeout(REQUEST_TIMEOUT_S, read=60.0)  # the server pings every 15 s
        try:
            with remote.client.stream(
                "GET", "/api/events", params=params, headers=headers, timeout=timeout
            ) as reply:
                if reply.status_code != 200:
                    reply.read()
                    remote.refused(reply)
                event, event_id = "message", None
                data: list[str] = []
                for line in reply.iter_lines():
                    if line == "":
                        if data:
                            if event_id is not None:
                                last_id = event_id
                            yield SseEvent(event, json.loads("\n".join(data)), event_id)
                        event, data, event_id = "message", [], None
                        if stop():
                            return
                        continue
                    field, _, value = line.partition(":")
                    value = value.removeprefix(" ")
                    if field == "event":
                        event = value
                    elif field == "data":
                        data.append(value)
                    elif field == "id":
                        event_id = value
                    elif field == "retry" and value.isdigit():
                        wait = int(value) / 1000
        except httpx.HTTPError:
            pass
        if not stop():
            time.sleep(wait)
            yield SseEvent("reconnected", None, last_id)


# -- status -------------------------------------------------------------------------------------


@click.command("status")
@server_options
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help='Print {"workers": [...], "superStudies": [...]} as the API has them.',
)
def status(server: str, token: str | None, as_json: bool) -> None:
    """Workers and active super studies of a server, as tables."""
    remote = Remote(server, token)
    try:
        workers = remote.get("/api/workers")
        studies = [s for s in remote.get("/api/super-studies") if s["status"] in ACTIVE]
    finally:
        remote.close()
    if as_json:
        click.echo(json.dumps({"workers": workers, "superStudies": studies}, indent=2))
        return
    from rich.table import Table

    console = _console()
    table = Table(title=f"Workers on {remote.server}", title_justify="left")
    for column in ("worker", "status", "progress", "stage", "simulation", "ETA", "last seen", "id"):
        table.add_column(column, justify="right" if column in ("progress", "simulation") else "left")
    for w in workers:
        gui = w.get("guiState") or {}
        count, total = gui.get("simulationCount"), gui.get("totalSimulations")
        table.add_row(
            safe(worker_name(w)),
            _status_text(w["status"]),
            _percent(gui.get("progress")),
            safe(gui.get("stage") or ""),
            f"{count}/{total}" if count is not None and total else "",
            _until(gui.get("eta")),
            _clock(w.get("lastSeen")),
            w["id"],
        )
    console.print(table if workers else "No worker has reported yet.")
    studies_table = Table(title="Active super studies", title_justify="left")
    for column in ("study", "status", "progress", "done", "running", "pending", "failed", "id"):
        studies_table.add_column(column, justify="left" if column in ("study", "status", "id") else "right")
    for s in studies:
        studies_table.add_row(
            safe(s["name"]),
            _status_text(s["status"]),
            _percent(s["masterProgress"]),
            f"{s['completedAssignments']}/{s['totalAssignments']}",
            str(s["runningAssignments"]),
            str(s["pendingAssignments"]),
            str(s["failedAssignments"]),
            s["id"],
        )
    console.print(studies_table if studies else "No super study is active.")


def _console() -> Console:
    from rich.console import Console

    return Console(highlight=False)


STATUS_STYLES = {
    "RUNNING": "green",
    "IDLE": "yellow",
    "OFFLINE": "red",
    "ERROR": "red",
    "COMPLETED": "green",
    "FAILED": "red",
    "CANCELLED": "dim",
    "PENDING": "",
}


def _status_text(value: str) -> Any:
    from rich.text import Text

    return Text(value, style=STATUS_STYLES.get(value, ""))


# -- logs ---------------------------------------------------------------------------------------


@click.command("logs")
@click.argument("worker")
@server_options
@click.option("-f", "--follow", is_flag=True, help="Keep printing new lines as they arrive (live stream).")
@click.option(
    "--type",
    "log_types",
    multiple=True,
    help="Only lines of this log type (repeatable): default, progress, info, verbose, warning, error, fatal, "
    "success, header, highlight.",
)
@click.option(
    "--grep", default=None, help="Only lines containing TEXT (A-Z in either case, as the log search)."
)
@click.option(
    "-n",
    "--lines",
    "count",
    type=click.IntRange(0, 2000),
    default=50,
    show_default=True,
    help="Recent lines to print first.",
)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line, as the API has it.")
def logs(
    worker: str,
    server: str,
    token: str | None,
    follow: bool,
    log_types: tuple[str, ...],
    grep: str | None,
    count: int,
    as_json: bool,
) -> None:
    """Print a worker's recent log lines, colour-coded by type; with --follow, then every new one.

    WORKER is a worker id, or a machine label, hostname or machine id (its newest session). Text
    from the log is printed escaped: no terminal control sequence in a line reaches the terminal.
    Ctrl-C stops following.
    """
    remote = Remote(server, token)
    found = find_worker(remote, worker)
    console = _console()
    seen: set[str] = set()
    needle = ascii_lower(grep) if grep else None

    def show(line: dict[str, Any]) -> None:
        cursor = str(line.get("cursor"))
        if cursor in seen:
            return
        seen.add(cursor)
        if log_types and line.get("logType") not in log_types:
            return
        if needle is not None and needle not in ascii_lower(line["message"]):
            return
        if as_json:
            click.echo(json.dumps({"workerId": found["id"], **line}))
            return
        from rich.text import Text

        text = Text(f"{_clock(line.get('timestamp'))} ", style="dim")
        kind = str(line.get("logType") or "default")
        text.append(f"{kind:<9} ", style=LOG_STYLES.get(kind, "") or "dim")
        text.append(safe(line["message"]), style=LOG_STYLES.get(kind, ""))
        console.print(text, soft_wrap=True)
        if follow:
            sys.stdout.flush()

    def recent() -> list[dict[str, Any]]:
        params: dict[str, Any] = {"limit": max(count, 1)}
        if log_types:
            params["type"] = list(log_types)
        if grep and len(grep) >= 3:
            params["q"] = grep  # the server searches the whole history for the last matches
        page: list[dict[str, Any]] = remote.get(f"/api/workers/{found['id']}/logs", **params)["logs"]
        return page[-count:] if count else []

    try:
        for line in recent():
            show(line)
        if not follow:
            return
        for event in follow_events(remote, {"logs": found["id"]}):
            if event.event == "logs" and event.data.get("workerId") == found["id"]:
                for line in event.data.get("lines", []):
                    show(line)
            elif event.event == "resync":  # the server could not replay: read what is there
                for line in recent():
                    show(line)
    except KeyboardInterrupt:
        raise SystemExit(130) from None
    finally:
        remote.close()


# -- watch --------------------------------------------------------------------------------------


def find_study(remote: Remote, name: str) -> dict[str, Any]:
    """A super study by id, else by name."""
    response = remote.request("GET", f"/api/super-studies/{name}")
    if response.status_code == 200:
        return dict(response.json())
    if response.status_code != 404:
        remote.refused(response)
    listed = remote.get("/api/super-studies", name=name)
    if not listed:
        fail(f"no super study with id or name {name!r}", EXIT_GONE)
    return dict(remote.get(f"/api/super-studies/{listed[0]['id']}"))


@click.command(
    "watch",
    epilog="Exit codes: 0 the study completed, 1 it failed, 3 it was cancelled, 4 it was deleted (or "
    "not found), 5 the server could not be reached; 2 is a usage error.",
)
@click.argument("study")
@server_options
@click.option(
    "--json", "as_json", is_flag=True, help="One JSON line (the API's study) per change instead of bars."
)
def watch(study: str, server: str, token: str | None, as_json: bool) -> None:
    """Show a super study's assignments as live progress bars until it ends.

    STUDY is a super study id or name. Updates come from the live stream; each push is followed by
    one read of the study, so what is shown is always the server's current state. The exit code
    says how the study ended (below).
    """
    remote = Remote(server, token)
    try:
        raise SystemExit(_watch(remote, find_study(remote, study), as_json=as_json))
    except KeyboardInterrupt:
        raise SystemExit(130) from None
    finally:
        remote.close()


def _watch(remote: Remote, detail: dict[str, Any], *, as_json: bool) -> int:
    from rich.live import Live

    study_id = detail["id"]
    console = _console()
    last_printed: str | None = None
    ended: dict[str, Any] = {}

    def reread() -> dict[str, Any] | None:
        response = remote.request("GET", f"/api/super-studies/{study_id}")
        if response.status_code == 404:
            return None
        if response.status_code != 200:
            remote.refused(response)
        return dict(response.json())

    def report(current: dict[str, Any]) -> None:
        nonlocal last_printed
        if as_json:
            line = json.dumps(current)
            if line != last_printed:
                click.echo(line)
                last_printed = line
        elif not console.is_terminal:
            line = _plain_summary(current)
            if line != last_printed:
                click.echo(line)
                last_printed = line

    def finished(current: dict[str, Any] | None) -> bool:
        if current is None:
            ended["code"] = EXIT_GONE
            return True
        if current["status"] in WATCH_EXIT_CODES:
            ended["code"] = WATCH_EXIT_CODES[current["status"]]
            return True
        return False

    live = (
        Live(_bars(detail), console=console, auto_refresh=False, transient=False)
        if (console.is_terminal and not as_json)
        else None
    )
    current: dict[str, Any] | None = detail
    report(detail)
    if finished(detail):
        if live is not None:
            console.print(_bars(detail))
        return _end(detail, ended["code"], as_json)
    read_at = 0.0
    if live is not None:
        live.start(refresh=True)
    try:
        for event in follow_events(remote, {"study": study_id}, stop=lambda: "code" in ended):
            relevant = event.event in ("assignments", "resync", "reconnected", "hello") or (
                event.event == "study" and isinstance(event.data, dict) and event.data.get("id") == study_id
            )
            if not relevant:
                continue
            pause = read_at + WATCH_REREAD_S - time.monotonic()
            if pause > 0:
                time.sleep(pause)
            read_at = time.monotonic()
            current = reread()
            if current is not None:
                report(current)
                if live is not None:
                    live.update(_bars(current), refresh=True)
            if finished(current):
                break
    finally:
        if live is not None:
            live.stop()
    return _end(current, ended["code"], as_json)


def _end(current: dict[str, Any] | None, code: int, as_json: bool) -> int:
    if not as_json:
        if current is None:
            click.echo("the super study was deleted", err=True)
        else:
            click.echo(f"super study {safe(current['name'])} {current['status']}", err=code != 0)
    return code


def _plain_summary(study: dict[str, Any]) -> str:
    parts = [f"{a['index']}:{a['status']}:{a['progress']:.0f}%" for a in study.get("assignments", [])]
    return f"{safe(study['name'])} {study['status']} {study['masterProgress']:.1f}% " + " ".join(parts)


def _bars(study: dict[str, Any]) -> Any:
    from rich.console import Group
    from rich.progress import BarColumn, Progress, TextColumn

    progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.percentage:>5.1f} %"),
        TextColumn("{task.fields[status]}"),
        TextColumn("{task.fields[detail]}", style="dim"),
        auto_refresh=False,
    )
    progress.add_task(
        f"[bold]{_markup_safe(study['name'])}[/]",
        total=1000,
        completed=round(study["masterProgress"] * 10),
        status=study["status"],
        detail=f"{study['completedAssignments']}/{study['totalAssignments']} done",
    )
    for a in study.get("assignments", []):
        worker = a.get("workerLabel") or a.get("workerHostname") or a.get("machineId") or ""
        done = 100.0 if a["status"] == "COMPLETED" else a["progress"]
        detail = " ".join(
            x for x in (safe(worker), safe(a.get("currentStage") or ""), _until(a.get("eta"))) if x
        )
        progress.add_task(
            f"  #{a['index']}",
            total=1000,
            completed=round(done * 10),
            status=a["status"],
            detail=_markup_safe(detail),
        )
    return Group(progress)


def _markup_safe(text: str) -> str:
    from rich.markup import escape

    return escape(safe(text))
