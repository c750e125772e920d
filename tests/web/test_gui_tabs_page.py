"""GOLIAT's GUI tabs on the worker page, filled by a simulated study run through the real agent.

The server runs on the real clock (the agent and the study do), the agent is `goliat-monitor agent`
in a subprocess running `goliat-monitor simulate-study`, and the page is open while the study runs,
so the Timings table, the pies and the Disk I/O chart are filled by live updates.
"""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Page, expect

from goliat_monitor.config_files import read_config
from goliat_monitor.domain.splitting import split_config
from goliat_monitor.settings import ServerSettings
from tests.conftest import TEST_CONFIGS, start_server
from tests.support import wait_for
from tests.web.conftest import PageProblems
from tests.web.test_live_pages import OpenPage, wait_until

MACHINE = "198.51.100.40"


def three_simulations() -> tuple[dict[str, object], dict[str, dict[str, object]]]:
    config, parents = read_config(TEST_CONFIGS, "far_field_config.json")
    config["phantoms"] = ["thelonious"]
    config["frequencies_mhz"] = [700]
    config["far_field_setup"]["environmental"]["incident_directions"] = ["x_pos", "y_pos", "z_pos"]
    config["far_field_setup"]["environmental"]["polarizations"] = ["theta"]
    return config, parents


def start_agent(url: str, work_dir: Path) -> subprocess.Popen[bytes]:
    study = shlex.join([sys.executable, "-m", "goliat_monitor", "simulate-study"]) + " {config} --speed 3"
    argv = [sys.executable, "-m", "goliat_monitor", "agent", "--server", url, "--work-dir", str(work_dir)]
    argv += ["--machine-id", MACHINE, "--command", study, "--plain"]
    # Heartbeats twice a second: disk rates need two readings, and the study lasts seconds.
    env = {**os.environ, "GOLIAT_MONITOR_HEARTBEAT_INTERVAL_S": "0.5"}
    with (work_dir.parent / "agent.log").open("ab") as log:
        return subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=env)


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)  # the server here is its own
def test_a_simulated_study_fills_the_timings_pies_and_disk_chart(tmp_path: Path, open_page: OpenPage) -> None:
    url, _app, stop = start_server(ServerSettings(data_dir=tmp_path / "server"), time.time)
    work_dir = tmp_path / "agent"
    work_dir.mkdir()
    agent: subprocess.Popen[bytes] | None = None
    browser_page: Page | None = None
    try:
        with httpx.Client(base_url=url, timeout=30) as client:
            config, parents = three_simulations()
            split = split_config(config, "auto", num_splits=1, parents=parents)
            body = {
                "name": "tabs",
                "baseConfig": config,
                "parentConfigs": parents,
                "assignments": [{"splitConfig": a.config, "status": "PENDING"} for a in split.assignments],
            }
            assert client.post("/api/super-studies", json=body).status_code == 200
            agent = start_agent(url, work_dir)
            worker_id = wait_for(
                lambda: next((w["id"] for w in client.get("/api/workers").json()), None),
                what="the agent's first heartbeat",
            )
            browser_page, problems = open_page()
            browser_page.goto(f"{url}/workers/{worker_id}")
            expect(browser_page.locator("#live-status")).to_have_attribute("data-state", "live")

            # The study runs while the page is open: the tabs fill through live updates.
            rows = browser_page.locator("#timings-table tbody tr")
            expect(rows.first).to_be_visible(timeout=30_000)
            wait_until(
                browser_page,
                "document.querySelector('#timings-table tbody tr td:nth-child(3)').textContent === '3'",
                timeout=60,
            )
            phases = rows.locator("td:nth-child(1)").all_text_contents()
            assert {"setup", "run", "extract"} <= set(phases)
            subtasks = rows.locator("td:nth-child(2)").all_text_contents()
            assert "isolve_execution" in subtasks
            expect(browser_page.locator("#timings-empty")).to_be_hidden()

            pies = browser_page.locator("#pie-grid figure")
            expect(pies).to_have_count(4)
            assert pies.locator("figcaption").all_text_contents() == [
                "Phase Weights",
                "Setup Subtasks",
                "Run Subtasks",
                "Extract Subtasks",
            ]
            assert pies.nth(0).locator(".slice").count() == 3  # setup, run, extract
            assert "Setup" in pies.nth(0).locator(".legend").inner_text()
            assert pies.nth(2).locator(".slice").count() >= 1

            # Disk I/O comes with the agent's heartbeats; the charts reload every 15 s at most,
            # and the range menu reloads them at once.
            def disk_line_drawn() -> bool:
                assert browser_page is not None
                browser_page.select_option("#chart-range", "15")
                return browser_page.locator("#chart-disk path.line").count() == 2

            wait_for(disk_line_drawn, timeout=30, what="the disk I/O chart", every=0.5)
            legend = browser_page.locator("#legend-disk").inner_text()
            assert "Read" in legend and "Write" in legend and "MB/s" in legend
            expect(browser_page.locator("#chart-faults path.line")).to_have_count(1)

            summary = browser_page.locator('[data-f="summary"]')
            expect(summary).to_have_text("[100%] Sim 3/3 · Finished", timeout=60_000)
            assert browser_page.title().startswith("[100%] Sim 3/3 · Finished · ")
            assert problems == PageProblems()
    finally:
        if browser_page is not None:
            browser_page.close()
        if agent is not None:
            agent.send_signal(signal.SIGINT)
            try:
                agent.wait(20)
            except subprocess.TimeoutExpired:
                agent.kill()
                agent.wait(10)
        stop()
