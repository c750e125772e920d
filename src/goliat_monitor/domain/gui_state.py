"""How GOLIAT's GUI messages change a worker's live state: pure decisions, no I/O.

The server feeds each message through `interpret`, applies the column changes it returns, and asks
`status_after` what the worker's status becomes. Keeping this here lets the rules (late progress
after `finished`, the failure text, division by zero) be tested without a database.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from goliat_monitor.domain.models import (
    ERROR_LOG_TYPES,
    EXIT_CODE_OUT_OF_MEMORY,
    FAILED_STUDY_MESSAGE,
    LOG_TYPES,
    WARNING_LOG_TYPES,
    WorkerStatus,
)

PROGRESS_TYPES = frozenset({"overall_progress", "stage_progress", "simulation_details", "sim_details"})
"""Messages that say a study is running right now."""

KEPT_TYPES_EXCLUDED = frozenset(
    {"overall_progress", "stage_progress", "log_batch", "status", "profiler_update", "timing"}
)
"""Types stored in their own tables; every other message is also kept verbatim."""


def percent(current: float, total: float) -> float:
    """GOLIAT's current/total as a percentage in [0, 100]; a zero total means no progress yet."""
    if total <= 0:
        return 0.0
    return max(0.0, min(100.0, current / total * 100.0))


def normalize_log_type(log_type: str | None) -> str:
    return log_type if log_type in LOG_TYPES else "default"


@dataclass(frozen=True)
class LogLine:
    message: str
    log_type: str
    timestamp: float


@dataclass(frozen=True)
class Ending:
    """A run ended: successfully, or with the failure GOLIAT reported."""

    failed: bool
    message: str | None
    exit_code: int | None

    @property
    def out_of_memory(self) -> bool:
        return self.exit_code == EXIT_CODE_OUT_OF_MEMORY


@dataclass(frozen=True)
class Interpretation:
    changes: dict[str, Any] = field(default_factory=dict)
    logs: tuple[LogLine, ...] = ()
    sequence: int | None = None
    is_progress: bool = False
    ending: Ending | None = None
    keep: bool = False


def interpret(message: Mapping[str, Any], *, now: float, sent_at: float | None = None) -> Interpretation:
    """What one validated GUI message (as a dict) changes. `now` is the server's clock."""
    kind = message.get("type")
    stamp = sent_at if sent_at is not None else now
    if kind == "overall_progress":
        value = percent(message["current"], message["total"])
        return Interpretation({"progress": value}, is_progress=True)
    if kind == "stage_progress":
        changes: dict[str, Any] = {"stage_progress": percent(message["current"], message["total"])}
        if message.get("name"):
            changes["stage"] = message["name"]
        if "sub_stage" in message:
            changes["sub_stage"] = message.get("sub_stage")
        return Interpretation(changes, is_progress=True)
    if kind == "profiler_update":
        eta = message.get("eta_seconds")
        return Interpretation({"eta_at": now + eta if eta is not None and eta >= 0 else None})
    if kind == "simulation_details":
        return Interpretation(
            {
                "simulation_count": message.get("simulation_count"),
                "total_simulations": message.get("total_simulations"),
                "current_case": message.get("current_case"),
            },
            is_progress=True,
            keep=True,
        )
    if kind == "sim_details":
        return Interpretation(
            {
                "simulation_count": message.get("count"),
                "total_simulations": message.get("total"),
                "current_case": message.get("details"),
            },
            is_progress=True,
            keep=True,
        )
    if kind == "log_batch":
        lines = tuple(
            LogLine(
                entry["message"],
                normalize_log_type(entry.get("log_type")),
                entry.get("timestamp") or stamp,
            )
            for entry in message["logs"]
        )
        return Interpretation(logs=lines, sequence=message.get("sequence"))
    if kind == "status":
        line = LogLine(message["message"], normalize_log_type(message.get("log_type")), stamp)
        return Interpretation(logs=(line,))
    if kind == "finished":
        exit_code = message.get("exit_code")
        text = message.get("message")
        failed = (exit_code not in (None, 0)) or text == FAILED_STUDY_MESSAGE
        return Interpretation(ending=Ending(failed, text, exit_code), keep=True)
    if kind in ("fatal_error", "memory_error"):
        exit_code = message.get("exit_code")
        if exit_code is None and kind == "memory_error":
            exit_code = EXIT_CODE_OUT_OF_MEMORY
        return Interpretation(ending=Ending(True, message.get("message"), exit_code), keep=True)
    if kind == "timing":
        return Interpretation()  # the agent's profiler durations have their own table
    return Interpretation(keep=True)


