"""What a person at the VM sees: a live panel in a terminal, plain log lines otherwise.

The agent's threads write into one `AgentView` (plain attributes, replaced whole, so readers
never see half an update); the console only reads it. In a terminal a `rich.live` panel redraws
it four times a second: the assignment, overall and stage bars, the connection state and the
spool depth. Without a terminal (a service, a log file, the demo) the same events are printed as
plain log lines, plus a progress line every 30 s (the study's raw output is kept in its run
folder as `agent-console.log`).
"""

from __future__ import annotations

import logging
import sys
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, TextIO

from rich.console import Console, Group
from rich.live import Live
from rich.logging import RichHandler
from rich.panel import Panel
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from goliat_monitor.agent.client import Connection
from goliat_monitor.outbox import Spool, SpoolClosedError

__all__ = ["AgentConsole", "AgentView", "RunView", "setup_logging"]

log = logging.getLogger("goliat_monitor.agent")

_LOG_COLOURS = {
    "warning": "yellow",
    "highlight": "bold yellow",
    "error": "red",
    "fatal": "bold magenta",
    "success": "bold green",
    "progress": "green",
    "info": "cyan",
    "verbose": "blue",
    "header": "bold magenta",
}


@dataclass
class RunView:
    """The assignment being run, as last reported by the study's output."""

    assignment_id: str
    study: str
    index: int
    attempt: int
    started: float = field(default_factory=time.time)
    phase: str = "starting"
    overall: float = 0.0
    stage: str = ""
    stage_percent: float = 0.0
    sub_stage: str = ""
    simulation: int = 0
    simulations: int = 0
    case: str = ""
    eta_seconds: float | None = None
    lines: deque[tuple[str, str]] = field(default_factory=lambda: deque(maxlen=8))

    def observe(self, message: dict[str, Any]) -> None:
        """Follow one parsed GUI message (called on the pump thread, for every message)."""
        kind = message.get("type")
        if kind == "overall_progress":
            self.overall = _percent(message.get("current"), message.get("total"))
        elif kind == "stage_progress":
            self.stage = str(message.get("name") or self.stage)
            self.stage_percent = _percent(message.get("current"), message.get("total"))
            self.sub_stage = str(message.get("sub_stage") or "")
        elif kind == "simulation_details":
            self.simulation = int(message.get("simulation_count") or 0)
            self.simulations = int(message.get("total_simulations") or 0)
            self.case = str(message.get("current_case") or "")
        elif kind == "profiler_update":
            eta = message.get("eta_seconds")
            self.eta_seconds = float(eta) if isinstance(eta, int | float) else None
        elif kind == "status":
            self.lines.append((str(message.get("log_type") or "default"), str(message.get("message", ""))))


def _percent(current: Any, total: Any) -> float:
    try:
        return max(0.0, min(100.0, 100.0 * float(current) / float(total))) if float(total) else 0.0
    except (TypeError, ValueError):
        return 0.0


