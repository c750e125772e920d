"""`goliat-monitor demo` runs a campaign to the end and stops cleanly on Ctrl-C."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import psutil
import pytest

from goliat_monitor.demo.demo import load_demo_campaign, study_body

pytestmark = [pytest.mark.slow, pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")]


def test_the_bundled_campaign_is_real_goliat_and_splits_into_pieces() -> None:
    campaign = load_demo_campaign()
    assert campaign.config["extends"] == "base_config.json"
    assert set(campaign.parents) == {"base_config.json"}
    body = study_body("demo", campaign, num_splits=8)
    assert len(body["assignments"]) == 8
    assert sum(a["size"] for a in body["assignments"]) == 48
    assert body["parentConfigs"] == campaign.parents


def test_the_demo_completes_a_campaign_and_stops_everything(tmp_path: Path) -> None:
    argv = [sys.executable, "-m", "goliat_monitor", "demo", "--port", "0", "--workers", "2"]
    argv += ["--speed", "40", "--splits", "2", "--data-dir", str(tmp_path / "demo")]
    demo = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    output: list[str] = []
    reader = threading.Thread(target=lambda: output.extend(demo.stdout or []), daemon=True)
    reader.start()
    try:
        deadline = time.monotonic() + 90
        while not any("campaign completed" in line for line in output):
            assert time.monotonic() < deadline, "".join(output)
            assert demo.poll() is None, "".join(output)
            time.sleep(0.2)
        agents = [p for p in psutil.Process(demo.pid).children() if "agent" in " ".join(p.cmdline())]
        assert len(agents) == 2
        # every simulation was announced by its agent's parsed "Simulation N/M", then finished
        found = re.search(
            r"results table at (http://127\.0\.0\.1:\d+)/super-studies/([\w-]+)", "".join(output)
        )
        assert found, "".join(output)
        sims = httpx.get(
            f"{found.group(1)}/api/super-studies/{found.group(2)}/simulations", timeout=10
        ).json()
        assert len(sims) == 48 and {s["status"] for s in sims} == {"DONE"}
        assert all(s["startedAt"] and s["durationS"] is not None for s in sims)
        demo.send_signal(signal.SIGINT)
        assert demo.wait(60) == 0
    finally:
        if demo.poll() is None:
            demo.kill()
    reader.join(5)
    assert demo.stdout is not None
    demo.stdout.close()
    text = "".join(output)
    assert re.search(r"dashboard at http://127\.0\.0\.1:\d+/", text)
    assert "2 assignments, 48 simulations" in text
    assert re.search(r"campaign completed: \d+ result files, 48 simulations in the results table", text)
    assert "demo stopped" in text
    assert not any(agent.is_running() and agent.status() != psutil.STATUS_ZOMBIE for agent in agents)
    assert (tmp_path / "demo" / "server").is_dir()  # --data-dir is kept
