"""Decisions about assignments: what a failure leads to, and what a super study's state is.

Pure functions over plain values; the database layer applies them inside its transactions.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from goliat_monitor.domain.campaign import ConfigError, merge_extends
from goliat_monitor.domain.models import EXIT_CODE_OUT_OF_MEMORY, AssignmentStatus, StudyStatus


@dataclass(frozen=True)
class FailurePolicy:
    max_attempts: int = 3
    retry_fatal: bool = False


def after_failure(
    *, attempts: int, policy: FailurePolicy, exit_code: int | None, lease_lost: bool = False
) -> AssignmentStatus:
    """PENDING (hand it to the next worker) or FAILED (give up) after a failed attempt.

    Running out of GPU memory (exit 42) and a lost lease are accidents of the machine, so they are
    retried; any other failure is retried only when the study's policy says so.
    """
    retryable = lease_lost or exit_code == EXIT_CODE_OUT_OF_MEMORY or policy.retry_fatal
    if retryable and attempts < policy.max_attempts:
        return AssignmentStatus.PENDING
    return AssignmentStatus.FAILED


@dataclass(frozen=True)
class AssignmentView:
    status: str
    progress: float
    size: int = 1


@dataclass(frozen=True)
class StudySummary:
    status: StudyStatus
    total: int
    counts: dict[str, int]
    master_progress: float

    @property
    def completed(self) -> int:
        return self.counts.get(AssignmentStatus.COMPLETED, 0)


def summarize_study(assignments: Iterable[AssignmentView], *, cancelled: bool) -> StudySummary:
    """Counts by state, work-weighted master progress and the derived study status.

    Master progress is the mean of assignment progress weighted by each assignment's number of
    simulations (completed counts 100 %); failed and cancelled ones leave the denominator and are
    reported apart, so a campaign with one dead piece still shows how far the rest got.
    """
    items = list(assignments)
    counts: dict[str, int] = {status.value: 0 for status in AssignmentStatus}
    done_work = 0.0
    total_work = 0
    for item in items:
        counts[item.status] = counts.get(item.status, 0) + 1
        if item.status in (AssignmentStatus.FAILED, AssignmentStatus.CANCELLED):
            continue
        weight = max(item.size, 1)
        total_work += weight
        progress = 100.0 if item.status == AssignmentStatus.COMPLETED else item.progress
        done_work += weight * max(0.0, min(100.0, progress))
    master = done_work / total_work if total_work else 0.0
    return StudySummary(study_status(counts, cancelled=cancelled), len(items), counts, round(master, 4))


def study_status(counts: Mapping[str, int], *, cancelled: bool) -> StudyStatus:
    """A study's status from how many of its assignments are in each state (missing ones: 0)."""
    running = counts.get(AssignmentStatus.RUNNING, 0)
    pending = counts.get(AssignmentStatus.PENDING, 0)
    completed = counts.get(AssignmentStatus.COMPLETED, 0)
    failed = counts.get(AssignmentStatus.FAILED, 0)
    if cancelled and running == 0:
        return StudyStatus.CANCELLED
    if sum(counts.values()) == 0:
        return StudyStatus.PENDING
    if running == 0 and pending == 0:
        if failed:
            return StudyStatus.FAILED
        return StudyStatus.COMPLETED if completed else StudyStatus.CANCELLED
    if running or completed or failed:
        return StudyStatus.RUNNING
    return StudyStatus.PENDING


STILL_TO_RUN = frozenset({AssignmentStatus.PENDING, AssignmentStatus.RUNNING, AssignmentStatus.FAILED})
"""Assignments a worker may still run (a failed one can be retried), so a broken config matters."""


def config_warnings(
    assignments: Iterable[tuple[int, str, Mapping[str, Any]]], parents: Mapping[str, Mapping[str, Any]]
) -> list[str]:
    """Why a worker would fail on some assignments before it tries: `extends` it cannot resolve.

    `assignments` are (index, status, split config). GOLIAT's worker writes only the split config
    to disk and never ships the parent it extends, so a parent the study's `parentConfigs` lacks
    fails every such assignment on the machine. One warning per distinct problem, naming the
    assignments it hits.
    """
    hit: dict[str, list[int]] = {}
    for index, status, config in assignments:
        if status not in STILL_TO_RUN or "extends" not in config:
            continue
        try:
            merge_extends(config, parents)
        except ConfigError as exc:
            hit.setdefault(str(exc), []).append(index)
    return [
        f"{_indexes(indexes)}: {problem}. A worker gets only the parents this server holds, so these"
        " will fail until the parent is added to the study's parentConfigs."
        for problem, indexes in hit.items()
    ]


def _indexes(indexes: list[int]) -> str:
    shown = ", ".join(str(i) for i in indexes[:10])
    more = f" and {len(indexes) - 10} more" if len(indexes) > 10 else ""
    return f"Assignment{'s' if len(indexes) > 1 else ''} {shown}{more}"