def count_logs(lines: tuple[LogLine, ...]) -> tuple[int, int]:
    """(warnings, errors) as GOLIAT's dashboard counts them."""
    warnings = sum(1 for line in lines if line.log_type in WARNING_LOG_TYPES)
    errors = sum(1 for line in lines if line.log_type in ERROR_LOG_TYPES)
    return warnings, errors


def reopens_run(*, finished_at: float | None, now: float, grace_s: float) -> bool:
    """May a progress message mark the worker RUNNING again?

    GOLIAT sends its last progress messages from a pool of threads, so one can arrive just after
    `finished`. Within `grace_s` of a `finished` it is such a straggler, not a new run.
    """
    return finished_at is None or now - finished_at > grace_s


def status_after(current: str, result: Interpretation, *, reopen: bool) -> str:
    if result.ending is not None:
        return WorkerStatus.ERROR if result.ending.failed else WorkerStatus.IDLE
    if result.is_progress and reopen:
        return WorkerStatus.RUNNING
    if current == WorkerStatus.OFFLINE:
        return WorkerStatus.IDLE
    return current


# -- log order ---------------------------------------------------------------------------------

_RUN_BITS, _SEQUENCE_BITS, _POSITION_BITS = 20, 31, 12
MAX_POSITION = (1 << _POSITION_BITS) - 1


def order_key(run: int, sequence: int, position: int) -> int:
    """Pack (run, sequence, position in batch) into one integer that sorts the same way.

    Stored in one indexed column, it gives the log order in one index scan whatever order the
    batches arrived in. 20 + 31 + 12 bits fit a signed 64-bit integer.
    """
    position = min(position, MAX_POSITION)
    return (run << (_SEQUENCE_BITS + _POSITION_BITS)) | (sequence << _POSITION_BITS) | position


def sequence_range(run: int, sequence: int) -> tuple[int, int]:
    """The [low, high] order keys a batch with this sequence occupies."""
    return order_key(run, sequence, 0), order_key(run, sequence, MAX_POSITION)


def run_for_batch(*, current_run: int, sequence_taken: bool) -> int:
    """Which GOLIAT run a log batch belongs to.

    Each run restarts `sequence` at 0. A sequence not yet used in the current run belongs to it
    (batches arrive out of order); one already used can only come from a new run.
    """
    return current_run + 1 if sequence_taken else current_run


# -- liveness ----------------------------------------------------------------------------------


def offline_after(*, configured_s: float, heartbeat_interval_s: float | None) -> float:
    """Seconds of silence after which a worker is offline.

    GOLIAT's bridge heartbeats only every 30 s while idle, so a fixed 30 s limit would make it
    flicker. A worker whose observed heartbeat spacing is longer than the limit gets 1.5 times
    that spacing plus 5 s.
    """
    if heartbeat_interval_s is None:
        return configured_s
    return max(configured_s, 1.5 * min(heartbeat_interval_s, 600.0) + 5.0)


def is_online(
    *, last_seen: float, now: float, configured_s: float, heartbeat_interval_s: float | None
) -> bool:
    return now - last_seen <= offline_after(
        configured_s=configured_s, heartbeat_interval_s=heartbeat_interval_s
    )