@dataclass
class AgentView:
    """Everything the console shows; written by the agent's threads, read by the console."""

    server_url: str
    machine_id: str
    agent_id: str
    connection: Connection
    work_dir: str = ""
    state: str = "starting"
    run: RunView | None = None
    spool: Spool | None = None
    completed: int = 0
    failed: int = 0
    last_event: str = ""

    @property
    def spool_depth(self) -> int:
        try:
            return self.spool.depth() if self.spool is not None else 0
        except SpoolClosedError:
            return 0


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    seconds = int(max(0, seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def render(view: AgentView) -> Panel:
    """The live panel for one moment of `view`."""
    conn = view.connection
    if conn.connected is None:
        link = Text("connecting…", style="yellow")
    elif conn.connected:
        link = Text("connected", style="green")
    else:
        link = Text(f"unreachable for {_duration(time.time() - conn.since)}: {conn.last_error}", style="red")
    head = Table.grid(padding=(0, 2))
    head.add_column(style="dim")
    head.add_column()
    head.add_row("server", Text.assemble(view.server_url, "  ", link))
    head.add_row("machine", f"{view.machine_id}  (agent {view.agent_id[:8]}, work dir {view.work_dir})")
    spool_style = "yellow" if view.spool_depth > 100 else ""
    head.add_row("spool", Text(f"{view.spool_depth} message(s) waiting", style=spool_style))
    head.add_row("state", f"{view.state}   done: {view.completed}  failed: {view.failed}")
    parts: list[Any] = [head]
    run = view.run
    if run is not None:
        body = Table.grid(padding=(0, 2))
        body.add_column(style="dim")
        body.add_column(width=40)
        body.add_column()
        body.add_row(
            "assignment", f"#{run.index} of {run.study} (attempt {run.attempt})", run.assignment_id[:8]
        )
        sims = f"simulation {run.simulation}/{run.simulations}" if run.simulations else ""
        body.add_row(
            "overall",
            ProgressBar(total=100, completed=run.overall, width=40),
            f"{run.overall:5.1f} %  {sims}  ETA {_duration(run.eta_seconds)}",
        )
        stage = run.stage + (f" · {run.sub_stage}" if run.sub_stage else "")
        body.add_row(
            "stage",
            ProgressBar(total=100, completed=run.stage_percent, width=40),
            f"{run.stage_percent:5.1f} %  {stage}",
        )
        if run.case:
            body.add_row("case", run.case, "")
        lines = Text()
        for log_type, message in list(run.lines):
            lines.append(message[:160] + "\n", style=_LOG_COLOURS.get(log_type, ""))
        parts += [Text(""), body, Text(""), lines]
    elif view.last_event:
        parts += [Text(""), Text(view.last_event, style="dim")]
    return Panel(Group(*parts), title="goliat-monitor agent", border_style="blue")


def setup_logging(console: Console | None, level: int = logging.INFO) -> None:
    """Agent log lines go above the live panel (rich) or to stderr with a timestamp (plain)."""
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    handler: logging.Handler
    if console is not None:
        handler = RichHandler(console=console, show_path=False, rich_tracebacks=False)
        handler.setFormatter(logging.Formatter("%(message)s"))
    else:
        plain = logging.StreamHandler(sys.stderr)
        plain.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
        handler = plain
    root.addHandler(handler)
    root.setLevel(level)
    logging.getLogger("httpx").setLevel(logging.WARNING)
    logging.getLogger("httpcore").setLevel(logging.WARNING)


class AgentConsole:
    """Shows an AgentView: `rich.live` on a terminal, plain lines (and study echo) otherwise."""

    def __init__(self, view: AgentView, *, live: bool | None = None, stream: TextIO | None = None) -> None:
        self.view = view
        self._stream = stream or sys.stdout
        self.live = self._stream.isatty() if live is None else live
        self._console = Console(file=self._stream) if self.live else None
        self._live: Live | None = None

    def start(self, level: int | None = logging.INFO) -> None:
        """Show the panel; `level` None leaves logging alone (the agent embedded in a test or app)."""
        if level is not None:
            setup_logging(self._console, level)
        if self._console is not None:
            self._live = Live(
                get_renderable=lambda: render(self.view),
                console=self._console,
                refresh_per_second=4,
                transient=False,
            )
            self._live.start()

    def stop(self) -> None:
        if self._live is not None:
            self._live.stop()
            self._live = None

    def progress_line(self) -> None:
        """Plain mode: one line on the run's state (the live panel shows it all the time)."""
        run = self.view.run
        if self.live or run is None:
            return
        sims = f", simulation {run.simulation}/{run.simulations}" if run.simulations else ""
        log.info(
            "assignment #%d of %s: %.1f %%%s, %s %.0f %%, ETA %s; spool %d, server %s",
            run.index,
            run.study,
            run.overall,
            sims,
            run.stage or "-",
            run.stage_percent,
            _duration(run.eta_seconds),
            self.view.spool_depth,
            {True: "connected", False: "unreachable", None: "not yet reached"}[
                self.view.connection.connected
            ],
        )
