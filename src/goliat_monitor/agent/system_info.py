"""The machine facts and load figures a heartbeat carries (psutil, and nvidia-smi when present).

Heartbeats go every 5 s, so everything here must be cheap: psutil's CPU figure is measured since
the previous call (no sleeping), and nvidia-smi, the one slow probe, runs with a short timeout and
is not asked again once it is missing.

Disk I/O, as GOLIAT's "Disk I/O" tab plots it, is also a rate since the previous call:

* `diskReadMBps` / `diskWriteMBps`: growth of `psutil.disk_io_counters()` read and write bytes
  over all disks, in MB/s with MB = 2**20 bytes (GOLIAT's unit).
* `pageFaultsPerSec`: what each OS can tell without extra packages. On Linux, hard (major)
  faults of the whole machine, from `pgmajfault` in `/proc/vmstat`: the faults that had to read
  from disk, the memory pressure GOLIAT's plot is about. On Windows, psutil only counts faults
  per process (`memory_info().num_page_faults`, soft and hard together), so it is the sum over
  the agent and its descendants, that is GOLIAT and the solvers it starts; a process counts from
  its second sample on, so one starting or ending does not make a spike. Elsewhere: left out.
  (GOLIAT's own GUI divides `psutil.swap_memory().sin` by 4096, which psutil always reports as 0
  on Windows.)

A counter that went backwards (a disk removed, a counter wrapped) gives no figure that time
rather than a made-up one.
"""

from __future__ import annotations

import logging
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

__all__ = [
    "CounterRate",
    "GpuReading",
    "SystemProbe",
    "parse_nvidia_smi",
    "parse_vmstat_major_faults",
    "process_tree_fault_rate",
]

log = logging.getLogger(__name__)

_NVIDIA_QUERY = "--query-gpu=name,utilization.gpu,memory.used,memory.total"
_GIB = 1024**3
_MIB = 1024**2
_VMSTAT = Path("/proc/vmstat")


@dataclass(frozen=True, slots=True)
class GpuReading:
    name: str
    percent: float | None
    vram_used_gb: float | None
    vram_total_gb: float | None


def _number(text: str) -> float | None:
    try:
        return float(text.strip())
    except ValueError:  # "[N/A]", "[Not Supported]"
        return None


def parse_nvidia_smi(output: str) -> GpuReading | None:
    """The first GPU of `nvidia-smi --query-gpu=... --format=csv,noheader,nounits` output (MiB)."""
    for line in output.splitlines():
        parts = [part.strip() for part in line.split(",")]
        if len(parts) < 4 or not parts[0]:
            continue
        used, total = _number(parts[2]), _number(parts[3])
        return GpuReading(
            name=parts[0],
            percent=_number(parts[1]),
            vram_used_gb=None if used is None else round(used / 1024, 2),
            vram_total_gb=None if total is None else round(total / 1024, 2),
        )
    return None


class CounterRate:
    """Per-second growth of an ever-growing counter between one reading and the next."""

    def __init__(self) -> None:
        self._last: tuple[float, float] | None = None

    def update(self, value: float, now: float) -> float | None:
        """The rate since the previous reading; None for the first one or after a reset."""
        last, self._last = self._last, (value, now)
        if last is None or now <= last[1] or value < last[0]:
            return None
        return (value - last[0]) / (now - last[1])


def parse_vmstat_major_faults(text: str) -> int | None:
    """The `pgmajfault` count (hard page faults since boot) of `/proc/vmstat` text."""
    for line in text.splitlines():
        name, _, value = line.partition(" ")
        if name == "pgmajfault":
            try:
                return int(value)
            except ValueError:
                return None
    return None


def process_tree_fault_rate(
    before: Mapping[int, int], after: Mapping[int, int], seconds: float
) -> float | None:
    """Faults per second of the processes sampled both times (by pid); None if no interval."""
    if seconds <= 0:
        return None
    grown = sum(max(0, after[pid] - count) for pid, count in before.items() if pid in after)
    return grown / seconds


def _process_tree_faults() -> dict[int, int]:
    """num_page_faults of the agent and every process it started, by pid (Windows only)."""
    me = psutil.Process()
    counts: dict[int, int] = {}
    for process in [me, *me.children(recursive=True)]:
        try:
            counts[process.pid] = int(process.memory_info().num_page_faults)
        except (psutil.Error, AttributeError):
            continue  # ended meanwhile, or not ours to read
    return counts


