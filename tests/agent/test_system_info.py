"""Disk I/O and page-fault rates in the agent's heartbeat: GOLIAT's "Disk I/O" tab, as data."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
import pytest

from goliat_monitor.agent import system_info
from goliat_monitor.agent.system_info import (
    CounterRate,
    SystemProbe,
    parse_vmstat_major_faults,
    process_tree_fault_rate,
)

MIB = 1024 * 1024

# The start of a real /proc/vmstat (Linux 6.1); pgfault counts soft faults too.
VMSTAT = """nr_free_pages 1893462
nr_zone_inactive_anon 21003
pgpgin 8364237
pgpgout 41034452
pswpin 0
pswpout 0
pgfault {faults}
pgmajfault {major}
pgrefill 0
"""


@dataclass
class FakeDisks:
    read_bytes: int
    write_bytes: int


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def disks_reading(monkeypatch: pytest.MonkeyPatch, readings: list[FakeDisks | None]) -> None:
    values: Iterator[FakeDisks | None] = iter(readings)
    monkeypatch.setattr(psutil, "disk_io_counters", lambda: next(values))


# -- pieces ----------------------------------------------------------------------------------------


def test_counter_rate_is_growth_per_second_from_the_second_reading_on() -> None:
    rate = CounterRate()
    assert rate.update(100, 10.0) is None
    assert rate.update(400, 12.0) == 150.0
    assert rate.update(400, 13.0) == 0.0


def test_counter_rate_gives_nothing_for_a_reset_or_no_time_passed() -> None:
    rate = CounterRate()
    rate.update(1000, 1.0)
    assert rate.update(10, 2.0) is None  # went backwards: a disk removed, a wrap
    assert rate.update(30, 4.0) == 10.0  # measured again from the reset value
    assert rate.update(50, 4.0) is None


def test_vmstat_major_faults() -> None:
    assert parse_vmstat_major_faults(VMSTAT.format(faults=512_000_000, major=48_311)) == 48_311
    assert parse_vmstat_major_faults("pgfault 12\n") is None
    assert parse_vmstat_major_faults("pgmajfault lots\n") is None
    # a name that merely starts like it is another counter
    assert parse_vmstat_major_faults("pgmajfault_x 5\npgmajfault 7\n") == 7


def test_process_tree_rate_counts_only_processes_seen_both_times() -> None:
    before = {10: 1_000, 11: 50, 12: 7}
    after = {10: 1_600, 11: 50, 13: 90_000}  # 12 ended, 13 just started
    assert process_tree_fault_rate(before, after, 2.0) == 300.0
    assert process_tree_fault_rate({10: 500}, {10: 20}, 1.0) == 0.0  # pid reused by a new process
    assert process_tree_fault_rate(before, after, 0.0) is None


# -- the probe -------------------------------------------------------------------------------------


def test_probe_reports_disk_throughput_in_mib_per_second(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    disks_reading(
        monkeypatch,
        [FakeDisks(0, 0), FakeDisks(50 * MIB, 5 * MIB), FakeDisks(50 * MIB, 6 * MIB)],
    )
    clock = FakeClock()
    probe = SystemProbe(nvidia_smi=None, vmstat=None, clock=clock, platform="linux")
    clock.now += 5.0
    first = probe.load()
    assert (first["diskReadMBps"], first["diskWriteMBps"]) == (10.0, 1.0)
    assert "pageFaultsPerSec" not in first
    clock.now += 2.0
    second = probe.load()
    assert (second["diskReadMBps"], second["diskWriteMBps"]) == (0.0, 0.5)


def test_probe_without_disk_statistics_leaves_them_out(monkeypatch: pytest.MonkeyPatch) -> None:
    disks_reading(monkeypatch, [None, None])
    probe = SystemProbe(nvidia_smi=None, vmstat=None, clock=FakeClock(), platform="linux")
    load = probe.load()
    assert "diskReadMBps" not in load and "diskWriteMBps" not in load
    assert "cpuPercent" in load


def test_probe_survives_disk_statistics_that_fail(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken() -> Any:
        raise RuntimeError("couldn't find any physical disk")

    monkeypatch.setattr(psutil, "disk_io_counters", broken)
    probe = SystemProbe(nvidia_smi=None, vmstat=None, clock=FakeClock(), platform="linux")
    assert "diskReadMBps" not in probe.load()


def test_probe_reports_hard_page_faults_from_vmstat(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    disks_reading(monkeypatch, [None, None, None])
    vmstat = tmp_path / "vmstat"
    vmstat.write_text(VMSTAT.format(faults=1_000, major=200), encoding="utf-8")
    clock = FakeClock()
    probe = SystemProbe(nvidia_smi=None, vmstat=vmstat, clock=clock, platform="linux")
    vmstat.write_text(VMSTAT.format(faults=900_000, major=1_200), encoding="utf-8")
    clock.now += 4.0
    assert probe.load()["pageFaultsPerSec"] == 250.0  # major faults only: (1200 - 200) / 4
    vmstat.unlink()
    clock.now += 4.0
    assert "pageFaultsPerSec" not in probe.load()


def test_probe_on_windows_sums_the_agents_process_tree(monkeypatch: pytest.MonkeyPatch) -> None:
    disks_reading(monkeypatch, [None, None, None])
    trees = iter([{1: 100, 2: 1_000}, {1: 150, 2: 1_950, 3: 5_000}, {1: 150, 3: 5_100}])
    monkeypatch.setattr(system_info, "_process_tree_faults", lambda: next(trees))
    clock = FakeClock()
    probe = SystemProbe(nvidia_smi=None, vmstat=Path("unused"), clock=clock, platform="win32")
    clock.now += 5.0
    assert probe.load()["pageFaultsPerSec"] == 200.0  # (50 + 950) / 5; pid 3 is new
    clock.now += 5.0
    assert probe.load()["pageFaultsPerSec"] == 20.0  # pid 2 ended; pid 3 grew by 100


@dataclass
class FakeMemory:
    num_page_faults: int


class FakeProcess:
    def __init__(self, pid: int, faults: int | None, children: list[FakeProcess] | None = None) -> None:
        self.pid = pid
        self._faults = faults
        self._children = children or []

    def children(self, recursive: bool) -> list[FakeProcess]:
        assert recursive
        return self._children

    def memory_info(self) -> FakeMemory:
        if self._faults is None:
            raise psutil.NoSuchProcess(self.pid)
        return FakeMemory(self._faults)


def test_process_tree_faults_reads_the_agent_and_its_descendants(monkeypatch: pytest.MonkeyPatch) -> None:
    tree = FakeProcess(1, 10, [FakeProcess(2, 20), FakeProcess(3, None), FakeProcess(4, 40)])
    monkeypatch.setattr(psutil, "Process", lambda: tree)
    assert system_info._process_tree_faults() == {1: 10, 2: 20, 4: 40}  # 3 ended meanwhile


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc/vmstat is Linux's")
def test_real_probe_on_linux_reports_every_disk_io_figure() -> None:
    probe = SystemProbe(nvidia_smi=None)
    load = probe.load()
    assert load.keys() >= {"pageFaultsPerSec", "cpuPercent", "ramPercent"}
    assert load["pageFaultsPerSec"] >= 0
    if psutil.disk_io_counters() is not None:
        assert load["diskReadMBps"] >= 0 and load["diskWriteMBps"] >= 0
