"""The live panel renders every state the agent can be in (no terminal needed)."""

from __future__ import annotations

import io
import logging
import time

import pytest
from rich.console import Console

from goliat_monitor.agent.client import Connection
from goliat_monitor.agent.console import AgentConsole, AgentView, RunView, render


def text_of(view: AgentView) -> str:
    buffer = io.StringIO()
    Console(file=buffer, width=120, color_system=None).print(render(view))
    return buffer.getvalue()


def test_the_panel_shows_the_run_its_progress_and_the_link() -> None:
    connection = Connection()
    view = AgentView("http://server:8000", "203.0.113.7", "0d5e6f7a-0000-4000-8000-000000000000", connection)
    assert "connecting" in text_of(view)

    run = RunView(assignment_id="a1b2c3d4-e5f6", study="campaign", index=3, attempt=2)
    for message in (
        {
            "type": "simulation_details",
            "simulation_count": 2,
            "total_simulations": 6,
            "current_case": "ella, 700MHz",
        },
        {"type": "overall_progress", "current": 41.5, "total": 100},
        {"type": "stage_progress", "name": "Run", "current": 30, "total": 100, "sub_stage": "Execute iSolve"},
        {"type": "profiler_update", "eta_seconds": 3725},
        {"type": "status", "message": "    - Execute iSolve...", "log_type": "progress"},
    ):
        run.observe(message)
    view.run = run
    connection.mark(False, "ConnectError: refused")
    connection.since = time.time() - 65
    output = text_of(view)

    assert "#3 of campaign (attempt 2)" in output
    assert "41.5 %" in output and "simulation 2/6" in output and "ETA 1:02:05" in output
    assert "Run · Execute iSolve" in output and "30.0 %" in output
    assert "ella, 700MHz" in output
    assert "Execute iSolve..." in output
    assert "unreachable for 1:0" in output and "refused" in output


def test_plain_mode_logs_a_progress_line(caplog: pytest.LogCaptureFixture) -> None:
    view = AgentView("http://s", "m", "a" * 36, Connection())
    console = AgentConsole(view, live=False, stream=io.StringIO())
    caplog.set_level(logging.INFO, logger="goliat_monitor.agent")
    console.progress_line()  # no run: nothing to say
    assert caplog.messages == []
    view.run = RunView(assignment_id="a1", study="campaign", index=0, attempt=1)
    view.run.observe({"type": "overall_progress", "current": 12.5, "total": 100})
    console.progress_line()
    assert caplog.messages == [
        "assignment #0 of campaign: 12.5 %, - 0 %, ETA -; spool 0, server not yet reached"
    ]