class _PageFaults:
    """Page faults per second by the best means the OS offers (see the module docstring)."""

    def __init__(self, vmstat: Path | None, windows: bool) -> None:
        self._vmstat = vmstat
        self._windows = windows
        self._system = CounterRate()
        self._tree: tuple[dict[int, int], float] | None = None

    def read(self, now: float) -> float | None:
        if self._windows:
            counts = _process_tree_faults()
            last, self._tree = self._tree, (counts, now)
            return None if last is None else process_tree_fault_rate(last[0], counts, now - last[1])
        if self._vmstat is None:
            return None
        try:
            count = parse_vmstat_major_faults(self._vmstat.read_text())
        except OSError:
            return None
        return None if count is None else self._system.update(count, now)


class SystemProbe:
    """Reads static facts once and load figures on every call; never raises.

    `vmstat`, `clock` and `platform` are for tests; by default Linux's `/proc/vmstat`, the
    monotonic clock and `sys.platform`.
    """

    def __init__(
        self,
        nvidia_smi: str | None = "auto",
        timeout: float = 3.0,
        *,
        vmstat: Path | None = _VMSTAT,
        clock: Callable[[], float] = time.monotonic,
        platform: str = sys.platform,
    ) -> None:
        self._nvidia_smi = shutil.which("nvidia-smi") if nvidia_smi == "auto" else nvidia_smi
        self._timeout = timeout
        self._clock = clock
        psutil.cpu_percent(interval=None)  # the first call only starts the measurement
        self._disk_read = CounterRate()
        self._disk_write = CounterRate()
        windows = platform == "win32"
        self._page_faults = _PageFaults(None if windows or vmstat is None else vmstat, windows)
        self._read_disk_io(self._clock())  # likewise: the first figures come with the first load()
        self._gpu_name: str | None = None
        gpu = self._read_gpu()
        if gpu is not None:
            self._gpu_name = gpu.name

    def static_info(self) -> dict[str, Any]:
        """hostname, cpuCores, totalRamGB and gpuName, as GOLIAT's heartbeat names them."""
        return {
            "hostname": socket.gethostname(),
            "cpuCores": psutil.cpu_count(logical=True) or None,
            "totalRamGB": round(psutil.virtual_memory().total / _GIB, 1),
            "gpuName": self._gpu_name,
        }

    def load(self) -> dict[str, Any]:
        """cpuPercent (whole machine, since the last call), ramPercent, GPU and disk I/O figures."""
        figures: dict[str, Any] = self._read_disk_io(self._clock())
        try:
            figures["cpuPercent"] = float(psutil.cpu_percent(interval=None))
            figures["ramPercent"] = float(psutil.virtual_memory().percent)
        except (psutil.Error, OSError):  # pragma: no cover - psutil works on every supported OS
            log.debug("psutil failed", exc_info=True)
        gpu = self._read_gpu()
        if gpu is not None:
            figures.update(gpuPercent=gpu.percent, vramUsedGB=gpu.vram_used_gb, vramTotalGB=gpu.vram_total_gb)
        return {key: value for key, value in figures.items() if value is not None}

    def _read_disk_io(self, now: float) -> dict[str, Any]:
        """diskReadMBps, diskWriteMBps and pageFaultsPerSec since the previous call, when known."""
        figures: dict[str, Any] = {}
        try:
            disks = psutil.disk_io_counters()
        except (psutil.Error, OSError, RuntimeError):  # no disk statistics (some containers)
            log.debug("disk_io_counters failed", exc_info=True)
            disks = None
        if disks is not None:
            read = self._disk_read.update(disks.read_bytes, now)
            write = self._disk_write.update(disks.write_bytes, now)
            if read is not None:
                figures["diskReadMBps"] = round(read / _MIB, 3)
            if write is not None:
                figures["diskWriteMBps"] = round(write / _MIB, 3)
        faults = self._page_faults.read(now)
        if faults is not None:
            figures["pageFaultsPerSec"] = round(faults, 1)
        return figures

    def _read_gpu(self) -> GpuReading | None:
        if not self._nvidia_smi:
            return None
        flags = getattr(subprocess, "CREATE_NO_WINDOW", 0)  # no console window flashing on Windows
        try:
            done = subprocess.run(
                [self._nvidia_smi, _NVIDIA_QUERY, "--format=csv,noheader,nounits"],
                capture_output=True,
                text=True,
                timeout=self._timeout,
                check=False,
                creationflags=flags,
            )
        except FileNotFoundError:
            self._nvidia_smi = None  # gone (driver uninstalled): stop asking
            return None
        except (OSError, subprocess.SubprocessError):
            log.debug("nvidia-smi failed", exc_info=True)
            return None
        if done.returncode != 0:
            return None
        return parse_nvidia_smi(done.stdout)
