"""The machine facts and load figures a heartbeat carries (psutil, and nvidia-smi when present).

Heartbeats go every 5 s, so everything here must be cheap: psutil's CPU figure is measured since
the previous call (no sleeping), and nvidia-smi, the one slow probe, runs with a short timeout and
is not asked again once it is missing.
"""

from __future__ import annotations

import logging
import shutil
import socket
import subprocess
from dataclasses import dataclass
from typing import Any

import psutil

__all__ = ["GpuReading", "SystemProbe", "parse_nvidia_smi"]

log = logging.getLogger(__name__)

_NVIDIA_QUERY = "--query-gpu=name,utilization.gpu,memory.used,memory.total"
_GIB = 1024**3


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


class SystemProbe:
    """Reads static facts once and load figures on every call; never raises."""

    def __init__(self, nvidia_smi: str | None = "auto", timeout: float = 3.0) -> None:
        self._nvidia_smi = shutil.which("nvidia-smi") if nvidia_smi == "auto" else nvidia_smi
        self._timeout = timeout
        psutil.cpu_percent(interval=None)  # the first call only starts the measurement
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
        """cpuPercent (whole machine, since the last call), ramPercent and the GPU's figures."""
        figures: dict[str, Any] = {}
        try:
            figures["cpuPercent"] = float(psutil.cpu_percent(interval=None))
            figures["ramPercent"] = float(psutil.virtual_memory().percent)
        except (psutil.Error, OSError):  # pragma: no cover - psutil works on every supported OS
            log.debug("psutil failed", exc_info=True)
        gpu = self._read_gpu()
        if gpu is not None:
            figures.update(gpuPercent=gpu.percent, vramUsedGB=gpu.vram_used_gb, vramTotalGB=gpu.vram_total_gb)
        return {key: value for key, value in figures.items() if value is not None}

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
