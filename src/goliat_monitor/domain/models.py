"""The vocabulary shared by server, agent and pages: statuses and log types as GOLIAT spells them."""

from __future__ import annotations

import re
from enum import StrEnum


class WorkerStatus(StrEnum):
    IDLE = "IDLE"
    RUNNING = "RUNNING"
    ERROR = "ERROR"
    OFFLINE = "OFFLINE"


class AssignmentStatus(StrEnum):
    PENDING = "PENDING"
    RUNNING = "RUNNING"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"

    @property
    def is_terminal(self) -> bool:
        return self in TERMINAL_ASSIGNMENT_STATUSES


TERMINAL_ASSIGNMENT_STATUSES = frozenset(
    {AssignmentStatus.COMPLETED, AssignmentStatus.FAILED, AssignmentStatus.CANCELLED}
)


class StudyStatus(StrEnum):
    PENDING = "PENDING"
    RUNNING = "RUNNING"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"


LOG_TYPES = (
    "default",
    "progress",
    "info",
    "verbose",
    "warning",
    "error",
    "fatal",
    "success",
    "header",
    "highlight",
)
"""GOLIAT's `log_type` values, in the order its GUI defines colours for them."""

WARNING_LOG_TYPES = frozenset({"warning", "highlight"})
ERROR_LOG_TYPES = frozenset({"error", "fatal"})

EXIT_CODE_OUT_OF_MEMORY = 42
"""GOLIAT exits with 42 when the GPU ran out of memory; such a run is worth retrying."""

PHASES: tuple[str, ...] = ("setup", "run", "extract")
"""GOLIAT's phases of one simulation, in the order it runs them (its `do_setup`, `do_run`, ...)."""

ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[@-Z\\-_]")
"""Any terminal escape sequence: CSI (colours, cursor moves), OSC (titles, links) and the short forms."""

FAILED_STUDY_MESSAGE = "Study finished with errors"
"""The only failure signal a real GOLIAT GUI sends in its `finished` message."""
