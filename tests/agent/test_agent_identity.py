"""Machine id, agent id, work-dir ownership and the heartbeat's system figures."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import psutil
import pytest

from goliat_monitor.agent.identity import (
    WorkDirBusyError,
    claim_work_dir,
    get_machine_id,
    load_agent_id,
    release_work_dir,
)
from goliat_monitor.agent.system_info import SystemProbe, parse_nvidia_smi


def test_machine_id_is_the_public_ip_then_the_local_ip_then_the_hostname() -> None:
    assert get_machine_id(lambda: "198.51.100.4", lambda: "10.0.0.2") == "198.51.100.4"
    assert get_machine_id(lambda: None, lambda: "10.0.0.2") == "10.0.0.2"
    assert get_machine_id(lambda: None, lambda: None) == __import__("socket").gethostname()


def test_agent_id_is_created_once_and_kept(tmp_path: Path) -> None:
    first = load_agent_id(tmp_path / "work")
    assert uuid.UUID(first)
    assert load_agent_id(tmp_path / "work") == first
    assert load_agent_id(tmp_path / "other") != first  # two agents behind one NAT stay two


def test_a_malformed_agent_id_is_replaced(tmp_path: Path) -> None:
    (tmp_path / "agent-id").write_text("not a uuid", encoding="utf-8")
    assert uuid.UUID(load_agent_id(tmp_path))


def test_a_work_dir_belongs_to_one_live_agent(tmp_path: Path) -> None:
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        started = psutil.Process(other.pid).create_time()
        (tmp_path / "agent.lock").write_text(
            f'{{"pid": {other.pid}, "started": {started}}}', encoding="utf-8"
        )
        with pytest.raises(WorkDirBusyError, match=str(other.pid)):
            claim_work_dir(tmp_path)
    finally:
        other.kill()
        other.wait()
    claim_work_dir(tmp_path)  # its owner is gone (a SIGKILL, say): the lock is stale
    assert _lock_holder(tmp_path) == os.getpid()
    release_work_dir(tmp_path)
    assert not (tmp_path / "agent.lock").exists()


def _lock_holder(work_dir: Path) -> int:
    return int(json.loads((work_dir / "agent.lock").read_text(encoding="utf-8"))["pid"])


def test_claiming_twice_from_one_process_is_fine(tmp_path: Path) -> None:
    claim_work_dir(tmp_path)
    claim_work_dir(tmp_path)  # a restarted loop in the same process re-claims its own dir
    assert _lock_holder(tmp_path) == os.getpid()
    # The lock is live, not skipped: another process is still refused while this one holds it.
    other = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from pathlib import Path\n"
            "from goliat_monitor.agent.identity import WorkDirBusyError, claim_work_dir\n"
            "try:\n    claim_work_dir(Path(sys.argv[1]))\nexcept WorkDirBusyError:\n    sys.exit(3)\n",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert other.returncode == 3, other.stderr
    release_work_dir(tmp_path)
    assert not (tmp_path / "agent.lock").exists()


def test_nvidia_smi_output_is_parsed_in_gib() -> None:
    reading = parse_nvidia_smi("NVIDIA GeForce RTX 4090, 87, 12288, 24564\nNVIDIA A100, 1, 2, 3\n")
    assert reading is not None
    assert reading.name == "NVIDIA GeForce RTX 4090"
    assert reading.percent == 87.0
    assert reading.vram_used_gb == 12.0
    assert reading.vram_total_gb == 23.99
    assert parse_nvidia_smi("") is None
    odd = parse_nvidia_smi("Tesla K80, [N/A], [N/A], 11441")
    assert odd is not None and odd.percent is None and odd.vram_used_gb is None


def test_probe_without_a_gpu_reports_cpu_and_ram() -> None:
    probe = SystemProbe(nvidia_smi=None)
    info = probe.static_info()
    assert info["cpuCores"] >= 1 and info["totalRamGB"] > 0 and info["hostname"]
    assert info["gpuName"] is None
    load = probe.load()
    assert 0 <= load["cpuPercent"] <= 100 and 0 <= load["ramPercent"] <= 100
    assert "gpuPercent" not in load


@pytest.mark.skipif(sys.platform == "win32", reason="a shell script stands in for nvidia-smi")
def test_probe_reads_the_gpu_from_nvidia_smi(tmp_path: Path) -> None:
    fake = tmp_path / "nvidia-smi"
    fake.write_text("#!/bin/sh\necho 'NVIDIA RTX A6000, 55, 1024, 49140'\n", encoding="utf-8")
    fake.chmod(0o755)
    probe = SystemProbe(nvidia_smi=str(fake))
    assert probe.static_info()["gpuName"] == "NVIDIA RTX A6000"
    assert probe.load() | {"cpuPercent": 0, "ramPercent": 0} == {
        "cpuPercent": 0,
        "ramPercent": 0,
        "gpuPercent": 55.0,
        "vramUsedGB": 1.0,
        "vramTotalGB": 47.99,
    }


def test_a_missing_nvidia_smi_is_not_asked_again(tmp_path: Path) -> None:
    probe = SystemProbe(nvidia_smi=str(tmp_path / "gone" / "nvidia-smi"))
    assert probe.load().keys() == {"cpuPercent", "ramPercent"}
    assert probe._nvidia_smi is None
